// Token sampling with llama2.c run.c's semantics and RNG, so a seed reproduces run.c's choices.
// Worker-safe (no Node APIs).
//
// sample(logits): temperature 0 -> argmax (first maximum). Otherwise logits / temperature,
// softmax (f32, as run.c), draw one f32 coin from xorshift64*, then topP <= 0 or >= 1 ->
// multinomial over all tokens, else run.c's sample_topp (nucleus).
//
// The controls other OpenAI-compatible servers take come before that, in this order (each is
// off at its neutral value, and with all of them off the choice is exactly run.c's):
//   logit_bias (added), repetition_penalty (Hugging Face: over the prompt and the tokens
//   generated so far, a positive logit divided by it, a negative one multiplied),
//   presence_penalty / frequency_penalty (OpenAI: over the generated tokens, logit -= presence *
//   [count > 0] + frequency * count), a constraint's mask (tokens it forbids get -Infinity);
//   then temperature; then top_k (the k most likely), top_p (the nucleus) and min_p (tokens at
//   least min_p times the most likely one), each filtering what the previous one kept.

const MASK64 = (1n << 64n) - 1n;
const XORSHIFT_MULTIPLIER = 0x2545f4914f6cdd1dn;

/**
 * xorshift64* never leaves state 0, so seed 0 (run.c would use time(NULL) instead, which is
 * not reproducible) is replaced by this fixed constant (the 64-bit golden ratio).
 */
export const ZERO_SEED_REPLACEMENT = 0x9e3779b97f4a7c15n;

/** run.c's RNG: xorshift64* on an unsigned 64-bit state, exact (BigInt). */
export class XorShift64Star {
  private state: bigint;

  /**
   * A number seed must be an integer; like C's conversion to unsigned long long, negative
   * seeds wrap modulo 2^64. Seed 0 becomes ZERO_SEED_REPLACEMENT.
   */
  constructor(seed: number | bigint) {
    if (typeof seed === "number" && !Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
    const s = BigInt.asUintN(64, BigInt(seed));
    this.state = s === 0n ? ZERO_SEED_REPLACEMENT : s;
  }

  /** random_u32(): one xorshift step, then the high 32 bits of state * 0x2545F4914F6CDD1D. */
  nextU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s ^= (s << 25n) & MASK64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * XORSHIFT_MULTIPLIER) & MASK64) >> 32n);
  }

  /** random_f32(): (u32 >> 8) / 2^24, an f32 in [0, 1). */
  nextF32(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** The current 64-bit state (for tests and checkpointing a generation). */
  get stateValue(): bigint {
    return this.state;
  }
}

/** Index of the first maximum (run.c's sample_argmax). */
export function sampleArgmax(probabilities: ArrayLike<number>, n: number): number {
  let maxI = 0;
  let maxP = probabilities[0];
  for (let i = 1; i < n; i++) {
    if (probabilities[i] > maxP) {
      maxI = i;
      maxP = probabilities[i];
    }
  }
  return maxI;
}

/** run.c's sample_mult: first index whose f32 running sum exceeds coin (n - 1 if none). */
export function sampleMult(probabilities: ArrayLike<number>, n: number, coin: number): number {
  const f = Math.fround;
  let cdf = 0;
  for (let i = 0; i < n; i++) {
    cdf = f(cdf + probabilities[i]);
    if (coin < cdf) return i;
  }
  return n - 1;
}

/**
 * run.c's sample_topp. Candidates below (1 - topp) / (n - 1) are dropped first (they can never
 * be in the nucleus), the rest sorted by descending probability (equal probabilities by
 * ascending index: C's qsort leaves their order unspecified), the list cut after the first
 * entry where the f32 cumulative probability exceeds topp, then sampled with coin * cumulative.
 */
