// The Llama forward pass over our kernels, in the order of the paper (and of llama2.c's
// run.c): embed, then per layer RMSNorm -> QKV -> RoPE -> cache -> attention -> output
// projection -> residual -> RMSNorm -> SwiGLU FFN -> residual; final norm; classifier.
// Prompt tokens go through in chunks so every weight row is read once per chunk.

import type { Kernels, Ptr } from "../../kernels/index";
import { rowBytes, type DType } from "../../kernels/quant";
import { headSize, kvDim, tensorNames, type LlamaConfig } from "../model/description";
import type { Manifest } from "../model/manifest";
import { kvCacheBytes, PREFILL_CHUNK, scratchBuffers } from "../model/memory";

interface Matrix {
  ptr: Ptr;
  dtype: DType;
  rows: number;
  cols: number;
}

interface LayerWeights {
  attnNorm: Ptr;
  wq: Matrix;
  wk: Matrix;
  wv: Matrix;
  wo: Matrix;
  ffnNorm: Ptr;
  wGate: Matrix;
  wDown: Matrix;
  wUp: Matrix;
}

/** One sequence's keys and values, [layer][position][kvDim], in f32 or f16. */
export class KvCache {
  constructor(
    readonly ptr: Ptr,
    readonly layerStride: number,
    readonly dtype: "f32" | "f16",
  ) {}
  keys(layer: number): Ptr {
    return this.ptr + 2 * layer * this.layerStride;
  }
  values(layer: number): Ptr {
    return this.ptr + (2 * layer + 1) * this.layerStride;
  }
}

export class LlamaModel {
  readonly config: LlamaConfig;
  private readonly layers: LayerWeights[];
  private readonly embedding: Matrix;
  private readonly classifier: Matrix;
  private readonly outputNorm: Ptr;
  private readonly buf: Record<string, Ptr> = {};
  private readonly hs: number;
  private readonly kvDim: number;
  private readonly cacheDtype: "f32" | "f16";

  /** Weights must already sit in `kernels` memory at `weightsPtr`, laid out as the manifest says. */
  constructor(
    private readonly k: Kernels,
    manifest: Manifest,
    weightsPtr: Ptr,
  ) {
    if (manifest.config.architecture !== "llama") throw new Error(`LlamaModel cannot run architecture ${manifest.config.architecture}`);
    this.config = manifest.config;
    this.cacheDtype = manifest.kvCacheDtype;
    this.hs = headSize(this.config);
    this.kvDim = kvDim(this.config);
    const byName = new Map(manifest.tensors.map((t) => [t.name, t]));
    const tensor = (name: string) => {
      const t = byName.get(name);
      if (!t) throw new Error(`manifest has no tensor ${name}`);
      return t;
    };
    const matrix = (name: string, rows: number, cols: number): Matrix => {
      const t = tensor(name);
      if (t.shape[0] !== rows || t.shape[1] !== cols) {
        throw new Error(`tensor ${name} has shape [${t.shape}], expected [${rows},${cols}]`);
      }
      return { ptr: weightsPtr + t.offset, dtype: t.dtype, rows, cols };
    };
    const vector = (name: string, n: number): Ptr => {
      const t = tensor(name);
      if (t.dtype !== "f32" || t.shape[0] !== n) throw new Error(`tensor ${name} must be f32 [${n}]`);
      return weightsPtr + t.offset;
    };
    const { dim, hiddenDim, vocabSize, nLayers } = this.config;
    this.embedding = matrix(tensorNames.tokenEmbedding, vocabSize, dim);
    this.classifier = this.config.tiedEmbeddings ? this.embedding : matrix(tensorNames.output, vocabSize, dim);
    this.outputNorm = vector(tensorNames.outputNorm, dim);
    this.layers = [];
    for (let l = 0; l < nLayers; l++) {
      const n = tensorNames.layer(l);
      this.layers.push({
        attnNorm: vector(n.attnNorm, dim),
        wq: matrix(n.wq, dim, dim),
        wk: matrix(n.wk, this.kvDim, dim),
        wv: matrix(n.wv, this.kvDim, dim),
        wo: matrix(n.wo, dim, dim),
        ffnNorm: vector(n.ffnNorm, dim),
        wGate: matrix(n.wGate, hiddenDim, dim),
        wDown: matrix(n.wDown, dim, hiddenDim),
        wUp: matrix(n.wUp, hiddenDim, dim),
      });
    }
    for (const b of scratchBuffers(this.config)) this.buf[b.name] = k.alloc(b.bytes, 64);
    this.fillRopeTable();
  }

  /** Bytes one more sequence's cache takes. */
  get cacheBytes(): number {
    return kvCacheBytes(this.config, this.cacheDtype);
  }

  allocateCache(): KvCache {
    const bytes = this.cacheBytes;
    return new KvCache(this.k.alloc(bytes, 64), bytes / (2 * this.config.nLayers), this.cacheDtype);
  }

  /**
   * Runs `tokens` at positions startPos.. through the model, filling the cache, and returns
   * the logits after the last one (a view into wasm memory, valid until the next call).
   */
  forward(tokens: number[], startPos: number, cache: KvCache): Float32Array {
    if (tokens.length === 0) throw new Error("forward needs at least one token");
    if (startPos + tokens.length > this.config.seqLen) throw new Error("position past the context");
    for (let done = 0; done < tokens.length; done += PREFILL_CHUNK) {
      this.forwardChunk(tokens.slice(done, done + PREFILL_CHUNK), startPos + done, cache);
    }
    return this.logits(this.lastChunkTokens - 1);
  }

