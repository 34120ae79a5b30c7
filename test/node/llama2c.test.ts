import { describe, expect, it } from "vitest";
import type { LlamaConfig } from "../../functions/model/description";
import { tensorNames } from "../../functions/model/description";
import { expectedLlama2cBytes, LLAMA2C_MAGIC, readLlama2cCheckpoint, readLlama2cHeader } from "../../scripts/import/llama2c";
import {
  llama2cFreqCis,
  llama2cShapeConfig,
  quantizeQ80,
  randomLlamaModel,
  shapes,
  writeLlama2cCheckpoint,
  writeLlama2cQ80Checkpoint,
} from "../../scripts/import/llama2c-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { AIDREAMS, readSharedModel } from "../support/models";

const small = (over: Partial<LlamaConfig> = {}): LlamaConfig => ({
  ...llama2cShapeConfig({ dim: 48, hiddenDim: 100, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 300, seqLen: 16 }),
  ...over,
});

function expectSameModel(a: ImportedModel, b: ImportedModel): void {
  expect(b.config).toEqual(a.config);
  const names = (m: ImportedModel) => m.tensors.map((t) => t.name).sort();
  expect(names(b)).toEqual(names(a));
  const byName = new Map(b.tensors.map((t) => [t.name, t]));
  for (const t of a.tensors) {
    const u = byName.get(t.name)!;
    expect(u.shape, t.name).toEqual(t.shape);
    // bitwise equality
    expect(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), t.name).toBe(true);
  }
}

describe("readLlama2cCheckpoint on aidreams260K (legacy v0)", () => {
  const bytes = readSharedModel(AIDREAMS);
  const model = readLlama2cCheckpoint(bytes);

  it("has the documented shape", () => {
    expect(model.config).toEqual({
      architecture: "llama",
      dim: 64,
      hiddenDim: 172,
      nLayers: 4,
      nHeads: 4,
      nKvHeads: 4,
      vocabSize: 512,
      seqLen: 128,
      normEps: 1e-5,
      ropeTheta: 10000,
      ropeLayout: "interleaved",
      tiedEmbeddings: true,
    });
    expect(readLlama2cHeader(bytes).version).toBe(0);
    expect(expectedLlama2cBytes(readLlama2cHeader(bytes))).toBe(bytes.byteLength);
  });

  it("emits GGUF-named tensors [out, in], no output.weight when tied", () => {
    expect(model.tensors.length).toBe(1 + 4 * 9 + 1);
    const t = new Map(model.tensors.map((x) => [x.name, x]));
    expect(t.get("token_embd.weight")!.shape).toEqual([512, 64]);
    expect(t.get("blk.0.attn_q.weight")!.shape).toEqual([64, 64]);
    expect(t.get("blk.3.attn_k.weight")!.shape).toEqual([64, 64]);
    expect(t.get("blk.2.ffn_gate.weight")!.shape).toEqual([172, 64]);
    expect(t.get("blk.2.ffn_down.weight")!.shape).toEqual([64, 172]);
    expect(t.get("blk.2.ffn_up.weight")!.shape).toEqual([172, 64]);
    expect(t.get("output_norm.weight")!.shape).toEqual([64]);
    expect(t.has("output.weight")).toBe(false);
    for (const x of model.tensors) expect(x.data.every(Number.isFinite), x.name).toBe(true);
  });

  it("reads the right bytes: first value of each region as the file stores it", () => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const at = (floatIndex: number) => view.getFloat32(28 + 4 * floatIndex, true);
    const t = new Map(model.tensors.map((x) => [x.name, x]));
    expect(t.get("token_embd.weight")!.data[0]).toBe(at(0));
    expect(t.get("blk.0.attn_norm.weight")!.data[0]).toBe(at(512 * 64));
    expect(t.get("blk.1.attn_norm.weight")!.data[0]).toBe(at(512 * 64 + 64));
    expect(t.get("blk.0.attn_q.weight")!.data[0]).toBe(at(512 * 64 + 4 * 64));
    expect(t.get("blk.1.attn_q.weight")!.data[5]).toBe(at(512 * 64 + 4 * 64 + 4096 + 5));
  });

  it("writing it back as v0 reproduces the file, except 1-ulp differences in the unused RoPE tables", () => {
    const again = writeLlama2cCheckpoint(model, 0);
    expect(again.byteLength).toBe(bytes.byteLength);
    const freqBytes = 2 * 128 * 8 * 4;
    const weightsEnd = bytes.byteLength - freqBytes;
    expect(Buffer.from(again.subarray(0, weightsEnd)).equals(Buffer.from(bytes.subarray(0, weightsEnd)))).toBe(true);
    // the tables: torch's f32 cos/sin vs correctly rounded ones, at most one ulp apart
    const mine = llama2cFreqCis(model.config);
    const theirs = new Float32Array(bytes.slice(weightsEnd).buffer);
    const ours = new Float32Array([...mine.real, ...mine.imag]);
    for (let i = 0; i < ours.length; i++) expect(Math.abs(ours[i] - theirs[i])).toBeLessThanOrEqual(6e-8);
  });

  it("copies or aliases as asked, and reads unaligned input", () => {
    const aliased = readLlama2cCheckpoint(bytes);
    expect(aliased.tensors[0].data.buffer).toBe(bytes.buffer);
    const copied = readLlama2cCheckpoint(bytes, { copy: true });
    expect(copied.tensors[0].data.buffer).not.toBe(bytes.buffer);
    const shifted = new Uint8Array(bytes.byteLength + 1);
    shifted.set(bytes, 1);
    expectSameModel(model, readLlama2cCheckpoint(shifted.subarray(1)));
  });
});

