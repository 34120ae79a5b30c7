// What every model family shares: finding its tensors in wasm memory by manifest name (all of
// them at once from the architecture's spec), the linear layer over any weight dtype, the
// per-sequence KV cache and the working buffers.

import type { Kernels, Ptr } from "../../kernels/index";
import { activationFormat, rowBytes, type ActivationFormat, type DType } from "../../kernels/quant";
import type { ArchitectureSpec } from "../model/arch/index";
import { kvDim as kvDimOf, type ModelConfig } from "../model/description";
import type { Manifest } from "../model/manifest";
import { kvCacheBytes, PREFILL_CHUNK, scratchBuffers } from "../model/memory";

export interface Matrix {
  ptr: Ptr;
  dtype: DType;
  rows: number;
  cols: number;
  /** q8_0 / q4_0 / q4_k / q6_k repacked in place by Kernels.repackQ8_0x4 / repackQ4_0x4 / repackQ4_Kx4 / repackQ6_Kx4 (faster decode; lookups and products go through the x4 kernels). */
  packed?: boolean;
}

/**
 * One sequence's share of a batched step: `tokens` at positions pos.. of its own cache. Every
 * weight matrix is read once per step for all the items together; attention runs per item.
 */
export interface StepItem {
  cache: KvCache;
  pos: number;
  tokens: number[];
  /** Whether the step should produce the logits after this item's last token. */
  wantLogits: boolean;
  /** Also the logits after every earlier token of the item (a prompt's own log-probabilities). */
  allLogits?: boolean;
  /**
   * Instead of logits: the final hidden state (after the final norm, the classifier's input) of
   * every token of the item, for embeddings. Not with `wantLogits` or `allLogits`.
   */
  wantHidden?: boolean;
}

/**
 * Receives logits for item `item`: a view into wasm memory, valid only until it returns.
 * `index` is the token of the item they follow (its last one unless the item wants all).
 */
export type OnLogits = (item: number, logits: Float32Array, index: number) => void;

/**
 * Receives the final hidden state (`dim` values) of token `index` of item `item`: a view into
 * wasm memory, valid only until it returns.
 */
export type OnHidden = (item: number, hidden: Float32Array, index: number) => void;

/** What the engine needs of a model, whatever its family. */
export interface CausalLm {
  readonly config: ModelConfig;
  /** Most tokens one step may carry, summed over its items (the scratch buffers' rows). */
  readonly stepTokens: number;
  /**
   * Runs one batched step. `onLogits(i, logits, index)` is called for each item that wants
   * logits (for every token of an item with `allLogits`), in item and token order, with a view
   * into wasm memory that is valid only until the callback returns. `onHidden(i, hidden, index)`
   * likewise for every token of each item with `wantHidden`, before any logits.
   */
  step(items: StepItem[], onLogits: OnLogits, onHidden?: OnHidden): void;
  /** One sequence alone: runs `tokens` from `startPos` in steps and returns the last one's logits (a view, valid until the next call). */
  forward(tokens: number[], startPos: number, cache: KvCache): Float32Array;
  allocateCache(): KvCache;
  /** Copies the first `positions` positions of every layer's keys and values (a shared prompt). */
  copyCache(from: KvCache, to: KvCache, positions: number): void;
}

/** Checks a step's items against the scratch rows and the context; returns the tokens it carries. */
export function checkStep(items: StepItem[], stepTokens: number, seqLen: number): number {
  let total = 0;
  for (const item of items) {
    if (item.tokens.length === 0) throw new Error("a step item needs at least one token");
    if (item.pos < 0 || item.pos + item.tokens.length > seqLen) throw new Error("position past the context");
    if (item.wantHidden && (item.wantLogits || item.allLogits)) throw new Error("a step item asks for hidden states or logits, not both");
    total += item.tokens.length;
  }
  if (total === 0 || total > stepTokens) throw new Error(`a step carries 1..${stepTokens} tokens, not ${total}`);
  return total;
}

