// A built model straight into a kernel instance in Node, without KV: the weights from the build's
// shards (or an already joined weights blob), for the bench, the checks against ggml and
// llama.cpp, and the runtime tests. The Worker fills the same instance from KV (loader.ts).

import { kvKeys, type Manifest } from "../../functions/model/manifest";
import { instantiateModel } from "../../functions/runtime/loader";
import { loadKernelsModuleForNode } from "../../kernels/node";
import type { BuildArtifacts } from "./pipeline";

/** The model of `manifest` with `sequences` KV caches, its weights region filled with `weights`. */
export function instantiateWeights(manifest: Manifest, weights: Uint8Array, sequences = 1) {
  return instantiateModel(manifest, loadKernelsModuleForNode(), sequences, async (k, ptr) => {
    k.u8(ptr, weights.byteLength).set(weights);
  });
}

/** The model of `artifacts` with `sequences` KV caches, its weights copied from the build's shards. */
export function instantiateArtifacts(artifacts: BuildArtifacts, sequences = 1) {
  const entries = new Map(artifacts.entries.map((e) => [e.key, e.value]));
  return instantiateModel(artifacts.manifest, loadKernelsModuleForNode(), sequences, async (k, ptr) => {
    let offset = 0;
    for (const s of artifacts.manifest.weights.shards) {
      k.u8(ptr + offset, s.bytes).set(entries.get(kvKeys.shard(s.sha256))!);
      offset += s.bytes;
    }
  });
}
