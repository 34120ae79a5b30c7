// The Llama forward pass over our kernels, in the order of the paper (and of llama2.c's
// run.c): embed, then per layer RMSNorm -> QKV -> RoPE -> cache -> attention -> output
// projection -> residual -> RMSNorm -> SwiGLU FFN -> residual; final norm; classifier.
// A step carries tokens of several sequences (prompt chunks and decode tokens) as one batch, so
// every weight row is read once per step.

import type { Kernels, Ptr } from "../../kernels/index";
import { llamaSpec } from "../model/arch/llama";
import { headSize, kvDim, type LlamaConfig } from "../model/description";
import type { Manifest } from "../model/manifest";
import { checkStep, forwardAlone, ModelMemory, stepOutputs, type CausalLm, type KvCache, type Matrix, type OnHidden, type OnLogits, type StepItem } from "./weights";

interface LayerWeights {
  /** Qwen2's q/k/v biases, when the model has them. */
  bias: { q: Ptr; k: Ptr; v: Ptr } | null;
  attnNorm: Ptr;
  wq: Matrix;
  wk: Matrix;
  wv: Matrix;
  /** wq, wk, wv as one matrix when they sit back to back (decode multiplies by it once). */
  wqkv: Matrix | null;
  /** wGate, wUp likewise. */
  wGateUp: Matrix | null;
  wo: Matrix;
  ffnNorm: Ptr;
  wGate: Matrix;
  wDown: Matrix;
  wUp: Matrix;
}

export class LlamaModel implements CausalLm {
  readonly config: LlamaConfig;
  private readonly mem: ModelMemory;
  private readonly k: Kernels;
  private readonly layers: LayerWeights[];
  private readonly embedding: Matrix;
  private readonly classifier: Matrix;
  private readonly outputNorm: Ptr;
  private readonly buf: Record<string, Ptr>;
  private readonly hs: number;
  private readonly kvDim: number;
  private readonly cacheDtype: "f32" | "f16";

