// The runtime's forward pass (our wasm kernels, as the Worker runs them) against the plain
// TypeScript reference, at f32 and at each quant: logits error and greedy agreement, with the
// figures printed (the README quotes them).

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0, type DType } from "../../kernels/quant";
import { buildArtifacts, storageOrder, type BuildArtifacts } from "../../scripts/build/pipeline";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { randomLlamaModel } from "../../scripts/import/llama2c-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { argmax, ReferenceLlama } from "../reference/llama-forward";
import { aidreams } from "../setup/fixtures";
import { maxRelError, runtimeFor } from "../support/runtime";
import { fuseMatrices, type Matrix } from "../../functions/runtime/weights";


async function build(model: ImportedModel, quant: DType): Promise<BuildArtifacts> {
  return buildArtifacts(
    { id: "m", config: model.config, tensors: model.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(16), bosId: 1, eosId: 2 } },
    { quant, shardBytes: 64 * 1024 },
  );
}



const aidreamsModel = () => readLlama2cCheckpoint(new Uint8Array(readFileSync(aidreams.checkpoint)));
const gqaModel = () =>
  randomLlamaModel({ architecture: "llama", dim: 96, hiddenDim: 200, nLayers: 3, nHeads: 6, nKvHeads: 2, vocabSize: 300, seqLen: 80, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false }, 11);

/** The model as the quantized build stores it, dequantized back to f32 (what the reference should see). */
function dequantizedModel(imported: ImportedModel, quant: "q8_0" | "q4_0"): ImportedModel {
  return {
    config: imported.config,
    tensors: imported.tensors.map((t) => {
      if (t.shape.length !== 2) return t;
      const [rows, cols] = t.shape;
      const bytes = quant === "q8_0" ? quantizeQ8_0(t.data, rows, cols) : quantizeQ4_0(t.data, rows, cols);
      return { ...t, data: quant === "q8_0" ? dequantizeQ8_0(bytes, rows, cols) : dequantizeQ4_0(bytes, rows, cols) };
    }),
  };
}

/** Rows that keep every tensor a whole number of 64-byte units: q/k/v and gate/up get fused at q8_0/q4_0. */
const alignedModel = () =>
  randomLlamaModel({ architecture: "llama", dim: 96, hiddenDim: 256, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 300, seqLen: 80, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false }, 12);

describe.each([
  ["aidreams260K", aidreamsModel],
  ["random GQA, untied classifier", gqaModel],
  ["random, fused q/k/v and gate/up products", alignedModel],
])("%s", (_name, load) => {
  it("f32: logits match the reference at every position, token by token and in prefill chunks", async () => {
    const imported = load();
    const ref = new ReferenceLlama(imported);
    const { model, cache } = await runtimeFor(await build(imported, "f32"));
    const tokens = [1];
    let worst = 0;
    for (let pos = 0; pos < 40; pos++) {
      const expected = Float32Array.from(ref.forward(tokens[pos], pos));
      const actual = model.forward([tokens[pos]], pos, cache);
      worst = Math.max(worst, maxRelError(actual, expected));
      expect(argmax(actual)).toBe(argmax(expected));
      tokens.push(argmax(expected));
    }
    expect(worst).toBeLessThan(1e-4);
    // The same 40 tokens as one prefill (chunked matrix-matrix path) give the same last logits.
    const { model: batched, cache: cache2 } = await runtimeFor(await build(imported, "f32"));
    const last = Float32Array.from(batched.forward(tokens.slice(0, 40), 0, cache2));
    const expectedLast = Float32Array.from(model.forward([tokens[39]], 39, cache));
    expect(maxRelError(last, expectedLast)).toBeLessThan(1e-4);
  });

  for (const quant of ["q8_0", "q4_0"] as const) {
    it(`${quant}: equals the reference on the dequantized weights, up to q8 rounding of activations`, async () => {
      const imported = load();
      const ref = new ReferenceLlama(dequantizedModel(imported, quant));
      const { model, cache } = await runtimeFor(await build(imported, quant));
      let token = 1;
      let worst = 0;
      for (let pos = 0; pos < 30; pos++) {
        const expected = Float32Array.from(ref.forward(token, pos));
        worst = Math.max(worst, maxRelError(model.forward([token], pos, cache), expected));
        token = argmax(expected);
      }
      // Only the activations' 8-bit rounding separates the two.
      expect(worst).toBeLessThan(0.05);
    });
  }

  for (const quant of ["f16", "q8_0", "q4_0"] as const) {
    it(`${quant}: bounded logit error and greedy agreement with f32`, async () => {
      const imported = load();
      const f32 = await runtimeFor(await build(imported, "f32"));
      const q = await runtimeFor(await build(imported, quant));
      const steps = 60;
      let token = 1;
      let agree = 0;
      let worst = 0;
      for (let pos = 0; pos < steps; pos++) {
        // Both follow f32's greedy path so their logits stay comparable; agreement counts
        // the steps where the quantized model would have picked the same token.
        const lf = Float32Array.from(f32.model.forward([token], pos, f32.cache));
        const lq = q.model.forward([token], pos, q.cache);
        worst = Math.max(worst, maxRelError(lq, lf));
        if (argmax(lq) === argmax(lf)) agree++;
        token = argmax(lf);
      }
      console.log(`${_name} ${quant}: max logit error ${(worst * 100).toFixed(2)}% of max |logit|, greedy agreement ${agree}/${steps}`);
      // Random weights are the harsh case: no structure for 4 bits to keep.
      const bounds = { f16: [0.005, 0.95], q8_0: [0.06, 0.9], q4_0: [0.75, 0.5] }[quant];
      expect(worst).toBeLessThan(bounds[0]);
      expect(agree / steps).toBeGreaterThanOrEqual(bounds[1]);
    });
  }
});

