// GGUF v3 writer for tests: turns a model in the internal description into a file laid out the
// way llama.cpp's convert_hf_to_gguf.py would write it, so reading it back must reproduce the
// original model's outputs:
//  - arch "llama": q/k rows in the interleaved RoPE layout (the converter's permute(); a model
//    with ropeLayout "half" is permuted here), Llama 3 scaling as a rope_freqs.weight tensor
//  - arch "qwen2": q/k in the rotate-half layout (no permutation), q/k/v biases
//  - arch "gpt2": fused qkv, biases, and output.weight written as a copy of token_embd.weight
//  - 1-D tensors (norms, biases, rope_freqs) stay F32; 2-D tensors take the requested type or
//    llama.cpp's Q4_K_M / Q5_K_M mix (scripts/build/quantize.ts storedDtype: q6_K for the
//    classifier and some attn_v / ffn_down, K-quant rows not of 256s falling back to Q5_0 / Q5_1
//    / Q8_0 as llama-quantize does); rows whose length is not a multiple of 32 cannot be
//    quantized at all and fall back to F16 as in gguf-py.
// Quantization uses kernels/quant.ts (ggml's quantize_row_*_ref, byte for byte).

import type { ImportedTensor, LlamaConfig, ModelConfig } from "../../functions/model/description";
import { specTensors } from "../../functions/model/arch/index";
import { tensorNames } from "../../functions/model/description";
import { QK, QUANT_FORMATS, isQuantized, quantize, toF16, type QuantDType } from "../../kernels/quant";
import { storedDtype } from "../build/quantize";
import { GGML_QUANT_VERSION, GGML_TYPE, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufType, type GgufTokenizerMeta, llama3RopeFreqs } from "./gguf";

export type GgufQuant = "f32" | "f16" | QuantDType | "q4_k_m" | "q5_k_m";
export type GgufArch = "llama" | "qwen2" | "gpt2";

/** One metadata entry to write: scalar type, or ARRAY with its element type. */
export type GgufKv =
  | { key: string; type: Exclude<GgufType, typeof GgufType.ARRAY>; value: number | bigint | boolean | string }
  | { key: string; type: typeof GgufType.ARRAY; elementType: Exclude<GgufType, typeof GgufType.ARRAY>; value: readonly (number | bigint | boolean | string)[] };

/** One tensor to write: raw bytes of a ggml type, ne in GGUF order (ne0 = columns first). */
export interface GgufTensorOut {
  name: string;
  ne: number[];
  type: number;
  bytes: Uint8Array;
}

