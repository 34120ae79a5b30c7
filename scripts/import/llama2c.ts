// Reader for llama2.c checkpoints (karpathy/llama2.c, export.py), all three layouts:
//
//  version 0 ("legacy"): 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//    vocab_size, seq_len); a negative vocab_size means the classifier is stored separately.
//    Then f32: tok_embeddings, rms_att[L], wq[L], wk[L], wv[L], wo[L], rms_ffn[L], w1[L], w2[L],
//    w3[L], rms_final, freq_cis_real (seq_len x head_size/2), freq_cis_imag (same), [wcls].
//  version 1: uint32 magic 0x616b3432 ("ak42"), int32 version = 1, the 7 int32 params,
//    uint8 shared_classifier, zero padding up to 256 bytes. Then f32: rms_att[L], rms_ffn[L],
//    rms_final, tok_embeddings, wq[L], wk[L], wv[L], wo[L], w1[L], w2[L], w3[L], [wcls].
//  version 2 (Q8_0, read by runq.c): same header plus int32 group_size right after the flag
//    byte (offset 37, unaligned), padded to 256. Then f32 norms: rms_att[L], rms_ffn[L],
//    rms_final; then for each quantized tensor in the order tok_embeddings, wq[L], wk[L],
//    wv[L], wo[L], w1[L], w2[L], w3[L], [wcls]: its int8 values followed by its f32 scales
//    (one per group of group_size consecutive values). Dequantized here: x = q * scale.
//
// All integers and floats are little-endian. Matrices are row-major [out, in] (PyTorch
// nn.Linear layout), which is what the internal description wants.

import type { ImportedTensor, LlamaConfig } from "../../functions/model/description";
import { specTensors } from "../../functions/model/arch/index";
import { tensorNames } from "../../functions/model/description";
import type { ImportedModel } from "./types";

export const LLAMA2C_MAGIC = 0x616b3432;
/** Size of the version 1 / 2 header, padding included. */
export const LLAMA2C_HEADER_BYTES = 256;
/** Size of the legacy (version 0) header: 7 int32. */
export const LLAMA2C_V0_HEADER_BYTES = 28;

export type Llama2cVersion = 0 | 1 | 2;

export interface Llama2cHeader {
  version: Llama2cVersion;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Always positive here (the legacy sign flag is decoded into sharedClassifier). */
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Version 2 only: Q8_0 group size. */
  groupSize?: number;
  /** Byte offset where the weights begin. */
  headerBytes: number;
}

export interface ReadOptions {
  /**
   * Copy every tensor out of `bytes`. By default f32 tensors of versions 0/1 are zero-copy
   * views into `bytes` whenever they are 4-byte aligned (they then share its memory).
   */
  copy?: boolean;
}

/** One run of bytes in the file: a tensor (f32 or Q8_0), or f32 data that is skipped. */
interface Segment {
  /** Tensor name, or null for skipped data (the legacy freq_cis tables). */
  name: string | null;
  what: string;
  shape: number[];
  kind: "f32" | "q8";
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function readLlama2cHeader(bytes: Uint8Array): Llama2cHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) {
    throw new Error(`llama2.c checkpoint is ${bytes.byteLength} bytes, too short for any header`);
  }
  const magic = view.getUint32(0, true);
  if (magic !== LLAMA2C_MAGIC) {
    if (bytes.byteLength < LLAMA2C_V0_HEADER_BYTES) {
      throw new Error(
        `llama2.c checkpoint is truncated: expected at least ${LLAMA2C_V0_HEADER_BYTES} bytes ` +
          `for the legacy (version 0) header, got ${bytes.byteLength} bytes`,
      );
    }
    const p = Array.from({ length: 7 }, (_, i) => view.getInt32(4 * i, true));
    const h: Llama2cHeader = {
      version: 0,
      dim: p[0],
      hiddenDim: p[1],
      nLayers: p[2],
      nHeads: p[3],
      nKvHeads: p[4],
      vocabSize: Math.abs(p[5]),
      seqLen: p[6],
      // negative vocab size is how the legacy format flags an unshared classifier
      sharedClassifier: p[5] > 0,
      headerBytes: LLAMA2C_V0_HEADER_BYTES,
    };
    validateHeader(h, p[5]);
    return h;
  }
  if (bytes.byteLength < LLAMA2C_HEADER_BYTES) {
    throw new Error(
      `llama2.c checkpoint is truncated: expected at least ${LLAMA2C_HEADER_BYTES} bytes ` +
        `for the "ak42" header, got ${bytes.byteLength} bytes`,
    );
  }
  const version = view.getInt32(4, true);
  if (version !== 1 && version !== 2) {
    throw new Error(`llama2.c checkpoint has magic "ak42" but unsupported version ${version} (supported: 1, 2)`);
  }
  const p = Array.from({ length: 7 }, (_, i) => view.getInt32(8 + 4 * i, true));
  const flag = view.getUint8(36);
  if (flag > 1) throw new Error(`llama2.c checkpoint: shared_classifier byte is ${flag}, expected 0 or 1`);
  const h: Llama2cHeader = {
    version,
    dim: p[0],
    hiddenDim: p[1],
    nLayers: p[2],
    nHeads: p[3],
    nKvHeads: p[4],
    vocabSize: p[5],
    seqLen: p[6],
    sharedClassifier: flag === 1,
    headerBytes: LLAMA2C_HEADER_BYTES,
  };
  if (version === 2) h.groupSize = view.getInt32(37, true);
  validateHeader(h, p[5]);
  return h;
}

