import { describe, expect, it } from "vitest";
import { Sampler, sampleArgmax, sampleMult, sampleTopP, softmaxF32, XorShift64Star, ZERO_SEED_REPLACEMENT } from "../../functions/runtime/sampler";

// Outputs of run.c's random_u32 / random_f32 (compiled C) for these seeds.
const runcRandom = {
  seed42: { u32: [1456360119, 3359763283, 3393612768, 4054632243, 3283045847], f32: 0.835739851, state: 13894433480154566335n },
  seed1: { u32: [1206177355, 2882512552, 3117485455, 1303648416, 241277360], f32: 0.782826126, state: 12683848079143609325n },
  seedMax: { u32: [4180462053, 2415166680, 879531507, 3310800028, 1814914367], f32: 0.865830123, state: 10883754037072287738n },
};

const logitsFromProbs = (p: number[]) => Float32Array.from(p, Math.log);

describe("XorShift64Star (run.c random_u32 / random_f32)", () => {
  it.each([
    ["seed42", 42],
    ["seed1", 1n],
    ["seedMax", (1n << 64n) - 1n],
  ] as const)("reproduces run.c's sequence for %s", (key, seed) => {
    const rng = new XorShift64Star(seed);
    const want = runcRandom[key];
    expect(Array.from({ length: 5 }, () => rng.nextU32())).toEqual(want.u32);
    expect(rng.nextF32()).toBe(Math.fround(want.f32));
    expect(rng.stateValue).toBe(want.state);
  });

  it("wraps negative seeds modulo 2^64 like C's conversion to unsigned long long", () => {
    expect(new XorShift64Star(-7).nextU32()).toBe(777871233);
    expect(new XorShift64Star(-7).stateValue).toBe((1n << 64n) - 7n);
  });

  it("maps seed 0 to a fixed nonzero constant", () => {
    const zero = new XorShift64Star(0);
    expect(zero.stateValue).toBe(ZERO_SEED_REPLACEMENT);
    const same = new XorShift64Star(ZERO_SEED_REPLACEMENT);
    expect(Array.from({ length: 4 }, () => zero.nextU32())).toEqual(Array.from({ length: 4 }, () => same.nextU32()));
  });

  it("gives f32 values in [0, 1) on a 2^-24 grid", () => {
    const rng = new XorShift64Star(123);
    for (let i = 0; i < 1000; i++) {
      const x = rng.nextF32();
      expect(x >= 0 && x < 1).toBe(true);
      expect(Number.isInteger(x * 16777216)).toBe(true);
    }
  });

  it("rejects non-integer seeds", () => {
    expect(() => new XorShift64Star(1.5)).toThrow(RangeError);
  });
});

