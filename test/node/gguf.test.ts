import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { maxAbs, maxAbsDiff } from "../support/runtime";
import type { ImportedTensor, LlamaConfig, ModelConfig } from "../../functions/model/description";
import { tensorNames } from "../../functions/model/description";
import { quantizeQ4_0, quantizeQ8_0 } from "../../kernels/quant";
import { GGML_TYPE, GgufType, llama3RopeFreqs, llama3ScalingFromRopeFreqs, readGguf, readGgufInfo } from "../../scripts/import/gguf";
import { encodeGguf, type GgufKv, permuteHalfToInterleaved, permuteInterleavedToHalf, writeGguf } from "../../scripts/import/gguf-writer";
import { type HfModel, readHfModel } from "../../scripts/import/hf";
import { type HfFamily, writeTinyHfCheckpoint } from "../../scripts/import/hf-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { hfForward } from "../reference/hf-forward";
import { ReferenceLlama } from "../reference/llama-forward";

const tmp = mkdtempSync(join(tmpdir(), "edgeinfer-gguf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const VOCAB = 96;
const TOKENS = [1, 17, 42, 5, 88, 23, 9, 60, 31, 2];
let counter = 0;
function hf(family: HfFamily, configOverrides?: Record<string, unknown>): HfModel {
  const dir = join(tmp, `${family}-${counter++}`);
  writeTinyHfCheckpoint(dir, { family, vocabSize: VOCAB, seed: 11, configOverrides });
  return readHfModel(dir);
}
const t = (m: { tensors: ImportedTensor[] }, name: string) => {
  const x = m.tensors.find((y) => y.name === name);
  if (!x) throw new Error(`no tensor ${name}`);
  return x;
};
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const argmax = (a: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i;
  return b;
};
/** The HF import's config as a GGUF file of `arch` should describe it. */
function expectedGgufConfig(c: ModelConfig, arch: "llama" | "qwen2" | "gpt2"): ModelConfig {
  if (c.architecture === "gpt2") return c;
  return { ...c, ropeLayout: arch === "llama" ? "interleaved" : "half" };
}

describe("GGUF llama arch (convert_hf_to_gguf conventions): q/k permuted to interleaved", () => {
  const src = hf("llama");
  const bytes = writeGguf(src, { quant: "q8_0" });
  const g = readGguf(bytes);

  it("config round-trips, with ropeLayout interleaved", () => {
    expect(g.architecture).toBe("llama");
    expect(g.version).toBe(3);
    expect(g.config).toEqual(expectedGgufConfig(src.config, "llama"));
    expect(g.metadata["general.file_type"]).toBe(7);
    expect(g.metadata["general.quantization_version"]).toBe(2);
    expect(g.metadata["llama.rope.dimension_count"]).toBe(16);
  });

  it("Q8_0 blocks are byte-identical to quantizeQ8_0 of the (permuted) HF weights", () => {
    const c = src.config as LlamaConfig;
    for (let l = 0; l < c.nLayers; l++) {
      const n = tensorNames.layer(l);
      const q = t(g, n.wq);
      expect(q.quantized?.dtype).toBe("q8_0");
      const permQ = permuteHalfToInterleaved(t(src, n.wq).data, c.nHeads, c.dim, c.dim);
      expect(sameBytes(q.quantized!.bytes, quantizeQ8_0(permQ, c.dim, c.dim))).toBe(true);
      const kvRows = (c.dim / c.nHeads) * c.nKvHeads;
      const permK = permuteHalfToInterleaved(t(src, n.wk).data, c.nKvHeads, kvRows, c.dim);
      expect(sameBytes(t(g, n.wk).quantized!.bytes, quantizeQ8_0(permK, kvRows, c.dim))).toBe(true);
      // v, o and the MLP are not permuted
      for (const name of [n.wv, n.wo, n.wGate, n.wUp, n.wDown]) {
        const s = t(src, name);
        expect(sameBytes(t(g, name).quantized!.bytes, quantizeQ8_0(s.data, s.shape[0]!, s.shape[1]!)), name).toBe(true);
      }
      // norms stay f32, exactly
      expect(t(g, n.attnNorm).quantized).toBeUndefined();
      expect(Array.from(t(g, n.attnNorm).data)).toEqual(Array.from(t(src, n.attnNorm).data));
    }
    const e = t(src, tensorNames.tokenEmbedding);
    expect(sameBytes(t(g, tensorNames.tokenEmbedding).quantized!.bytes, quantizeQ8_0(e.data, VOCAB, 64))).toBe(true);
    expect(t(g, tensorNames.output).quantized?.dtype).toBe("q8_0");
  });

  it("permutation helpers invert each other", () => {
    const w = Float32Array.from({ length: 8 * 16 * 3 }, (_, i) => i);
    expect(Array.from(permuteInterleavedToHalf(permuteHalfToInterleaved(w, 8, 16 * 8, 3), 8, 16 * 8, 3))).toEqual(Array.from(w));
    // one head of size 4, cols 1: HF rows [a0 a1 b0 b1] (pairs (0,2), (1,3)) -> [a0 b0 a1 b1]
    expect(Array.from(permuteHalfToInterleaved(Float32Array.from([10, 11, 20, 21]), 1, 4, 1))).toEqual([10, 20, 11, 21]);
  });

  it("reference forward of the Q8_0 import is close to the HF original's", () => {
    const a = hfForward(src, TOKENS);
    const b = hfForward(g, TOKENS);
    let agree = 0;
    for (let p = 0; p < TOKENS.length; p++) {
      expect(maxAbsDiff(a[p]!, b[p]!)).toBeLessThan(0.03 * maxAbs(a[p]!));
      if (argmax(a[p]!) === argmax(b[p]!)) agree++;
    }
    expect(agree).toBeGreaterThanOrEqual(TOKENS.length - 1);
  });

  it("llama2.c-style ReferenceLlama (interleaved) on the GGUF import matches hf-forward on the HF import", () => {
    const f32 = readGguf(writeGguf(src, { quant: "f32" }));
    expect((f32.config as LlamaConfig).ropeLayout).toBe("interleaved");
    const ref = new ReferenceLlama(f32 as ImportedModel);
    const want = hfForward(src, TOKENS);
    TOKENS.forEach((tok, pos) => expect(maxAbsDiff(ref.forward(tok, pos), want[pos]!)).toBeLessThan(2e-5 * Math.max(1, maxAbs(want[pos]!))));
  });
});

describe("GGUF at f32 reproduces the HF import exactly", () => {
  const cases: [HfFamily, "llama" | "qwen2" | "gpt2"][] = [
    ["llama", "llama"],
    ["tinyllama", "llama"],
    ["smollm2", "llama"],
    ["llama3", "llama"],
    ["mistral", "llama"],
    ["qwen2", "qwen2"],
    ["gpt2", "gpt2"],
  ];
  for (const [family, arch] of cases) {
    it(`${family} as GGUF ${arch}: config equal, logits equal to ~1e-5 relative`, () => {
      const src = hf(family);
      const g = readGguf(writeGguf(src, { quant: "f32", arch }));
      expect(g.config).toEqual(expectedGgufConfig(src.config, arch));
      expect(g.tensors.length).toBe(src.tensors.length);
      const a = hfForward(src, TOKENS);
      const b = hfForward(g, TOKENS);
      for (let p = 0; p < TOKENS.length; p++) expect(maxAbsDiff(a[p]!, b[p]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(a[p]!)));
    });
  }

  it("llama3: rope_freqs.weight carries the scaling, and the parameters are recovered", () => {
    const src = hf("llama3");
    const g = readGguf(writeGguf(src, { quant: "f32" }));
    expect(g.ropeFreqs).toBeDefined();
    const f = g.ropeFreqs!;
    const smooth = (32 / (2 * Math.PI * Math.pow(10000, 2 / 16)) - 1) / 3;
    expect(f[0]).toBe(1);
    expect(f[1]).toBeCloseTo(1 / ((1 - smooth) / 8 + smooth), 5);
    for (let j = 2; j < 8; j++) expect(f[j]).toBe(8);
    expect((g.config as LlamaConfig).ropeScaling).toEqual({ type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
    expect(g.tensors.some((x) => x.name === "rope_freqs.weight")).toBe(false);
  });

  it("Llama 3.2's real scaling (theta 500000, head 64, factor 32, 1/4, 8192) is recovered from its divisors", () => {
    const s = { type: "llama3" as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const freqs = llama3RopeFreqs(s, 500000, 64);
    expect(llama3ScalingFromRopeFreqs(freqs, 500000, 64, "x")).toEqual(s);
    expect(llama3ScalingFromRopeFreqs(new Float32Array(32).fill(1), 500000, 64, "x")).toBeNull();
    expect(() => llama3ScalingFromRopeFreqs(Float32Array.from({ length: 32 }, (_, i) => 1 + ((i * 7) % 5)), 500000, 64, "x")).toThrow(/not reproduced|does not look like/);
  });

  it("mistral's sliding window is stored as llama.attention.sliding_window", () => {
    const g = readGguf(writeGguf(hf("mistral"), { quant: "f32" }));
    expect(g.metadata["llama.attention.sliding_window"]).toBe(4);
    expect((g.config as LlamaConfig).slidingWindow).toBe(4);
  });
});

describe("GGUF qwen2 arch: NEOX (rotate-half) layout, no permutation", () => {
  const src = hf("qwen2");
  const g = readGguf(writeGguf(src, { quant: "q8_0", arch: "qwen2" }));

  it("config: half layout, biases, tied (no output.weight)", () => {
    expect(g.architecture).toBe("qwen2");
    expect(g.config).toEqual(expectedGgufConfig(src.config, "qwen2"));
    expect((g.config as LlamaConfig).attentionBias).toBe(true);
    expect(g.tensors.some((x) => x.name === tensorNames.output)).toBe(false);
    expect("qwen2.rope.dimension_count" in g.metadata).toBe(false);
  });

  it("Q8_0 bytes equal quantizeQ8_0 of the unpermuted HF weights; biases exact f32", () => {
    const n = tensorNames.layer(1);
    for (const name of [n.wq, n.wk, n.wv]) {
      const s = t(src, name);
      expect(sameBytes(t(g, name).quantized!.bytes, quantizeQ8_0(s.data, s.shape[0]!, s.shape[1]!))).toBe(true);
    }
    for (const name of [n.bq, n.bk, n.bv]) expect(Array.from(t(g, name).data)).toEqual(Array.from(t(src, name).data));
  });

  it("reference forward close to the HF original (q8 error)", () => {
    const a = hfForward(src, TOKENS);
    const b = hfForward(g, TOKENS);
    for (let p = 0; p < TOKENS.length; p++) expect(maxAbsDiff(a[p]!, b[p]!)).toBeLessThan(0.03 * maxAbs(a[p]!));
  });

  it("a llama-layout model written as qwen2 is un-permuted (and back)", () => {
    const asLlama = readGguf(writeGguf(src, { quant: "f32", arch: "llama" }));
    expect((asLlama.config as LlamaConfig).ropeLayout).toBe("interleaved");
    const back = readGguf(writeGguf(asLlama, { quant: "f32", arch: "qwen2" }));
    expect(Array.from(t(back, tensorNames.layer(0).wq).data)).toEqual(Array.from(t(src, tensorNames.layer(0).wq).data));
    expect(Array.from(t(back, tensorNames.layer(0).bk).data)).toEqual(Array.from(t(src, tensorNames.layer(0).bk).data));
  });
});

describe("GGUF gpt2 arch", () => {
  it("q8_0: output.weight (a copy of token_embd, as the converter writes it) is dropped; logits close", () => {
    const src = hf("gpt2");
    const bytes = writeGguf(src, { quant: "q8_0" });
    expect(readGgufInfo(bytes).tensorInfos.some((x) => x.name === "output.weight")).toBe(true);
    const g = readGguf(bytes);
    expect(g.config).toEqual(src.config);
    expect(g.tensors.some((x) => x.name === tensorNames.output)).toBe(false);
    const qkv = t(src, tensorNames.gpt2Layer(0).wqkv);
    expect(sameBytes(t(g, tensorNames.gpt2Layer(0).wqkv).quantized!.bytes, quantizeQ8_0(qkv.data, 192, 64))).toBe(true);
    const a = hfForward(src, TOKENS);
    const b = hfForward(g, TOKENS);
    for (let p = 0; p < TOKENS.length; p++) expect(maxAbsDiff(a[p]!, b[p]!)).toBeLessThan(0.03 * maxAbs(a[p]!));
  });

  it("an output.weight copy of a type we cannot decode (e.g. Q3_K from llama-quantize) is ignored", () => {
    const src = hf("gpt2");
    const bytes = writeGguf(src, { quant: "f32" });
    const h = readGgufInfo(bytes);
    const kvs: GgufKv[] = Object.entries(h.metadata).map(([key, value]) => {
      const ty = h.metadataTypes[key]!;
      return ty.type === GgufType.ARRAY ? ({ key, type: GgufType.ARRAY, elementType: ty.elementType, value } as GgufKv) : ({ key, type: ty.type, value } as GgufKv);
    });
    const tensors = h.tensorInfos.map((x) =>
      x.name === "output.weight"
        ? { name: x.name, ne: [256, (VOCAB * 64) / 256], type: 11, bytes: new Uint8Array(((VOCAB * 64) / 256) * 110) }
        : { name: x.name, ne: x.ne, type: x.type, bytes: bytes.subarray(h.dataOffset + x.offset, h.dataOffset + x.offset + x.byteSize) },
    );
    const g = readGguf(encodeGguf(kvs, tensors));
    expect(g.config).toEqual(src.config);
    expect(g.tensors.some((x) => x.name === tensorNames.output)).toBe(false);
    // but a decodable copy that differs is refused (an untied classifier)
    const untied = tensors.map((x) => (x.name === "output.weight" ? { ...x, ne: [64, VOCAB], type: GGML_TYPE.F32, bytes: new Uint8Array(new Float32Array(VOCAB * 64).fill(0.5).buffer) } : x));
    expect(() => readGguf(encodeGguf(kvs, untied))).toThrow(/output\.weight differs from token_embd\.weight/);
  });

  it("maxContext cuts the context and the position table", () => {
    const g = readGguf(writeGguf(hf("gpt2"), { quant: "f16" }), { maxContext: 8 });
    expect(g.config.seqLen).toBe(8);
    expect(t(g, tensorNames.positionEmbedding).shape).toEqual([8, 64]);
  });
});

describe("GGUF tensor types and files", () => {
  it("q4_0 blocks byte-identical; f16 values as toF16 rounds them", () => {
    const src = hf("tinyllama");
    const g4 = readGguf(writeGguf(src, { quant: "q4_0" }));
    const up = t(src, tensorNames.layer(0).wUp);
    expect(t(g4, tensorNames.layer(0).wUp).quantized?.dtype).toBe("q4_0");
    expect(sameBytes(t(g4, tensorNames.layer(0).wUp).quantized!.bytes, quantizeQ4_0(up.data, 128, 64))).toBe(true);
    expect(g4.metadata["general.file_type"]).toBe(2);
    const g16 = readGguf(writeGguf(src, { quant: "f16" }));
    const w = t(g16, tensorNames.layer(0).wUp);
    expect(w.quantized).toBeUndefined();
    expect(maxAbsDiff(w.data, up.data)).toBeLessThan(maxAbs(up.data) * 2 ** -10);
  });

  it("reads from a path the same as from bytes; honours a non-default alignment", () => {
    const src = hf("smollm2");
    const bytes = writeGguf(src, { quant: "q8_0", alignment: 64 });
    const info = readGgufInfo(bytes);
    expect(info.alignment).toBe(64);
    expect(info.dataOffset % 64).toBe(0);
    expect(info.tensorInfos.every((x) => x.offset % 64 === 0)).toBe(true);
    const path = join(tmp, "smol.gguf");
    writeFileSync(path, bytes);
    const a = readGguf(bytes);
    const b = readGguf(path);
    expect(b.config).toEqual(a.config);
    for (let i = 0; i < a.tensors.length; i++) {
      expect(b.tensors[i]!.name).toBe(a.tensors[i]!.name);
      expect(Array.from(b.tensors[i]!.data)).toEqual(Array.from(a.tensors[i]!.data));
    }
  });

  it("GGUF dims are fastest-first: ne = [cols, rows]", () => {
    const src = hf("tinyllama");
    const info = readGgufInfo(writeGguf(src, { quant: "f32" }));
    const wk = info.tensorInfos.find((x) => x.name === tensorNames.layer(0).wk)!;
    expect(wk.ne).toEqual([64, 32]); // cols (hidden) first, then rows (kv dim = 2 heads * 16)
    expect(wk.shape).toEqual([32, 64]);
    expect(wk.typeName).toBe("F32");
  });

  it("the tokenizer metadata round-trips", () => {
    const tokenizer = {
      model: "gpt2",
      pre: "qwen2",
      tokens: Array.from({ length: VOCAB }, (_, i) => `t${i}`),
      tokenTypes: Array.from({ length: VOCAB }, (_, i) => (i === VOCAB - 1 ? 3 : 1)),
      merges: ["t 1", "t1 0"],
      bosTokenId: VOCAB - 1,
      eosTokenId: VOCAB - 1,
      addBosToken: false,
      chatTemplate: "{% for m in messages %}{{ m.content }}{% endfor %}",
    };
    const g = readGguf(writeGguf(hf("qwen2"), { quant: "f32", arch: "qwen2", tokenizer }));
    expect(g.tokenizer).toEqual(tokenizer);
    expect(g.metadataTypes["tokenizer.ggml.token_type"]).toEqual({ type: GgufType.ARRAY, elementType: GgufType.INT32 });
  });
});

describe("GGUF format details and errors", () => {
  const embd = (rows = 4, cols = 32) => ({ name: "token_embd.weight", ne: [cols, rows], type: GGML_TYPE.F32, bytes: new Uint8Array(rows * cols * 4) });

  it("every metadata value type, nested arrays, u64 beyond 2^53, version 2", () => {
    const kvs: GgufKv[] = [
      { key: "a.u8", type: GgufType.UINT8, value: 250 },
      { key: "a.i8", type: GgufType.INT8, value: -5 },
      { key: "a.u16", type: GgufType.UINT16, value: 65000 },
      { key: "a.i16", type: GgufType.INT16, value: -30000 },
      { key: "a.u32", type: GgufType.UINT32, value: 4e9 },
      { key: "a.i32", type: GgufType.INT32, value: -2e9 },
      { key: "a.f32", type: GgufType.FLOAT32, value: 0.5 },
      { key: "a.f64", type: GgufType.FLOAT64, value: 0.1 },
      { key: "a.bool", type: GgufType.BOOL, value: true },
      { key: "a.str", type: GgufType.STRING, value: "héllo" },
      { key: "a.u64", type: GgufType.UINT64, value: 2n ** 60n },
      { key: "a.i64", type: GgufType.INT64, value: -7 },
      { key: "a.arr", type: GgufType.ARRAY, elementType: GgufType.INT16, value: [1, -2, 3] },
    ];
    for (const version of [2, 3] as const) {
      const h = readGgufInfo(encodeGguf(kvs, [embd()], { version }));
      expect(h.version).toBe(version);
      expect(h.metadata).toEqual({
        "a.u8": 250, "a.i8": -5, "a.u16": 65000, "a.i16": -30000, "a.u32": 4e9, "a.i32": -2e9, "a.f32": 0.5, "a.f64": 0.1,
        "a.bool": true, "a.str": "héllo", "a.u64": 2n ** 60n, "a.i64": -7, "a.arr": [1, -2, 3],
      });
      expect(h.tensorInfos[0]).toMatchObject({ name: "token_embd.weight", ne: [32, 4], shape: [4, 32], typeName: "F32", offset: 0, byteSize: 512 });
    }
    // a nested array (array of arrays of strings), written by hand
    const bytes = encodeGguf([{ key: "x", type: GgufType.STRING, value: "" }], []);
    const patched = new Uint8Array(bytes.length + 64);
    const dv = new DataView(patched.buffer);
    let o = 0;
    dv.setUint32(o, 0x46554747, true); o += 4;
    dv.setUint32(o, 3, true); o += 4;
    dv.setBigUint64(o, 0n, true); o += 8;
    dv.setBigUint64(o, 1n, true); o += 8;
    dv.setBigUint64(o, 1n, true); o += 8; patched[o++] = 0x6e; // key "n"
    dv.setUint32(o, 9, true); o += 4; // ARRAY
    dv.setUint32(o, 9, true); o += 4; // of ARRAY
    dv.setBigUint64(o, 2n, true); o += 8;
    for (const s of ["a", "bc"]) {
      dv.setUint32(o, 8, true); o += 4; // of STRING
      dv.setBigUint64(o, 1n, true); o += 8;
      dv.setBigUint64(o, BigInt(s.length), true); o += 8;
      for (const ch of s) patched[o++] = ch.charCodeAt(0);
    }
    expect(readGgufInfo(patched.subarray(0, Math.ceil(o / 32) * 32)).metadata).toEqual({ n: [["a"], ["bc"]] });
  });

  const archKvs = (arch: string): GgufKv[] => [
    { key: "general.architecture", type: GgufType.STRING, value: arch },
    { key: `${arch}.embedding_length`, type: GgufType.UINT32, value: 32 },
    { key: `${arch}.feed_forward_length`, type: GgufType.UINT32, value: 64 },
    { key: `${arch}.block_count`, type: GgufType.UINT32, value: 1 },
    { key: `${arch}.attention.head_count`, type: GgufType.UINT32, value: 2 },
    { key: `${arch}.context_length`, type: GgufType.UINT32, value: 16 },
    { key: `${arch}.attention.layer_norm_rms_epsilon`, type: GgufType.FLOAT32, value: 1e-5 },
  ];

  it("unsupported tensor type: a clear error naming the type", () => {
    const q3k = { name: "token_embd.weight", ne: [256, 4], type: 11, bytes: new Uint8Array(4 * 110) };
    expect(() => readGguf(encodeGguf(archKvs("llama"), [q3k]))).toThrow(
      /tensor token_embd\.weight has ggml type Q3_K \(11\), which is not supported \(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K\)/,
    );
    const weird = { name: "token_embd.weight", ne: [32, 4], type: 99, bytes: new Uint8Array(64) };
    expect(() => readGguf(encodeGguf(archKvs("llama"), [weird]))).toThrow(/has ggml type unknown type 99, which is not supported/);
  });

  it("unsupported architecture, missing and unexpected tensors", () => {
    expect(() => readGguf(encodeGguf(archKvs("phi3"), [embd()]))).toThrow(/architecture "phi3" is not supported \(supported: llama, qwen2, gpt2\)/);
    expect(() => readGguf(encodeGguf(archKvs("llama"), [embd()]))).toThrow(/missing tensor blk\.0\.attn_norm\.weight/);
    const extra = { name: "blk.0.attn_output.bias", ne: [32], type: GGML_TYPE.F32, bytes: new Uint8Array(128) };
    expect(() => readGguf(encodeGguf(archKvs("llama"), [embd(), extra]))).toThrow(/unexpected tensor blk\.0\.attn_output\.bias/);
    const wrong = { name: "token_embd.weight", ne: [16, 4], type: GGML_TYPE.F32, bytes: new Uint8Array(256) };
    const kvs = archKvs("llama");
    expect(() => readGguf(encodeGguf(kvs, [wrong]))).toThrow(/token_embd\.weight has shape \[4, 16\].*expected \[4, 32\]/);
  });

  it("bad magic, version 1, truncated header, truncated data", () => {
    const good = encodeGguf(archKvs("llama"), [embd()]);
    const bad = Uint8Array.from(good);
    bad[0] = 0x47 + 1;
    expect(() => readGguf(bad)).toThrow(/not a GGUF file/);
    const v1 = Uint8Array.from(good);
    new DataView(v1.buffer).setUint32(4, 1, true);
    expect(() => readGguf(v1)).toThrow(/GGUF version 1 is not supported/);
    const be = Uint8Array.from(good);
    new DataView(be.buffer).setUint32(4, 3, false);
    expect(() => readGguf(be)).toThrow(/big-endian/);
    expect(() => readGguf(good.subarray(0, 40))).toThrow(/metadata_kv_count is 7, more than a 40-byte file can hold \(truncated/);
    expect(() => readGguf(good.subarray(0, 100))).toThrow(/truncated: need \d+ bytes for/);
    expect(() => readGguf(good.subarray(0, good.length - 10))).toThrow(/truncated: tensor token_embd\.weight \(F32, 512 bytes at data offset 0\) ends past the end/);
    const misaligned = encodeGguf(archKvs("llama"), [embd(), { ...embd(), name: "x" }], { alignment: 32 });
    expect(readGgufInfo(misaligned).tensorInfos[1]!.offset).toBe(512);
  });
});
