// Mixed-type GGUF files (llama.cpp's Q4_K_M / Q5_K_M mixes and single K-quant types, written by
// our GGUF writer with ggml's reference quantizers) through the real build path, which keeps
// every tensor's type, and the runtime, held against the plain reference forward pass on the
// file's own dequantized weights: only the activation quantization (q8_K / q8_0 / q8_1, as
// ggml does it) separates the two.
import { describe, expect, it } from "vitest";
import { dequantize, type DType } from "../../kernels/quant";
import { kvKeys } from "../../functions/model/manifest";
import type { LlamaConfig } from "../../functions/model/description";
import { buildArtifacts } from "../../scripts/build/pipeline";
import { readGguf } from "../../scripts/import/gguf";
import { writeGguf, type GgufQuant } from "../../scripts/import/gguf-writer";
import { randomLlamaModel } from "../../scripts/import/llama2c-writer";
import { hfForward } from "../reference/hf-forward";
import { maxRelError, runtimeFor } from "../support/runtime";

/** K-quant-sized rows (dim 256, hidden 768) and SmolLM2-like rows that are not (dim 96). */
const SHAPES: Record<string, LlamaConfig> = {
  k256: { architecture: "llama", dim: 256, hiddenDim: 768, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false },
  w96: { architecture: "llama", dim: 96, hiddenDim: 256, nLayers: 2, nHeads: 3, nKvHeads: 1, vocabSize: 512, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: true },
};

function blobOf(artifacts: Awaited<ReturnType<typeof buildArtifacts>>): Uint8Array {
  const blob = new Uint8Array(artifacts.manifest.weights.bytes);
  const byKey = new Map(artifacts.entries.map((e) => [e.key, e.value]));
  let offset = 0;
  for (const s of artifacts.manifest.weights.shards) {
    blob.set(byKey.get(kvKeys.shard(s.sha256))!, offset);
    offset += s.bytes;
  }
  return blob;
}

const CASES: [string, GgufQuant, Record<string, DType>][] = [
  // llama.cpp's Q4_K_M: q6_K for the classifier and, with 4 layers, attn_v / ffn_down of layers 2
  // and 3 (use_more_bits: the last eighth, and every third layer after the first eighth)
  ["k256", "q4_k_m", { "token_embd.weight": "q4_k", "output.weight": "q6_k", "blk.2.attn_v.weight": "q6_k", "blk.1.attn_v.weight": "q4_k", "blk.3.ffn_down.weight": "q6_k", "blk.0.ffn_down.weight": "q4_k", "blk.2.attn_q.weight": "q4_k" }],
  ["k256", "q5_k_m", { "blk.1.attn_q.weight": "q5_k", "blk.0.ffn_down.weight": "q5_k", "blk.2.ffn_down.weight": "q6_k", "output.weight": "q6_k" }],
  ["k256", "q6_k", { "blk.1.attn_q.weight": "q6_k" }],
  // rows of 96 and 256: q4_K falls back to q5_0, q6_K (tied classifier) to q8_0; ffn_down (256 wide) stays a K-quant
  ["w96", "q4_k_m", { "token_embd.weight": "q8_0", "blk.0.attn_q.weight": "q5_0", "blk.1.ffn_down.weight": "q6_k", "blk.0.ffn_gate.weight": "q5_0" }],
  ["w96", "q5_k_m", { "blk.0.attn_q.weight": "q5_1", "blk.1.ffn_up.weight": "q5_1", "blk.0.ffn_down.weight": "q5_k", "blk.1.ffn_down.weight": "q6_k" }],
  ["w96", "q4_1", { "blk.0.attn_q.weight": "q4_1", "token_embd.weight": "q4_1" }],
];

