// The architecture specs (functions/model/arch/): every architecture's spec against the manifest
// of a model the real build made from each kind of source (names, shapes, storage order, fusion
// groups back to back, the memory plan's scratch), and the spec as the gate: a tensor it lacks is
// refused naming it by the importers, the build and the manifest check.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ARCHITECTURES, checkTensors, specFor, specTensors } from "../../functions/model/arch/index";
import type { ImportedTensor, ModelConfig } from "../../functions/model/description";
import { canonicalJson, parseManifest, TENSOR_ALIGN, type Manifest } from "../../functions/model/manifest";
import { PREFILL_CHUNK, scratchBuffers } from "../../functions/model/memory";
import { buildArtifacts, type BuildInput } from "../../scripts/build/pipeline";
import { readGguf } from "../../scripts/import/gguf";
import { writeGguf } from "../../scripts/import/gguf-writer";
import { readHfModel } from "../../scripts/import/hf";
import { randomHfTensors, tinyHfConfig, writeSafetensorsShards, writeTinyHfCheckpoint, type HfFamily } from "../../scripts/import/hf-writer";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { aidreams } from "../setup/fixtures";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = (name: string) => {
  const dir = mkdtempSync(join(tmpdir(), `edgeinfer-spec-${name}-`));
  dirs.push(dir);
  return dir;
};

const hf = (family: HfFamily) => () => {
  const dir = tmp(family);
  writeTinyHfCheckpoint(dir, { family, vocabSize: 300, seed: 3 });
  return readHfModel(dir);
};

/** A model of every architecture and shape variant, from each kind of source. */
const SOURCES: Array<[string, () => { config: ModelConfig; tensors: ImportedTensor[] }]> = [
  ["llama2.c checkpoint (aidreams260K)", () => readLlama2cCheckpoint(new Uint8Array(readFileSync(aidreams.checkpoint)))],
  ["Hugging Face llama", hf("llama")],
  ["Hugging Face smollm2 (tied)", hf("smollm2")],
  ["Hugging Face qwen2 (q/k/v biases)", hf("qwen2")],
  ["Hugging Face mistral", hf("mistral")],
  ["Hugging Face gpt2", hf("gpt2")],
  ["GGUF llama (written from Hugging Face llama)", () => readGguf(writeGguf(hf("llama")(), { quant: "f32" }))],
  ["GGUF gpt2", () => readGguf(writeGguf(hf("gpt2")(), { quant: "q8_0" }))],
];

function input(model: { config: ModelConfig; tensors: ImportedTensor[] }): BuildInput {
  return { id: "m", config: model.config, tensors: model.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(16), bosId: 1, eosId: 2 } };
}

it("the sources below cover every architecture that has a spec", () => {
  const covered = new Set(SOURCES.map(([, load]) => load().config.architecture));
  expect([...covered].sort()).toEqual([...ARCHITECTURES].sort());
});

