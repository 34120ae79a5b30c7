// The sampling controls beyond temperature and top_p (logit_bias, repetition_penalty,
// presence/frequency penalties, top_k, top_p, min_p) against plain references written from
// their definitions, in double precision; and log-probabilities against a plain log-softmax.

import { describe, expect, it } from "vitest";
import { logSumExp, tokenLogprob, topTokens } from "../../functions/runtime/logprobs";
import { Sampler, XorShift64Star, type SamplingControls, type SamplingHistory } from "../../functions/runtime/sampler";

const V = 64;

function randomLogits(seed: number, n = V, scale = 6): Float32Array {
  const rng = new XorShift64Star(seed + 1);
  return Float32Array.from({ length: n }, () => scale * (rng.nextF32() - 0.5));
}

function randomIds(seed: number, count: number, n = V): number[] {
  const rng = new XorShift64Star(seed + 1000);
  return Array.from({ length: count }, () => rng.nextU32() % n);
}

/** The definitions, one at a time. */
const reference = {
  bias(x: number[], bias: Map<number, number>): number[] {
    return x.map((v, i) => v + (bias.get(i) ?? 0));
  },
  /** Hugging Face's RepetitionPenaltyLogitsProcessor: every id seen in prompt + output, once. */
  repetition(x: number[], history: SamplingHistory, penalty: number): number[] {
    const seen = new Set([...history.prompt, ...history.generated]);
    return x.map((v, i) => (seen.has(i) ? (v < 0 ? v * penalty : v / penalty) : v));
  },
  /** OpenAI's: mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence, c over the output. */
  presenceFrequency(x: number[], generated: readonly number[], presence: number, frequency: number): number[] {
    return x.map((v, j) => {
      const c = generated.filter((t) => t === j).length;
      return v - c * frequency - (c > 0 ? 1 : 0) * presence;
    });
  },
  softmax(x: number[], temperature: number): number[] {
    const m = Math.max(...x.map((v) => v / temperature));
    const e = x.map((v) => Math.exp(v / temperature - m));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  },
  sortedIds(p: number[]): number[] {
    return p.map((_, i) => i).filter((i) => p[i] > 0).sort((a, b) => p[b] - p[a] || a - b);
  },
  topK(p: number[], k: number): number[] {
    const keep = new Set(reference.sortedIds(p).slice(0, k));
    return reference.normalize(p.map((v, i) => (keep.has(i) ? v : 0)));
  },
  /** The smallest most-likely-first prefix whose probability exceeds p (all of it if none does). */
  topP(p: number[], top: number): number[] {
    const ids = reference.sortedIds(p);
    const keep = new Set<number>();
    let cumulative = 0;
    for (const i of ids) {
      keep.add(i);
      cumulative += p[i];
      if (cumulative > top) break;
    }
    return reference.normalize(p.map((v, i) => (keep.has(i) ? v : 0)));
  },
  minP(p: number[], minP: number): number[] {
    const max = Math.max(...p);
    return reference.normalize(p.map((v) => (v >= minP * max ? v : 0)));
  },
  normalize(p: number[]): number[] {
    const z = p.reduce((a, b) => a + b, 0);
    return p.map((v) => v / z);
  },
  distribution(logits: Float32Array, history: SamplingHistory, temperature: number, topP: number, c: Partial<SamplingControls>): number[] {
    let x = [...logits];
    if (c.logitBias) x = reference.bias(x, c.logitBias as Map<number, number>);
    if (c.repetitionPenalty !== undefined) x = reference.repetition(x, history, c.repetitionPenalty);
    x = reference.presenceFrequency(x, history.generated, c.presencePenalty ?? 0, c.frequencyPenalty ?? 0);
    let p = reference.softmax(x, temperature);
    if (c.topK) p = reference.topK(p, c.topK);
    if (topP > 0 && topP < 1) p = reference.topP(p, topP);
    if (c.minP) p = reference.minP(p, c.minP);
    return p;
  },
};

