// Built artifacts straight into a kernel instance in Node (no KV), for runtime tests.

import { kvKeys } from "../../functions/model/manifest";
import { instantiateArtifacts } from "../../scripts/build/instance";
import type { BuildArtifacts } from "../../scripts/build/pipeline";
import type { LoadedModel } from "../../functions/runtime/loader";
import { Engine } from "../../functions/runtime/engine";
import { tokenizerFromBytes } from "../../functions/runtime/tokenizer/index";

/** The model of `artifacts` with `sequences` KV caches (`cache` is the first), weights copied from its shards. */
export async function runtimeFor(artifacts: BuildArtifacts, sequences = 1) {
  const { model, caches } = await instantiateArtifacts(artifacts, sequences);
  return { model, caches, cache: caches[0] };
}

/** A LoadedModel (as the Worker's registry hands out) from build artifacts, tokenizer included. */
export async function loadedModelFor(artifacts: BuildArtifacts, sequences = 1): Promise<LoadedModel> {
  const m = artifacts.manifest;
  const { model, caches } = await instantiateArtifacts(artifacts, sequences);
  const tokenizerBytes = artifacts.entries.find((e) => e.key === kvKeys.tokenizer(m.tokenizer.sha256))!.value;
  const tokenizer = tokenizerFromBytes(m.tokenizer.kind, tokenizerBytes, m.config.vocabSize);
  return { id: m.id, manifestSha256: "", manifest: m, model, tokenizer, engine: new Engine(m.id, model, tokenizer, m, caches), memoryBytes: 0, structuredOutputBytes: 0 };
}

/** Largest absolute difference, relative to the largest |value| of the expected side. */
export function maxRelError(actual: Float32Array, expected: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return err / scale;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