class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private view = new DataView(this.cur.buffer);
  private n = 0;
  length = 0;
  private room(k: number): void {
    if (this.n + k <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.n));
    this.cur = new Uint8Array(Math.max(1 << 16, k));
    this.view = new DataView(this.cur.buffer);
    this.n = 0;
  }
  u8(v: number) {
    this.room(1);
    this.view.setUint8(this.n, v);
    this.n += 1;
    this.length += 1;
  }
  i8(v: number) {
    this.room(1);
    this.view.setInt8(this.n, v);
    this.n += 1;
    this.length += 1;
  }
  u16(v: number) {
    this.room(2);
    this.view.setUint16(this.n, v, true);
    this.n += 2;
    this.length += 2;
  }
  i16(v: number) {
    this.room(2);
    this.view.setInt16(this.n, v, true);
    this.n += 2;
    this.length += 2;
  }
  u32(v: number) {
    this.room(4);
    this.view.setUint32(this.n, v, true);
    this.n += 4;
    this.length += 4;
  }
  i32(v: number) {
    this.room(4);
    this.view.setInt32(this.n, v, true);
    this.n += 4;
    this.length += 4;
  }
  f32(v: number) {
    this.room(4);
    this.view.setFloat32(this.n, v, true);
    this.n += 4;
    this.length += 4;
  }
  f64(v: number) {
    this.room(8);
    this.view.setFloat64(this.n, v, true);
    this.n += 8;
    this.length += 8;
  }
  u64(v: number | bigint) {
    this.room(8);
    this.view.setBigUint64(this.n, BigInt(v), true);
    this.n += 8;
    this.length += 8;
  }
  i64(v: number | bigint) {
    this.room(8);
    this.view.setBigInt64(this.n, BigInt(v), true);
    this.n += 8;
    this.length += 8;
  }
  bytes(b: Uint8Array) {
    this.room(b.length);
    this.cur.set(b, this.n);
    this.n += b.length;
    this.length += b.length;
  }
  string(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number) {
    const k = (alignment - (this.length % alignment)) % alignment;
    if (k) this.bytes(new Uint8Array(k));
  }
  finish(): Uint8Array {
    this.chunks.push(this.cur.subarray(0, this.n));
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

function writeScalar(w: Writer, type: number, v: number | bigint | boolean | string, key: string): void {
  const num = () => {
    if (typeof v !== "number") throw new Error(`metadata ${key}: expected a number, got ${typeof v}`);
    return v;
  };
  switch (type) {
    case GgufType.UINT8: return w.u8(num());
    case GgufType.INT8: return w.i8(num());
    case GgufType.UINT16: return w.u16(num());
    case GgufType.INT16: return w.i16(num());
    case GgufType.UINT32: return w.u32(num());
    case GgufType.INT32: return w.i32(num());
    case GgufType.FLOAT32: return w.f32(num());
    case GgufType.FLOAT64: return w.f64(num());
    case GgufType.UINT64: return w.u64(typeof v === "bigint" ? v : num());
    case GgufType.INT64: return w.i64(typeof v === "bigint" ? v : num());
    case GgufType.BOOL:
      if (typeof v !== "boolean") throw new Error(`metadata ${key}: expected a boolean`);
      return w.u8(v ? 1 : 0);
    case GgufType.STRING:
      if (typeof v !== "string") throw new Error(`metadata ${key}: expected a string`);
      return w.string(v);
    default:
      throw new Error(`metadata ${key}: cannot write value type ${type}`);
  }
}

/**
 * Low-level GGUF encoder: header, metadata, tensor infos (offsets aligned), padding, data.
 * general.alignment is taken from `kvs` if present (it must then equal `alignment`).
 */
export function encodeGguf(kvs: GgufKv[], tensors: GgufTensorOut[], opts: { alignment?: number; version?: 2 | 3 } = {}): Uint8Array {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const declared = kvs.find((k) => k.key === "general.alignment");
  if (declared && declared.value !== alignment) throw new Error(`general.alignment ${String(declared.value)} differs from the alignment used (${alignment})`);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !declared) kvs = [...kvs, { key: "general.alignment", type: GgufType.UINT32, value: alignment }];
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(opts.version ?? 3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const kv of kvs) {
    w.string(kv.key);
    w.u32(kv.type);
    if (kv.type === GgufType.ARRAY) {
      w.u32(kv.elementType);
      w.u64(kv.value.length);
      for (const v of kv.value) writeScalar(w, kv.elementType, v, kv.key);
    } else writeScalar(w, kv.type, kv.value, kv.key);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(t.bytes.length / alignment) * alignment;
  }
  w.pad(alignment);
  for (const t of tensors) {
    w.bytes(t.bytes);
    w.pad(alignment);
  }
  return w.finish();
}

/**
 * llama.cpp's permute() for HF q/k rows: per head, rows (i, i + d/2) of the rotate-half layout
 * become rows (2i, 2i + 1) of the interleaved layout. Weights [rows, cols] or biases (cols 1).
 */
export function permuteHalfToInterleaved(data: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hs = rows / nHeads;
  const half = hs / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++)
    for (let t = 0; t < 2; t++)
      for (let i = 0; i < half; i++) {
        const src = (h * hs + t * half + i) * cols;
        out.set(data.subarray(src, src + cols), (h * hs + 2 * i + t) * cols);
      }
  return out;
}

/** The inverse of permuteHalfToInterleaved. */
export function permuteInterleavedToHalf(data: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hs = rows / nHeads;
  const half = hs / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++)
    for (let t = 0; t < 2; t++)
      for (let i = 0; i < half; i++) {
        const dst = (h * hs + t * half + i) * cols;
        const src = (h * hs + 2 * i + t) * cols;
        out.set(data.subarray(src, src + cols), dst);
      }
  return out;
}

export interface WriteGgufOptions {
  quant: GgufQuant;
  /** Default: "gpt2" for GPT-2 models, else "llama" (use "qwen2" for Qwen2 models, as the converter does). */
  arch?: GgufArch;
  tokenizer?: GgufTokenizerMeta;
  name?: string;
  alignment?: number;
  /** Extra metadata appended after the standard keys. */
  metadata?: GgufKv[];
}

/** llama_ftype: ALL_F32, MOSTLY_F16, Q4_0, Q4_1, Q8_0, Q5_0, Q5_1, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K. */
const FILE_TYPE: Record<GgufQuant, number> = { f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q4_k: 14, q4_k_m: 15, q5_k: 16, q5_k_m: 17, q6_k: 18 };

