// The internal description of a model: what every importer produces and what the build
// script, the manifest and the runtime agree on. A new family is a new `architecture`
// value plus a loader that fills these fields; the runtime dispatches on `architecture`.

export type Architecture = "llama";

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
}

export type ModelConfig = LlamaConfig;

/**
 * One tensor as an importer hands it over: f32, row-major. Matrices are [rows, cols]
 * with rows = output features (y = W x), as llama2.c and GGUF store them.
 */
export interface ImportedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
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
  }),
} as const;

export function headSize(config: ModelConfig): number {
  return config.dim / config.nHeads;
}

export function kvDim(config: ModelConfig): number {
  return headSize(config) * config.nKvHeads;
}
