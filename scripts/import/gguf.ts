// Reader for GGUF files (ggml docs/gguf.md, versions 2 and 3, little-endian):
//
//   u32 magic "GGUF" (0x46554747 read LE), u32 version, u64 tensor_count, u64 metadata_kv_count
//   metadata: (string key, u32 value_type, value) * kv_count; string = u64 length + UTF-8 bytes;
//             array = u32 element type, u64 count, elements (arrays may nest)
//   tensor infos: (string name, u32 n_dims, u64 ne[n_dims] (ne0 = fastest-varying), u32 ggml_type,
//             u64 offset relative to the data section) * tensor_count
//   padding to general.alignment (default 32), then the data section; every tensor offset is a
//   multiple of the alignment.
//
// Architectures mapped onto the internal description: "llama", "qwen2", "gpt2". Tensor types
// F32, F16, BF16 and the quantized Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (ggml's
// blocks are byte-for-byte our kernels' blocks, kernels/quant.ts, so those tensors keep their
// bytes in `quantized` as well as a dequantized `data`).
//
// RoPE layout (verified against llama.cpp):
//  - convert_hf_to_gguf.py's LlamaModel.modify_tensors permutes HF q_proj/k_proj rows with
//    permute(w, n_head, n_head_kv) = w.reshape(n_head, 2, rows/n_head/2, ...).swapaxes(1, 2),
//    turning Hugging Face's rotate_half pairs (i, i + d/2) into consecutive pairs (2i, 2i+1); and
//    llama_model_rope_type() returns LLAMA_ROPE_TYPE_NORM ("pairs of consecutive head values")
//    for LLM_ARCH_LLAMA. So GGUF llama files use ropeLayout "interleaved". This covers Mistral
//    and other LlamaForCausalLM checkpoints, which the converter writes as arch "llama".
//  - Qwen2Model has no such permutation, and llama_model_rope_type() returns
//    LLAMA_ROPE_TYPE_NEOX ("pairs offset by n_rot/2") for LLM_ARCH_QWEN2: ropeLayout "half".
//  - LLM_ARCH_GPT2 uses no RoPE (learned positions).
//  - Llama 3 rope_scaling is not stored as metadata by the converter: it writes a tensor
//    rope_freqs.weight [head_dim/2] of per-frequency divisors (1, factor, or the smoothed value);
//    we recover the Llama3RopeScaling parameters from it (any parameters that reproduce the same
//    divisors describe the same model).

import { TextDecoder as NodeTextDecoder } from "node:util";
import type { Gpt2Config, ImportedTensor, Llama3RopeScaling, LlamaConfig, ModelConfig } from "../../functions/model/description";
import { specTensors } from "../../functions/model/arch/index";
import { tensorNames } from "../../functions/model/description";
import { dequantize, f16BitsToF32, QUANT_FORMATS, type QuantDType } from "../../kernels/quant";
import { type ByteSource, FileSource, MemorySource } from "./safetensors";

export const GGUF_MAGIC = 0x46554747;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_QNT_VERSION: written as general.quantization_version by llama.cpp. */
export const GGML_QUANT_VERSION = 2;

/** gguf_metadata_value_type */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufType = (typeof GgufType)[keyof typeof GgufType];
const GGUF_TYPE_NAMES = Object.fromEntries(Object.entries(GgufType).map(([k, v]) => [v, k])) as Record<number, string>;

/** ggml_type values (ggml.h) with block size (values) and bytes per block, where known. */
export const GGML_TYPES: Readonly<Record<number, { name: string; blockSize: number; typeSize: number }>> = {
  0: { name: "F32", blockSize: 1, typeSize: 4 },
  1: { name: "F16", blockSize: 1, typeSize: 2 },
  2: { name: "Q4_0", blockSize: 32, typeSize: 18 },
  3: { name: "Q4_1", blockSize: 32, typeSize: 20 },
  6: { name: "Q5_0", blockSize: 32, typeSize: 22 },
  7: { name: "Q5_1", blockSize: 32, typeSize: 24 },
  8: { name: "Q8_0", blockSize: 32, typeSize: 34 },
  9: { name: "Q8_1", blockSize: 32, typeSize: 36 },
  10: { name: "Q2_K", blockSize: 256, typeSize: 84 },
  11: { name: "Q3_K", blockSize: 256, typeSize: 110 },
  12: { name: "Q4_K", blockSize: 256, typeSize: 144 },
  13: { name: "Q5_K", blockSize: 256, typeSize: 176 },
  14: { name: "Q6_K", blockSize: 256, typeSize: 210 },
  15: { name: "Q8_K", blockSize: 256, typeSize: 292 },
  24: { name: "I8", blockSize: 1, typeSize: 1 },
  25: { name: "I16", blockSize: 1, typeSize: 2 },
  26: { name: "I32", blockSize: 1, typeSize: 4 },
  27: { name: "I64", blockSize: 1, typeSize: 8 },
  28: { name: "F64", blockSize: 1, typeSize: 8 },
  30: { name: "BF16", blockSize: 1, typeSize: 2 },
};
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 } as const;
/** The ggml types that are our quantized dtypes (same blocks). */
export const GGML_QUANT_DTYPES: Readonly<Record<number, QuantDType>> = Object.fromEntries(
  (Object.entries(QUANT_FORMATS) as [QuantDType, { ggml: string }][]).map(([dtype, f]) => [GGML_TYPE[f.ggml as keyof typeof GGML_TYPE], dtype]),
);
/** Tensor types this reader turns into model tensors. */
export const SUPPORTED_GGML_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"] as const;
export const SUPPORTED_GGUF_ARCHITECTURES = ["llama", "qwen2", "gpt2"] as const;

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `unknown type ${type}`;
}