  private forwardChunk(tokens: number[], pos: number, cache: KvCache): void {
    const k = this.k;
    const { dim, hiddenDim, nHeads, nKvHeads, normEps, vocabSize } = this.config;
    const b = this.buf;
    const n = tokens.length;
    const f32 = 4;
    for (let t = 0; t < n; t++) {
      const token = tokens[t];
      if (!(token >= 0 && token < vocabSize)) throw new Error(`token id ${token} is outside the vocabulary`);
      k.dequantizeRow(this.embedding.dtype, b.x + t * dim * f32, this.embedding.ptr + token * rowBytes(this.embedding.dtype, dim), dim);
    }
    const cacheElem = this.cacheDtype === "f32" ? 4 : 2;
    const ropeRow = this.hs * f32;
    for (let l = 0; l < this.layers.length; l++) {
      const w = this.layers[l];
      for (let t = 0; t < n; t++) k.rmsnorm(b.xb + t * dim * f32, b.x + t * dim * f32, w.attnNorm, dim, normEps);
      this.matmul(b.q, w.wq, b.xb, n, true);
      this.matmul(b.k, w.wk, b.xb, n, false);
      this.matmul(b.v, w.wv, b.xb, n, false);
      const layout = this.config.ropeLayout === "interleaved" ? 0 : 1;
      for (let t = 0; t < n; t++) {
        const rope = b.rope + (pos + t) * ropeRow;
        k.rope(b.q + t * dim * f32, nHeads, this.hs, rope, layout);
        k.rope(b.k + t * this.kvDim * f32, nKvHeads, this.hs, rope, layout);
      }
      const rowOffset = pos * this.kvDim * cacheElem;
      this.storeCache(cache.keys(l) + rowOffset, b.k, n * this.kvDim);
      this.storeCache(cache.values(l) + rowOffset, b.v, n * this.kvDim);
      if (n === 1) k.attention(b.xb, b.q, cache.keys(l), cache.values(l), b.att, nHeads, nKvHeads, this.hs, pos + 1, this.cacheDtype);
      else k.attentionBatch(b.xb, b.q, cache.keys(l), cache.values(l), b.att, nHeads, nKvHeads, this.hs, pos, n, this.cacheDtype);
      this.matmul(b.xb2, w.wo, b.xb, n, true);
      k.addInPlace(b.x, b.xb2, n * dim);
      for (let t = 0; t < n; t++) k.rmsnorm(b.xb + t * dim * f32, b.x + t * dim * f32, w.ffnNorm, dim, normEps);
      this.matmul(b.hb, w.wGate, b.xb, n, true);
      this.matmul(b.hb2, w.wUp, b.xb, n, false);
      k.swiglu(b.hb, b.hb2, n * hiddenDim);
      this.matmul(b.xb, w.wDown, b.hb, n, true);
      k.addInPlace(b.x, b.xb, n * dim);
    }
    this.lastChunkTokens = n;
  }

  /** Tokens in the chunk just run: only its last one needs logits. */
  private lastChunkTokens = 0;

  private logits(indexInChunk: number): Float32Array {
    const k = this.k;
    const b = this.buf;
    const { dim, vocabSize, normEps } = this.config;
    k.rmsnorm(b.xb, b.x + indexInChunk * dim * 4, this.outputNorm, dim, normEps);
    this.matmul(b.logits, this.classifier, b.xb, 1, true);
    return k.f32(b.logits, vocabSize);
  }

  /**
   * out[t] = W x[t] for t < n. Quantized weights take q8_0 activations: `quantize` says
   * whether x changed since the last call (q, k and v share one quantized input).
   */
  private matmul(out: Ptr, w: Matrix, x: Ptr, n: number, quantize: boolean): void {
    const k = this.k;
    if (w.dtype === "q8_0" || w.dtype === "q4_0") {
      const xq = this.buf.xq;
      if (quantize) k.quantizeRows(xq, x, w.cols, n);
      k.matmul(w.dtype, out, w.ptr, xq, w.rows, w.cols, n);
    } else {
      k.matmul(w.dtype, out, w.ptr, x, w.rows, w.cols, n);
    }
  }

  /** Appends f32 keys or values to the cache in its dtype. */
  private storeCache(dst: Ptr, src: Ptr, n: number): void {
    if (this.cacheDtype === "f16") this.k.f32ToF16Row(dst, src, n);
    else this.k.f32(dst, n).set(this.k.f32(src, n));
  }

  /** cos/sin of every position and frequency pair, computed once per model in f32 as run.c does. */
  private fillRopeTable(): void {
    const { seqLen, ropeTheta } = this.config;
    const half = this.hs / 2;
    const table = this.k.f32(this.buf.rope, seqLen * this.hs);
    for (let pos = 0; pos < seqLen; pos++) {
      for (let i = 0; i < half; i++) {
        const freq = Math.fround(1 / Math.fround(Math.pow(ropeTheta, Math.fround((2 * i) / this.hs))));
        const angle = Math.fround(pos * freq);
        table[pos * this.hs + 2 * i] = Math.cos(angle);
        table[pos * this.hs + 2 * i + 1] = Math.sin(angle);
      }
    }
  }
}