function validateHeader(h: Llama2cHeader, rawVocab: number): void {
  const where = `llama2.c checkpoint (version ${h.version}) header`;
  const positive: [string, number][] = [
    ["dim", h.dim],
    ["hidden_dim", h.hiddenDim],
    ["n_layers", h.nLayers],
    ["n_heads", h.nHeads],
    ["n_kv_heads", h.nKvHeads],
    ["seq_len", h.seqLen],
  ];
  for (const [k, v] of positive) if (!(v > 0)) throw new Error(`${where}: ${k} is ${v}, must be positive`);
  if (h.version === 0 ? rawVocab === 0 : rawVocab <= 0) {
    throw new Error(`${where}: vocab_size is ${rawVocab}, must be ${h.version === 0 ? "non-zero" : "positive"}`);
  }
  if (h.dim % h.nHeads !== 0) throw new Error(`${where}: dim ${h.dim} is not a multiple of n_heads ${h.nHeads}`);
  if (h.nKvHeads > h.nHeads || h.nHeads % h.nKvHeads !== 0) {
    throw new Error(`${where}: n_heads ${h.nHeads} is not a multiple of n_kv_heads ${h.nKvHeads}`);
  }
  if ((h.dim / h.nHeads) % 2 !== 0) throw new Error(`${where}: head size ${h.dim / h.nHeads} is odd, RoPE needs pairs`);
  if (h.version === 2 && !(h.groupSize! > 0)) throw new Error(`${where}: group_size is ${h.groupSize}, must be positive`);
}

/** The internal config a llama2.c header describes (run.c hard-codes theta 10000 and eps 1e-5). */
export function llama2cConfig(h: Llama2cHeader): LlamaConfig {
  return {
    architecture: "llama",
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    vocabSize: h.vocabSize,
    seqLen: h.seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeLayout: "interleaved",
    tiedEmbeddings: h.sharedClassifier,
  };
}

function perLayer(h: Llama2cHeader, what: string, pick: (l: number) => string, shape: number[], kind: "f32" | "q8"): Segment[] {
  return Array.from({ length: h.nLayers }, (_, l) => ({ name: pick(l), what: `${what}[${l}]`, shape, kind }));
}

/** The exact sequence of data runs after the header, per export.py. */
function layout(h: Llama2cHeader): Segment[] {
  const { dim, hiddenDim, vocabSize } = h;
  const headSize = dim / h.nHeads;
  const kvDim = headSize * h.nKvHeads;
  const L = tensorNames.layer;
  const q: "f32" | "q8" = h.version === 2 ? "q8" : "f32";
  const emb: Segment = { name: tensorNames.tokenEmbedding, what: "tok_embeddings", shape: [vocabSize, dim], kind: q };
  const rmsAtt = perLayer(h, "rms_att", (l) => L(l).attnNorm, [dim], "f32");
  const rmsFfn = perLayer(h, "rms_ffn", (l) => L(l).ffnNorm, [dim], "f32");
  const rmsFinal: Segment = { name: tensorNames.outputNorm, what: "rms_final", shape: [dim], kind: "f32" };
  const matrices = [
    ...perLayer(h, "wq", (l) => L(l).wq, [dim, dim], q),
    ...perLayer(h, "wk", (l) => L(l).wk, [kvDim, dim], q),
    ...perLayer(h, "wv", (l) => L(l).wv, [kvDim, dim], q),
    ...perLayer(h, "wo", (l) => L(l).wo, [dim, dim], q),
  ];
  const ffn = [
    ...perLayer(h, "w1", (l) => L(l).wGate, [hiddenDim, dim], q),
    ...perLayer(h, "w2", (l) => L(l).wDown, [dim, hiddenDim], q),
    ...perLayer(h, "w3", (l) => L(l).wUp, [hiddenDim, dim], q),
  ];
  const wcls: Segment[] = h.sharedClassifier
    ? []
    : [{ name: tensorNames.output, what: "wcls", shape: [vocabSize, dim], kind: q }];
  if (h.version === 0) {
    const freq = [h.seqLen, headSize / 2];
    return [
      emb,
      ...rmsAtt,
      ...matrices,
      ...rmsFfn,
      ...ffn,
      rmsFinal,
      { name: null, what: "freq_cis_real", shape: freq, kind: "f32" },
      { name: null, what: "freq_cis_imag", shape: freq, kind: "f32" },
      ...wcls,
    ];
  }
  // versions 1 and 2 share the order; only the encoding of the matrices differs
  return [...rmsAtt, ...rmsFfn, rmsFinal, emb, ...matrices, ...ffn, ...wcls];
}

