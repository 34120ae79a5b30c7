import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { maxAbs, maxAbsDiff } from "../support/runtime";
import type { Gpt2Config, LlamaConfig } from "../../functions/model/description";
import { tensorNames } from "../../functions/model/description";
import { readHfModel, type HfModel } from "../../scripts/import/hf";
import { HF_FAMILIES, type HfFamily, writeTinyHfCheckpoint } from "../../scripts/import/hf-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { indexTensors } from "../../scripts/import/types";
import { hfForward, hfRopeInvFreq } from "../reference/hf-forward";
import { ReferenceLlama } from "../reference/llama-forward";

const tmp = mkdtempSync(join(tmpdir(), "edgeinfer-hf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const VOCAB = 96;
const TOKENS = [1, 17, 42, 5, 88, 23, 9, 60, 31, 2];
let counter = 0;
function write(family: HfFamily, opts: Partial<Parameters<typeof writeTinyHfCheckpoint>[1]> = {}) {
  const dir = join(tmp, `${family}-${counter++}`);
  return writeTinyHfCheckpoint(dir, { family, vocabSize: VOCAB, seed: 7, ...opts });
}

const tensor = (m: HfModel, name: string) => {
  const t = m.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no ${name}`);
  return t;
};

describe("readHfModel: config of every family", () => {
  const expected: Record<HfFamily, Partial<LlamaConfig> | Partial<Gpt2Config>> = {
    llama: { dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 4, seqLen: 64, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half", tiedEmbeddings: false },
    llama3: {
      nKvHeads: 2,
      seqLen: 256,
      ropeLayout: "half",
      ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 },
    },
    tinyllama: { nHeads: 4, nKvHeads: 2, seqLen: 2048, tiedEmbeddings: false, ropeLayout: "half" },
    smollm2: { dim: 96, nHeads: 3, nKvHeads: 1, ropeTheta: 100000, tiedEmbeddings: true, seqLen: 8192 },
    mistral: { nKvHeads: 2, slidingWindow: 4, ropeTheta: 1000000, tiedEmbeddings: false, ropeLayout: "half" },
    qwen2: { attentionBias: true, tiedEmbeddings: true, ropeTheta: 1000000, normEps: 1e-6, nKvHeads: 2, seqLen: 32768, ropeLayout: "half" },
    gpt2: { architecture: "gpt2", dim: 64, hiddenDim: 256, nLayers: 2, nHeads: 4, seqLen: 64, normEps: 1e-5, tiedEmbeddings: true },
  };
  for (const family of HF_FAMILIES) {
    it(`${family}: config fields, tensor names and shapes, forward pass runs`, () => {
      const w = write(family);
      const m = readHfModel(w.dir);
      expect(m.vocabSize).toBe(VOCAB);
      expect(m.config.vocabSize).toBe(VOCAB);
      expect(m.config).toMatchObject(expected[family]);
      if (m.config.architecture === "llama") {
        const c = m.config;
        expect(c.attentionBias ?? false).toBe(family === "qwen2");
        expect(c.ropeScaling ?? null).toEqual(family === "llama3" ? (expected.llama3 as Partial<LlamaConfig>).ropeScaling : null);
        expect(c.slidingWindow ?? null).toBe(family === "mistral" ? 4 : null);
        // every tensor the description calls for, with the right shapes (./types checks them)
        indexTensors(m as ImportedModel);
        const names = new Set(m.tensors.map((t) => t.name));
        expect(names.has(tensorNames.output)).toBe(!c.tiedEmbeddings);
        expect(names.has(tensorNames.layer(0).bq)).toBe(family === "qwen2");
        // q/k are NOT permuted: identical to the HF tensors
        const hfQ = w.tensors.get("model.layers.1.self_attn.q_proj.weight")!;
        expect(Array.from(tensor(m, tensorNames.layer(1).wq).data)).toEqual(Array.from(hfQ.data));
        const hfK = w.tensors.get("model.layers.0.self_attn.k_proj.weight")!;
        expect(Array.from(tensor(m, tensorNames.layer(0).wk).data)).toEqual(Array.from(hfK.data));
      }
      const logits = hfForward(m, TOKENS);
      expect(logits.length).toBe(TOKENS.length);
      for (const l of logits) {
        expect(l.length).toBe(VOCAB);
        expect(l.every(Number.isFinite)).toBe(true);
      }
      // logits are not degenerate
      expect(maxAbs(logits[3]!)).toBeGreaterThan(0.05);
    });
  }
});

describe("readHfModel: storage variants", () => {
  it("sharded F32 reads exactly the same as single-file F32", () => {
    const a = readHfModel(write("tinyllama").dir);
    const b = readHfModel(write("tinyllama", { shards: 3 }).dir);
    expect(b.config).toEqual(a.config);
    expect(b.tensors.map((t) => t.name)).toEqual(a.tensors.map((t) => t.name));
    for (let i = 0; i < a.tensors.length; i++) expect(Array.from(b.tensors[i]!.data)).toEqual(Array.from(a.tensors[i]!.data));
  });

  for (const dtype of ["BF16", "F16"] as const) {
    it(`${dtype} checkpoints (sharded) read back the stored values`, () => {
      const w = write("qwen2", { dtype, shards: 2 });
      const m = readHfModel(w.dir);
      expect(w.config.torch_dtype).toBe(dtype === "BF16" ? "bfloat16" : "float16");
      const hf = w.tensors.get("model.layers.0.self_attn.k_proj.bias")!;
      expect(Array.from(tensor(m, tensorNames.layer(0).bk).data)).toEqual(Array.from(hf.data));
      const logits = hfForward(m, TOKENS.slice(0, 4));
      expect(logits[3]!.every(Number.isFinite)).toBe(true);
    });
  }

  it("maxContext caps seqLen (and GPT-2's position table)", () => {
    expect(readHfModel(write("tinyllama").dir, { maxContext: 128 }).config.seqLen).toBe(128);
    expect(readHfModel(write("llama").dir, { maxContext: 1000 }).config.seqLen).toBe(64);
    const g = readHfModel(write("gpt2").dir, { maxContext: 16 });
    expect(g.config.seqLen).toBe(16);
    expect(tensor(g, tensorNames.positionEmbedding).shape).toEqual([16, 64]);
  });

  it("generation_config.json is returned", () => {
    const m = readHfModel(write("llama").dir);
    expect(m.generationConfig).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
    expect(m.modelType).toBe("llama");
  });
});

describe("readHfModel: GPT-2 Conv1D weights are transposed", () => {
  for (const prefix of [false, true]) {
    it(`c_attn / c_proj / c_fc -> [out, in]${prefix ? " (transformer. prefix)" : ""}`, () => {
      const w = write("gpt2", { gpt2TransformerPrefix: prefix });
      const p = prefix ? "transformer." : "";
      const m = readHfModel(w.dir);
      const d = 64;
      const cAttn = w.tensors.get(`${p}h.1.attn.c_attn.weight`)!; // [d, 3d]
      const qkv = tensor(m, tensorNames.gpt2Layer(1).wqkv);
      expect(qkv.shape).toEqual([3 * d, d]);
      for (const [i, j] of [[0, 0], [3, 100], [63, 191], [10, 64]] as const) expect(qkv.data[j * d + i]).toBe(cAttn.data[i * 3 * d + j]);
      const fc = w.tensors.get(`${p}h.0.mlp.c_fc.weight`)!; // [d, 4d]
      const up = tensor(m, tensorNames.gpt2Layer(0).wUp);
      expect(up.shape).toEqual([4 * d, d]);
      expect(up.data[200 * d + 7]).toBe(fc.data[7 * 4 * d + 200]);
      const proj = w.tensors.get(`${p}h.0.mlp.c_proj.weight`)!; // [4d, d]
      const down = tensor(m, tensorNames.gpt2Layer(0).wDown);
      expect(down.shape).toEqual([d, 4 * d]);
      expect(down.data[5 * 4 * d + 201]).toBe(proj.data[201 * d + 5]);
      expect(m.tensors.some((t) => t.name.includes("attn.bias"))).toBe(false);
      expect(m.tensors.some((t) => t.name === tensorNames.output)).toBe(false);
    });
  }
});

describe("hf-forward against the llama2.c-style ReferenceLlama (ropeLayout half)", () => {
  for (const family of ["llama", "tinyllama", "smollm2"] as const) {
    it(`${family}: logits agree at every position`, () => {
      const m = readHfModel(write(family).dir);
      const model = m as ImportedModel;
      expect(model.config.ropeLayout).toBe("half");
      const hf = hfForward(model, TOKENS);
      const ref = new ReferenceLlama(model);
      TOKENS.forEach((tok, pos) => {
        const l = ref.forward(tok, pos);
        const scale = maxAbs(hf[pos]!);
        expect(maxAbsDiff(l, hf[pos]!)).toBeLessThan(2e-5 * Math.max(1, scale));
      });
    });
  }

  it("and disagree if the layout is wrongly declared interleaved (the test can fail)", () => {
    const m = readHfModel(write("llama").dir) as ImportedModel;
    const ref = new ReferenceLlama({ ...m, config: { ...m.config, ropeLayout: "interleaved" } });
    const hf = hfForward(m, TOKENS.slice(0, 4));
    let worst = 0;
    TOKENS.slice(0, 4).forEach((tok, pos) => (worst = Math.max(worst, maxAbsDiff(ref.forward(tok, pos), hf[pos]!))));
    expect(worst).toBeGreaterThan(1e-3);
  });
});

describe("Llama 3 RoPE scaling, sliding window, biases take effect", () => {
  it("inv_freq follows _compute_llama3_parameters: high band kept, low band / factor, middle smoothed", () => {
    const m = readHfModel(write("llama3").dir);
    const c = m.config as LlamaConfig;
    const inv = hfRopeInvFreq(c);
    const base = (j: number) => 1 / Math.pow(10000, (2 * j) / 16);
    expect(inv.length).toBe(8);
    expect(inv[0]).toBeCloseTo(base(0), 15); // wavelen 6.28 < 32 / 4
    const wl1 = (2 * Math.PI) / base(1); // 19.9: between 8 and 32
    const smooth = (32 / wl1 - 1) / (4 - 1);
    expect(inv[1]).toBeCloseTo((1 - smooth) * (base(1) / 8) + smooth * base(1), 15);
    for (let j = 2; j < 8; j++) expect(inv[j]).toBeCloseTo(base(j) / 8, 15); // wavelen > 32
    const unscaled = hfForward({ ...m, config: { ...c, ropeScaling: null } }, TOKENS);
    const scaled = hfForward(m, TOKENS);
    expect(maxAbsDiff(unscaled[0]!, scaled[0]!)).toBe(0); // position 0: no rotation at all
    expect(maxAbsDiff(unscaled[6]!, scaled[6]!)).toBeGreaterThan(1e-3);
  });

  it("Mistral's sliding window only changes positions >= window", () => {
    const m = readHfModel(write("mistral").dir);
    const c = m.config as LlamaConfig;
    const windowed = hfForward(m, TOKENS);
    const full = hfForward({ ...m, config: { ...c, slidingWindow: null } }, TOKENS);
    for (let p = 0; p < 4; p++) expect(maxAbsDiff(windowed[p]!, full[p]!)).toBe(0);
    for (let p = 4; p < TOKENS.length; p++) expect(maxAbsDiff(windowed[p]!, full[p]!)).toBeGreaterThan(1e-4);
  });

  it("Qwen2 q/k/v biases are used", () => {
    const m = readHfModel(write("qwen2").dir);
    const zeroed = { ...m, tensors: m.tensors.map((t) => (t.name.endsWith(".bias") ? { ...t, data: new Float32Array(t.data.length) } : t)) };
    expect(maxAbsDiff(hfForward(m, TOKENS)[5]!, hfForward(zeroed, TOKENS)[5]!)).toBeGreaterThan(1e-3);
  });
});

describe("readHfModel errors", () => {
  it("unsupported model_type names it and the supported ones", () => {
    const w = write("llama", { configOverrides: { model_type: "phi3" } });
    expect(() => readHfModel(w.dir)).toThrow(/model_type "phi3" is not supported \(supported: llama, mistral, qwen2, gpt2\)/);
  });

  it("unsupported rope scaling, attention_bias on llama, mismatched head_dim, partial sliding window", () => {
    expect(() => readHfModel(write("llama", { configOverrides: { rope_scaling: { rope_type: "yarn", factor: 4 } } }).dir)).toThrow(
      /rope scaling type "yarn" is not supported/,
    );
    expect(() => readHfModel(write("llama", { configOverrides: { attention_bias: true } }).dir)).toThrow(/attention_bias true/);
    expect(() => readHfModel(write("mistral", { configOverrides: { head_dim: 32 } }).dir)).toThrow(/head_dim 32 differs/);
    expect(() => readHfModel(write("qwen2", { configOverrides: { use_sliding_window: true, sliding_window: 8, max_window_layers: 1 } }).dir)).toThrow(
      /sliding-window attention on only some layers \(1 of 2\)/,
    );
    const all = readHfModel(write("qwen2", { configOverrides: { use_sliding_window: true, sliding_window: 8, max_window_layers: 0 } }).dir);
    expect((all.config as LlamaConfig).slidingWindow).toBe(8);
    const v5 = readHfModel(
      write("llama", {
        configOverrides: { rope_theta: undefined, rope_scaling: undefined, rope_parameters: { rope_type: "default", rope_theta: 123456 } },
      }).dir,
    );
    expect((v5.config as LlamaConfig).ropeTheta).toBe(123456);
  });

  it("missing and unexpected tensors, missing config.json", () => {
    const w = write("llama", { configOverrides: { tie_word_embeddings: true } }); // no lm_head written, fine
    expect(readHfModel(w.dir).config.tiedEmbeddings).toBe(true);
    const cfg = { ...w.config, tie_word_embeddings: false };
    writeFileSync(join(w.dir, "config.json"), JSON.stringify(cfg));
    expect(() => readHfModel(w.dir)).toThrow(/missing tensor lm_head\.weight \(for output\.weight\)/);
    const v = write("qwen2");
    writeFileSync(join(v.dir, "config.json"), JSON.stringify({ ...v.config, model_type: "llama" }));
    expect(() => readHfModel(v.dir)).toThrow(/unexpected tensors model\.layers\.0\.self_attn\.q_proj\.bias/);
    expect(() => readHfModel(join(tmp, "nothing-here"))).toThrow(/no config\.json/);
  });
});