export function sampleTopP(probabilities: ArrayLike<number>, n: number, topp: number, coin: number): number {
  const f = Math.fround;
  const p = f(topp);
  const cutoff = f(f(1 - p) / (n - 1));
  const candidates = probabilities instanceof Float32Array && n <= INDEX_SPAN ? sortedByKeys(probabilities, n, cutoff) : sortedByComparator(probabilities, n, cutoff);

  let cumulative = 0;
  let last = candidates.length - 1; // rounding errors: consider everything
  for (let i = 0; i < candidates.length; i++) {
    cumulative = f(cumulative + probabilities[candidates[i]]);
    if (cumulative > p) {
      last = i;
      break;
    }
  }
  const r = f(coin * cumulative);
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf = f(cdf + probabilities[candidates[i]]);
    if (r < cdf) return candidates[i];
  }
  return candidates[last];
}

function sortedByComparator(probabilities: ArrayLike<number>, n: number, cutoff: number): ArrayLike<number> {
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (probabilities[i] >= cutoff) candidates.push(i);
  return candidates.sort((a, b) => probabilities[b] - probabilities[a] || a - b);
}

const INDEX_SPAN = 1 << 21;

/**
 * The same order as sortedByComparator, for f32 probabilities, by a native numeric sort: each
 * candidate is one exact f64 key, its probability's bits (positive floats order as their bits)
 * times 2^21 plus its index reversed, so equal probabilities keep ascending indices. 10x faster
 * on a flat 32,000-token distribution, where nearly every token is a candidate.
 */
function sortedByKeys(probabilities: Float32Array, n: number, cutoff: number): ArrayLike<number> {
  const bits = new Uint32Array(probabilities.buffer, probabilities.byteOffset, n);
  const keys = new Float64Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) if (probabilities[i] >= cutoff) keys[count++] = bits[i] * INDEX_SPAN + (INDEX_SPAN - 1 - i);
  const sorted = keys.subarray(0, count).sort();
  const candidates = new Int32Array(count);
  for (let j = 0; j < count; j++) {
    const key = sorted[count - 1 - j];
    candidates[j] = INDEX_SPAN - 1 - (key - Math.floor(key / INDEX_SPAN) * INDEX_SPAN);
  }
  return candidates;
}

/** In-place f32 softmax over x[0..size), as run.c computes it. */
export function softmaxF32(x: Float32Array, size: number): void {
  const f = Math.fround;
  let max = x[0];
  for (let i = 1; i < size; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < size; i++) {
    x[i] = Math.exp(f(x[i] - max));
    sum = f(sum + x[i]);
  }
  for (let i = 0; i < size; i++) x[i] = x[i] / sum;
}

/** The sampling controls beyond temperature and top_p; every field off at its neutral value. */
export interface SamplingControls {
  /** Keep the k most likely tokens; 0 keeps all. */
  topK: number;
  /** Keep tokens whose probability is at least minP times the largest; 0 keeps all. */
  minP: number;
  /** OpenAI's: subtracted once from the logit of every token generated so far. */
  presencePenalty: number;
  /** OpenAI's: subtracted per occurrence of a token among those generated so far. */
  frequencyPenalty: number;
  /** Hugging Face's: > 1 discourages tokens of the prompt and the output so far; 1 is off. */
  repetitionPenalty: number;
  /** token id -> value added to its logit. */
  logitBias: ReadonlyMap<number, number> | null;
}

export const NEUTRAL_CONTROLS: SamplingControls = Object.freeze({
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: null,
});

/** What a sequence has seen so far: the penalties read it (both lists only ever grow). */
export interface SamplingHistory {
  prompt: readonly number[];
  generated: readonly number[];
  /** Tokens the generation may still produce, this one included (a constraint steers by it). */
  readonly remaining?: number;
}

const NO_HISTORY: SamplingHistory = Object.freeze({ prompt: [], generated: [] });

/**
 * Restricts the tokens that may come next (structured output). `mask` sets the logit of every
 * forbidden token to -Infinity (`remaining`: tokens left, this one included); `advance` is
 * told the token chosen. At least one token must stay allowed.
 */
export interface TokenConstraint {
  mask(logits: Float32Array, remaining?: number): void;
  advance(token: number): void;
}