describe.each(CASES)("a %s GGUF file at %s", (shape, quant, expectedDtypes) => {
  const config = SHAPES[shape]!;
  const source = randomLlamaModel(config, 17);
  const file = writeGguf(source, { quant });
  const gguf = readGguf(file);

  it("builds with every tensor's type kept and its blocks copied byte for byte", async () => {
    const artifacts = await buildArtifacts({ id: "m", config: gguf.config, tensors: gguf.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } }, { quant: "keep" });
    const m = artifacts.manifest;
    const byName = new Map(m.tensors.map((t) => [t.name, t]));
    for (const [name, dtype] of Object.entries(expectedDtypes)) expect(byName.get(name)?.dtype, name).toBe(dtype);
    expect(m.quant).toBe(new Set(m.tensors.filter((t) => t.shape.length === 2).map((t) => t.dtype)).size > 1 ? "mixed" : quant);
    const blob = blobOf(artifacts);
    for (const t of gguf.tensors) {
      if (!t.quantized) continue;
      const e = byName.get(t.name)!;
      expect(blob.subarray(e.offset, e.offset + e.bytes), t.name).toEqual(t.quantized.bytes);
    }
    // the memory plan holds an activation buffer for each format the matrices need
    expect(m.memory.scratch).toBeGreaterThan(0);
  });

  it("runs through the runtime close to the reference forward pass on its own dequantized weights", async () => {
    const artifacts = await buildArtifacts({ id: "m", config: gguf.config, tensors: gguf.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } }, { quant: "keep" });
    const { model, cache } = await runtimeFor(artifacts);
    const tokens = [1, 17, 300, 42, 7, 99, 511, 3, 11, 250];
    // the reference runs on exactly the values ggml's dequantizers give for the file's blocks
    for (const t of gguf.tensors) if (t.quantized) expect(t.data).toEqual(dequantize(t.quantized.dtype, t.quantized.bytes, t.shape[0]!, t.shape[1]!));
    const expected = hfForward(gguf, tokens);
    let worst = 0;
    tokens.forEach((t, pos) => {
      worst = Math.max(worst, maxRelError(model.forward([t], pos, cache), Float32Array.from(expected[pos]!)));
    });
    // prefill (chunks through the batched products) agrees with the one-token path
    const { model: model2, cache: cache2 } = await runtimeFor(artifacts);
    const last = model2.forward(tokens, 0, cache2);
    expect(maxRelError(last, Float32Array.from(expected[tokens.length - 1]!))).toBeLessThan(0.05);
    console.log(`${shape} ${quant}: max logit error vs reference on dequantized weights ${(worst * 100).toFixed(2)}%`);
    expect(worst).toBeLessThan(0.05);
  });
});

describe("refusals", () => {
  it("a truncated K-quant tensor is refused with the tensor's name", () => {
    const file = writeGguf(randomLlamaModel(SHAPES.k256!, 3), { quant: "q4_k_m" });
    expect(() => readGguf(file.subarray(0, file.length - 100))).toThrow(/truncated: tensor output\.weight \(Q6_K, \d+ bytes/);
  });
});

describe("memory plan", () => {
  it("sizes one activation buffer per format the matrices need (q8_K: 292 bytes per 256 values)", async () => {
    const { scratchBuffers, PREFILL_CHUNK } = await import("../../functions/model/memory");
    const config = SHAPES.k256!;
    const names = (dtypes: DType[]) => scratchBuffers(config, PREFILL_CHUNK, 1, dtypes).map((b) => b.name);
    expect(names(["q8_0", "f32"])).not.toContain("xq8_k");
    expect(names(["q8_0"])).not.toContain("xq8_1");
    const k = scratchBuffers(config, PREFILL_CHUNK, 1, ["q4_k", "q6_k", "f32"]).find((b) => b.name === "xq8_k")!;
    expect(k.bytes).toBe(PREFILL_CHUNK * (config.hiddenDim / 256) * 292);
    const one = scratchBuffers(config, PREFILL_CHUNK, 1, ["q5_1"]).find((b) => b.name === "xq8_1")!;
    expect(one.bytes).toBe(PREFILL_CHUNK * (config.hiddenDim / 32) * 36);
  });
});
