// Timing helpers: warm-up, repetitions, medians. The machines are shared and noisy, so every
// figure is the median of several repetitions after warm-up runs.

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Relative spread of the middle half of xs: (q3 - q1) / median, a noise indicator. */
export function iqrRatio(xs: number[]): number {
  if (xs.length < 4) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
  return (q(0.75) - q(0.25)) / median(xs);
}

export interface TimingOptions {
  warmup: number;
  reps: number;
  /** Keep repeating (up to 4x reps) until this much time has been spent measuring. */
  minMs?: number;
}

/** Median wall time (ms) of `fn` over `reps` runs after `warmup` runs. */
export function timeSync(fn: () => void, o: TimingOptions): { ms: number; samples: number[] } {
  for (let i = 0; i < o.warmup; i++) fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < o.reps || (o.minMs !== undefined && performance.now() - start < o.minMs && samples.length < 4 * o.reps)) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  return { ms: median(samples), samples };
}

export async function timeAsync(fn: () => Promise<unknown>, o: TimingOptions): Promise<{ ms: number; samples: number[] }> {
  for (let i = 0; i < o.warmup; i++) await fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < o.reps || (o.minMs !== undefined && performance.now() - start < o.minMs && samples.length < 4 * o.reps)) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return { ms: median(samples), samples };
}

/** Deterministic uniform numbers in [-1, 1) (LCG), for inputs whose values do not matter. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}
