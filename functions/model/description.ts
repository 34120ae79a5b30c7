// The internal description of a model: what every importer produces and what the build
// script, the manifest and the runtime agree on: a config (one per architecture, see arch/),
// tensors named after GGUF's conventions, and the shapes they share.

import type { QuantDType } from "../../kernels/quant";
import type { ModelConfig } from "./arch/index";

// Each architecture's config lives in its spec (arch/), which also lists its tensors.
export type { Architecture, ModelConfig } from "./arch/index";
export type { Llama3RopeScaling, LlamaConfig, RopeLayout } from "./arch/llama";
export type { Gpt2Config } from "./arch/gpt2";

/**
 * One tensor as an importer hands it over: f32, row-major. Matrices are [rows, cols]
 * with rows = output features (y = W x), as llama2.c and GGUF store them.
 */
export interface ImportedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
  /**
   * The tensor's blocks as the source stored them (a GGUF file's quantized types), in our block
   * layout (ggml's). A build that keeps the source's types, or asks for the same one, copies
   * these bytes instead of requantizing `data`.
   */
  quantized?: { dtype: QuantDType; bytes: Uint8Array };
  /** The dtype the source stored an unquantized tensor in (GGUF F16 -> "f16"), for builds that keep it. */
  sourceDtype?: "f32" | "f16";
}

/**
 * Tensor names follow GGUF's conventions so GGUF files map onto them directly:
 * token_embd.weight, output_norm.weight, output.weight, and per layer
 * blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up}.weight
 */
export const tensorNames = {
  tokenEmbedding: "token_embd.weight",
  outputNorm: "output_norm.weight",
  output: "output.weight",
  layer: (i: number) => ({
    attnNorm: `blk.${i}.attn_norm.weight`,
    wq: `blk.${i}.attn_q.weight`,
    wk: `blk.${i}.attn_k.weight`,
    wv: `blk.${i}.attn_v.weight`,
    wo: `blk.${i}.attn_output.weight`,
    ffnNorm: `blk.${i}.ffn_norm.weight`,
    /** w1 in llama2.c */
    wGate: `blk.${i}.ffn_gate.weight`,
    /** w2 in llama2.c */
    wDown: `blk.${i}.ffn_down.weight`,
    /** w3 in llama2.c */
    wUp: `blk.${i}.ffn_up.weight`,
    /** Qwen2 attention biases. */
    bq: `blk.${i}.attn_q.bias`,
    bk: `blk.${i}.attn_k.bias`,
    bv: `blk.${i}.attn_v.bias`,
  }),
  /** GPT-2: learned position embeddings [seqLen, dim]. */
  positionEmbedding: "position_embd.weight",
  outputNormBias: "output_norm.bias",
  gpt2Layer: (i: number) => ({
    attnNorm: `blk.${i}.attn_norm.weight`,
    attnNormBias: `blk.${i}.attn_norm.bias`,
    /** Fused q, k, v: [3 * dim, dim], rows q then k then v. */
    wqkv: `blk.${i}.attn_qkv.weight`,
    bqkv: `blk.${i}.attn_qkv.bias`,
    wo: `blk.${i}.attn_output.weight`,
    bo: `blk.${i}.attn_output.bias`,
    ffnNorm: `blk.${i}.ffn_norm.weight`,
    ffnNormBias: `blk.${i}.ffn_norm.bias`,
    wUp: `blk.${i}.ffn_up.weight`,
    bUp: `blk.${i}.ffn_up.bias`,
    wDown: `blk.${i}.ffn_down.weight`,
    bDown: `blk.${i}.ffn_down.bias`,
  }),
} as const;

export function headSize(config: ModelConfig): number {
  return config.dim / config.nHeads;
}

export function kvDim(config: ModelConfig): number {
  return headSize(config) * (config.architecture === "gpt2" ? config.nHeads : config.nKvHeads);
}