describe("fused q/k/v product", () => {
  const rb = 544; // q8_0 row of 512 columns
  const m = (ptr: number, rows: number, extra: Partial<Matrix> = {}): Matrix => ({ ptr, rows, cols: 512, dtype: "q8_0", packed: true, ...extra });

  it("joins repacked matrices that sit back to back, and nothing else", () => {
    expect(fuseMatrices([m(1024, 512), m(1024 + 512 * rb, 128), m(1024 + 640 * rb, 128)])).toEqual(m(1024, 768));
    expect(fuseMatrices([m(1024, 512), m(1024 + 512 * rb + 64, 128)])).toBeNull(); // a gap
    expect(fuseMatrices([m(1024, 512), m(1024 + 512 * rb, 128, { packed: false })])).toBeNull();
    expect(fuseMatrices([m(1024, 510), m(1024 + 510 * rb, 128)])).toBeNull(); // tail rows mid-way
    expect(fuseMatrices([m(1024, 512), m(1024 + 512 * rb, 128, { dtype: "q4_0" })])).toBeNull();
  });

  it("a built model's q, k, v and gate, up are back to back, so decode takes the fused products", async () => {
    // the importer's order shuffled: the build stores every layer in its own order regardless
    // (row sizes that keep each tensor a multiple of the 64-byte alignment: no padding between)
    const imported = alignedModel();
    const shuffled = { ...imported, tensors: [...imported.tensors].reverse() };
    const { model } = await runtimeFor(await build(shuffled, "q4_0"));
    const layers = (model as unknown as { layers: Array<{ wqkv: Matrix | null; wGateUp: Matrix | null }> }).layers;
    expect(layers.every((l) => l.wqkv !== null && l.wGateUp !== null)).toBe(true);
  });

  it("the storage order: embedding, then each layer (q, k, v together; gate, up together), then the output; a tensor the spec lacks is refused", () => {
    const config = { ...alignedModel().config, nLayers: 2, dim: 8, hiddenDim: 16, nHeads: 2, nKvHeads: 1, vocabSize: 4 };
    const shapes: Record<string, number[]> = Object.fromEntries(randomLlamaModel(config, 3).tensors.map((x) => [x.name, x.shape]));
    const t = (name: string) => ({ name, shape: shapes[name] ?? [1], data: new Float32Array(1) });
    const names = ["output.weight", "blk.1.ffn_down.weight", "blk.1.ffn_up.weight", "blk.0.ffn_up.weight", "blk.0.attn_v.weight", "blk.0.attn_norm.weight",
      "blk.0.ffn_gate.weight", "blk.0.attn_q.weight", "output_norm.weight", "blk.0.attn_k.weight", "token_embd.weight", "blk.1.ffn_gate.weight",
      "blk.1.attn_output.weight", "blk.0.ffn_norm.weight", "blk.1.attn_q.weight", "blk.0.ffn_down.weight", "blk.1.attn_k.weight", "blk.1.attn_v.weight",
      "blk.1.attn_norm.weight", "blk.1.ffn_norm.weight", "blk.0.attn_output.weight"];
    expect(storageOrder(names.map(t), config).map((x) => x.name)).toEqual([
      "token_embd.weight",
      "blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight", "blk.0.ffn_norm.weight",
      "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
      "blk.1.attn_norm.weight", "blk.1.attn_q.weight", "blk.1.attn_k.weight", "blk.1.attn_v.weight", "blk.1.attn_output.weight", "blk.1.ffn_norm.weight",
      "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight", "blk.1.ffn_down.weight",
      "output_norm.weight", "output.weight",
    ]);
    expect(() => storageOrder([...names, "blk.0.extra"].map(t), config)).toThrow(/unexpected tensor blk\.0\.extra/);
    expect(() => storageOrder(names.filter((n) => n !== "blk.1.attn_v.weight").map(t), config)).toThrow(/missing tensor blk\.1\.attn_v\.weight/);
  });
});
