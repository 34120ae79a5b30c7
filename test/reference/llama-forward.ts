// A plain f32 Llama forward pass that follows llama2.c run.c's forward() line for line, for
// checking faster implementations against. Every float operation is rounded to f32 where C
// would round it (Math.fround, or a Float32Array store); sums run in the same order as run.c's
// loops, so with the same weights it reproduces run.c's logits bit for bit except where libm
// (expf, powf, sinf, cosf) and JS Math differ in the last bit.
//
// Not fast, not clever, on purpose.

import type { ImportedTensor, LlamaConfig } from "../../functions/model/description";
import { headSize, kvDim, tensorNames } from "../../functions/model/description";
import { BOS_ID, type Llama2cTokenizer, runcPrintedBytes } from "../../functions/runtime/tokenizer/llama2c";
import type { ImportedModel } from "../../scripts/import/types";
import { indexTensors } from "../../scripts/import/types";

const f = Math.fround;

function rmsnorm(o: Float32Array, x: Float32Array, weight: Float32Array, size: number, eps: number): void {
  // calculate sum of squares
  let ss = 0;
  for (let j = 0; j < size; j++) ss = f(ss + f(x[j] * x[j]));
  ss = f(ss / size);
  ss = f(ss + eps);
  ss = f(1 / f(Math.sqrt(ss)));
  // normalize and scale
  for (let j = 0; j < size; j++) o[j] = f(weight[j] * f(ss * x[j]));
}

function softmax(x: Float32Array, offset: number, size: number): void {
  let maxVal = x[offset];
  for (let i = 1; i < size; i++) if (x[offset + i] > maxVal) maxVal = x[offset + i];
  let sum = 0;
  for (let i = 0; i < size; i++) {
    x[offset + i] = f(Math.exp(f(x[offset + i] - maxVal)));
    sum = f(sum + x[offset + i]);
  }
  for (let i = 0; i < size; i++) x[offset + i] = f(x[offset + i] / sum);
}

/** W (d,n) @ x (n,) -> xout (d,), W starting at wOffset. */
function matmul(xout: Float32Array, x: Float32Array, w: Float32Array, n: number, d: number, wOffset = 0): void {
  for (let i = 0; i < d; i++) {
    let val = 0;
    const row = wOffset + i * n;
    for (let j = 0; j < n; j++) val = f(val + f(w[row + j] * x[j]));
    xout[i] = val;
  }
}

interface LayerWeights {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  ffnNorm: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
}

/** One sequence's state: run.c's RunState plus the weights, fed one token at a time. */
export class ReferenceLlama {
  readonly config: LlamaConfig;
  private readonly embedding: Float32Array;
  private readonly layers: LayerWeights[];
  private readonly finalNorm: Float32Array;
  private readonly classifier: Float32Array;
  private readonly eps: number;
  // run state
  private readonly x: Float32Array;
  private readonly xb: Float32Array;
  private readonly xb2: Float32Array;
  private readonly hb: Float32Array;
  private readonly hb2: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly att: Float32Array;
  readonly logits: Float32Array;
  private readonly keyCache: Float32Array;
  private readonly valueCache: Float32Array;

  constructor(model: ImportedModel) {
    const t = indexTensors(model);
    const c = (this.config = model.config);
    if (c.ropeLayout !== "interleaved" && c.ropeLayout !== "half") throw new Error(`unknown ropeLayout ${c.ropeLayout}`);
    const get = (name: string): ImportedTensor => t.get(name)!;
    this.embedding = get(tensorNames.tokenEmbedding).data;
    this.layers = Array.from({ length: c.nLayers }, (_, l) => {
      const n = tensorNames.layer(l);
      return {
        attnNorm: get(n.attnNorm).data,
        wq: get(n.wq).data,
        wk: get(n.wk).data,
        wv: get(n.wv).data,
        wo: get(n.wo).data,
        ffnNorm: get(n.ffnNorm).data,
        w1: get(n.wGate).data,
        w2: get(n.wDown).data,
        w3: get(n.wUp).data,
      };
    });
    this.finalNorm = get(tensorNames.outputNorm).data;
    this.classifier = c.tiedEmbeddings ? this.embedding : get(tensorNames.output).data;
    this.eps = f(c.normEps);
    const kv = kvDim(c);
    this.x = new Float32Array(c.dim);
    this.xb = new Float32Array(c.dim);
    this.xb2 = new Float32Array(c.dim);
    this.hb = new Float32Array(c.hiddenDim);
    this.hb2 = new Float32Array(c.hiddenDim);
    this.q = new Float32Array(c.dim);
    this.k = new Float32Array(kv);
    this.v = new Float32Array(kv);
    this.att = new Float32Array(c.nHeads * c.seqLen);
    this.logits = new Float32Array(c.vocabSize);
    this.keyCache = new Float32Array(c.nLayers * c.seqLen * kv);
    this.valueCache = new Float32Array(c.nLayers * c.seqLen * kv);
  }