/** Metadata values: numbers (u64/i64 beyond 2^53 as bigint), booleans, strings, arrays. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** GGUF order: ne0 (fastest-varying, the columns) first. */
  ne: number[];
  /** Our order: [rows, cols] for matrices (ne reversed). */
  shape: number[];
  type: number;
  typeName: string;
  /** Relative to the data section. */
  offset: number;
  /** Bytes of data, NaN for types whose block size is unknown here. */
  byteSize: number;
}

export interface GgufHeader {
  version: number;
  metadata: Record<string, GgufValue>;
  /** The value type of each key (and the element type of arrays). */
  metadataTypes: Record<string, { type: GgufType; elementType?: GgufType }>;
  tensorInfos: GgufTensorInfo[];
  alignment: number;
  /** File offset of the data section. */
  dataOffset: number;
  fileSize: number;
}

const utf8 = new NodeTextDecoder("utf-8", { fatal: true });

/** Sequential little-endian reader over a ByteSource, fetching in chunks. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private view = new DataView(this.buf.buffer);
  constructor(
    private readonly src: ByteSource,
    private readonly where: string,
  ) {}
  private ensure(n: number, what: string): number {
    if (this.pos + n > this.src.size) {
      throw new Error(`${this.where}: truncated: need ${n} bytes for ${what} at offset ${this.pos}, the file has ${this.src.size}`);
    }
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(this.src.size - this.pos, Math.max(n, 1 << 20));
      this.buf = this.src.read(this.pos, len);
      this.bufStart = this.pos;
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }
  u8(what: string): number {
    const at = this.ensure(1, what);
    return this.view.getUint8(at);
  }
  i8(what: string): number {
    const at = this.ensure(1, what);
    return this.view.getInt8(at);
  }
  u16(what: string): number {
    const at = this.ensure(2, what);
    return this.view.getUint16(at, true);
  }
  i16(what: string): number {
    const at = this.ensure(2, what);
    return this.view.getInt16(at, true);
  }
  u32(what: string): number {
    const at = this.ensure(4, what);
    return this.view.getUint32(at, true);
  }
  i32(what: string): number {
    const at = this.ensure(4, what);
    return this.view.getInt32(at, true);
  }
  f32(what: string): number {
    const at = this.ensure(4, what);
    return this.view.getFloat32(at, true);
  }
  f64(what: string): number {
    const at = this.ensure(8, what);
    return this.view.getFloat64(at, true);
  }
  u64(what: string): number | bigint {
    const at = this.ensure(8, what);
    const v = this.view.getBigUint64(at, true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  i64(what: string): number | bigint {
    const at = this.ensure(8, what);
    const v = this.view.getBigInt64(at, true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  }
  /** A u64 count that must fit comfortably in memory / the file. */
  count(what: string, limit: number): number {
    const v = this.u64(what);
    if (typeof v === "bigint" || v > limit) {
      throw new Error(`${this.where}: ${what} is ${v}, more than a ${this.src.size}-byte file can hold (truncated or corrupt file?)`);
    }
    return v;
  }
  string(what: string): string {
    const n = this.count(`length of ${what}`, this.src.size);
    const at = this.ensure(n, what);
    try {
      return utf8.decode(this.buf.subarray(at, at + n));
    } catch {
      throw new Error(`${this.where}: ${what} is not valid UTF-8`);
    }
  }
}

function readValue(c: Cursor, type: number, what: string, depth = 0): GgufValue {
  switch (type) {
    case GgufType.UINT8:
      return c.u8(what);
    case GgufType.INT8:
      return c.i8(what);
    case GgufType.UINT16:
      return c.u16(what);
    case GgufType.INT16:
      return c.i16(what);
    case GgufType.UINT32:
      return c.u32(what);
    case GgufType.INT32:
      return c.i32(what);
    case GgufType.FLOAT32:
      return c.f32(what);
    case GgufType.FLOAT64:
      return c.f64(what);
    case GgufType.UINT64:
      return c.u64(what);
    case GgufType.INT64:
      return c.i64(what);
    case GgufType.BOOL: {
      const b = c.u8(what);
      if (b > 1) throw new Error(`${what}: bool byte is ${b}, must be 0 or 1`);
      return b === 1;
    }
    case GgufType.STRING:
      return c.string(what);
    case GgufType.ARRAY: {
      if (depth > 8) throw new Error(`${what}: arrays nested too deeply`);
      const et = c.u32(`element type of ${what}`);
      if (!(et in GGUF_TYPE_NAMES)) throw new Error(`${what}: unknown array element type ${et}`);
      const n = c.count(`length of ${what}`, Number.MAX_SAFE_INTEGER);
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, et, `${what}[${i}]`, depth + 1);
      return out;
    }
    default:
      throw new Error(`${what}: unknown metadata value type ${type}`);
  }
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function tensorByteSize(type: number, ne: number[]): number {
  const t = GGML_TYPES[type];
  if (!t) return NaN;
  if (ne[0]! % t.blockSize !== 0) return NaN;
  return (numel(ne) / t.blockSize) * t.typeSize;
}

