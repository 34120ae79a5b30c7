// The model stores the CLI and tests use in Node, each held to the one store contract (Workers
// KV holds to it in test/workers/store.test.ts), and the Worker's loader reading a built model
// from the in-memory store: the same model, logits bit for bit, as loaded without a store, and
// its failures (a missing, truncated or corrupt shard) as the Worker reports them from KV.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { kvKeys } from "../../functions/model/manifest";
import { MissingDataError, ModelError } from "../../functions/runtime/errors";
import { readSequence } from "../../functions/runtime/generate";
import { loadModelFromStore, readManifest, resolveModelPointer } from "../../functions/runtime/loader";
import { MemoryStore } from "../../functions/store/memory";
import { loadKernelsModuleForNode } from "../../kernels/node";
import { instantiateArtifacts } from "../../scripts/build/instance";
import { buildArtifacts, type BuildArtifacts } from "../../scripts/build/pipeline";
import { publishArtifacts } from "../../scripts/build/publish";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { DirectoryKv } from "../../scripts/kv/targets";
import { aidreams } from "../setup/fixtures";
import { storeContract } from "../support/store-contract";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

storeContract("in memory", async () => new MemoryStore());
storeContract("folder (--out)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "edgeinfer-store-"));
  dirs.push(dir);
  return new DirectoryKv(dir);
});

async function aidreamsBuild(quant: "f32" | "q8_0"): Promise<BuildArtifacts> {
  const model = readLlama2cCheckpoint(new Uint8Array(readFileSync(aidreams.checkpoint)));
  return buildArtifacts(
    { id: "aidreams", config: model.config, tensors: model.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(readFileSync(aidreams.tokenizer)), bosId: 1, eosId: 2 } },
    { quant, shardBytes: 64 * 1024 },
  );
}

/** A store holding the build as the CLI publishes it (entries, then the pointer). */
async function published(artifacts: BuildArtifacts): Promise<MemoryStore> {
  const store = new MemoryStore();
  await publishArtifacts(store, artifacts);
  return store;
}

async function load(store: MemoryStore, id = "aidreams") {
  const sha = (await resolveModelPointer(store, id)).manifest;
  const manifest = await readManifest(store, id, sha);
  return loadModelFromStore(store, id, sha, manifest, { kernelsModule: loadKernelsModuleForNode(), maxSequences: 1 });
}

describe("the loader on the in-memory store", () => {
  for (const quant of ["f32", "q8_0"] as const) {
    it(`${quant}: loads the published model, every shard streamed in and checked; its logits are those of the model loaded without a store`, async () => {
      const artifacts = await aidreamsBuild(quant);
      expect(artifacts.manifest.weights.shards.length).toBeGreaterThan(1);
      const loaded = await load(await published(artifacts));
      expect(loaded.manifestSha256).toBe(artifacts.manifestSha256);
      expect(loaded.tokenizer.encode("Once upon a time", { bos: true }).length).toBeGreaterThan(2);
      // greedy through the loaded model's engine, against the same weights put in without a store
      const prompt = [1, 400, 300, 20, 7];
      const seq = loaded.engine.submit({ promptIds: prompt, maxTokens: 24, temperature: 0, topP: 1, seed: 1, stop: [] }, () => {});
      const served: number[] = [];
      for await (const step of readSequence(loaded.engine, seq)) served.push(step.tokenId);
      const direct = await instantiateArtifacts(artifacts);
      const expected: number[] = [];
      let logits = direct.model.forward(prompt, 0, direct.caches[0]);
      for (let pos = prompt.length; expected.length < 24; pos++) {
        const next = logits.indexOf(Math.max(...logits));
        expected.push(next);
        logits = direct.model.forward([next], pos, direct.caches[0]);
      }
      expect(served).toEqual(expected.slice(0, served.length));
      expect(served.length).toBeGreaterThan(4);
    });
  }

  it("a missing shard is missing data naming its key; a truncated or corrupt one is a load failure naming it", async () => {
    const artifacts = await aidreamsBuild("q8_0");
    const shard = kvKeys.shard(artifacts.manifest.weights.shards[1].sha256);
    const store = await published(artifacts);
    const original = (await store.get(shard))!;

    await store.delete(shard);
    const missing = await load(store).catch((e) => e);
    expect(missing).toBeInstanceOf(MissingDataError);
    expect((missing as MissingDataError).key).toBe(shard);

    await store.put(shard, original.subarray(0, original.byteLength - 1));
    const truncated = await load(store).catch((e) => e);
    expect(truncated).toBeInstanceOf(ModelError);
    expect((truncated as Error).message).toMatch(new RegExp(`shard ${shard} is truncated`));

    const corrupt = original.slice();
    corrupt[100] ^= 1;
    await store.put(shard, corrupt);
    await expect(load(store)).rejects.toThrow(new RegExp(`shard ${shard} is corrupt`));

    await store.put(shard, original);
    expect((await load(store)).manifestSha256).toBe(artifacts.manifestSha256);
  });

  it("a model id without a pointer is unknown", async () => {
    const store = await published(await aidreamsBuild("f32"));
    await expect(resolveModelPointer(store, "nobody")).rejects.toMatchObject({ kind: "unknown_model" });
  });
});