function expectClose(actual: ArrayLike<number>, expected: number[], tol: number) {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThan(tol);
}

const configs: Array<[string, number, number, Partial<SamplingControls>]> = [
  ["logit_bias", 1, 1, { logitBias: new Map([[3, 5], [10, -100], [63, 2.5]]) }],
  ["repetition_penalty 1.3", 0.8, 1, { repetitionPenalty: 1.3 }],
  ["repetition_penalty 0.7 (encourages)", 1, 1, { repetitionPenalty: 0.7 }],
  ["presence_penalty", 1, 1, { presencePenalty: 1.5 }],
  ["frequency_penalty", 1.2, 1, { frequencyPenalty: 0.9 }],
  ["negative presence and frequency", 1, 1, { presencePenalty: -1, frequencyPenalty: -0.5 }],
  ["top_k 5", 1, 1, { topK: 5 }],
  ["top_k 1", 1.5, 1, { topK: 1 }],
  ["min_p 0.1", 1, 1, { minP: 0.1 }],
  ["top_k, top_p and min_p together", 0.9, 0.8, { topK: 20, minP: 0.05 }],
  ["everything", 0.7, 0.9, { topK: 12, minP: 0.02, presencePenalty: 0.4, frequencyPenalty: 0.3, repetitionPenalty: 1.1, logitBias: new Map([[0, 3]]) }],
];

describe("sampling controls against their definitions", () => {
  for (const [name, temperature, topP, controls] of configs) {
    it(`${name}: the distribution sampled from`, () => {
      for (let seed = 0; seed < 20; seed++) {
        const logits = randomLogits(seed);
        const history = { prompt: randomIds(seed, 10), generated: randomIds(seed + 50, 15) };
        const s = new Sampler(V, temperature, topP, 1, controls);
        expectClose(s.probabilities(logits, history), reference.distribution(logits, history, temperature, topP, controls), 2e-6);
      }
    });
  }

  it("samples in proportion to that distribution", () => {
    const logits = randomLogits(7, 8, 3);
    const history = { prompt: [1, 2], generated: [2, 2, 5] };
    const controls = { topK: 5, minP: 0.05, frequencyPenalty: 0.3, repetitionPenalty: 1.2 };
    const s = new Sampler(8, 1, 1, 99, controls);
    const want = reference.distribution(logits, history, 1, 1, controls);
    const counts = new Array(8).fill(0);
    const n = 30000;
    for (let i = 0; i < n; i++) counts[s.sample(logits, history)]++;
    counts.forEach((c, i) => expect(c / n, `token ${i}`).toBeCloseTo(want[i], 1.5));
    want.forEach((p, i) => {
      if (p === 0) expect(counts[i], `token ${i} is filtered out`).toBe(0);
    });
  });

  it("greedy takes the argmax of the adjusted logits", () => {
    for (let seed = 0; seed < 30; seed++) {
      const logits = randomLogits(seed);
      const history = { prompt: randomIds(seed, 5), generated: randomIds(seed + 9, 20) };
      const controls = { presencePenalty: 1, frequencyPenalty: 0.5, repetitionPenalty: 1.5, logitBias: new Map([[seed % V, 3]]), topK: 3 };
      let x = [...logits];
      x = reference.bias(x, controls.logitBias);
      x = reference.repetition(x, history, 1.5);
      x = reference.presenceFrequency(x, history.generated, 1, 0.5);
      const best = x.indexOf(Math.max(...x));
      expect(new Sampler(V, 0, 1, 1, controls).sample(logits, history)).toBe(best);
    }
  });

  it("a bias of +100 forces a token and -100 bans it", () => {
    const logits = randomLogits(3);
    const ban = new Sampler(V, 1, 1, 4, { logitBias: new Map([[logits.indexOf(Math.max(...logits)), -100]]) });
    const force = new Sampler(V, 1, 1, 4, { logitBias: new Map([[17, 100]]) });
    for (let i = 0; i < 500; i++) {
      expect(ban.sample(logits)).not.toBe(logits.indexOf(Math.max(...logits)));
      expect(force.sample(logits)).toBe(17);
    }
  });

  it("neutral controls leave run.c's choices and random numbers exactly as they were", () => {
    const neutral = { topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, logitBias: null };
    for (const [t, p] of [[0, 1], [1, 1], [0.8, 0.9]]) {
      const a = new Sampler(V, t, p, 42);
      const b = new Sampler(V, t, p, 42, neutral);
      for (let i = 0; i < 200; i++) {
        const logits = randomLogits(i);
        expect(b.sample(logits, { prompt: [1], generated: [i % V] })).toBe(a.sample(logits));
      }
      expect(b.rng.stateValue).toBe(a.rng.stateValue);
    }
  });

  it("penalties follow the history as it grows (and start over for a new one)", () => {
    const logits = new Float32Array(V);
    logits[5] = 1;
    const s = new Sampler(V, 0, 1, 1, { frequencyPenalty: 0.4 });
    const generated: number[] = [];
    const history = { prompt: [], generated };
    expect(s.sample(logits, history)).toBe(5);
    generated.push(5);
    expect(s.sample(logits, history)).toBe(5); // 1 - 0.4 > 0
    generated.push(5, 5);
    expect(s.sample(logits, history)).toBe(0); // 1 - 1.2 < 0: the first of the zeros wins
    expect(s.sample(logits, { prompt: [], generated: [] })).toBe(5);
  });

  it("a constraint masks before the choice and is told the token chosen", () => {
    const chosen: number[] = [];
    const constraint = {
      mask(x: Float32Array) {
        for (let i = 0; i < x.length; i++) if (i % 7 !== 3) x[i] = -Infinity;
      },
      advance(t: number) {
        chosen.push(t);
      },
    };
    for (const t of [0, 1]) {
      const s = new Sampler(V, t, 0.95, 5, { topK: t ? 4 : 0 }, constraint);
      for (let i = 0; i < 100; i++) {
        const token = s.sample(randomLogits(i));
        expect(token % 7).toBe(3);
        expect(chosen.at(-1)).toBe(token);
      }
    }
  });

  it("checks its arguments", () => {
    expect(() => new Sampler(V, 1, 1, 1, { topK: -1 })).toThrow(RangeError);
    expect(() => new Sampler(V, 1, 1, 1, { minP: 2 })).toThrow(RangeError);
    expect(() => new Sampler(V, 1, 1, 1, { repetitionPenalty: 0 })).toThrow(RangeError);
    expect(() => new Sampler(V, 1, 1, 1, { presencePenalty: NaN })).toThrow(RangeError);
  });
});