export class Sampler {
  readonly rng: XorShift64Star;
  private readonly temperature: number;
  private readonly topP: number;
  private readonly probs: Float32Array;
  private readonly controls: SamplingControls;
  /** Whether any control beyond temperature / top_p is on (else: run.c's path, untouched). */
  private readonly transforms: boolean;
  private readonly filters: boolean;
  private readonly work: Float32Array | null;
  /** Occurrences of each generated token, and of prompt + generated (for repetition_penalty). */
  private readonly generatedCounts = new Map<number, number>();
  private readonly seen = new Set<number>();
  private countedPrompt = 0;
  private countedGenerated = 0;

  /**
   * temperature >= 0 (0 = greedy); topP in (0, 1) enables nucleus sampling, any other value
   * samples from the full distribution; seed as for XorShift64Star (0 -> fixed constant).
   */
  constructor(
    readonly vocabSize: number,
    temperature: number,
    topP: number,
    seed: number | bigint,
    controls: Partial<SamplingControls> = {},
    readonly constraint: TokenConstraint | null = null,
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
    if (!(temperature >= 0)) throw new RangeError(`temperature must be >= 0, got ${temperature}`);
    if (Number.isNaN(topP)) throw new RangeError("topP is NaN");
    this.temperature = Math.fround(temperature); // run.c keeps both as float
    this.topP = Math.fround(topP);
    this.rng = new XorShift64Star(seed);
    this.probs = new Float32Array(vocabSize);
    const c = (this.controls = { ...NEUTRAL_CONTROLS, ...controls });
    if (!(c.topK >= 0) || !Number.isInteger(c.topK)) throw new RangeError(`topK must be a non-negative integer, got ${c.topK}`);
    if (!(c.minP >= 0 && c.minP <= 1)) throw new RangeError(`minP must be in [0, 1], got ${c.minP}`);
    if (!(c.repetitionPenalty > 0)) throw new RangeError(`repetitionPenalty must be > 0, got ${c.repetitionPenalty}`);
    if (!Number.isFinite(c.presencePenalty) || !Number.isFinite(c.frequencyPenalty)) throw new RangeError("penalties must be finite");
    this.filters = (c.topK > 0 && c.topK < vocabSize) || c.minP > 0;
    this.transforms =
      this.filters || c.presencePenalty !== 0 || c.frequencyPenalty !== 0 || c.repetitionPenalty !== 1 || (c.logitBias?.size ?? 0) > 0 || constraint !== null;
    this.work = this.transforms ? new Float32Array(vocabSize) : null;
  }

  /**
   * Picks the next token (and tells the constraint, if any). `logits` is not modified (run.c
   * works in place; we use a copy). `history` is what the penalties look at.
   */
  sample(logits: Float32Array, history: SamplingHistory = NO_HISTORY): number {
    const n = this.vocabSize;
    if (logits.length < n) throw new RangeError(`expected ${n} logits, got ${logits.length}`);
    let token: number;
    if (!this.transforms) {
      token = this.pick(logits);
    } else {
      const x = this.work!;
      x.set(logits.subarray(0, n));
      this.adjustLogits(x, history);
      token = this.filters && this.temperature !== 0 ? this.pickFiltered(x) : this.pick(x);
    }
    this.constraint?.advance(token);
    return token;
  }

  /** run.c's choice from these logits: argmax, multinomial or nucleus. */
  private pick(logits: Float32Array): number {
    const n = this.vocabSize;
    if (this.temperature === 0) return sampleArgmax(logits, n);
    const probs = this.probs;
    for (let i = 0; i < n; i++) probs[i] = logits[i] / this.temperature;
    softmaxF32(probs, n);
    const coin = this.rng.nextF32();
    if (this.topP <= 0 || this.topP >= 1) return sampleMult(probs, n, coin);
    return sampleTopP(probs, n, this.topP, coin);
  }

  /** With top_k or min_p: the explicit filtered distribution, then one coin over it. */
  private pickFiltered(logits: Float32Array): number {
    const probs = this.probs;
    this.distributionOf(logits, probs);
    return sampleMult(probs, this.vocabSize, this.rng.nextF32());
  }