  /** Rotate q (all of it) and k (its first kvDim values) for position pos. */
  private rope(pos: number): void {
    const c = this.config;
    const dim = c.dim;
    const hs = headSize(c);
    const kv = kvDim(c);
    const theta = f(c.ropeTheta);
    const rotate = (vec: Float32Array, i0: number, i1: number, fcr: number, fci: number) => {
      const v0 = vec[i0];
      const v1 = vec[i1];
      vec[i0] = f(f(v0 * fcr) - f(v1 * fci));
      vec[i1] = f(f(v0 * fci) + f(v1 * fcr));
    };
    // the angle for dimension pair starting at head_dim (even) within a head, as run.c computes it
    const angle = (headDim: number) => {
      const freq = f(1 / f(Math.pow(theta, f(headDim / hs))));
      return f(pos * freq);
    };
    if (c.ropeLayout === "interleaved") {
      // run.c: pairs (i, i+1)
      for (let i = 0; i < dim; i += 2) {
        const val = angle(i % hs);
        const fcr = f(Math.cos(val));
        const fci = f(Math.sin(val));
        rotate(this.q, i, i + 1, fcr, fci);
        if (i < kv) rotate(this.k, i, i + 1, fcr, fci);
      }
    } else {
      // Hugging Face rotate_half: within each head, pairs (j, j + hs/2) use the frequency of
      // interleaved pair (2j, 2j+1)
      const half = hs / 2;
      for (let h = 0; h < c.nHeads; h++) {
        for (let j = 0; j < half; j++) {
          const val = angle(2 * j);
          const fcr = f(Math.cos(val));
          const fci = f(Math.sin(val));
          const i0 = h * hs + j;
          rotate(this.q, i0, i0 + half, fcr, fci);
          if (i0 < kv) rotate(this.k, i0, i0 + half, fcr, fci);
        }
      }
    }
  }

  /** run.c forward(): logits for the token at position pos (positions must come in order 0, 1, ...). */
  forward(token: number, pos: number): Float32Array {
    const c = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocabSize) throw new RangeError(`token ${token} out of range`);
    if (!Number.isInteger(pos) || pos < 0 || pos >= c.seqLen) throw new RangeError(`pos ${pos} out of range 0..${c.seqLen - 1}`);
    const { x, xb, xb2, hb, hb2, q, k, v, att } = this;
    const dim = c.dim;
    const kv = kvDim(c);
    const kvMul = c.nHeads / c.nKvHeads; // integer multiplier of the kv sharing in multiquery
    const hidden = c.hiddenDim;
    const hs = headSize(c);
    const sqrtHs = f(Math.sqrt(hs));

    // copy the token embedding into x
    x.set(this.embedding.subarray(token * dim, (token + 1) * dim));