describe("log-probabilities", () => {
  it("are the log-softmax of the logits, with the top tokens most likely first", () => {
    for (let seed = 0; seed < 20; seed++) {
      const logits = randomLogits(seed, 500, 20);
      logits[seed] = logits[seed + 1]; // a tie
      const z = Math.log([...logits].reduce((a, v) => a + Math.exp(v), 0));
      expect(logSumExp(logits, 500)).toBeCloseTo(z, 9);
      const token = (seed * 37) % 500;
      for (const k of [0, 1, 5, 20]) {
        const lp = tokenLogprob(logits, 500, token, k);
        expect(lp.token).toBe(token);
        expect(lp.logprob).toBeCloseTo(logits[token] - z, 9);
        const want = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, k);
        expect(lp.top.map((t) => t.token)).toEqual(want);
        lp.top.forEach((t) => expect(t.logprob).toBeCloseTo(logits[t.token] - z, 9));
      }
    }
  });

  it("topTokens keeps the first of equal values and handles k past n", () => {
    expect(topTokens(Float32Array.of(1, 3, 3, 2), 4, 2)).toEqual([1, 2]);
    expect(topTokens(Float32Array.of(1, 3, 3, 2), 4, 10)).toEqual([1, 2, 3, 0]);
    expect(topTokens(Float32Array.of(-Infinity, 0), 2, 2)).toEqual([1, 0]);
  });
});
