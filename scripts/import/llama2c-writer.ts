// Writers for llama2.c checkpoints (the inverse of ./llama2c.ts), and random-weight models of
// the published TinyStories shapes for speed and memory work. Layouts follow export.py:
// legacy_export (version 0), version1_export (version 1) and version2_export (version 2, Q8_0).

import type { ImportedTensor, LlamaConfig } from "../../functions/model/description";
import { headSize, tensorNames } from "../../functions/model/description";
import { LLAMA2C_HEADER_BYTES, LLAMA2C_MAGIC } from "./llama2c";
import type { ImportedModel } from "./types";
import { expectedLlamaTensors, indexTensors } from "./types";

/** The llama2.c architecture numbers of a model, without the fixed parts of a LlamaConfig. */
export type Llama2cShape = Pick<LlamaConfig, "dim" | "hiddenDim" | "nLayers" | "nHeads" | "nKvHeads" | "vocabSize" | "seqLen">;

/** Published TinyStories checkpoint shapes (llama2.c README); all use the 32000-token Llama 2 tokenizer. */
export const shapes = {
  stories15M: { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 },
  stories42M: { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 32000, seqLen: 1024 },
  stories110M: { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, seqLen: 1024 },
} as const satisfies Record<string, Llama2cShape>;

/** A full LlamaConfig for a llama2.c shape: interleaved RoPE, theta 10000, eps 1e-5 (what run.c hard-codes). */
export function llama2cShapeConfig(shape: Llama2cShape, tiedEmbeddings = true): LlamaConfig {
  return {
    architecture: "llama",
    ...shape,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeLayout: "interleaved",
    tiedEmbeddings,
  };
}

/** run.c hard-codes these; a model that differs cannot be written faithfully. */
function checkWritable(config: LlamaConfig): void {
  if (config.ropeLayout !== "interleaved") {
    throw new Error(`llama2.c checkpoints use interleaved RoPE; this model has ropeLayout "${config.ropeLayout}"`);
  }
  if (config.ropeTheta !== 10000) throw new Error(`llama2.c checkpoints imply ropeTheta 10000; this model has ${config.ropeTheta}`);
  if (config.normEps !== 1e-5) throw new Error(`llama2.c checkpoints imply normEps 1e-5; this model has ${config.normEps}`);
}

class ByteWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  offset = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  i32(v: number): void {
    this.view.setInt32(this.offset, v, true);
    this.offset += 4;
  }
  u32(v: number): void {
    this.view.setUint32(this.offset, v, true);
    this.offset += 4;
  }
  u8(v: number): void {
    this.view.setUint8(this.offset, v);
    this.offset += 1;
  }
  f32(data: ArrayLike<number>): void {
    for (let i = 0; i < data.length; i++, this.offset += 4) this.view.setFloat32(this.offset, data[i], true);
  }
  i8(data: Int8Array): void {
    this.bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.length), this.offset);
    this.offset += data.length;
  }
  padTo(n: number): void {
    if (this.offset > n) throw new Error(`header overflow: ${this.offset} > ${n}`);
    this.offset = n; // buffer is zero-filled
  }
}

/** Per-kind lists of per-layer tensors, in the order the llama2.c layouts stack them. */
function layerGroups(config: LlamaConfig, t: Map<string, ImportedTensor>) {
  const per = (pick: (n: ReturnType<typeof tensorNames.layer>) => string) =>
    Array.from({ length: config.nLayers }, (_, l) => t.get(pick(tensorNames.layer(l)))!.data);
  return {
    rmsAtt: per((n) => n.attnNorm),
    wq: per((n) => n.wq),
    wk: per((n) => n.wk),
    wv: per((n) => n.wv),
    wo: per((n) => n.wo),
    rmsFfn: per((n) => n.ffnNorm),
    w1: per((n) => n.wGate),
    w2: per((n) => n.wDown),
    w3: per((n) => n.wUp),
  };
}

/**
 * RoPE tables as llama2.c's model.py precomputes them and legacy_export writes them
 * (freqs_cos / freqs_sin, each seq_len x head_size/2), computed in f32 like torch does.
 * run.c no longer reads them (it computes RoPE on the fly) but they are part of the layout.
 */