describe.each(SOURCES)("%s", (_name, load) => {
  const model = load();

  for (const quant of ["f32", "q8_0"] as const) {
    it(`${quant}: the built manifest holds exactly the spec's tensors, in its order and shapes, fusion groups back to back`, async () => {
      const { manifest } = await buildArtifacts(input(model), { quant, shardBytes: 64 * 1024 });
      const spec = specFor(manifest.config);
      const expected = specTensors(manifest.config);
      expect(manifest.tensors.map((t) => [t.name, t.shape])).toEqual(expected.map((t) => [t.name, t.shape]));
      // offsets rise in that order, each tensor right after the previous one (aligned)
      manifest.tensors.forEach((t, i) => {
        const end = i === 0 ? 0 : manifest.tensors[i - 1].offset + manifest.tensors[i - 1].bytes;
        expect(t.offset).toBe(Math.ceil(end / TENSOR_ALIGN) * TENSOR_ALIGN);
      });
      for (let l = 0; l < manifest.config.nLayers; l++) {
        for (const roles of Object.values(spec.fusions)) {
          const at = roles.map((role) => expected.findIndex((t) => t.layer === l && t.role === role));
          expect(at.every((i) => i >= 0)).toBe(true);
          expect(at).toEqual(at.map((_, k) => at[0] + k));
        }
      }
      // the memory plan's scratch is the common buffers plus the spec's own
      const scratch = scratchBuffers(manifest.config, PREFILL_CHUNK, 1, manifest.tensors.map((t) => t.dtype));
      const own = spec.scratch(manifest.config, PREFILL_CHUNK).map((b) => b.name);
      expect(scratch.slice(-own.length).map((b) => b.name)).toEqual(own);
      expect(manifest.memory.scratch).toBe(scratch.reduce((n, b) => n + Math.ceil(b.bytes / 64) * 64, 0));
      expect(parseManifest(canonicalJson(manifest)).tensors).toHaveLength(expected.length);
    });
  }

  it("the build refuses a tensor the spec lacks, a missing one and a wrong shape, naming it", async () => {
    const extra = { name: "blk.0.attn_q_norm.weight", shape: [model.config.dim], data: new Float32Array(model.config.dim) };
    await expect(buildArtifacts(input({ ...model, tensors: [...model.tensors, extra] }), { quant: "f32" })).rejects.toThrow(/unexpected tensor blk\.0\.attn_q_norm\.weight/);
    const dropped = specTensors(model.config).at(-1)!.name;
    await expect(buildArtifacts(input({ ...model, tensors: model.tensors.filter((t) => t.name !== dropped) }), { quant: "f32" })).rejects.toThrow(new RegExp(`missing tensor ${dropped.replace(/\./g, "\\.")}`));
    const reshaped = model.tensors.map((t) => (t.name === "token_embd.weight" ? { ...t, shape: [t.shape[0] - 1, t.shape[1]] } : t));
    await expect(buildArtifacts(input({ ...model, tensors: reshaped }), { quant: "f32" })).rejects.toThrow(/tensor token_embd\.weight has shape/);
  });

  it("the manifest check refuses a tensor index that is not the spec's", async () => {
    const { manifest } = await buildArtifacts(input(model), { quant: "f32", shardBytes: 64 * 1024 });
    const withIndex = (tensors: Manifest["tensors"]) => canonicalJson({ ...manifest, tensors });
    const first = manifest.tensors[0];
    expect(() => parseManifest(withIndex([...manifest.tensors, { ...first, name: "blk.0.attn_q_norm.weight" }]))).toThrow(
      /tensor index does not match the (llama|gpt2) architecture: unexpected tensor blk\.0\.attn_q_norm\.weight/,
    );
    expect(() => parseManifest(withIndex(manifest.tensors.slice(0, -1)))).toThrow(/does not match .*missing tensor/);
    expect(() => parseManifest(withIndex([{ ...first, shape: [1, 1] }, ...manifest.tensors.slice(1)]))).toThrow(/tensor token_embd\.weight has shape \[1, 1\]/);
  });
});

describe("importers refuse a tensor the spec lacks, naming it", () => {
  it("Hugging Face: a Qwen3-style q_norm in a qwen2 checkpoint", () => {
    const dir = tmp("extra");
    const config = tinyHfConfig("qwen2", 300);
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    const tensors = randomHfTensors(config, 2);
    tensors.set("model.layers.1.self_attn.q_norm.weight", { shape: [16], data: new Float32Array(16) });
    writeSafetensorsShards(dir, tensors, "F32", 1);
    expect(() => readHfModel(dir)).toThrow(/unexpected tensors model\.layers\.1\.self_attn\.q_norm\.weight/);
  });

  it("GGUF: a tensor of another architecture's, and the writer writes only the spec's", () => {
    const model = hf("llama")();
    const extra = { name: "blk.1.attn_q_norm.weight", shape: [model.config.dim], data: new Float32Array(model.config.dim) };
    // the writer takes the spec's tensors by name: the extra one is not written
    const written = readGguf(writeGguf({ ...model, tensors: [...model.tensors, extra] }, { quant: "f32" }));
    expect(written.tensors.map((t) => t.name).sort()).toEqual(specTensors(model.config).map((t) => t.name).sort());
    expect(() => checkTensors(model.config, [...written.tensors, extra], "file.gguf")).toThrow(/file\.gguf: unexpected tensor blk\.1\.attn_q_norm\.weight: the llama architecture has no such tensor/);
  });
});
