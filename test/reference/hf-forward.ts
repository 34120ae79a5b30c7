// Plain, obviously-correct forward passes with Hugging Face transformers semantics, for checking
// importers and the runtime against. Whole-sequence (no KV cache), float64 arithmetic, no
// cleverness. It takes a model in the internal description (GGUF tensor names, matrices
// [out, in]) as hf.ts and gguf.ts produce it, but its math follows transformers'
// modeling_llama / modeling_mistral / modeling_qwen2 / modeling_gpt2, not our runtime:
//
// Llama / Mistral / Qwen2:
//   h = embed[tok]
//   per layer: a = RMSNorm(h) * w;  q = Wq a (+ bq), k = Wk a (+ bk), v = Wv a (+ bv)
//              q, k rotated with rotate_half: for each head, pairs (j, j + d/2) turn by pos * inv_freq[j]
//              (inv_freq = 1 / theta^(2j/d), Llama 3 scaled as _compute_llama3_parameters does)
//              GQA: query head h uses kv head floor(h / (n_heads / n_kv_heads)) (repeat_kv)
//              softmax(q.k / sqrt(d)) over positions t <= pos (and t > pos - sliding_window)
//              h += Wo attn;  m = RMSNorm(h) * w2;  h += Wdown (silu(Wgate m) * Wup m)
//   logits = Wout RMSNorm(h) * wf   (Wout = embed when tied)
// GPT-2:
//   h = wte[tok] + wpe[pos]
//   per layer: a = LayerNorm(h); [q k v] = Wqkv a + bqkv; causal softmax(q.k / sqrt(d)) v;
//              h += Wo attn + bo;  h += Wdown gelu_new(Wup LayerNorm(h) + bup) + bdown
//   logits = wte LayerNorm_f(h)
//
// A model whose q/k rows are in the interleaved RoPE layout (ropeLayout "interleaved", e.g. a
// GGUF llama file, which llama.cpp's converter permuted) is first put back into the Hugging Face
// row order by inverting llama.cpp's permutation, so the rotation here is always rotate_half.

import type { Gpt2Config, ImportedTensor, LlamaConfig, ModelConfig } from "../../functions/model/description";
import { tensorNames } from "../../functions/model/description";

/** What a forward pass returns per position: logits, or the final hidden state they come from. */
type Output = "logits" | "hidden";

export interface ForwardModel {
  config: ModelConfig;
  tensors: ImportedTensor[];
}