export function llama2cFreqCis(config: LlamaConfig): { real: Float32Array; imag: Float32Array } {
  const f = Math.fround;
  const hs = headSize(config);
  const half = hs / 2;
  const real = new Float32Array(config.seqLen * half);
  const imag = new Float32Array(config.seqLen * half);
  for (let j = 0; j < half; j++) {
    // freqs = 1.0 / (theta ** (arange(0, hs, 2).float() / hs))
    const freq = f(1 / f(Math.pow(config.ropeTheta, f((2 * j) / hs))));
    for (let t = 0; t < config.seqLen; t++) {
      const angle = f(t * freq); // torch.outer(t, freqs) in f32
      real[t * half + j] = Math.cos(angle);
      imag[t * half + j] = Math.sin(angle);
    }
  }
  return { real, imag };
}

/**
 * Serialize a model as a llama2.c checkpoint. Version 0 is legacy_export's layout (a tied
 * classifier is flagged by a positive vocab_size, an untied one by a negative vocab_size and
 * wcls at the end); version 1 is version1_export's (header "ak42", shared_classifier byte).
 * When config.tiedEmbeddings is set, any output.weight tensor is ignored.
 */
export function writeLlama2cCheckpoint(model: ImportedModel, version: 0 | 1): Uint8Array {
  const { config } = model;
  checkWritable(config);
  const t = indexTensors(model);
  const g = layerGroups(config, t);
  const emb = t.get(tensorNames.tokenEmbedding)!.data;
  const rmsFinal = t.get(tensorNames.outputNorm)!.data;
  const wcls = config.tiedEmbeddings ? null : t.get(tensorNames.output)!.data;
  const weightFloats = expectedLlamaTensors(config).reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);

  if (version === 0) {
    const freq = llama2cFreqCis(config);
    const w = new ByteWriter(28 + 4 * (weightFloats + freq.real.length + freq.imag.length));
    w.i32(config.dim);
    w.i32(config.hiddenDim);
    w.i32(config.nLayers);
    w.i32(config.nHeads);
    w.i32(config.nKvHeads);
    w.i32(config.tiedEmbeddings ? config.vocabSize : -config.vocabSize);
    w.i32(config.seqLen);
    w.f32(emb);
    for (const group of [g.rmsAtt, g.wq, g.wk, g.wv, g.wo, g.rmsFfn, g.w1, g.w2, g.w3]) for (const d of group) w.f32(d);
    w.f32(rmsFinal);
    w.f32(freq.real);
    w.f32(freq.imag);
    if (wcls) w.f32(wcls);
    return w.bytes;
  }
  if (version === 1) {
    const w = new ByteWriter(LLAMA2C_HEADER_BYTES + 4 * weightFloats);
    writeAk42Header(w, config, 1);
    w.padTo(LLAMA2C_HEADER_BYTES);
    for (const d of [...g.rmsAtt, ...g.rmsFfn, rmsFinal, emb]) w.f32(d);
    for (const group of [g.wq, g.wk, g.wv, g.wo, g.w1, g.w2, g.w3]) for (const d of group) w.f32(d);
    if (wcls) w.f32(wcls);
    return w.bytes;
  }
  throw new Error(`unsupported llama2.c version ${version as number} (0 or 1; Q8_0 is writeLlama2cQ80Checkpoint)`);
}

function writeAk42Header(w: ByteWriter, config: LlamaConfig, version: number): void {
  w.u32(LLAMA2C_MAGIC);
  w.i32(version);
  w.i32(config.dim);
  w.i32(config.hiddenDim);
  w.i32(config.nLayers);
  w.i32(config.nHeads);
  w.i32(config.nKvHeads);
  w.i32(config.vocabSize);
  w.i32(config.seqLen);
  w.u8(config.tiedEmbeddings ? 1 : 0);
}

/** Round half to even, like torch.round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * export.py's quantize_q80: symmetric int8 in [-127, 127] per group of `groupSize` values,
 * scale = max|w| / 127 (f32), q = round_half_even(w / scale). An all-zero group gets scale 0
 * and q 0 (torch would divide 0 by 0 there).
 */
