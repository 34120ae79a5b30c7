// The Llama architecture (Llama 2 and 3, TinyLlama, SmolLM2, Mistral, Qwen2, llama2.c): its
// config, tensors and working buffers. The forward pass is functions/runtime/llama.ts.

import { headSize, kvDim, tensorNames } from "../description";
import { tensorList, type ArchitectureSpec } from "./spec";

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

export const llamaSpec: ArchitectureSpec<LlamaConfig> = {
  architecture: "llama",
  tensors(c) {
    const { dim, hiddenDim, vocabSize } = c;
    const kv = kvDim(c);
    const t = tensorList();
    t.model("tokenEmbedding", tensorNames.tokenEmbedding, [vocabSize, dim]);
    for (let l = 0; l < c.nLayers; l++) {
      const n = tensorNames.layer(l);
      t.layer(l, "attnNorm", n.attnNorm, [dim]);
      t.layer(l, "wq", n.wq, [dim, dim]);
      t.layer(l, "wk", n.wk, [kv, dim]);
      t.layer(l, "wv", n.wv, [kv, dim]);
      if (c.attentionBias) {
        t.layer(l, "bq", n.bq, [dim]);
        t.layer(l, "bk", n.bk, [kv]);
        t.layer(l, "bv", n.bv, [kv]);
      }
      t.layer(l, "wo", n.wo, [dim, dim]);
      t.layer(l, "ffnNorm", n.ffnNorm, [dim]);
      t.layer(l, "wGate", n.wGate, [hiddenDim, dim]);
      t.layer(l, "wUp", n.wUp, [hiddenDim, dim]);
      t.layer(l, "wDown", n.wDown, [dim, hiddenDim]);
    }
    t.model("outputNorm", tensorNames.outputNorm, [dim]);
    if (!c.tiedEmbeddings) t.model("output", tensorNames.output, [vocabSize, dim]);
    return t.out;
  },
  fusions: { wqkv: ["wq", "wk", "wv"], wGateUp: ["wGate", "wUp"] },
  scratch(c, chunk) {
    const f32 = 4;
    return [
      // also holds one token's q, k and v end to end (the fused decode product)
      { name: "q", bytes: Math.max(chunk * c.dim, c.dim + 2 * kvDim(c)) * f32 },
      { name: "k", bytes: chunk * kvDim(c) * f32 },
      { name: "v", bytes: chunk * kvDim(c) * f32 },
      { name: "hb2", bytes: chunk * c.hiddenDim * f32 },
      { name: "rope", bytes: c.seqLen * headSize(c) * f32 },
    ];
  },
};
