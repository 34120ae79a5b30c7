// The GPT-2 architecture (distilgpt2 and kin): its config, tensors and working buffers. The
// forward pass is functions/runtime/gpt2.ts.

import { tensorNames } from "../description";
import { tensorList, type ArchitectureSpec } from "./spec";

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

export const gpt2Spec: ArchitectureSpec<Gpt2Config> = {
  architecture: "gpt2",
  tensors(c) {
    const { dim: d, hiddenDim: h } = c;
    const t = tensorList();
    t.model("tokenEmbedding", tensorNames.tokenEmbedding, [c.vocabSize, d]);
    // learned positions, one row per position of the (possibly shortened) context
    t.model("positionEmbedding", tensorNames.positionEmbedding, [c.seqLen, d]);
    for (let l = 0; l < c.nLayers; l++) {
      const n = tensorNames.gpt2Layer(l);
      t.layer(l, "attnNorm", n.attnNorm, [d]);
      t.layer(l, "attnNormBias", n.attnNormBias, [d]);
      t.layer(l, "wo", n.wo, [d, d]);
      t.layer(l, "bo", n.bo, [d]);
      t.layer(l, "ffnNorm", n.ffnNorm, [d]);
      t.layer(l, "ffnNormBias", n.ffnNormBias, [d]);
      t.layer(l, "wUp", n.wUp, [h, d]);
      t.layer(l, "bUp", n.bUp, [h]);
      t.layer(l, "wDown", n.wDown, [d, h]);
      t.layer(l, "bDown", n.bDown, [d]);
      // q, k and v as one matrix (rows q, then k, then v), last in the layer: where the build
      // stored them before there were specs, so the same model still builds to the same bytes
      t.layer(l, "wqkv", n.wqkv, [3 * d, d]);
      t.layer(l, "bqkv", n.bqkv, [3 * d]);
    }
    t.model("outputNorm", tensorNames.outputNorm, [d]);
    t.model("outputNormBias", tensorNames.outputNormBias, [d]);
    return t.out;
  },
  // q, k and v are one matrix already
  fusions: {},
  scratch(c, chunk) {
    return [{ name: "qkv", bytes: chunk * 3 * c.dim * 4 }];
  },
};