    // forward all the layers
    for (let l = 0; l < c.nLayers; l++) {
      const w = this.layers[l];
      // attention rmsnorm
      rmsnorm(xb, x, w.attnNorm, dim, this.eps);

      // qkv matmuls for this position
      matmul(q, xb, w.wq, dim, dim);
      matmul(k, xb, w.wk, dim, kv);
      matmul(v, xb, w.wv, dim, kv);

      // RoPE relative positional encoding
      this.rope(pos);

      // save key, value at this time step (pos) to the kv cache
      const loff = l * c.seqLen * kv;
      this.keyCache.set(k, loff + pos * kv);
      this.valueCache.set(v, loff + pos * kv);

      // multihead attention, iterate over all heads
      for (let h = 0; h < c.nHeads; h++) {
        const qOff = h * hs;
        const attOff = h * c.seqLen;
        const kvHeadOff = Math.floor(h / kvMul) * hs;
        // iterate over all timesteps, including the current one
        for (let t = 0; t <= pos; t++) {
          const kOff = loff + t * kv + kvHeadOff;
          let score = 0;
          for (let i = 0; i < hs; i++) score = f(score + f(q[qOff + i] * this.keyCache[kOff + i]));
          score = f(score / sqrtHs);
          att[attOff + t] = score;
        }
        // softmax the scores to get attention weights, from 0..pos inclusively
        softmax(att, attOff, pos + 1);
        // weighted sum of the values, store back into xb
        const xbOff = h * hs;
        xb.fill(0, xbOff, xbOff + hs);
        for (let t = 0; t <= pos; t++) {
          const vOff = loff + t * kv + kvHeadOff;
          const a = att[attOff + t];
          for (let i = 0; i < hs; i++) xb[xbOff + i] = f(xb[xbOff + i] + f(a * this.valueCache[vOff + i]));
        }
      }

      // final matmul to get the output of the attention
      matmul(xb2, xb, w.wo, dim, dim);
      // residual connection back into x
      for (let i = 0; i < dim; i++) x[i] = f(x[i] + xb2[i]);

      // ffn rmsnorm
      rmsnorm(xb, x, w.ffnNorm, dim, this.eps);
      // w2(silu(w1(x)) * w3(x))
      matmul(hb, xb, w.w1, dim, hidden);
      matmul(hb2, xb, w.w3, dim, hidden);
      // SwiGLU: silu(x) = x * sigmoid(x), times w3(x)
      for (let i = 0; i < hidden; i++) {
        let val = hb[i];
        val = f(val * f(1 / f(1 + f(Math.exp(-val)))));
        val = f(val * hb2[i]);
        hb[i] = val;
      }
      // final matmul to get the output of the ffn
      matmul(xb, hb, w.w2, hidden, dim);
      // residual connection
      for (let i = 0; i < dim; i++) x[i] = f(x[i] + xb[i]);
    }

    // final rmsnorm
    rmsnorm(x, x, this.finalNorm, dim, this.eps);
    // classifier into logits
    matmul(this.logits, x, this.classifier, dim, c.vocabSize);
    return this.logits;
  }
}

/** run.c's sample_argmax: index of the first maximum. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

export interface GenerationResult {
  /** encode(prompt, {bos: true, eos: false}): BOS then the prompt tokens. */
  promptTokens: number[];
  /**
   * Every token run.c's generate loop emits after the initial BOS: the remaining prompt tokens,
   * then the chosen ones. The terminating BOS is not included.
   */
  tokens: number[];
  /** True if generation stopped because the model produced BOS (id 1). */
  stoppedAtBos: boolean;
  /** The tokens as UTF-8 text, decoded as run.c decodes (leading space dropped after BOS). */
  text: string;
  /** The exact bytes run.c prints on stdout, without its final "\n" (safe_printf filtering). */
  printed: Uint8Array;
}

/** Anything that picks the next token from logits (e.g. functions/runtime/sampler.ts's Sampler). */
export interface TokenChooser {
  sample(logits: Float32Array): number;
}

/**
 * run.c's generate(): encode the prompt with BOS, feed BOS and the prompt tokens, then let
 * `chooser` pick; stop at BOS (id 1) or after `steps` positions (0, negative or more than
 * seq_len means seq_len, as in run.c).
 */
export function generateReference(
  model: ImportedModel,
  tokenizer: Llama2cTokenizer,
  promptText: string,
  steps: number,
  chooser: TokenChooser,
): GenerationResult {
  const llama = new ReferenceLlama(model);
  const seqLen = model.config.seqLen;
  if (steps <= 0 || steps > seqLen) steps = seqLen;
  const promptTokens = tokenizer.encode(promptText, { bos: true, eos: false });
  const tokens: number[] = [];
  const printedParts: Uint8Array[] = [];
  let stoppedAtBos = false;
  let token = promptTokens[0];
  let pos = 0;
  while (pos < steps) {
    const logits = llama.forward(token, pos);
    // still in the prompt: force the next prompt token; otherwise choose
    const next = pos < promptTokens.length - 1 ? promptTokens[pos + 1] : chooser.sample(logits);
    pos++;
    // data-dependent terminating condition: the BOS token delimits sequences
    if (next === BOS_ID) {
      stoppedAtBos = true;
      break;
    }
    tokens.push(next);
    printedParts.push(runcPrintedBytes(tokenizer.decodePiece(token, next)));
    token = next;
  }
  const printed = new Uint8Array(printedParts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of printedParts) {
    printed.set(p, o);
    o += p.length;
  }
  return { promptTokens, tokens, stoppedAtBos, text: tokenizer.decode(tokens, promptTokens[0]), printed };
}

/** run.c's generate() at temperature 0 (argmax, first maximum). */
export function generateGreedyReference(
  model: ImportedModel,
  tokenizer: Llama2cTokenizer,
  promptText: string,
  steps: number,
): GenerationResult {
  return generateReference(model, tokenizer, promptText, steps, { sample: argmax });
}