describe("writer -> reader round trips", () => {
  const cases: [string, LlamaConfig][] = [
    ["tied, MHA", small({ nKvHeads: 6, tiedEmbeddings: true })],
    ["untied, MHA", small({ nKvHeads: 6, tiedEmbeddings: false })],
    ["tied, GQA 6/2", small({ tiedEmbeddings: true })],
    ["untied, GQA 6/2, hidden 100 (not a multiple of 32)", small({ tiedEmbeddings: false })],
    ["untied, MQA 4/1, odd sizes", small({ dim: 40, nHeads: 4, nKvHeads: 1, hiddenDim: 77, vocabSize: 261, seqLen: 7, tiedEmbeddings: false })],
  ];
  for (const [name, config] of cases) {
    for (const version of [0, 1] as const) {
      it(`v${version}: ${name}`, () => {
        const model = randomLlamaModel(config, 11);
        const bytes = writeLlama2cCheckpoint(model, version);
        const h = readLlama2cHeader(bytes);
        expect(h.version).toBe(version);
        expect(h.sharedClassifier).toBe(config.tiedEmbeddings);
        expect(bytes.byteLength).toBe(expectedLlama2cBytes(h));
        expectSameModel(model, readLlama2cCheckpoint(bytes));
      });
    }
  }

  it("v0 header: 7 int32, vocab negative when the classifier is separate", () => {
    const tied = writeLlama2cCheckpoint(randomLlamaModel(small(), 1), 0);
    const untied = writeLlama2cCheckpoint(randomLlamaModel(small({ tiedEmbeddings: false }), 1), 0);
    const ints = (b: Uint8Array) => Array.from({ length: 7 }, (_, i) => new DataView(b.buffer).getInt32(4 * i, true));
    expect(ints(tied)).toEqual([48, 100, 2, 6, 2, 300, 16]);
    expect(ints(untied)).toEqual([48, 100, 2, 6, 2, -300, 16]);
    expect(untied.byteLength - tied.byteLength).toBe(300 * 48 * 4);
  });

  it("v1 header: magic, version, params, shared flag, zero padding to 256", () => {
    const b = writeLlama2cCheckpoint(randomLlamaModel(small({ tiedEmbeddings: false }), 1), 1);
    const v = new DataView(b.buffer);
    expect(v.getUint32(0, true)).toBe(LLAMA2C_MAGIC);
    expect(String.fromCharCode(...b.subarray(0, 4))).toBe("24ka"); // 0x616b3432 little-endian
    expect(v.getInt32(4, true)).toBe(1);
    expect(Array.from({ length: 7 }, (_, i) => v.getInt32(8 + 4 * i, true))).toEqual([48, 100, 2, 6, 2, 300, 16]);
    expect(b[36]).toBe(0);
    expect(b.subarray(37, 256).every((x) => x === 0)).toBe(true);
    // v1 starts with the attention norms
    expect(v.getFloat32(256, true)).toBe(randomLlamaModel(small({ tiedEmbeddings: false }), 1).tensors.find((t) => t.name === "blk.0.attn_norm.weight")!.data[0]);
  });

  it("ignores an output.weight when the config says tied", () => {
    const untied = randomLlamaModel(small({ tiedEmbeddings: false }), 3);
    const tiedView: ImportedModel = { config: { ...untied.config, tiedEmbeddings: true }, tensors: untied.tensors };
    const back = readLlama2cCheckpoint(writeLlama2cCheckpoint(tiedView, 1));
    expect(back.tensors.some((t) => t.name === tensorNames.output)).toBe(false);
  });

  it("refuses what llama2.c cannot represent, and missing tensors", () => {
    const m = randomLlamaModel(small(), 1);
    expect(() => writeLlama2cCheckpoint({ ...m, config: { ...m.config, ropeLayout: "half" } }, 0)).toThrow(/interleaved/);
    expect(() => writeLlama2cCheckpoint({ ...m, config: { ...m.config, ropeTheta: 500000 } }, 0)).toThrow(/ropeTheta/);
    expect(() => writeLlama2cCheckpoint({ ...m, tensors: m.tensors.filter((t) => t.name !== "blk.1.ffn_up.weight") }, 0)).toThrow(
      /missing tensor blk\.1\.ffn_up\.weight/,
    );
    const untied = randomLlamaModel(small({ tiedEmbeddings: false }), 1);
    expect(() => writeLlama2cCheckpoint({ ...untied, tensors: untied.tensors.filter((t) => t.name !== "output.weight") }, 1)).toThrow(
      /missing tensor output\.weight/,
    );
  });
});