/** Parse the header, metadata and tensor infos of a GGUF file. */
export function readGgufHeader(source: ByteSource, where = "GGUF file"): GgufHeader {
  const c = new Cursor(source, where);
  if (source.size < 4) throw new Error(`${where}: truncated: ${source.size} bytes, too short for the GGUF magic`);
  const magic = c.u32("magic");
  if (magic !== GGUF_MAGIC) {
    throw new Error(`${where}: not a GGUF file (magic 0x${magic.toString(16).padStart(8, "0")}, expected "GGUF")`);
  }
  const version = c.u32("version");
  if (version === 1) throw new Error(`${where}: GGUF version 1 is not supported (supported: 2, 3)`);
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
    if (swapped === 2 || swapped === 3) throw new Error(`${where}: big-endian GGUF files are not supported`);
    throw new Error(`${where}: unsupported GGUF version ${version} (supported: 2, 3)`);
  }
  // every tensor info / kv takes at least 8 bytes: bounds that reject garbage counts early
  const tensorCount = c.count("tensor_count", source.size / 8);
  const kvCount = c.count("metadata_kv_count", source.size / 8);
  const metadata: Record<string, GgufValue> = {};
  const metadataTypes: Record<string, { type: GgufType; elementType?: GgufType }> = {};
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key #${i}`);
    const type = c.u32(`value type of ${key}`);
    if (!(type in GGUF_TYPE_NAMES)) throw new Error(`${where}: metadata ${key} has unknown value type ${type}`);
    if (type === GgufType.ARRAY) {
      const save = c.pos;
      const et = c.u32(`element type of ${key}`) as GgufType;
      c.pos = save;
      metadataTypes[key] = { type: type as GgufType, elementType: et };
    } else metadataTypes[key] = { type: type as GgufType };
    if (key in metadata) throw new Error(`${where}: duplicate metadata key ${key}`);
    metadata[key] = readValue(c, type, `${where}: metadata ${key}`);
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if ("general.alignment" in metadata) {
    const a = metadata["general.alignment"];
    if (typeof a !== "number" || !Number.isInteger(a) || a <= 0 || a % 8 !== 0) {
      throw new Error(`${where}: general.alignment is ${String(a)}, must be a positive multiple of 8`);
    }
    alignment = a;
  }
  const tensorInfos: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`name of tensor #${i}`);
    if (names.has(name)) throw new Error(`${where}: duplicate tensor ${name}`);
    names.add(name);
    const nDims = c.u32(`n_dims of ${name}`);
    if (nDims < 1 || nDims > 4) throw new Error(`${where}: tensor ${name} has ${nDims} dimensions (1 to 4 allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.count(`ne[${d}] of ${name}`, Number.MAX_SAFE_INTEGER));
    const type = c.u32(`type of ${name}`);
    const offset = c.count(`offset of ${name}`, Number.MAX_SAFE_INTEGER);
    if (offset % alignment !== 0) throw new Error(`${where}: tensor ${name} offset ${offset} is not a multiple of the alignment ${alignment}`);
    tensorInfos.push({ name, ne, shape: [...ne].reverse(), type, typeName: ggmlTypeName(type), offset, byteSize: tensorByteSize(type, ne) });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const dataBytes = source.size - dataOffset;
  for (const t of tensorInfos) {
    if (Number.isFinite(t.byteSize) && t.offset + t.byteSize > dataBytes) {
      throw new Error(
        `${where}: truncated: tensor ${t.name} (${t.typeName}, ${t.byteSize} bytes at data offset ${t.offset}) ends past the end of the file` +
          ` (data section has ${Math.max(0, dataBytes)} bytes)`,
      );
    }
  }
  return { version, metadata, metadataTypes, tensorInfos, alignment, dataOffset, fileSize: source.size };
}

export interface GgufReadOptions {
  /** Cap the context length (seqLen) at this many tokens (GPT-2: the position table is cut to match). */
  maxContext?: number;
}

/** The tokenizer as GGUF stores it (tokenizer.ggml.* and tokenizer.chat_template). */
export interface GgufTokenizerMeta {
  /** tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ... */
  model: string;
  /** tokenizer.ggml.pre: the pre-tokenizer (BPE vocabularies), e.g. "llama-bpe", "qwen2", "gpt-2", "smollm". */
  pre?: string;
  tokens: string[];
  scores?: number[];
  /** 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte. */
  tokenTypes?: number[];
  /** "left right" pairs, highest priority first. */
  merges?: string[];
  bosTokenId?: number;
  eosTokenId?: number;
  unknownTokenId?: number;
  paddingTokenId?: number;
  addBosToken?: boolean;
  addEosToken?: boolean;
  addSpacePrefix?: boolean;
  chatTemplate?: string;
}

export interface GgufModel {
  config: ModelConfig;
  tensors: ImportedTensor[];
  vocabSize: number;
  architecture: string;
  version: number;
  metadata: Record<string, GgufValue>;
  metadataTypes: GgufHeader["metadataTypes"];
  tokenizer: GgufTokenizerMeta | null;
  /** Llama 3: rope_freqs.weight as stored (the per-frequency divisors). */
  ropeFreqs?: Float32Array;
}

/** The shortest decimal that is the same f32 (1e-5 rather than 9.999999747378752e-6). */
export function shortestF32(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const f = Math.fround(x);
  if (f !== x) return x; // not an f32 value: leave alone
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return x;
}

class Meta {
  constructor(
    private readonly m: Record<string, GgufValue>,
    private readonly types: GgufHeader["metadataTypes"],
    private readonly where: string,
  ) {}
  has(k: string): boolean {
    return k in this.m;
  }
  int(k: string, fallback?: number): number {
    const v = this.m[k];
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${this.where}: missing metadata ${k}`);
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new Error(`${this.where}: metadata ${k} is ${Array.isArray(v) ? "an array" : String(v)}, expected a positive integer`);
    }
    return v;
  }
  float(k: string, fallback?: number): number {
    const v = this.m[k];
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${this.where}: missing metadata ${k}`);
    }
    if (typeof v !== "number") throw new Error(`${this.where}: metadata ${k} is ${String(v)}, expected a number`);
    return this.types[k]?.type === GgufType.FLOAT32 ? shortestF32(v) : v;
  }
  str(k: string): string | undefined {
    const v = this.m[k];
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new Error(`${this.where}: metadata ${k} is not a string`);
    return v;
  }
  raw(k: string): GgufValue | undefined {
    return this.m[k];
  }
}

/** Extract tokenizer.ggml.* (null if the file has no tokens). */
export function ggufTokenizerMeta(metadata: Record<string, GgufValue>): GgufTokenizerMeta | null {
  const tokens = metadata["tokenizer.ggml.tokens"];
  const model = metadata["tokenizer.ggml.model"];
  if (!Array.isArray(tokens) || typeof model !== "string") return null;
  const meta: GgufTokenizerMeta = { model, tokens: tokens.map(String) };
  const numArray = (k: string) => {
    const v = metadata[k];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length !== tokens.length) throw new Error(`metadata ${k} must be an array of ${tokens.length} numbers`);
    return v.map(Number);
  };
  const id = (k: string) => (typeof metadata[k] === "number" ? (metadata[k] as number) : undefined);
  const flag = (k: string) => (typeof metadata[k] === "boolean" ? (metadata[k] as boolean) : undefined);
  const pre = metadata["tokenizer.ggml.pre"];
  if (typeof pre === "string") meta.pre = pre;
  const scores = numArray("tokenizer.ggml.scores");
  if (scores) meta.scores = scores;
  const types = numArray("tokenizer.ggml.token_type");
  if (types) meta.tokenTypes = types;
  const merges = metadata["tokenizer.ggml.merges"];
  if (Array.isArray(merges)) meta.merges = merges.map(String);
  const set = <K extends keyof GgufTokenizerMeta>(key: K, v: GgufTokenizerMeta[K] | undefined) => {
    if (v !== undefined) meta[key] = v;
  };
  set("bosTokenId", id("tokenizer.ggml.bos_token_id"));
  set("eosTokenId", id("tokenizer.ggml.eos_token_id"));
  set("unknownTokenId", id("tokenizer.ggml.unknown_token_id"));
  set("paddingTokenId", id("tokenizer.ggml.padding_token_id"));
  set("addBosToken", flag("tokenizer.ggml.add_bos_token"));
  set("addEosToken", flag("tokenizer.ggml.add_eos_token"));
  set("addSpacePrefix", flag("tokenizer.ggml.add_space_prefix"));
  const tpl = metadata["tokenizer.chat_template"];
  if (typeof tpl === "string") meta.chatTemplate = tpl;
  return meta;
}

function capContext(n: number, opts: GgufReadOptions): number {
  if (opts.maxContext === undefined) return n;
  if (!Number.isInteger(opts.maxContext) || opts.maxContext <= 0) throw new Error(`maxContext must be a positive integer, got ${opts.maxContext}`);
  return Math.min(n, opts.maxContext);
}

/**
 * Llama 3 scaling parameters that reproduce llama.cpp's rope_freqs divisors. The divisor of
 * frequency j is 1 (high band), `factor` (low band) or 1 / ((1 - s) / factor + s) with
 * s = (orig / wavelen - low) / (high - low) in between. s is affine in 1/wavelen, so the medium
 * band fixes orig / (high - low) and low / (high - low); we report low_freq_factor 1 (Llama 3's
 * value) and derive high and orig from them, then verify the divisors are reproduced.
 */
export function llama3ScalingFromRopeFreqs(freqs: Float32Array, theta: number, headSize: number, where: string): Llama3RopeScaling | null {
  const n = headSize / 2;
  if (freqs.length !== n) throw new Error(`${where}: rope_freqs.weight has ${freqs.length} values, expected head_dim/2 = ${n}`);
  const wavelen = Array.from({ length: n }, (_, j) => (2 * Math.PI) * Math.pow(theta, (2 * j) / headSize));
  const tol = 1e-5;
  if (freqs.every((f) => Math.abs(f - 1) <= tol)) return null;
  const factor = Math.max(...freqs);
  const medium: { x: number; s: number }[] = [];
  freqs.forEach((f, j) => {
    if (Math.abs(f - 1) > tol && Math.abs(f - factor) > tol * factor) {
      medium.push({ x: 1 / wavelen[j]!, s: (1 / f - 1 / factor) / (1 - 1 / factor) });
    }
  });
  const lastHigh = Math.max(-1, ...freqs.map((f, j) => (Math.abs(f - 1) <= tol ? j : -1)));
  const firstLow = Math.min(n, ...freqs.map((f, j) => (Math.abs(f - factor) <= tol * factor ? j : n)));
  let a: number;
  let b: number;
  if (medium.length >= 2) {
    // least squares s = a x + b
    const mx = medium.reduce((t, p) => t + p.x, 0) / medium.length;
    const ms = medium.reduce((t, p) => t + p.s, 0) / medium.length;
    let sxx = 0;
    let sxs = 0;
    for (const p of medium) {
      sxx += (p.x - mx) ** 2;
      sxs += (p.x - mx) * (p.s - ms);
    }
    a = sxs / sxx;
    b = ms - a * mx;
  } else {
    // Not enough points to fix the line: choose Llama 3's high_freq_factor 4 (with low 1) and
    // an original context inside the gap the bands leave (any such value gives these divisors).
    const hiW = lastHigh >= 0 ? wavelen[lastHigh]! : 0;
    const loW = firstLow < n ? wavelen[firstLow]! : Infinity;
    let orig: number;
    if (medium.length === 1) {
      const p = medium[0]!;
      orig = (3 * p.s + 1) / p.x;
    } else {
      orig = Number.isFinite(loW) ? Math.sqrt(Math.max(hiW * 4, 1e-9) * loW) : Math.max(hiW * 4 * 2, 1);
    }
    a = orig / 3;
    b = -1 / 3;
  }
  if (!(b < 0) || !(a > 0)) throw new Error(`${where}: rope_freqs.weight does not look like Llama 3 rope scaling`);
  const snap = (x: number) => (Math.abs(x - Math.round(x)) < 1e-3 * Math.max(1, Math.abs(x)) ? Math.round(x) : shortestF32(Math.fround(x)));
  const scaling: Llama3RopeScaling = {
    type: "llama3",
    factor: snap(factor),
    lowFreqFactor: 1,
    highFreqFactor: snap(1 - 1 / b),
    originalMaxPositionEmbeddings: snap(-a / b),
  };
  // verify: recompute the divisors as convert_hf_to_gguf.py does
  const again = llama3RopeFreqs(scaling, theta, headSize);
  for (let j = 0; j < n; j++) {
    if (Math.abs(again[j]! - freqs[j]!) > 1e-4 * Math.max(1, freqs[j]!)) {
      throw new Error(`${where}: rope_freqs.weight is not reproduced by any Llama 3 rope scaling (frequency ${j}: ${freqs[j]} vs ${again[j]})`);
    }
  }
  return scaling;
}

/** The rope_freqs.weight divisors llama.cpp's converter writes for Llama 3 scaling. */
export function llama3RopeFreqs(s: Llama3RopeScaling, theta: number, headSize: number): Float32Array {
  const out = new Float32Array(headSize / 2);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let j = 0; j < out.length; j++) {
    const freq = 1 / Math.pow(theta, (2 * j) / headSize);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[j] = 1;
    else if (wavelen > lowWavelen) out[j] = s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[j] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

function llamaLikeConfig(arch: "llama" | "qwen2", meta: Meta, infos: Map<string, GgufTensorInfo>, where: string, opts: GgufReadOptions): LlamaConfig {
  const k = (s: string) => `${arch}.${s}`;
  const dim = meta.int(k("embedding_length"));
  const nHeads = meta.int(k("attention.head_count"));
  const kvRaw = meta.raw(k("attention.head_count_kv"));
  if (Array.isArray(kvRaw)) throw new Error(`${where}: per-layer ${k("attention.head_count_kv")} is not supported`);
  const nKvHeads = meta.int(k("attention.head_count_kv"), nHeads);
  if (dim % nHeads !== 0) throw new Error(`${where}: embedding_length ${dim} is not a multiple of head_count ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw new Error(`${where}: head_count ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  const hs = dim / nHeads;
  for (const key of ["rope.dimension_count", "attention.key_length", "attention.value_length"]) {
    if (meta.has(k(key)) && meta.int(k(key)) !== hs) {
      throw new Error(`${where}: ${k(key)} is ${meta.int(k(key))}, expected the head size ${hs} (partial rotary / odd head sizes are not supported)`);
    }
  }
  const embd = infos.get(tensorNames.tokenEmbedding);
  if (!embd) throw new Error(`${where}: missing tensor ${tensorNames.tokenEmbedding}`);
  const vocabSize = embd.shape[0]!;
  if (meta.has(k("vocab_size")) && meta.int(k("vocab_size")) !== vocabSize) {
    throw new Error(`${where}: ${k("vocab_size")} ${meta.int(k("vocab_size"))} differs from token_embd rows ${vocabSize}`);
  }
  const ropeTheta = meta.float(k("rope.freq_base"), 10000);
  const scalingType = meta.str(k("rope.scaling.type"));
  if (scalingType !== undefined && scalingType !== "none") {
    const factor = meta.float(k("rope.scaling.factor"), 1);
    if (!(scalingType === "linear" && factor === 1)) {
      throw new Error(`${where}: rope scaling type "${scalingType}" is not supported (supported: none, Llama 3 rope_freqs)`);
    }
  }
  if (meta.has(k("rope.scale_linear")) && meta.float(k("rope.scale_linear")) !== 1) {
    throw new Error(`${where}: ${k("rope.scale_linear")} (linear rope scaling) is not supported`);
  }
  const config: LlamaConfig = {
    architecture: "llama",
    dim,
    hiddenDim: meta.int(k("feed_forward_length")),
    nLayers: meta.int(k("block_count")),
    nHeads,
    nKvHeads,
    vocabSize,
    seqLen: capContext(meta.int(k("context_length")), opts),
    normEps: meta.float(k("attention.layer_norm_rms_epsilon")),
    ropeTheta,
    ropeLayout: arch === "llama" ? "interleaved" : "half",
    tiedEmbeddings: !infos.has(tensorNames.output),
  };
  if (infos.has(tensorNames.layer(0).bq)) config.attentionBias = true;
  if (meta.has(k("attention.sliding_window"))) config.slidingWindow = meta.int(k("attention.sliding_window"));
  return config;
}

function gpt2Config(meta: Meta, infos: Map<string, GgufTensorInfo>, where: string, opts: GgufReadOptions): Gpt2Config {
  const dim = meta.int("gpt2.embedding_length");
  const nHeads = meta.int("gpt2.attention.head_count");
  if (dim % nHeads !== 0) throw new Error(`${where}: embedding_length ${dim} is not a multiple of head_count ${nHeads}`);
  const embd = infos.get(tensorNames.tokenEmbedding);
  if (!embd) throw new Error(`${where}: missing tensor ${tensorNames.tokenEmbedding}`);
  return {
    architecture: "gpt2",
    dim,
    hiddenDim: meta.int("gpt2.feed_forward_length", 4 * dim),
    nLayers: meta.int("gpt2.block_count"),
    nHeads,
    vocabSize: embd.shape[0]!,
    seqLen: capContext(meta.int("gpt2.context_length"), opts),
    normEps: meta.float("gpt2.attention.layer_norm_epsilon"),
    tiedEmbeddings: true,
  };
}

/** Expected tensors (name -> shape) of a config: its architecture's spec. */
function expectedTensors(c: ModelConfig): Map<string, number[]> {
  return new Map(specTensors(c).map((t) => [t.name, t.shape]));
}

/** Read one tensor's data as f32 (+ its blocks when quantized). `rows` limits the rows read. */
function loadTensor(src: ByteSource, h: GgufHeader, t: GgufTensorInfo, where: string, rows?: number): ImportedTensor {
  const cols = t.ne[0]!;
  const allRows = numel(t.ne) / cols;
  const r = rows ?? allRows;
  const shape = t.shape.length === 1 ? [cols] : [r, cols];
  if (t.ne.length > 2) throw new Error(`${where}: tensor ${t.name} has ${t.ne.length} dimensions, only 1 and 2 are supported`);
  const what = `${where}: tensor ${t.name}`;
  const readBytes = (n: number) => src.read(h.dataOffset + t.offset, n);
  switch (t.type) {
    case GGML_TYPE.F32: {
      const raw = readBytes(4 * r * cols);
      const out = new Float32Array(r * cols);
      new Uint8Array(out.buffer).set(raw);
      return { name: t.name, shape, data: out, sourceDtype: "f32" };
    }
    case GGML_TYPE.F16: {
      const raw = readBytes(2 * r * cols);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const out = new Float32Array(r * cols);
      for (let i = 0; i < out.length; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
      return { name: t.name, shape, data: out, sourceDtype: "f16" };
    }
    case GGML_TYPE.BF16: {
      const raw = readBytes(2 * r * cols);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const out = new Float32Array(r * cols);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      // no bf16 dtype here: kept as f32, which holds every bf16 value exactly
      return { name: t.name, shape, data: out, sourceDtype: "f32" };
    }
    case GGML_TYPE.Q8_0:
    case GGML_TYPE.Q4_0:
    case GGML_TYPE.Q4_1:
    case GGML_TYPE.Q5_0:
    case GGML_TYPE.Q5_1:
    case GGML_TYPE.Q4_K:
    case GGML_TYPE.Q5_K:
    case GGML_TYPE.Q6_K: {
      const dtype = GGML_QUANT_DTYPES[t.type]!;
      const f = QUANT_FORMATS[dtype];
      if (cols % f.values !== 0) throw new Error(`${what}: ${t.typeName} row length ${cols} is not a multiple of ${f.values}`);
      const bytes = Uint8Array.from(readBytes((r * cols * f.bytes) / f.values)); // own copy, byte-identical
      const data = dequantize(dtype, bytes, r, cols);
      return { name: t.name, shape, data, quantized: { dtype, bytes } };
    }
    default:
      throw new Error(
        `${what} has ggml type ${t.typeName}${t.typeName.startsWith("unknown") ? "" : ` (${t.type})`}, which is not supported ` +
          `(supported: ${SUPPORTED_GGML_TYPES.join(", ")})`,
      );
  }
}

/**
 * Read a GGUF model (bytes, or a path read through a file handle) into the internal
 * description: config, tensors (GGUF names; [rows, cols] = ne reversed), raw metadata and the
 * tokenizer metadata.
 */
export function readGguf(input: Uint8Array | string, opts: GgufReadOptions = {}): GgufModel {
  const where = typeof input === "string" ? input : "GGUF data";
  const src: ByteSource = typeof input === "string" ? new FileSource(input) : new MemorySource(input);
  try {
    const h = readGgufHeader(src, where);
    const meta = new Meta(h.metadata, h.metadataTypes, where);
    const arch = meta.str("general.architecture");
    if (arch === undefined) throw new Error(`${where}: missing metadata general.architecture`);
    if (!(SUPPORTED_GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
      throw new Error(`${where}: architecture "${arch}" is not supported (supported: ${SUPPORTED_GGUF_ARCHITECTURES.join(", ")})`);
    }
    const infos = new Map(h.tensorInfos.map((t) => [t.name, t]));
    const config = arch === "gpt2" ? gpt2Config(meta, infos, where, opts) : llamaLikeConfig(arch as "llama" | "qwen2", meta, infos, where, opts);
    const expected = expectedTensors(config);
    const tensors: ImportedTensor[] = [];
    let ropeFreqs: Float32Array | undefined;
    for (const t of h.tensorInfos) {
      if (t.name === "rope_freqs.weight" && config.architecture === "llama") {
        ropeFreqs = loadTensor(src, h, t, where).data;
        continue;
      }
      if (t.name === tensorNames.output && config.architecture === "gpt2") continue; // checked below
      if (!(SUPPORTED_GGML_TYPES as readonly string[]).includes(t.typeName)) loadTensor(src, h, t, where); // throws naming the type
      const want = expected.get(t.name);
      if (!want) throw new Error(`${where}: unexpected tensor ${t.name} for architecture ${arch} (not part of the supported model)`);
      const stored = t.shape.length === 1 ? t.shape : [numel(t.ne) / t.ne[0]!, t.ne[0]!];
      // GPT-2's position table may be longer than a capped context: read its first rows only
      const isPos = t.name === tensorNames.positionEmbedding;
      const okShape = isPos
        ? stored.length === 2 && stored[1] === want[1] && stored[0]! >= want[0]!
        : stored.length === want.length && stored.every((d, i) => d === want[i]);
      if (!okShape || t.ne.length > 2) {
        throw new Error(`${where}: tensor ${t.name} has shape [${t.shape.join(", ")}] (ne [${t.ne.join(", ")}]), expected [${want.join(", ")}]`);
      }
      tensors.push(loadTensor(src, h, t, where, isPos ? want[0] : undefined));
    }
    for (const name of expected.keys()) {
      if (!infos.has(name)) throw new Error(`${where}: missing tensor ${name}`);
    }
    const gpt2Output = infos.get(tensorNames.output);
    if (config.architecture === "gpt2" && gpt2Output && (SUPPORTED_GGML_TYPES as readonly string[]).includes(gpt2Output.typeName)) {
      // llama.cpp's converter stores GPT-2's tied classifier again as output.weight. We check the
      // copy matches when we can decode it (a quantizer may have given it another type).
      const out = loadTensor(src, h, infos.get(tensorNames.output)!, where);
      const embd = tensors.find((t) => t.name === tensorNames.tokenEmbedding)!;
      if (out.data.length !== embd.data.length) throw new Error(`${where}: output.weight shape differs from token_embd.weight`);
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < out.data.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(out.data[i]! - embd.data[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(embd.data[i]!));
      }
      if (maxDiff > 0.2 * maxAbs) throw new Error(`${where}: GPT-2 output.weight differs from token_embd.weight; an untied classifier is not supported`);
    }
    if (config.architecture === "llama" && ropeFreqs) {
      const scaling = llama3ScalingFromRopeFreqs(ropeFreqs, config.ropeTheta, config.dim / config.nHeads, where);
      if (scaling) config.ropeScaling = scaling;
    }
    const model: GgufModel = {
      config,
      tensors,
      vocabSize: config.vocabSize,
      architecture: arch,
      version: h.version,
      metadata: h.metadata,
      metadataTypes: h.metadataTypes,
      tokenizer: ggufTokenizerMeta(h.metadata),
    };
    if (ropeFreqs) model.ropeFreqs = ropeFreqs;
    return model;
  } finally {
    src.close();
  }
}

/** Read only the header of a GGUF file or buffer. */
export function readGgufInfo(input: Uint8Array | string): GgufHeader {
  const src: ByteSource = typeof input === "string" ? new FileSource(input) : new MemorySource(input);
  try {
    return readGgufHeader(src, typeof input === "string" ? input : "GGUF data");
  } finally {
    src.close();
  }
}

// ---------------------------------------------------------------------------------------------
// GGUF tokenizer metadata -> a Hugging Face tokenizer.json (+ the tokenizer_config.json fields
// tokenizers need). Two vocabulary kinds:
//  - tokenizer.ggml.model "gpt2": byte-level BPE. The pre-tokenizer comes from tokenizer.ggml.pre,
//    mapped to the split regex llama.cpp uses for it (llama-vocab.cpp), which is the one of the
//    original tokenizer.json; llama3-style vocabularies also set ignore_merges (as llama.cpp does).
//  - tokenizer.ggml.model "llama": SentencePiece BPE with byte fallback, converted as
//    transformers' LlamaConverter does (legacy): normalizer Prepend("▁") + Replace(" ", "▁"),
//    BPE with merges generated from the vocabulary and ordered by piece score, byte_fallback,
//    decoder Replace("▁", " ") + ByteFallback + Fuse + Strip(1 leading space).
// Control / unknown tokens become special added tokens, user-defined ones non-special added tokens.

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const PRE_LLAMA3 = ["llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"];
const PRE_QWEN2 = ["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"];
const PRE_GPT2 = ["gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "mpt", "olmo", "jais", "default"];
const PRE_DIGITS_GPT2 = ["smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva-7b"];
export const SUPPORTED_TOKENIZER_PRE = [...PRE_LLAMA3, ...PRE_QWEN2, ...PRE_GPT2, ...PRE_DIGITS_GPT2];

function byteLevel(useRegex: boolean, trimOffsets = true) {
  return { type: "ByteLevel", add_prefix_space: false, trim_offsets: trimOffsets, use_regex: useRegex };
}

function preTokenizerFor(pre: string | undefined): { pre_tokenizer: unknown; normalizer: unknown; ignoreMerges: boolean } {
  const p = pre ?? "default";
  const split = (regex: string, trim: boolean) => ({
    type: "Sequence",
    pretokenizers: [{ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false }, byteLevel(false, trim)],
  });
  if (PRE_LLAMA3.includes(p)) return { pre_tokenizer: split(LLAMA3_SPLIT, true), normalizer: null, ignoreMerges: true };
  if (PRE_QWEN2.includes(p)) return { pre_tokenizer: split(QWEN2_SPLIT, false), normalizer: p === "stablelm2" ? null : { type: "NFC" }, ignoreMerges: false };
  if (PRE_GPT2.includes(p)) return { pre_tokenizer: byteLevel(true), normalizer: null, ignoreMerges: false };
  if (PRE_DIGITS_GPT2.includes(p)) {
    return { pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)] }, normalizer: null, ignoreMerges: false };
  }
  throw new Error(`tokenizer.ggml.pre "${p}" is not supported (supported: ${SUPPORTED_TOKENIZER_PRE.join(", ")})`);
}

function templateProcessing(meta: GgufTokenizerMeta, addBos: boolean, addEos: boolean): unknown {
  const single: unknown[] = [];
  const pair: unknown[] = [];
  const special: Record<string, unknown> = {};
  const tok = (id: number | undefined, what: string) => {
    if (id === undefined || id < 0 || id >= meta.tokens.length) throw new Error(`tokenizer adds a ${what} token but its id is ${String(id)}`);
    const content = meta.tokens[id]!;
    special[content] = { id: content, ids: [id], tokens: [content] };
    return content;
  };
  if (addBos) {
    const b = tok(meta.bosTokenId, "BOS");
    single.push({ SpecialToken: { id: b, type_id: 0 } });
    pair.push({ SpecialToken: { id: b, type_id: 0 } });
  }
  single.push({ Sequence: { id: "A", type_id: 0 } });
  pair.push({ Sequence: { id: "A", type_id: 0 } });
  if (addEos) {
    const e = tok(meta.eosTokenId, "EOS");
    single.push({ SpecialToken: { id: e, type_id: 0 } });
    pair.push({ SpecialToken: { id: e, type_id: 0 } });
  }
  if (addBos) pair.push({ SpecialToken: { id: tok(meta.bosTokenId, "BOS"), type_id: 1 } });
  pair.push({ Sequence: { id: "B", type_id: 1 } });
  if (addEos) pair.push({ SpecialToken: { id: tok(meta.eosTokenId, "EOS"), type_id: 1 } });
  return { type: "TemplateProcessing", single, pair, special_tokens: special };
}

function addedTokens(meta: GgufTokenizerMeta, types: number[]): unknown[] {
  const out: unknown[] = [];
  types.forEach((t, id) => {
    if (t === TOKEN_TYPE.CONTROL || t === TOKEN_TYPE.UNKNOWN || t === TOKEN_TYPE.USER_DEFINED) {
      out.push({ id, content: meta.tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: t !== TOKEN_TYPE.USER_DEFINED });
    }
  });
  return out;
}

/**
 * Merges for a SentencePiece BPE vocabulary, as transformers' SentencePieceExtractor builds them
 * (with vocab scores): every split of every piece into two pieces of the vocabulary, ordered by
 * the score of the merged piece (highest first), ties by the ids of the two halves.
 */
export function sentencePieceMerges(tokens: string[], scores: number[]): [string, string][] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const all: { l: string; r: string; score: number }[] = [];
  tokens.forEach((piece, i) => {
    const cps = Array.from(piece);
    const local: { l: string; r: string; score: number }[] = [];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join("");
      const r = cps.slice(k).join("");
      if (ids.has(l) && ids.has(r)) local.push({ l, r, score: scores[i] ?? 0 });
    }
    local.sort((a, b) => ids.get(a.l)! - ids.get(b.l)! || ids.get(a.r)! - ids.get(b.r)!);
    all.push(...local);
  });
  all.sort((a, b) => b.score - a.score); // stable
  return all.map((m) => [m.l, m.r]);
}

export interface HfTokenizerFiles {
  /** tokenizer.json */
  tokenizer: Record<string, unknown>;
  /** the tokenizer_config.json fields that matter for encoding and chat */
  config: Record<string, unknown>;
}

/** Build a Hugging Face tokenizer.json (and tokenizer_config.json fields) from GGUF tokenizer metadata. */
export function ggufTokenizerToHf(meta: GgufTokenizerMeta): HfTokenizerFiles {
  const n = meta.tokens.length;
  const types = meta.tokenTypes ?? new Array<number>(n).fill(TOKEN_TYPE.NORMAL);
  if (types.length !== n) throw new Error(`tokenizer.ggml.token_type has ${types.length} entries for ${n} tokens`);
  const name = (id: number | undefined) => (id !== undefined && id >= 0 && id < n ? meta.tokens[id]! : null);
  let tokenizer: Record<string, unknown>;
  let addBos: boolean;
  let addEos: boolean;
  if (meta.model === "gpt2") {
    if (!meta.merges) throw new Error(`tokenizer.ggml.model "gpt2" needs tokenizer.ggml.merges`);
    const { pre_tokenizer, normalizer, ignoreMerges } = preTokenizerFor(meta.pre);
    addBos = meta.addBosToken ?? ignoreMerges; // llama.cpp: llama3-style vocabularies add BOS by default
    addEos = meta.addEosToken ?? false;
    const vocab: Record<string, number> = {};
    types.forEach((t, id) => {
      if (t !== TOKEN_TYPE.CONTROL && t !== TOKEN_TYPE.USER_DEFINED && !(meta.tokens[id]! in vocab)) vocab[meta.tokens[id]!] = id;
    });
    const merges = meta.merges.map((m) => {
      const at = m.indexOf(" ", 1);
      if (at < 0) throw new Error(`tokenizer.ggml.merges entry ${JSON.stringify(m)} has no space`);
      return [m.slice(0, at), m.slice(at + 1)];
    });
    tokenizer = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens(meta, types),
      normalizer,
      pre_tokenizer,
      post_processor: addBos || addEos ? templateProcessing(meta, addBos, addEos) : byteLevel(false, false),
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: ignoreMerges,
        vocab,
        merges,
      },
    };
  } else if (meta.model === "llama") {
    if (!meta.scores) throw new Error(`tokenizer.ggml.model "llama" needs tokenizer.ggml.scores`);
    addBos = meta.addBosToken ?? true;
    addEos = meta.addEosToken ?? false;
    const prefix = meta.addSpacePrefix ?? true;
    const vocab: Record<string, number> = {};
    meta.tokens.forEach((t, id) => {
      if (!(t in vocab)) vocab[t] = id;
    });
    const unk = name(meta.unknownTokenId ?? types.indexOf(TOKEN_TYPE.UNKNOWN));
    const normalizers: unknown[] = [{ type: "Replace", pattern: { String: " " }, content: "▁" }];
    if (prefix) normalizers.unshift({ type: "Prepend", prepend: "▁" });
    const decoders: unknown[] = [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }];
    if (prefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });
    tokenizer = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens(meta, types),
      normalizer: { type: "Sequence", normalizers },
      pre_tokenizer: null,
      post_processor: addBos || addEos ? templateProcessing(meta, addBos, addEos) : null,
      decoder: { type: "Sequence", decoders },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: unk,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        vocab,
        merges: sentencePieceMerges(meta.tokens, meta.scores),
      },
    };
  } else {
    throw new Error(`tokenizer.ggml.model "${meta.model}" is not supported (supported: gpt2, llama)`);
  }
  const config: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: name(meta.bosTokenId),
    eos_token: name(meta.eosTokenId),
    unk_token: name(meta.unknownTokenId),
    pad_token: name(meta.paddingTokenId),
    clean_up_tokenization_spaces: false,
  };
  if (meta.model === "llama") config.legacy = true;
  if (meta.chatTemplate !== undefined) config.chat_template = meta.chatTemplate;
  return { tokenizer, config };
}

/** tokenizer.json only (see ggufTokenizerToHf). */
export function ggufTokenizerToHfJson(meta: GgufTokenizerMeta): Record<string, unknown> {
  return ggufTokenizerToHf(meta).tokenizer;
}