function encodeTensor(t: { name: string; shape: number[]; data: Float32Array }, quant: GgufQuant, model: { nLayers: number; tiedEmbeddings?: boolean }): GgufTensorOut {
  const ne = [...t.shape].reverse();
  if (t.shape.length === 1 || quant === "f32") {
    return { name: t.name, ne, type: GGML_TYPE.F32, bytes: new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)) };
  }
  if (t.shape.length !== 2) throw new Error(`tensor ${t.name}: only 1-D and 2-D tensors are written`);
  const [rows, cols] = t.shape as [number, number];
  const dtype = storedDtype(t, quant, model);
  if (!isQuantized(dtype) || cols % QK !== 0) return { name: t.name, ne, type: GGML_TYPE.F16, bytes: toF16(t.data) };
  const type = GGML_TYPE[QUANT_FORMATS[dtype].ggml as keyof typeof GGML_TYPE];
  return { name: t.name, ne, type, bytes: quantize(dtype, t.data, rows, cols) };
}

/** Tokenizer metadata as llama.cpp stores it. */
export function tokenizerKvs(t: GgufTokenizerMeta): GgufKv[] {
  const kvs: GgufKv[] = [{ key: "tokenizer.ggml.model", type: GgufType.STRING, value: t.model }];
  if (t.pre !== undefined) kvs.push({ key: "tokenizer.ggml.pre", type: GgufType.STRING, value: t.pre });
  kvs.push({ key: "tokenizer.ggml.tokens", type: GgufType.ARRAY, elementType: GgufType.STRING, value: t.tokens });
  if (t.scores) kvs.push({ key: "tokenizer.ggml.scores", type: GgufType.ARRAY, elementType: GgufType.FLOAT32, value: t.scores });
  if (t.tokenTypes) kvs.push({ key: "tokenizer.ggml.token_type", type: GgufType.ARRAY, elementType: GgufType.INT32, value: t.tokenTypes });
  if (t.merges) kvs.push({ key: "tokenizer.ggml.merges", type: GgufType.ARRAY, elementType: GgufType.STRING, value: t.merges });
  const ids: [keyof GgufTokenizerMeta, string][] = [
    ["bosTokenId", "bos_token_id"],
    ["eosTokenId", "eos_token_id"],
    ["unknownTokenId", "unknown_token_id"],
    ["paddingTokenId", "padding_token_id"],
  ];
  for (const [k, key] of ids) if (t[k] !== undefined) kvs.push({ key: `tokenizer.ggml.${key}`, type: GgufType.UINT32, value: t[k] as number });
  const flags: [keyof GgufTokenizerMeta, string][] = [
    ["addBosToken", "add_bos_token"],
    ["addEosToken", "add_eos_token"],
    ["addSpacePrefix", "add_space_prefix"],
  ];
  for (const [k, key] of flags) if (t[k] !== undefined) kvs.push({ key: `tokenizer.ggml.${key}`, type: GgufType.BOOL, value: t[k] as boolean });
  if (t.chatTemplate !== undefined) kvs.push({ key: "tokenizer.chat_template", type: GgufType.STRING, value: t.chatTemplate });
  return kvs;
}