function segmentBytes(s: Segment, groupSize: number | undefined): number {
  const n = numel(s.shape);
  return s.kind === "f32" ? 4 * n : n + 4 * (n / groupSize!);
}

function describe(h: Llama2cHeader): string {
  return (
    `dim=${h.dim} hidden_dim=${h.hiddenDim} n_layers=${h.nLayers} n_heads=${h.nHeads} ` +
    `n_kv_heads=${h.nKvHeads} vocab_size=${h.vocabSize} seq_len=${h.seqLen} ` +
    `${h.sharedClassifier ? "shared" : "separate"} classifier` +
    (h.groupSize !== undefined ? ` group_size=${h.groupSize}` : "")
  );
}

/** Total file size the header implies. Throws if a Q8_0 tensor does not split into whole groups. */
export function expectedLlama2cBytes(h: Llama2cHeader): number {
  let total = h.headerBytes;
  for (const s of layout(h)) {
    if (s.kind === "q8" && numel(s.shape) % h.groupSize! !== 0) {
      throw new Error(
        `llama2.c checkpoint (version 2): ${s.what} has ${numel(s.shape)} values, ` +
          `not a multiple of group_size ${h.groupSize}`,
      );
    }
    total += segmentBytes(s, h.groupSize);
  }
  return total;
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function readF32(bytes: Uint8Array, offset: number, count: number, copy: boolean): Float32Array {
  const abs = bytes.byteOffset + offset;
  if (!copy && littleEndianHost && abs % 4 === 0) return new Float32Array(bytes.buffer, abs, count);
  if (littleEndianHost) {
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + 4 * count));
    return out;
  }
  const view = new DataView(bytes.buffer, abs, 4 * count);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

function readQ8(bytes: Uint8Array, offset: number, count: number, groupSize: number): Float32Array {
  const q = new Int8Array(bytes.buffer, bytes.byteOffset + offset, count);
  const scales = readF32(bytes, offset + count, count / groupSize, true);
  const out = new Float32Array(count);
  for (let g = 0, i = 0; g < scales.length; g++) {
    const s = scales[g];
    for (let k = 0; k < groupSize; k++, i++) out[i] = q[i] * s; // f32 store rounds like runq.c's float product
  }
  return out;
}

/**
 * Parse a llama2.c checkpoint (version 0, 1 or 2) into the internal description.
 * Throws an Error naming the problem when the file is truncated or inconsistent with its header.
 */
export function readLlama2cCheckpoint(bytes: Uint8Array, options: ReadOptions = {}): ImportedModel {
  const h = readLlama2cHeader(bytes);
  const expected = expectedLlama2cBytes(h);
  if (bytes.byteLength !== expected) {
    let msg =
      `llama2.c checkpoint (version ${h.version}) ` +
      (bytes.byteLength < expected ? "is truncated" : "has unexpected trailing data") +
      `: expected ${expected} bytes for ${describe(h)}, got ${bytes.byteLength} bytes`;
    const clsBytes = segmentBytes(
      { name: null, what: "wcls", shape: [h.vocabSize, h.dim], kind: h.version === 2 ? "q8" : "f32" },
      h.groupSize,
    );
    if (h.sharedClassifier && bytes.byteLength === expected + clsBytes) {
      msg += " (exactly one more classifier's worth: the header says the classifier is shared but the file seems to hold a separate one)";
    } else if (!h.sharedClassifier && bytes.byteLength === expected - clsBytes) {
      msg += " (exactly one classifier short: the header says the classifier is separate but the file seems to share it)";
    }
    throw new Error(msg);
  }
  const copy = options.copy ?? false;
  const tensors: ImportedTensor[] = [];
  let offset = h.headerBytes;
  for (const s of layout(h)) {
    const n = numel(s.shape);
    if (s.name !== null) {
      const data = s.kind === "f32" ? readF32(bytes, offset, n, copy) : readQ8(bytes, offset, n, h.groupSize!);
      tensors.push({ name: s.name, shape: s.shape, data });
    }
    offset += segmentBytes(s, h.groupSize);
  }
  const config = llama2cConfig(h);
  return { config, tensors: canonicalOrder(config, tensors) };
}

/** Emit tensors in one fixed order whatever the file layout: the architecture spec's storage order. */
function canonicalOrder(config: LlamaConfig, tensors: ImportedTensor[]): ImportedTensor[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return specTensors(config).map((t) => byName.get(t.name)!);
}