describe("version 2 (Q8_0)", () => {
  it("reads back the dequantized weights, norms exact", () => {
    const config = small({ dim: 64, nHeads: 4, nKvHeads: 2, hiddenDim: 96, tiedEmbeddings: false });
    const model = randomLlamaModel(config, 5);
    const bytes = writeLlama2cQ80Checkpoint(model, 64);
    const h = readLlama2cHeader(bytes);
    expect(h.version).toBe(2);
    expect(h.groupSize).toBe(64);
    expect(bytes.byteLength).toBe(expectedLlama2cBytes(h));
    const back = readLlama2cCheckpoint(bytes);
    expect(back.config).toEqual(config);
    const orig = new Map(model.tensors.map((t) => [t.name, t]));
    for (const t of back.tensors) {
      const o = orig.get(t.name)!;
      if (t.shape.length === 1) {
        expect([...t.data]).toEqual([...o.data]);
        continue;
      }
      const { q, scales } = quantizeQ80(o.data, 64);
      let notDequantized = 0;
      let tooFar = 0;
      for (let i = 0; i < t.data.length; i++) {
        const s = scales[Math.floor(i / 64)];
        if (t.data[i] !== Math.fround(q[i] * s)) notDequantized++;
        if (Math.abs(t.data[i] - o.data[i]) > s / 2 + 1e-7) tooFar++;
      }
      expect({ name: t.name, notDequantized, tooFar }).toEqual({ name: t.name, notDequantized: 0, tooFar: 0 });
    }
  });

  it("backs off the group size until it divides dim, as export.py does", () => {
    const config = small({ dim: 96, nHeads: 6, nKvHeads: 3, hiddenDim: 160 });
    const bytes = writeLlama2cQ80Checkpoint(randomLlamaModel(config, 2), 64);
    expect(readLlama2cHeader(bytes).groupSize).toBe(32);
    expect(readLlama2cCheckpoint(bytes).config).toEqual(config);
  });

  it("quantizes like export.py: max|w|/127 scale, round half to even", () => {
    const w = new Float32Array([127, -63.5, 0.5, 1.5, 2.5, -2.5, 0, 3]);
    const { q, scales } = quantizeQ80(w, 8);
    expect(scales[0]).toBe(1);
    expect([...q]).toEqual([127, -64, 0, 2, 2, -2, 0, 3]);
    expect([...quantizeQ80(new Float32Array(4), 4).q]).toEqual([0, 0, 0, 0]);
  });

  it("rejects a group size that does not divide a tensor", () => {
    const model = randomLlamaModel(small({ dim: 64, nHeads: 4, nKvHeads: 2, hiddenDim: 96 }), 5);
    const bytes = writeLlama2cQ80Checkpoint(model, 64);
    new DataView(bytes.buffer).setInt32(37, 48, true); // 64 % 48 != 0
    expect(() => readLlama2cCheckpoint(bytes)).toThrow(/not a multiple of group_size 48/);
  });
});