/** `model.forward` for every family: one sequence alone, `model.stepTokens` tokens per step. */
export function forwardAlone(model: CausalLm, tokens: number[], startPos: number, cache: KvCache): Float32Array {
  if (tokens.length === 0) throw new Error("forward needs at least one token");
  if (startPos + tokens.length > model.config.seqLen) throw new Error("position past the context");
  let logits: Float32Array | null = null;
  for (let done = 0; done < tokens.length; done += model.stepTokens) {
    const chunk = tokens.slice(done, done + model.stepTokens);
    model.step([{ cache, pos: startPos + done, tokens: chunk, wantLogits: done + chunk.length === tokens.length }], (_, l) => (logits = l));
  }
  return logits!;
}

/**
 * What a step gives back, after its layers. First the hidden states of every item that wants
 * them: each of its rows of `x` through `finalNorm`, as many rows at once as `xb` holds. Then the
 * logits of every item that wants them: each one's last hidden row (at `rowEnd[i] - 1` of `x`)
 * through `finalNorm` into `xb`, then the classifier over as many rows at once as the logits
 * buffer holds.
 */
export function stepOutputs(
  mem: ModelMemory,
  items: StepItem[],
  classifier: Matrix,
  finalNorm: (out: Ptr, x: Ptr) => void,
  onLogits: OnLogits,
  onHidden?: OnHidden,
): void {
  const { dim, vocabSize } = mem.manifest.config;
  const b = mem.buf;
  const wanted: Array<{ item: number; row: number; index: number }> = [];
  const hidden: Array<{ item: number; row: number; index: number }> = [];
  let row = 0;
  items.forEach((item, i) => {
    const n = item.tokens.length;
    if (item.wantHidden) for (let t = 0; t < n; t++) hidden.push({ item: i, row: row + t, index: t });
    if (item.allLogits) for (let t = 0; t < n - 1; t++) wanted.push({ item: i, row: row + t, index: t });
    if (item.wantLogits || item.allLogits) wanted.push({ item: i, row: row + n - 1, index: n - 1 });
    row += n;
  });
  if (hidden.length > 0 && !onHidden) throw new Error("a step item wants hidden states but the step has no onHidden");
  for (const h of hidden) {
    finalNorm(b.xb, b.x + h.row * dim * 4);
    onHidden!(h.item, mem.k.f32(b.xb, dim), h.index);
  }
  for (let start = 0; start < wanted.length; start += mem.logitRows) {
    const group = wanted.slice(start, start + mem.logitRows);
    group.forEach((w, j) => finalNorm(b.xb + j * dim * 4, b.x + w.row * dim * 4));
    mem.linear(b.logits, classifier, b.xb, group.length, true);
    group.forEach((w, j) => onLogits(w.item, mem.k.f32(b.logits + j * vocabSize * 4, vocabSize), w.index));
  }
}

/**
 * The matrices as one, when they can be: same columns and dtype, repacked (q8_0/q4_0/q4_k/q6_k), each a
 * whole number of 4-row groups, and back to back in memory (the build writes q, k, v in that
 * order). One product then streams all their rows in one pass, outputs end to end.
 */
export function fuseMatrices(ms: Matrix[]): Matrix | null {
  const [first] = ms;
  let next = first.ptr;
  for (const m of ms) {
    if (!m.packed || m.dtype !== first.dtype || m.cols !== first.cols || m.rows % 4 !== 0 || m.ptr !== next) return null;
    next = m.ptr + m.rows * rowBytes(m.dtype, m.cols);
  }
  return { ptr: first.ptr, dtype: first.dtype, cols: first.cols, rows: ms.reduce((r, m) => r + m.rows, 0), packed: true };
}

/**
 * Tensors by the role the architecture's spec gives them: matrices (2-D) and vectors (f32, 1-D),
 * and per layer each fusion group as one matrix when it can be (null when not).
 */
