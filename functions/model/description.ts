// The internal description of a model: what every importer produces and what the build
// script, the manifest and the runtime agree on. A new family is a new `architecture`
// value plus a loader that fills these fields; the runtime dispatches on `architecture`.

import type { QuantDType } from "../../kernels/quant";

export type Architecture = "llama" | "gpt2";

/** How rotary embeddings pair up the dimensions of a head. */
export type RopeLayout =
  /** llama2.c / Meta: pairs (0,1), (2,3), ... */
  | "interleaved"
  /** Hugging Face rotate_half: pairs (i, i + headSize/2). */
  | "half";

export interface LlamaConfig {
  architecture: "llama";
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  /** Maximum context length in tokens. */
  seqLen: number;
  normEps: number;
  ropeTheta: number;
  ropeLayout: RopeLayout;
  /** The classifier reuses the token embedding matrix. */
  tiedEmbeddings: boolean;
  /** q, k and v projections carry a bias (Qwen2): blk.N.attn_{q,k,v}.bias. */
  attentionBias?: boolean;
  /** Llama 3's frequency-dependent RoPE scaling (rope_scaling.rope_type == "llama3"). */
  ropeScaling?: Llama3RopeScaling | null;
  /** Mistral-style sliding-window attention: each token sees at most this many positions. */
  slidingWindow?: number | null;
}

export interface Llama3RopeScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * GPT-2 (and distilgpt2): learned positions, LayerNorm with bias, GELU (tanh) MLP, fused qkv,
 * every linear layer with a bias, classifier tied to the token embedding.
 */
export interface Gpt2Config {
  architecture: "gpt2";
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  vocabSize: number;
  seqLen: number;
  normEps: number;
  tiedEmbeddings: true;
}

export type ModelConfig = LlamaConfig | Gpt2Config;

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