describe("errors name what is wrong", () => {
  const model = randomLlamaModel(small({ tiedEmbeddings: false }), 9);
  const v0 = writeLlama2cCheckpoint(model, 0);
  const v1 = writeLlama2cCheckpoint(model, 1);

  it("truncated v0 / v1 / v2: expected vs actual bytes", () => {
    expect(() => readLlama2cCheckpoint(v0.subarray(0, v0.length - 1))).toThrow(
      new RegExp(`version 0\\) is truncated: expected ${v0.length} bytes for dim=48 .* got ${v0.length - 1} bytes`),
    );
    expect(() => readLlama2cCheckpoint(v1.subarray(0, 1000))).toThrow(new RegExp(`version 1\\) is truncated: expected ${v1.length} bytes .* got 1000 bytes`));
    const v2 = writeLlama2cQ80Checkpoint(randomLlamaModel(small({ dim: 64, nHeads: 4, nKvHeads: 2 }), 1), 32);
    expect(() => readLlama2cCheckpoint(v2.subarray(0, v2.length - 4))).toThrow(/version 2\) is truncated/);
  });

  it("headers that are too short", () => {
    expect(() => readLlama2cCheckpoint(v0.subarray(0, 20))).toThrow(/expected at least 28 bytes for the legacy \(version 0\) header, got 20 bytes/);
    expect(() => readLlama2cCheckpoint(v1.subarray(0, 100))).toThrow(/expected at least 256 bytes for the "ak42" header, got 100 bytes/);
    expect(() => readLlama2cCheckpoint(new Uint8Array(2))).toThrow(/too short/);
  });

  it("trailing data, with a hint when it is exactly a classifier", () => {
    const padded = new Uint8Array(v1.length + 8);
    padded.set(v1);
    expect(() => readLlama2cCheckpoint(padded)).toThrow(new RegExp(`unexpected trailing data: expected ${v1.length} bytes .* got ${v1.length + 8} bytes`));
    // flip the v0 vocab sign: now the header claims a shared classifier but wcls is still there
    const flipped = v0.slice();
    new DataView(flipped.buffer).setInt32(20, 300, true);
    expect(() => readLlama2cCheckpoint(flipped)).toThrow(/classifier is shared but the file seems to hold a separate one/);
    const flipped1 = v1.slice();
    flipped1[36] = 1;
    expect(() => readLlama2cCheckpoint(flipped1)).toThrow(/classifier is shared/);
  });

  it("inconsistent headers", () => {
    const bad = (offset: number, value: number, src = v0) => {
      const b = src.slice();
      new DataView(b.buffer).setInt32(offset, value, true);
      return b;
    };
    expect(() => readLlama2cCheckpoint(bad(0, 50))).toThrow(/dim 50 is not a multiple of n_heads 6/);
    expect(() => readLlama2cCheckpoint(bad(16, 4))).toThrow(/n_heads 6 is not a multiple of n_kv_heads 4/);
    expect(() => readLlama2cCheckpoint(bad(8, 0))).toThrow(/n_layers is 0, must be positive/);
    expect(() => readLlama2cCheckpoint(bad(20, 0))).toThrow(/vocab_size is 0/);
    expect(() => readLlama2cCheckpoint(bad(4, 3, v1))).toThrow(/unsupported version 3/);
    expect(() => readLlama2cCheckpoint(bad(28, -5, v1))).toThrow(/vocab_size is -5, must be positive/);
    const flag = v1.slice();
    flag[36] = 7;
    expect(() => readLlama2cCheckpoint(flag)).toThrow(/shared_classifier byte is 7/);
  });
});

describe("randomLlamaModel and shapes", () => {
  it("publishes the TinyStories shapes", () => {
    expect(shapes.stories15M).toEqual({ dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 });
    expect(shapes.stories42M).toEqual({ dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 32000, seqLen: 1024 });
    expect(shapes.stories110M).toEqual({ dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, seqLen: 1024 });
    const c = llama2cShapeConfig(shapes.stories15M);
    expect(c).toMatchObject({ architecture: "llama", ropeLayout: "interleaved", ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true });
  });

  it("is deterministic per seed and has sane statistics", () => {
    const config = small();
    const a = randomLlamaModel(config, 42);
    expectSameModel(a, randomLlamaModel(config, 42));
    expect(randomLlamaModel(config, 43).tensors[0].data[0]).not.toBe(a.tensors[0].data[0]);
    const stats = (d: Float32Array) => {
      const mean = d.reduce((s, x) => s + x, 0) / d.length;
      return { mean, std: Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / d.length) };
    };
    const t = new Map(a.tensors.map((x) => [x.name, x.data]));
    const norm = stats(t.get("blk.0.attn_norm.weight")!);
    expect(Math.abs(norm.mean - 1)).toBeLessThan(0.03);
    const wq = stats(t.get("blk.0.attn_q.weight")!);
    expect(Math.abs(wq.mean)).toBeLessThan(0.02);
    expect(wq.std).toBeCloseTo(1 / Math.sqrt(48), 2);
    const emb = stats(t.get("token_embd.weight")!);
    expect(emb.std).toBeCloseTo(2 / Math.sqrt(48), 2);
  });
});