export interface WeightGroup {
  matrices: Record<string, Matrix>;
  vectors: Record<string, Ptr>;
  fused: Record<string, Matrix | null>;
}

/** A model's weights as its spec lists them: the model's own, and each layer's. */
export interface SpecWeights {
  model: WeightGroup;
  layers: WeightGroup[];
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

/** A model's weights and buffers inside one kernel instance. */
export class ModelMemory {
  readonly buf: Record<string, Ptr> = {};
  private readonly byName: Map<string, Manifest["tensors"][number]>;
  private readonly packed = new Map<string, boolean>();
  /** The activation buffer of each format (scratch "xq", "xq8_1", "xq8_k"). */
  private readonly actBuf: Record<ActivationFormat, Ptr>;
  /** Formats whose buffer holds the current input (the x of the last `quantize` call). */
  private readonly fresh = new Set<ActivationFormat>();

  /** Tokens one step carries: the scratch buffers' rows. */
  readonly stepTokens = PREFILL_CHUNK;

  /** `logitRows`: sequences whose logits one classifier product writes (one per KV cache the model gets). */
  constructor(
    readonly k: Kernels,
    readonly manifest: Manifest,
    private readonly weightsPtr: Ptr,
    readonly logitRows = 1,
  ) {
    this.byName = new Map(manifest.tensors.map((t) => [t.name, t]));
    for (const b of scratchBuffers(manifest.config, PREFILL_CHUNK, logitRows, manifest.tensors.map((t) => t.dtype))) this.buf[b.name] = k.alloc(b.bytes, 64);
    this.actBuf = { q8_0: this.buf.xq, q8_1: this.buf.xq8_1, q8_k: this.buf.xq8_k };
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private tensor(name: string) {
    const t = this.byName.get(name);
    if (!t) throw new Error(`manifest has no tensor ${name}`);
    return t;
  }

  matrix(name: string, rows: number, cols: number): Matrix {
    const t = this.tensor(name);
    if (t.shape[0] !== rows || t.shape[1] !== cols) throw new Error(`tensor ${name} has shape [${t.shape}], expected [${rows},${cols}]`);
    const ptr = this.weightsPtr + t.offset;
    // q8_0, q4_0, q4_k and q6_k matrices are repacked once, in place, the first time they are asked for
    // (a tied embedding is asked for twice and must not be repacked again)
    let packed = this.packed.get(name);
    if (packed === undefined) {
      const k = this.k;
      const repack = { q8_0: k.repackQ8_0x4, q4_0: k.repackQ4_0x4, q4_k: k.repackQ4_Kx4, q6_k: k.repackQ6_Kx4 } as Partial<Record<DType, typeof k.repackQ8_0x4>>;
      const fn = repack[t.dtype];
      packed = rows >= 4 && fn !== undefined && fn.call(k, ptr, rows, cols);
      this.packed.set(name, packed);
    }
    return { ptr, dtype: t.dtype, rows, cols, packed };
  }

  /**
   * Every tensor the architecture's spec lists for this model's config, by role, each checked
   * against its shape; matrices repacked (see `matrix`), fusion groups fused where they can be.
   */
  specWeights(spec: ArchitectureSpec<ModelConfig>): SpecWeights {
    const group = (): WeightGroup => ({ matrices: {}, vectors: {}, fused: {} });
    const model = group();
    const layers = Array.from({ length: this.manifest.config.nLayers }, group);
    for (const t of spec.tensors(this.manifest.config)) {
      const g = t.layer === null ? model : layers[t.layer];
      if (t.shape.length === 2) g.matrices[t.role] = this.matrix(t.name, t.shape[0], t.shape[1]);
      else g.vectors[t.role] = this.vector(t.name, t.shape[0]);
    }
    for (const g of layers) {
      for (const [name, roles] of Object.entries(spec.fusions)) g.fused[name] = fuseMatrices(roles.map((r) => g.matrices[r]));
    }
    return { model, layers };
  }

  vector(name: string, n: number): Ptr {
    const t = this.tensor(name);
    if (t.dtype !== "f32" || t.shape.length !== 1 || t.shape[0] !== n) throw new Error(`tensor ${name} must be f32 [${n}]`);
    return this.weightsPtr + t.offset;
  }

  /** Row `row` of an embedding-like matrix, as f32 at `out`. */
  lookup(out: Ptr, m: Matrix, row: number): void {
    if (!(row >= 0 && row < m.rows)) throw new Error(`row ${row} is outside ${m.rows}`);
    if (m.packed) {
      if (m.dtype === "q4_0") return this.k.dequantizeRowQ4_0x4(out, m.ptr, m.rows, m.cols, row);
      if (m.dtype === "q4_k") return this.k.dequantizeRowQ4_Kx4(out, m.ptr, m.rows, m.cols, row);
      if (m.dtype === "q6_k") return this.k.dequantizeRowQ6_Kx4(out, m.ptr, m.rows, m.cols, row);
      return this.k.dequantizeRowQ8_0x4(out, m.ptr, m.rows, m.cols, row);
    }
    this.k.dequantizeRow(m.dtype, out, m.ptr + row * rowBytes(m.dtype, m.cols), m.cols);
  }

  /**
   * out[t] = W x[t] for t < n. Quantized weights take activations quantized as ggml does for
   * their dtype (q8_0, q8_1 or q8_K): `quantize` says whether x changed since the last call
   * (q, k and v share one input, quantized once per format they need).
   */
  linear(out: Ptr, w: Matrix, x: Ptr, n: number, quantize: boolean): void {
    if (quantize) this.fresh.clear();
    const format = activationFormat(w.dtype);
    if (format) {
      const xq = this.actBuf[format];
      if (xq === undefined) throw new Error(`no ${format} activation buffer for ${w.dtype} weights`);
      if (!this.fresh.has(format)) {
        this.k.quantizeActivations(format, xq, x, w.cols, n);
        this.fresh.add(format);
      }
      if (w.packed && w.dtype === "q4_0") this.k.matmulQ4_0x4(out, w.ptr, xq, w.rows, w.cols, n);
      else if (w.packed && w.dtype === "q4_k") this.k.matmulQ4_Kx4(out, w.ptr, xq, w.rows, w.cols, n);
      else if (w.packed && w.dtype === "q6_k") this.k.matmulQ6_Kx4(out, w.ptr, xq, w.rows, w.cols, n);
      else if (w.packed) this.k.matmulQ8_0x4(out, w.ptr, xq, w.rows, w.cols, n);
      else this.k.matmul(w.dtype, out, w.ptr, xq, w.rows, w.cols, n);
    } else {
      this.k.matmul(w.dtype, out, w.ptr, x, w.rows, w.cols, n);
    }
  }

  allocateCache(): KvCache {
    const bytes = kvCacheBytes(this.manifest.config, this.manifest.kvCacheDtype);
    return new KvCache(this.k.alloc(bytes, 64), bytes / (2 * this.manifest.config.nLayers), this.manifest.kvCacheDtype);
  }

  copyCache(from: KvCache, to: KvCache, positions: number): void {
    const bytes = positions * kvDimOf(this.manifest.config) * this.cacheElementBytes;
    for (let l = 0; l < this.manifest.config.nLayers; l++) {
      this.k.u8(to.keys(l), bytes).set(this.k.u8(from.keys(l), bytes));
      this.k.u8(to.values(l), bytes).set(this.k.u8(from.values(l), bytes));
    }
  }

  /** Appends n f32 keys or values to the cache in its dtype. */
  storeCache(dst: Ptr, src: Ptr, n: number): void {
    if (this.manifest.kvCacheDtype === "f16") this.k.f32ToF16Row(dst, src, n);
    else this.k.f32(dst, n).set(this.k.f32(src, n));
  }

  get cacheElementBytes(): number {
    return this.manifest.kvCacheDtype === "f32" ? 4 : 2;
  }
}