export function quantizeQ80(w: Float32Array, groupSize: number): { q: Int8Array; scales: Float32Array } {
  if (w.length % groupSize !== 0) throw new Error(`${w.length} values do not split into groups of ${groupSize}`);
  const f = Math.fround;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(w.length / groupSize);
  for (let g = 0; g < scales.length; g++) {
    let wmax = 0;
    for (let i = g * groupSize; i < (g + 1) * groupSize; i++) wmax = Math.max(wmax, Math.abs(w[i]));
    const scale = f(wmax / 127);
    scales[g] = scale;
    if (scale === 0) continue;
    for (let i = g * groupSize; i < (g + 1) * groupSize; i++) q[i] = roundHalfEven(f(w[i] / scale));
  }
  return { q, scales };
}

/**
 * Serialize a model as a version 2 (Q8_0) llama2.c checkpoint, as export.py's version2_export
 * does: the group size halves from `groupSize` until it divides dim, and every quantized tensor
 * must then split into whole groups (an Error says which does not).
 */
export function writeLlama2cQ80Checkpoint(model: ImportedModel, groupSize = 64): Uint8Array {
  const { config } = model;
  checkWritable(config);
  const t = indexTensors(model);
  const g = layerGroups(config, t);
  let gs = groupSize;
  while (config.dim % gs !== 0) gs = Math.floor(gs / 2);
  const quantized = [t.get(tensorNames.tokenEmbedding)!.data, ...g.wq, ...g.wk, ...g.wv, ...g.wo, ...g.w1, ...g.w2, ...g.w3];
  if (!config.tiedEmbeddings) quantized.push(t.get(tensorNames.output)!.data);
  for (const d of quantized) {
    if (d.length % gs !== 0) throw new Error(`a tensor of ${d.length} values is not a multiple of group size ${gs}`);
  }
  const norms = [...g.rmsAtt, ...g.rmsFfn, t.get(tensorNames.outputNorm)!.data];
  let size = LLAMA2C_HEADER_BYTES;
  for (const d of norms) size += 4 * d.length;
  for (const d of quantized) size += d.length + 4 * (d.length / gs);
  const w = new ByteWriter(size);
  writeAk42Header(w, config, 2);
  w.i32(gs);
  w.padTo(LLAMA2C_HEADER_BYTES);
  for (const d of norms) w.f32(d);
  for (const d of quantized) {
    const { q, scales } = quantizeQ80(d, gs);
    w.i8(q);
    w.f32(scales);
  }
  return w.bytes;
}

/** Small deterministic PRNG (splitmix32-seeded sfc32); not cryptographic, just reproducible. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;
  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix();
    this.b = splitmix();
    this.c = splitmix();
    this.d = splitmix();
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() / 4294967296;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u = 1 - this.uniform(); // (0, 1]
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

/**
 * A random-weight model of the given config, reproducible from `seed`.
 * Projections (q, k, v, o, gate, up, down) ~ N(0, 1/sqrt(fan_in)), which keeps activations
 * and attention scores O(1) at any width; the embedding and a separate classifier
 * ~ N(0, 2/sqrt(dim)), so logits after the final norm have a spread of about 2 (clear winners
 * for greedy decoding, not one token dominating everything); norm weights ~ 1 + N(0, 0.05).
 */
export function randomLlamaModel(config: LlamaConfig, seed: number): ImportedModel {
  const rng = new SeededRandom(seed);
  const tensors: ImportedTensor[] = [];
  const embStd = 2 / Math.sqrt(config.dim);
  for (const { name, shape } of expectedLlamaTensors(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) {
      for (let i = 0; i < data.length; i++) data[i] = 1 + 0.05 * rng.normal();
    } else {
      const isEmbedding = name === tensorNames.tokenEmbedding || name === tensorNames.output;
      const std = isEmbedding ? embStd : 1 / Math.sqrt(shape[1]);
      for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    }
    tensors.push({ name, shape: [...shape], data });
  }
  return { config: { ...config }, tensors };
}
