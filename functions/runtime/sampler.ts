// Token sampling with llama2.c run.c's semantics and RNG, so a seed reproduces run.c's choices.
// Worker-safe (no Node APIs).
//
// sample(logits): temperature 0 -> argmax (first maximum). Otherwise logits / temperature,
// softmax (f32, as run.c), draw one f32 coin from xorshift64*, then topP <= 0 or >= 1 ->
// multinomial over all tokens, else run.c's sample_topp (nucleus).

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
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (probabilities[i] >= cutoff) candidates.push(i);
  candidates.sort((a, b) => probabilities[b] - probabilities[a] || a - b);

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

export class Sampler {
  readonly rng: XorShift64Star;
  private readonly temperature: number;
  private readonly topP: number;
  private readonly probs: Float32Array;

  /**
   * temperature >= 0 (0 = greedy); topP in (0, 1) enables nucleus sampling, any other value
   * samples from the full distribution; seed as for XorShift64Star (0 -> fixed constant).
   */
  constructor(
    readonly vocabSize: number,
    temperature: number,
    topP: number,
    seed: number | bigint,
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new RangeError(`vocabSize must be a positive integer, got ${vocabSize}`);
    if (!(temperature >= 0)) throw new RangeError(`temperature must be >= 0, got ${temperature}`);
    if (Number.isNaN(topP)) throw new RangeError("topP is NaN");
    this.temperature = Math.fround(temperature); // run.c keeps both as float
    this.topP = Math.fround(topP);
    this.rng = new XorShift64Star(seed);
    this.probs = new Float32Array(vocabSize);
  }

  /** Pick the next token. `logits` is not modified (run.c works in place; we use a copy). */
  sample(logits: Float32Array): number {
    const n = this.vocabSize;
    if (logits.length < n) throw new RangeError(`expected ${n} logits, got ${logits.length}`);
    if (this.temperature === 0) return sampleArgmax(logits, n);
    const probs = this.probs;
    for (let i = 0; i < n; i++) probs[i] = logits[i] / this.temperature;
    softmaxF32(probs, n);
    const coin = this.rng.nextF32();
    if (this.topP <= 0 || this.topP >= 1) return sampleMult(probs, n, coin);
    return sampleTopP(probs, n, this.topP, coin);
  }
}