  /**
   * The logits after logit_bias, the penalties and the constraint's mask, in place (the step
   * before temperature). Exported through `probabilities` for tests.
   */
  adjustLogits(x: Float32Array, history: SamplingHistory): void {
    const c = this.controls;
    if (c.logitBias) for (const [id, bias] of c.logitBias) if (id < this.vocabSize) x[id] += bias;
    if (c.repetitionPenalty !== 1 || c.presencePenalty !== 0 || c.frequencyPenalty !== 0) this.count(history);
    if (c.repetitionPenalty !== 1) {
      const p = c.repetitionPenalty;
      for (const id of this.seen) if (id < this.vocabSize) x[id] = x[id] < 0 ? x[id] * p : x[id] / p;
    }
    if (c.presencePenalty !== 0 || c.frequencyPenalty !== 0) {
      for (const [id, count] of this.generatedCounts) if (id < this.vocabSize) x[id] -= c.presencePenalty + c.frequencyPenalty * count;
    }
    this.constraint?.mask(x, history.remaining);
  }

  /**
   * The distribution a non-greedy sample is drawn from, given adjusted logits: softmax at the
   * temperature, then top_k, top_p and min_p, renormalized. Written into `out`.
   */
  distributionOf(logits: Float32Array, out: Float32Array): void {
    const n = this.vocabSize;
    const { topK, minP } = this.controls;
    for (let i = 0; i < n; i++) out[i] = logits[i] / this.temperature;
    softmaxF32(out, n);
    let keep = n;
    if ((topK > 0 && topK < n) || (this.topP > 0 && this.topP < 1)) {
      // indices by descending probability (ties: lower index first), cut at k and at the nucleus
      const order = nonZeroOrder(out, n);
      keep = order.length;
      if (topK > 0 && topK < keep) keep = topK;
      if (this.topP > 0 && this.topP < 1) {
        let kept = 0;
        for (let i = 0; i < keep; i++) kept += out[order[i]];
        let cumulative = 0;
        for (let i = 0; i < keep; i++) {
          cumulative += out[order[i]] / kept;
          if (cumulative > this.topP) {
            keep = i + 1;
            break;
          }
        }
      }
      for (let i = keep; i < order.length; i++) out[order[i]] = 0;
    }
    if (minP > 0) {
      let max = 0;
      for (let i = 0; i < n; i++) if (out[i] > max) max = out[i];
      const floor = minP * max;
      for (let i = 0; i < n; i++) if (out[i] < floor) out[i] = 0;
    }
    let sum = 0;
    for (let i = 0; i < n; i++) sum += out[i];
    for (let i = 0; i < n; i++) out[i] /= sum;
  }

  /** For tests: the final distribution (one-hot at the argmax for temperature 0). No coin drawn; no constraint step. */
  probabilities(logits: Float32Array, history: SamplingHistory = NO_HISTORY): Float32Array {
    const x = logits.slice(0, this.vocabSize);
    this.adjustLogits(x, history);
    const out = new Float32Array(this.vocabSize);
    if (this.temperature === 0) out[sampleArgmax(x, this.vocabSize)] = 1;
    else this.distributionOf(x, out);
    return out;
  }

  /** Brings the occurrence counts up to `history` (which only grows). */
  private count(history: SamplingHistory): void {
    if (history.prompt.length < this.countedPrompt || history.generated.length < this.countedGenerated) {
      this.generatedCounts.clear();
      this.seen.clear();
      this.countedPrompt = this.countedGenerated = 0;
    }
    for (let i = this.countedPrompt; i < history.prompt.length; i++) this.seen.add(history.prompt[i]);
    for (let i = this.countedGenerated; i < history.generated.length; i++) {
      const id = history.generated[i];
      this.seen.add(id);
      this.generatedCounts.set(id, (this.generatedCounts.get(id) ?? 0) + 1);
    }
    this.countedPrompt = history.prompt.length;
    this.countedGenerated = history.generated.length;
  }
}

/** Indices of the non-zero probabilities, most likely first (equal ones by ascending index). */
function nonZeroOrder(p: Float32Array, n: number): number[] {
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (p[i] > 0) order.push(i);
  order.sort((a, b) => p[b] - p[a] || a - b);
  return order;
}
