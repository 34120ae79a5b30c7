// The memory budget, and the one computation of how much a model needs once loaded. The
// build script refuses models that do not fit; the runtime allocates exactly this plan.

import { activationFormat, activationRowBytes, rowBytes, type DType } from "../../kernels/quant";
import { specFor } from "./arch/index";
import { kvDim, type ModelConfig } from "./description";
import type { MemoryPlan, TokenizerKind } from "./manifest";

const MiB = 1024 * 1024;

/** A Workers isolate gets 128 MB for everything: JS heap, wasm memory, buffers. */
export const ISOLATE_MEMORY_BYTES = 128 * MiB;
/**
 * Kept free for the JS heap (Hono, tokenizer objects, request bodies) and for shard bytes in
 * flight while a model loads. Everything else may go to one model's wasm memory.
 */
export const ISOLATE_HEADROOM_BYTES = 16 * MiB;
export const MODEL_MEMORY_BUDGET_BYTES = ISOLATE_MEMORY_BYTES - ISOLATE_HEADROOM_BYTES;

/**
 * Most tokens one forward step carries: prompt chunks and the decode tokens of every sequence
 * in the batch go through the matrix-matrix kernels together, this many at a time.
 */
export const PREFILL_CHUNK = 16;

export type CacheDtype = "f32" | "f16";

export interface ScratchBuffer {
  name: string;
  bytes: number;
}

/**
 * The runtime's working buffers for one model, allocated once at load. `logitRows` is how many
 * sequences' logits one classifier product writes: the plan counts one; each extra sequence a
 * loaded model gets from spare memory brings its row (see perSequenceBytes). `weightDtypes` are
 * the dtypes of its matrices: each activation format they multiply with (activationFormat) gets
 * its own buffer, so one input quantized for several formats (q, k, v of different dtypes in a
 * mixed GGUF file) is quantized once per format. "xq" (q8_0) is always there. The architecture's
 * spec adds its own (Llama's q, k, v and RoPE table; GPT-2's fused qkv).
 */
export function scratchBuffers(config: ModelConfig, chunk = PREFILL_CHUNK, logitRows = 1, weightDtypes: readonly DType[] = []): ScratchBuffer[] {
  const f32 = 4;
  const { dim, hiddenDim, nHeads, seqLen, vocabSize } = config;
  const widest = Math.max(dim, hiddenDim);
  const common = [
    { name: "x", bytes: chunk * dim * f32 },
    { name: "xb", bytes: chunk * dim * f32 },
    { name: "xb2", bytes: chunk * dim * f32 },
    // also holds one token's gate and up end to end (the fused decode product)
    { name: "hb", bytes: Math.max(chunk, 2) * hiddenDim * f32 },
    { name: "att", bytes: nHeads * seqLen * f32 },
    { name: "logits", bytes: logitRows * vocabSize * f32 },
    { name: "xq", bytes: chunk * rowBytes("q8_0", widest) },
  ];
  const formats = new Set(weightDtypes.map(activationFormat));
  // q8_1 for q4_1 / q5_1 (36 bytes per 32 values), q8_K for the K-quants (292 per 256)
  if (formats.has("q8_1")) common.push({ name: "xq8_1", bytes: chunk * activationRowBytes("q8_1", widest) });
  if (formats.has("q8_k")) common.push({ name: "xq8_k", bytes: chunk * activationRowBytes("q8_k", widest) });
  // and what the architecture's forward pass needs beyond these (its spec)
  return [...common, ...specFor(config).scratch(config, chunk)];
}

/** What one more concurrent sequence costs beyond the plan: its KV cache and its logits row. */
export function perSequenceBytes(config: ModelConfig, cacheDtype: CacheDtype): number {
  return aligned(kvCacheBytes(config, cacheDtype)) + config.vocabSize * 4;
}

export function kvCacheBytes(config: ModelConfig, dtype: CacheDtype, contextLength = config.seqLen): number {
  return 2 * config.nLayers * contextLength * kvDim(config) * (dtype === "f32" ? 4 : 2);
}

/**
 * The JS heap a tokenizer takes once parsed: its strings and maps. Measured in Node: about 4x
 * the file for llama2.c's tokenizer.bin, about 6x the tokenizer.json bundle for Hugging Face
 * tokenizers (Llama 3's 6.1 MB bundle holds 36 MB once loaded).
 */
export function tokenizerHeapBytes(kind: TokenizerKind, tokenizerFileBytes: number): number {
  return tokenizerFileBytes * (kind === "hf" ? 6 : 4);
}

/** Each allocation in wasm memory is rounded up to this alignment. */
const ALLOC_ALIGN = 64;
const aligned = (n: number) => Math.ceil(n / ALLOC_ALIGN) * ALLOC_ALIGN;

export function planMemory(
  config: ModelConfig,
  weightsBytes: number,
  cacheDtype: CacheDtype,
  /** From tokenizerHeapBytes. */
  tokenizerBytes: number,
  /** The matrices' dtypes (for the activation buffers, see scratchBuffers). */
  weightDtypes: readonly DType[] = [],
  budget = MODEL_MEMORY_BUDGET_BYTES,
): MemoryPlan {
  const weights = aligned(weightsBytes);
  const kvCache = aligned(kvCacheBytes(config, cacheDtype));
  const scratch = scratchBuffers(config, PREFILL_CHUNK, 1, weightDtypes).reduce((sum, b) => sum + aligned(b.bytes), 0);
  const tokenizer = tokenizerBytes;
  return { weights, kvCache, scratch, tokenizer, total: weights + kvCache + scratch + tokenizer, budget };
}

/** Weights of one matrix of `rows` x `cols` at a given dtype. */
export function matrixBytes(dtype: DType, rows: number, cols: number): number {
  return rows * rowBytes(dtype, cols);
}

export function formatBytes(n: number): string {
  if (Math.abs(n) >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (Math.abs(n) >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
