// GPT-2 (distilgpt2 and kin) over the same kernels: learned positions added to the token
// embedding, then per layer LayerNorm -> fused qkv (+bias) -> attention -> projection (+bias)
// -> residual -> LayerNorm -> up (+bias) -> GELU -> down (+bias) -> residual; final LayerNorm;
// classifier tied to the token embedding.

import type { Kernels, Ptr } from "../../kernels/index";
import { gpt2Spec } from "../model/arch/gpt2";
import type { Gpt2Config } from "../model/description";
import type { Manifest } from "../model/manifest";
import { checkStep, forwardAlone, ModelMemory, stepOutputs, type CausalLm, type KvCache, type Matrix, type OnHidden, type OnLogits, type StepItem } from "./weights";

interface Gpt2Layer {
  attnNorm: Ptr;
  attnNormBias: Ptr;
  wqkv: Matrix;
  bqkv: Ptr;
  wo: Matrix;
  bo: Ptr;
  ffnNorm: Ptr;
  ffnNormBias: Ptr;
  wUp: Matrix;
  bUp: Ptr;
  wDown: Matrix;
  bDown: Ptr;
}

export class Gpt2Model implements CausalLm {
  readonly config: Gpt2Config;
  private readonly mem: ModelMemory;
  private readonly k: Kernels;
  private readonly tokenEmbedding: Matrix;
  private readonly positionEmbedding: Matrix;
  private readonly outputNorm: Ptr;
  private readonly outputNormBias: Ptr;
  private readonly layers: Gpt2Layer[];

  constructor(kernels: Kernels, manifest: Manifest, weightsPtr: Ptr, logitRows = 1) {
    if (manifest.config.architecture !== "gpt2") throw new Error(`Gpt2Model cannot run architecture ${manifest.config.architecture}`);
    this.config = manifest.config;
    this.k = kernels;
    const m = (this.mem = new ModelMemory(kernels, manifest, weightsPtr, logitRows));
    // every tensor as the architecture's spec lists it (functions/model/arch/gpt2.ts)
    const weights = m.specWeights(gpt2Spec);
    this.tokenEmbedding = weights.model.matrices.tokenEmbedding;
    this.positionEmbedding = weights.model.matrices.positionEmbedding;
    this.outputNorm = weights.model.vectors.outputNorm;
    this.outputNormBias = weights.model.vectors.outputNormBias;
    this.layers = weights.layers.map(({ matrices: w, vectors: v }) => ({
      attnNorm: v.attnNorm,
      attnNormBias: v.attnNormBias,
      wqkv: w.wqkv,
      bqkv: v.bqkv,
      wo: w.wo,
      bo: v.bo,
      ffnNorm: v.ffnNorm,
      ffnNormBias: v.ffnNormBias,
      wUp: w.wUp,
      bUp: v.bUp,
      wDown: w.wDown,
      bDown: v.bDown,
    }));
  }

  allocateCache(): KvCache {
    return this.mem.allocateCache();
  }

  copyCache(from: KvCache, to: KvCache, positions: number): void {
    this.mem.copyCache(from, to, positions);
  }

  get stepTokens(): number {
    return this.mem.stepTokens;
  }

  forward(tokens: number[], startPos: number, cache: KvCache): Float32Array {
    return forwardAlone(this, tokens, startPos, cache);
  }

  /** One batched step (see LlamaModel.step): row-wise work on all items at once, attention per item. */
  step(items: StepItem[], onLogits: OnLogits, onHidden?: OnHidden): void {
    const n = checkStep(items, this.stepTokens, this.config.seqLen);
    const k = this.k;
    const m = this.mem;
    const b = m.buf;
    const { dim, hiddenDim, nHeads, normEps } = this.config;
    const hs = dim / nHeads;
    const f32 = 4;
    let r = 0;
    for (const { pos, tokens } of items) {
      tokens.forEach((token, t) => {
        m.lookup(b.x + r * dim * f32, this.tokenEmbedding, token);
        m.lookup(b.xb2, this.positionEmbedding, pos + t);
        k.addInPlace(b.x + r++ * dim * f32, b.xb2, dim);
      });
    }
    const row = dim * m.cacheElementBytes;
    for (let l = 0; l < this.layers.length; l++) {
      const w = this.layers[l];
      for (let t = 0; t < n; t++) k.layernorm(b.xb + t * dim * f32, b.x + t * dim * f32, w.attnNorm, w.attnNormBias, dim, normEps);
      m.linear(b.qkv, w.wqkv, b.xb, n, true);
      k.addBias(b.qkv, w.bqkv, 3 * dim, n);
      let first = 0;
      for (const { cache, pos, tokens } of items) {
        for (let t = 0; t < tokens.length; t++) {
          const qkv = b.qkv + (first + t) * 3 * dim * f32;
          m.storeCache(cache.keys(l) + (pos + t) * row, qkv + dim * f32, dim);
          m.storeCache(cache.values(l) + (pos + t) * row, qkv + 2 * dim * f32, dim);
        }
        for (let t = 0; t < tokens.length; t++) {
          k.attention(b.xb + (first + t) * dim * f32, b.qkv + (first + t) * 3 * dim * f32, cache.keys(l), cache.values(l), b.att, nHeads, nHeads, hs, pos + t + 1, cache.dtype);
        }
        first += tokens.length;
      }
      m.linear(b.xb2, w.wo, b.xb, n, true);
      k.addBias(b.xb2, w.bo, dim, n);
      k.addInPlace(b.x, b.xb2, n * dim);
      for (let t = 0; t < n; t++) k.layernorm(b.xb + t * dim * f32, b.x + t * dim * f32, w.ffnNorm, w.ffnNormBias, dim, normEps);
      m.linear(b.hb, w.wUp, b.xb, n, true);
      k.addBias(b.hb, w.bUp, hiddenDim, n);
      k.gelu(b.hb, n * hiddenDim);
      m.linear(b.xb2, w.wDown, b.hb, n, true);
      k.addBias(b.xb2, w.bDown, dim, n);
      k.addInPlace(b.x, b.xb2, n * dim);
    }
    stepOutputs(m, items, this.tokenEmbedding, (out, x) => k.layernorm(out, x, this.outputNorm, this.outputNormBias, dim, normEps), onLogits, onHidden);
  }
}