describe("Sampler", () => {
  const vocab = 50;
  const randomLogits = (seed: number) => {
    const rng = new XorShift64Star(seed);
    return Float32Array.from({ length: vocab }, () => 4 * rng.nextF32() - 2);
  };

  it("temperature 0 is argmax, first maximum on ties, and draws no random numbers", () => {
    const s = new Sampler(5, 0, 0.9, 1);
    expect(s.sample(Float32Array.of(0.1, 3, -1, 3, 2))).toBe(1);
    expect(s.sample(Float32Array.of(-5, -4, -3, -2, -1))).toBe(4);
    expect(s.rng.stateValue).toBe(1n);
    expect(sampleArgmax(Float32Array.of(2, 2, 2), 3)).toBe(0);
  });

  it("same seed, same choices; different seed, different choices", () => {
    for (const topP of [0.9, 1, 0]) {
      const run = (seed: number) => {
        const s = new Sampler(vocab, 1, topP, seed);
        return Array.from({ length: 200 }, (_, i) => s.sample(randomLogits(i)));
      };
      expect(run(7)).toEqual(run(7));
      expect(run(7)).not.toEqual(run(8));
    }
  });

  it("does not modify the caller's logits", () => {
    const logits = randomLogits(3);
    const copy = logits.slice();
    new Sampler(vocab, 0.7, 0.9, 5).sample(logits);
    expect([...logits]).toEqual([...copy]);
  });

  it("draws exactly one random number per non-greedy sample (as run.c does)", () => {
    for (const topP of [0.5, 1]) {
      const s = new Sampler(vocab, 1, topP, 99);
      const rng = new XorShift64Star(99);
      for (let i = 0; i < 10; i++) {
        s.sample(randomLogits(i));
        rng.nextU32();
      }
      expect(s.rng.stateValue).toBe(rng.stateValue);
    }
  });

  it("top-p never leaves the nucleus and samples it in proportion", () => {
    // p = .5 .3 .1 .05 .05; top-p .7: cumulative .5, .8 > .7, so the nucleus is {0, 1}
    const logits = logitsFromProbs([0.5, 0.3, 0.1, 0.05, 0.05]);
    const s = new Sampler(5, 1, 0.7, 2024);
    const counts = [0, 0, 0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) counts[s.sample(logits)]++;
    expect(counts.slice(2)).toEqual([0, 0, 0]);
    expect(counts[0] / n).toBeCloseTo(0.5 / 0.8, 1.5);
    // top-p .85 lets in token 2 too, still never 3 or 4
    const s2 = new Sampler(5, 1, 0.85, 2024);
    const counts2 = [0, 0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts2[s2.sample(logits)]++;
    expect(counts2[2]).toBeGreaterThan(0);
    expect(counts2[3] + counts2[4]).toBe(0);
    expect(counts2[2] / n).toBeCloseTo(0.1 / 0.9, 1.5);
  });

  it("top-p <= 0 or >= 1 samples the whole distribution", () => {
    const probs = [0.5, 0.3, 0.1, 0.05, 0.05];
    for (const topP of [0, 1, -1, 2]) {
      const s = new Sampler(5, 1, topP, 31337);
      const counts = [0, 0, 0, 0, 0];
      const n = 40000;
      for (let i = 0; i < n; i++) counts[s.sample(logitsFromProbs(probs))]++;
      counts.forEach((c, i) => expect(c / n, `topP ${topP} token ${i}`).toBeCloseTo(probs[i], 1.5));
    }
  });

  it("temperature sharpens and flattens", () => {
    const logits = logitsFromProbs([0.6, 0.4]);
    const share0 = (t: number) => {
      const s = new Sampler(2, t, 1, 5);
      let c = 0;
      for (let i = 0; i < 20000; i++) if (s.sample(logits) === 0) c++;
      return c / 20000;
    };
    // p0 at temperature t is 0.6^(1/t) / (0.6^(1/t) + 0.4^(1/t))
    const want = (t: number) => 0.6 ** (1 / t) / (0.6 ** (1 / t) + 0.4 ** (1 / t));
    expect(share0(0.5)).toBeCloseTo(want(0.5), 1.5);
    expect(share0(2)).toBeCloseTo(want(2), 1.5);
  });

  it("validates its arguments", () => {
    expect(() => new Sampler(0, 1, 0.9, 1)).toThrow(RangeError);
    expect(() => new Sampler(10, -0.5, 0.9, 1)).toThrow(RangeError);
    expect(() => new Sampler(10, 1, NaN, 1)).toThrow(RangeError);
    expect(() => new Sampler(10, 1, 0.9, 1).sample(new Float32Array(5))).toThrow(RangeError);
  });
});

describe("run.c sampling helpers", () => {
  it("sampleMult walks the f32 cdf", () => {
    const p = Float32Array.of(0.25, 0.25, 0.5);
    expect(sampleMult(p, 3, 0)).toBe(0);
    expect(sampleMult(p, 3, 0.2499)).toBe(0);
    expect(sampleMult(p, 3, 0.25)).toBe(1);
    expect(sampleMult(p, 3, 0.75)).toBe(2);
    expect(sampleMult(Float32Array.of(0.1, 0.1), 2, 0.9)).toBe(1); // rounding fallback: last index
  });

  it("sampleTopP cuts where the cumulative probability first exceeds topp", () => {
    const p = Float32Array.of(0.05, 0.5, 0.3, 0.15);
    // sorted: 1 (.5), 2 (.3), 3 (.15), 0 (.05); topp .6 -> {1, 2}, cumulative .8
    expect(sampleTopP(p, 4, 0.6, 0)).toBe(1);
    expect(sampleTopP(p, 4, 0.6, 0.62)).toBe(1); // r = .62 * .8 = .496 < .5
    expect(sampleTopP(p, 4, 0.6, 0.63)).toBe(2); // r = .504
    expect(sampleTopP(p, 4, 0.6, 0.9999)).toBe(2);
  });

  it("softmaxF32 matches a double-precision softmax closely and sums to ~1", () => {
    const x = Float32Array.of(1, 2, 3, -10, 0.5);
    const want = [...x].map((v) => Math.exp(v - 3));
    const z = want.reduce((a, b) => a + b, 0);
    softmaxF32(x, 5);
    x.forEach((v, i) => expect(v).toBeCloseTo(want[i] / z, 6));
  });
});

describe("sampleTopP's sort", () => {
  it("orders f32 probabilities exactly as the comparator does (descending, ties by ascending index), on flat, peaked and tied distributions", () => {
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const [n, shape] of [[32000, "flat"], [32000, "peaked"], [500, "ties"], [7, "ties"]] as const) {
      for (let trial = 0; trial < 4; trial++) {
        const logits = Float32Array.from({ length: n }, () => (shape === "flat" ? rand() * 0.1 : shape === "peaked" ? rand() * 12 : Math.floor(rand() * 4)));
        softmaxF32(logits, n);
        for (const topp of [0.5, 0.9, 0.99]) {
          for (const coin of [0, 0.3, 0.77, 0.9999]) {
            expect(sampleTopP(logits, n, topp, coin)).toBe(sampleTopP(Array.from(logits), n, topp, coin));
          }
        }
      }
    }
  });
});