function byName(model: ForwardModel): (name: string, shape?: number[]) => Float32Array {
  const map = new Map(model.tensors.map((t) => [t.name, t]));
  return (name, shape) => {
    const t = map.get(name);
    if (!t) throw new Error(`hf-forward: missing tensor ${name}`);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new Error(`hf-forward: tensor ${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
    }
    return t.data;
  };
}

/** out = W x (+ b), W [rows, cols] row-major. */
function linear(w: ArrayLike<number>, x: ArrayLike<number>, rows: number, cols: number, b?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += w[o + c]! * x[c]!;
    out[r] = b ? s + b[r]! : s;
  }
  return out;
}

function rmsNorm(x: Float64Array, w: ArrayLike<number>, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => w[i]! * (v * inv));
}

function layerNorm(x: Float64Array, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): Float64Array {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let varSum = 0;
  for (const v of x) varSum += (v - mean) * (v - mean);
  const inv = 1 / Math.sqrt(varSum / x.length + eps);
  return x.map((v, i) => (v - mean) * inv * w[i]! + b[i]!);
}

function softmaxInPlace(a: Float64Array): void {
  let max = -Infinity;
  for (const v of a) if (v > max) max = v;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    a[i] = Math.exp(a[i]! - max);
    sum += a[i]!;
  }
  for (let i = 0; i < a.length; i++) a[i]! /= sum;
}

/** transformers' gelu_new / gelu_pytorch_tanh. */
export function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

const silu = (x: number) => x / (1 + Math.exp(-x));

/**
 * inv_freq of a Llama-family config (head_dim / 2 values), as transformers' default rope init
 * plus _compute_llama3_parameters when rope_scaling is llama3:
 *   wavelen = 2 pi / inv_freq
 *   wavelen < orig / high_freq_factor  -> unchanged
 *   wavelen > orig / low_freq_factor   -> inv_freq / factor
 *   otherwise smooth = (orig / wavelen - low) / (high - low);
 *             inv_freq = (1 - smooth) * inv_freq / factor + smooth * inv_freq
 */
export function hfRopeInvFreq(config: LlamaConfig): Float64Array {
  const d = config.dim / config.nHeads;
  const inv = new Float64Array(d / 2);
  for (let j = 0; j < d / 2; j++) inv[j] = 1 / Math.pow(config.ropeTheta, (2 * j) / d);
  const s = config.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let j = 0; j < inv.length; j++) {
    const f = inv[j]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      inv[j] = f / s.factor;
      continue;
    }
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    inv[j] = ((1 - smooth) * f) / s.factor + smooth * f;
  }
  return inv;
}

/**
 * Undo llama.cpp's convert_hf_to_gguf permute(): rows of each head go from interleaved pair
 * order (2i, 2i+1) back to Hugging Face order (i, i + head_dim/2). Works for weights [rows, cols]
 * and biases (cols = 1).
 */
export function unpermuteInterleavedRows(data: Float32Array, nHeads: number, rows: number, cols: number): Float32Array {
  const hs = rows / nHeads;
  const half = hs / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let t = 0; t < 2; t++) {
        const src = (h * hs + 2 * i + t) * cols;
        const dst = (h * hs + t * half + i) * cols;
        out.set(data.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

function llamaForward(model: ForwardModel, c: LlamaConfig, tokens: number[], output: Output): Float32Array[] {
  const get = byName(model);
  const d = c.dim;
  const hs = d / c.nHeads;
  const half = hs / 2;
  const kvDim = hs * c.nKvHeads;
  const nRep = c.nHeads / c.nKvHeads;
  const eps = c.normEps;
  const interleaved = c.ropeLayout === "interleaved";
  if (!interleaved && c.ropeLayout !== "half") throw new Error(`hf-forward: unknown ropeLayout ${String(c.ropeLayout)}`);
  const embed = get(tensorNames.tokenEmbedding, [c.vocabSize, d]);
  const layers = Array.from({ length: c.nLayers }, (_, l) => {
    const n = tensorNames.layer(l);
    let wq = get(n.wq, [d, d]);
    let wk = get(n.wk, [kvDim, d]);
    let bq = c.attentionBias ? get(n.bq, [d]) : undefined;
    let bk = c.attentionBias ? get(n.bk, [kvDim]) : undefined;
    if (interleaved) {
      wq = unpermuteInterleavedRows(wq, c.nHeads, d, d);
      wk = unpermuteInterleavedRows(wk, c.nKvHeads, kvDim, d);
      if (bq) bq = unpermuteInterleavedRows(bq, c.nHeads, d, 1);
      if (bk) bk = unpermuteInterleavedRows(bk, c.nKvHeads, kvDim, 1);
    }
    return {
      attnNorm: get(n.attnNorm, [d]),
      wq,
      wk,
      wv: get(n.wv, [kvDim, d]),
      bq,
      bk,
      bv: c.attentionBias ? get(n.bv, [kvDim]) : undefined,
      wo: get(n.wo, [d, d]),
      ffnNorm: get(n.ffnNorm, [d]),
      gate: get(n.wGate, [c.hiddenDim, d]),
      up: get(n.wUp, [c.hiddenDim, d]),
      down: get(n.wDown, [d, c.hiddenDim]),
    };
  });
  const finalNorm = get(tensorNames.outputNorm, [d]);
  const head = c.tiedEmbeddings ? embed : get(tensorNames.output, [c.vocabSize, d]);
  const invFreq = hfRopeInvFreq(c);
  const window = c.slidingWindow ?? null;

  const rotate = (vec: Float64Array, nHeads: number, pos: number) => {
    for (let h = 0; h < nHeads; h++) {
      for (let j = 0; j < half; j++) {
        const a = pos * invFreq[j]!;
        const cos = Math.cos(a);
        const sin = Math.sin(a);
        const i1 = h * hs + j;
        const i2 = i1 + half;
        const x1 = vec[i1]!;
        const x2 = vec[i2]!;
        // q * cos + rotate_half(q) * sin, rotate_half(q) = [-q2, q1]
        vec[i1] = x1 * cos - x2 * sin;
        vec[i2] = x2 * cos + x1 * sin;
      }
    }
  };

  const T = tokens.length;
  if (T > c.seqLen) throw new Error(`hf-forward: ${T} tokens exceed seqLen ${c.seqLen}`);
  let hidden: Float64Array[] = tokens.map((tok) => {
    if (!Number.isInteger(tok) || tok < 0 || tok >= c.vocabSize) throw new RangeError(`token ${tok} out of range`);
    return Float64Array.from(embed.subarray(tok * d, (tok + 1) * d));
  });
  for (const w of layers) {
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    for (let p = 0; p < T; p++) {
      const a = rmsNorm(hidden[p]!, w.attnNorm, eps);
      const q = linear(w.wq, a, d, d, w.bq);
      const k = linear(w.wk, a, kvDim, d, w.bk);
      const v = linear(w.wv, a, kvDim, d, w.bv);
      rotate(q, c.nHeads, p);
      rotate(k, c.nKvHeads, p);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    const next: Float64Array[] = [];
    for (let p = 0; p < T; p++) {
      const attn = new Float64Array(d);
      const first = window === null ? 0 : Math.max(0, p - window + 1); // kv_idx > q_idx - sliding_window
      for (let h = 0; h < c.nHeads; h++) {
        const kvh = Math.floor(h / nRep);
        const scores = new Float64Array(p - first + 1);
        for (let t = first; t <= p; t++) {
          let s = 0;
          for (let i = 0; i < hs; i++) s += qs[p]![h * hs + i]! * ks[t]![kvh * hs + i]!;
          scores[t - first] = s / Math.sqrt(hs);
        }
        softmaxInPlace(scores);
        for (let t = first; t <= p; t++) {
          const wgt = scores[t - first]!;
          for (let i = 0; i < hs; i++) attn[h * hs + i]! += wgt * vs[t]![kvh * hs + i]!;
        }
      }
      const o = linear(w.wo, attn, d, d);
      const h1 = hidden[p]!.map((x, i) => x + o[i]!);
      const m = rmsNorm(h1, w.ffnNorm, eps);
      const g = linear(w.gate, m, c.hiddenDim, d);
      const u = linear(w.up, m, c.hiddenDim, d);
      const act = g.map((x, i) => silu(x) * u[i]!);
      const down = linear(w.down, act, d, c.hiddenDim);
      next.push(h1.map((x, i) => x + down[i]!));
    }
    hidden = next;
  }
  const normed = hidden.map((h) => rmsNorm(h, finalNorm, eps));
  return output === "hidden" ? normed.map((h) => Float32Array.from(h)) : normed.map((h) => Float32Array.from(linear(head, h, c.vocabSize, d)));
}

function gpt2Forward(model: ForwardModel, c: Gpt2Config, tokens: number[], output: Output): Float32Array[] {
  const get = byName(model);
  const d = c.dim;
  const hs = d / c.nHeads;
  const eps = c.normEps;
  const wte = get(tensorNames.tokenEmbedding, [c.vocabSize, d]);
  const wpe = get(tensorNames.positionEmbedding);
  const layers = Array.from({ length: c.nLayers }, (_, l) => {
    const n = tensorNames.gpt2Layer(l);
    return {
      ln1w: get(n.attnNorm, [d]),
      ln1b: get(n.attnNormBias, [d]),
      wqkv: get(n.wqkv, [3 * d, d]),
      bqkv: get(n.bqkv, [3 * d]),
      wo: get(n.wo, [d, d]),
      bo: get(n.bo, [d]),
      ln2w: get(n.ffnNorm, [d]),
      ln2b: get(n.ffnNormBias, [d]),
      wUp: get(n.wUp, [c.hiddenDim, d]),
      bUp: get(n.bUp, [c.hiddenDim]),
      wDown: get(n.wDown, [d, c.hiddenDim]),
      bDown: get(n.bDown, [d]),
    };
  });
  const lnfw = get(tensorNames.outputNorm, [d]);
  const lnfb = get(tensorNames.outputNormBias, [d]);
  const T = tokens.length;
  if (T > c.seqLen || T * d > wpe.length) throw new Error(`hf-forward: ${T} tokens exceed seqLen ${c.seqLen}`);
  let hidden: Float64Array[] = tokens.map((tok, p) => {
    if (!Number.isInteger(tok) || tok < 0 || tok >= c.vocabSize) throw new RangeError(`token ${tok} out of range`);
    const x = new Float64Array(d);
    for (let i = 0; i < d; i++) x[i] = wte[tok * d + i]! + wpe[p * d + i]!;
    return x;
  });
  for (const w of layers) {
    const qkv = hidden.map((h) => linear(w.wqkv, layerNorm(h, w.ln1w, w.ln1b, eps), 3 * d, d, w.bqkv));
    const next: Float64Array[] = [];
    for (let p = 0; p < T; p++) {
      const attn = new Float64Array(d);
      for (let h = 0; h < c.nHeads; h++) {
        const scores = new Float64Array(p + 1);
        for (let t = 0; t <= p; t++) {
          let s = 0;
          for (let i = 0; i < hs; i++) s += qkv[p]![h * hs + i]! * qkv[t]![d + h * hs + i]!;
          scores[t] = s / Math.sqrt(hs);
        }
        softmaxInPlace(scores);
        for (let t = 0; t <= p; t++) for (let i = 0; i < hs; i++) attn[h * hs + i]! += scores[t]! * qkv[t]![2 * d + h * hs + i]!;
      }
      const o = linear(w.wo, attn, d, d, w.bo);
      const h1 = hidden[p]!.map((x, i) => x + o[i]!);
      const up = linear(w.wUp, layerNorm(h1, w.ln2w, w.ln2b, eps), c.hiddenDim, d, w.bUp).map(geluNew);
      const down = linear(w.wDown, up, d, c.hiddenDim, w.bDown);
      next.push(h1.map((x, i) => x + down[i]!));
    }
    hidden = next;
  }
  const normed = hidden.map((h) => layerNorm(h, lnfw, lnfb, eps));
  return output === "hidden" ? normed.map((h) => Float32Array.from(h)) : normed.map((h) => Float32Array.from(linear(wte, h, c.vocabSize, d)));
}

/** Logits (vocabSize values) for every position of `tokens`, Hugging Face semantics. */
export function hfForward(model: ForwardModel, tokens: number[]): Float32Array[] {
  return forwardOutputs(model, tokens, "logits");
}

/** The final hidden state (dim values, after the final norm: the classifier's input) of every position of `tokens`. */
export function hfHidden(model: ForwardModel, tokens: number[]): Float32Array[] {
  return forwardOutputs(model, tokens, "hidden");
}

function forwardOutputs(model: ForwardModel, tokens: number[], output: Output): Float32Array[] {
  const c = model.config;
  if (c.architecture === "gpt2") return gpt2Forward(model, c, tokens, output);
  if (c.architecture === "llama") return llamaForward(model, c, tokens, output);
  throw new Error(`hf-forward: unsupported architecture ${(c as { architecture: string }).architecture}`);
}