/** Write a model as a GGUF v3 file (see the file comment for the conventions). */
export function writeGguf(model: { config: ModelConfig; tensors: ImportedTensor[] }, opts: WriteGgufOptions): Uint8Array {
  const c = model.config;
  const arch: GgufArch = opts.arch ?? (c.architecture === "gpt2" ? "gpt2" : "llama");
  if ((arch === "gpt2") !== (c.architecture === "gpt2")) throw new Error(`cannot write a ${c.architecture} model as GGUF architecture ${arch}`);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const get = (name: string) => {
    const t = byName.get(name);
    if (!t) throw new Error(`writeGguf: missing tensor ${name}`);
    return t;
  };
  const u32 = (key: string, value: number): GgufKv => ({ key: `${arch}.${key}`, type: GgufType.UINT32, value });
  const f32 = (key: string, value: number): GgufKv => ({ key: `${arch}.${key}`, type: GgufType.FLOAT32, value });
  const kvs: GgufKv[] = [
    { key: "general.architecture", type: GgufType.STRING, value: arch },
    { key: "general.name", type: GgufType.STRING, value: opts.name ?? "edgeinfer test model" },
  ];
  const out: { name: string; shape: number[]; data: Float32Array }[] = [];
  if (c.architecture === "gpt2") {
    kvs.push(
      u32("context_length", c.seqLen),
      u32("embedding_length", c.dim),
      u32("feed_forward_length", c.hiddenDim),
      u32("block_count", c.nLayers),
      u32("attention.head_count", c.nHeads),
      f32("attention.layer_norm_epsilon", c.normEps),
    );
    for (const t of specTensors(c)) out.push(get(t.name));
    // convert_hf_to_gguf.py GPT2Model: "GPT2 output is tied to (same as) wte in original model"
    out.push({ ...get(tensorNames.tokenEmbedding), name: tensorNames.output });
  } else {
    const lc: LlamaConfig = c;
    const hs = c.dim / c.nHeads;
    const kv = hs * c.nKvHeads;
    const want = arch === "llama" ? "interleaved" : "half";
    const reorder = (data: Float32Array, heads: number, rows: number, cols: number) =>
      lc.ropeLayout === want ? data : want === "interleaved" ? permuteHalfToInterleaved(data, heads, rows, cols) : permuteInterleavedToHalf(data, heads, rows, cols);
    if (arch === "llama") kvs.push(u32("vocab_size", c.vocabSize));
    kvs.push(
      u32("context_length", c.seqLen),
      u32("embedding_length", c.dim),
      u32("block_count", c.nLayers),
      u32("feed_forward_length", c.hiddenDim),
      u32("attention.head_count", c.nHeads),
      u32("attention.head_count_kv", c.nKvHeads),
      f32("rope.freq_base", c.ropeTheta),
      f32("attention.layer_norm_rms_epsilon", c.normEps),
    );
    if (arch === "llama") kvs.push(u32("rope.dimension_count", hs));
    if (c.slidingWindow) kvs.push(u32("attention.sliding_window", c.slidingWindow));
    // the spec's tensors in its order; q and k (and their biases) in the file's RoPE layout, and
    // Llama 3's rope_freqs after the embedding, as llama.cpp's converter writes them
    const heads: Record<string, [number, number, number]> = { wq: [c.nHeads, c.dim, c.dim], wk: [c.nKvHeads, kv, c.dim], bq: [c.nHeads, c.dim, 1], bk: [c.nKvHeads, kv, 1] };
    for (const t of specTensors(c)) {
      const tensor = get(t.name);
      const h = heads[t.role];
      out.push(h ? { name: t.name, shape: tensor.shape, data: reorder(tensor.data, ...h) } : tensor);
      if (t.role === "tokenEmbedding" && c.ropeScaling) {
        if (arch !== "llama") throw new Error(`Llama 3 rope scaling can only be written for GGUF architecture llama`);
        out.push({ name: "rope_freqs.weight", shape: [hs / 2], data: llama3RopeFreqs(c.ropeScaling, c.ropeTheta, hs) });
      }
    }
  }
  const tensors = out.map((t) => encodeTensor(t, opts.quant, model.config));
  kvs.push({ key: "general.file_type", type: GgufType.UINT32, value: FILE_TYPE[opts.quant] });
  if (tensors.some((t) => t.type !== GGML_TYPE.F32 && t.type !== GGML_TYPE.F16)) {
    kvs.push({ key: "general.quantization_version", type: GgufType.UINT32, value: GGML_QUANT_VERSION });
  }
  if (opts.tokenizer) kvs.push(...tokenizerKvs(opts.tokenizer));
  if (opts.metadata) kvs.push(...opts.metadata);
  return encodeGguf(kvs, tensors, { alignment: opts.alignment });
}

/**
 * A llama2.c tokenizer.bin (a SentencePiece BPE vocabulary: <unk>, <s>, </s>, 256 byte tokens,
 * then pieces with scores) as GGUF "llama" tokenizer metadata, stored the way
 * convert_hf_to_gguf.py stores a SentencePiece vocabulary ("▁" for spaces), so a file written
 * with it runs in llama.cpp with the same token ids.
 */
export function llama2cTokenizerToGguf(bytes: Uint8Array, vocabSize: number): GgufTokenizerMeta {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const tokens: string[] = [];
  const scores: number[] = [];
  let o = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (o + 8 > bytes.length) throw new Error(`tokenizer.bin ends after ${i} of ${vocabSize} tokens`);
    scores.push(dv.getFloat32(o, true));
    const len = dv.getInt32(o + 4, true);
    const piece = dec.decode(bytes.subarray(o + 8, o + 8 + len));
    tokens.push(i === 1 ? "<s>" : i === 2 ? "</s>" : piece.replace(/ /g, "▁"));
    o += 8 + len;
  }
  const tokenTypes = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)); // unknown, control, byte, normal
  return { model: "llama", pre: "default", tokens, scores, tokenTypes, bosTokenId: 1, eosTokenId: 2, unknownTokenId: 0, addBosToken: true, addEosToken: false };
}