  /** Weights must already sit in `kernels` memory at `weightsPtr`, laid out as the manifest says. */
  constructor(kernels: Kernels, manifest: Manifest, weightsPtr: Ptr, logitRows = 1) {
    if (manifest.config.architecture !== "llama") throw new Error(`LlamaModel cannot run architecture ${manifest.config.architecture}`);
    this.config = manifest.config;
    this.k = kernels;
    this.mem = new ModelMemory(kernels, manifest, weightsPtr, logitRows);
    this.buf = this.mem.buf;
    this.cacheDtype = manifest.kvCacheDtype;
    this.hs = headSize(this.config);
    this.kvDim = kvDim(this.config);
    // every tensor as the architecture's spec lists it (functions/model/arch/llama.ts)
    const weights = this.mem.specWeights(llamaSpec);
    this.embedding = weights.model.matrices.tokenEmbedding;
    this.classifier = this.config.tiedEmbeddings ? this.embedding : weights.model.matrices.output;
    this.outputNorm = weights.model.vectors.outputNorm;
    this.layers = weights.layers.map(({ matrices: w, vectors: v, fused }) => ({
      bias: this.config.attentionBias ? { q: v.bq, k: v.bk, v: v.bv } : null,
      attnNorm: v.attnNorm,
      wq: w.wq,
      wk: w.wk,
      wv: w.wv,
      wqkv: fused.wqkv,
      wo: w.wo,
      ffnNorm: v.ffnNorm,
      wGate: w.wGate,
      wDown: w.wDown,
      wUp: w.wUp,
      wGateUp: fused.wGateUp,
    }));
    this.fillRopeTable();
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

  /**
   * One batched step: the items' tokens side by side as rows of the activation buffers, each
   * weight matrix applied to all rows in one product; RoPE, the cache writes and attention per
   * item, at its own positions in its own cache.
   */
  step(items: StepItem[], onLogits: OnLogits, onHidden?: OnHidden): void {
    const n = checkStep(items, this.stepTokens, this.config.seqLen);
    const k = this.k;
    const { dim, hiddenDim, nHeads, nKvHeads, normEps } = this.config;
    const b = this.buf;
    const f32 = 4;
    let row = 0;
    for (const item of items) for (const token of item.tokens) this.mem.lookup(b.x + row++ * dim * f32, this.embedding, token);
    const cacheElem = this.mem.cacheElementBytes;
    const ropeRow = this.hs * f32;
    const layout = this.config.ropeLayout === "interleaved" ? 0 : 1;
    const window = this.config.slidingWindow ?? 0;
    for (let l = 0; l < this.layers.length; l++) {
      const w = this.layers[l];
      for (let t = 0; t < n; t++) k.rmsnorm(b.xb + t * dim * f32, b.x + t * dim * f32, w.attnNorm, dim, normEps);
      // one token: q, k and v come out end to end in b.q from the fused matrix
      let bk = b.k, bv = b.v;
      if (n === 1 && w.wqkv) {
        this.mem.linear(b.q, w.wqkv, b.xb, 1, true);
        bk = b.q + dim * f32;
        bv = bk + this.kvDim * f32;
      } else {
        this.mem.linear(b.q, w.wq, b.xb, n, true);
        this.mem.linear(bk, w.wk, b.xb, n, false);
        this.mem.linear(bv, w.wv, b.xb, n, false);
      }
      if (w.bias) {
        k.addBias(b.q, w.bias.q, dim, n);
        k.addBias(bk, w.bias.k, this.kvDim, n);
        k.addBias(bv, w.bias.v, this.kvDim, n);
      }
      let first = 0;
      for (const { cache, pos, tokens } of items) {
        const m = tokens.length;
        const q = b.q + first * dim * f32, kRows = bk + first * this.kvDim * f32, vRows = bv + first * this.kvDim * f32;
        for (let t = 0; t < m; t++) {
          const rope = b.rope + (pos + t) * ropeRow;
          k.rope(q + t * dim * f32, nHeads, this.hs, rope, layout);
          k.rope(kRows + t * this.kvDim * f32, nKvHeads, this.hs, rope, layout);
        }
        const rowOffset = pos * this.kvDim * cacheElem;
        this.mem.storeCache(cache.keys(l) + rowOffset, kRows, m * this.kvDim);
        this.mem.storeCache(cache.values(l) + rowOffset, vRows, m * this.kvDim);
        const out = b.xb + first * dim * f32;
        if (window > 0 && pos + m > window) {
          // Each token sees only the last `window` positions (Mistral): one query at a time.
          const cacheRow = this.kvDim * cacheElem;
          for (let t = 0; t < m; t++) {
            const from = Math.max(0, pos + t + 1 - window);
            k.attention(out + t * dim * f32, q + t * dim * f32, cache.keys(l) + from * cacheRow, cache.values(l) + from * cacheRow, b.att, nHeads, nKvHeads, this.hs, pos + t + 1 - from, this.cacheDtype);
          }
        } else if (m === 1) {
          k.attention(out, q, cache.keys(l), cache.values(l), b.att, nHeads, nKvHeads, this.hs, pos + 1, this.cacheDtype);
        } else {
          k.attentionBatch(out, q, cache.keys(l), cache.values(l), b.att, nHeads, nKvHeads, this.hs, pos, m, this.cacheDtype);
        }
        first += m;
      }
      this.mem.linear(b.xb2, w.wo, b.xb, n, true);
      k.addInPlace(b.x, b.xb2, n * dim);
      for (let t = 0; t < n; t++) k.rmsnorm(b.xb + t * dim * f32, b.x + t * dim * f32, w.ffnNorm, dim, normEps);
      if (n === 1 && w.wGateUp) {
        // one token: gate then up, end to end in b.hb
        this.mem.linear(b.hb, w.wGateUp, b.xb, 1, true);
        k.swiglu(b.hb, b.hb + hiddenDim * f32, hiddenDim);
      } else {
        this.mem.linear(b.hb, w.wGate, b.xb, n, true);
        this.mem.linear(b.hb2, w.wUp, b.xb, n, false);
        k.swiglu(b.hb, b.hb2, n * hiddenDim);
      }
      this.mem.linear(b.xb, w.wDown, b.hb, n, true);
      k.addInPlace(b.x, b.xb, n * dim);
    }
    stepOutputs(this.mem, items, this.classifier, (out, x) => k.rmsnorm(out, x, this.outputNorm, dim, normEps), onLogits, onHidden);
  }

  /** cos/sin of every position and frequency pair, computed once per model in f32 as run.c does. */
  private fillRopeTable(): void {
    const { seqLen } = this.config;
    const half = this.hs / 2;
    const freqs = ropeFrequencies(this.config);
    const table = this.k.f32(this.buf.rope, seqLen * this.hs);
    for (let pos = 0; pos < seqLen; pos++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(pos * freqs[i]);
        table[pos * this.hs + 2 * i] = Math.cos(angle);
        table[pos * this.hs + 2 * i + 1] = Math.sin(angle);
      }
    }
  }
}

/**
 * The rotation frequency of each dimension pair: theta^(-2i/headSize), in f32 as run.c has it,
 * with Llama 3's scaling (long wavelengths slowed by `factor`, a smooth blend between).
 */
export function ropeFrequencies(config: LlamaConfig): Float32Array {
  const hs = headSize(config);
  const freqs = new Float32Array(hs / 2);
  const scaling = config.ropeScaling;
  for (let i = 0; i < hs / 2; i++) {
    let freq = Math.fround(1 / Math.fround(Math.pow(config.ropeTheta, Math.fround((2 * i) / hs))));
    if (scaling) {
      const lowFreqWavelen = scaling.originalMaxPositionEmbeddings / scaling.lowFreqFactor;
      const highFreqWavelen = scaling.originalMaxPositionEmbeddings / scaling.highFreqFactor;
      const wavelen = (2 * Math.PI) / freq;
      if (wavelen > lowFreqWavelen) {
        freq = freq / scaling.factor;
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (scaling.originalMaxPositionEmbeddings / wavelen - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor);
        freq = (1 - smooth) * (freq / scaling.factor) + smooth * freq;
      }
    }
    freqs[i] = freq;
  }
  return freqs;
}
