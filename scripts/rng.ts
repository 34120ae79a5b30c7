// A small seeded random number generator (mulberry32) for reproducible test data, in tests and
// in the checks against ggml: uniform [0, 1), standard normal, integers, f32 arrays.

export interface Rng {
  next(): number;
  normal(): number;
  int(n: number): number;
  f32(n: number, sd?: number): Float32Array;
}

export function rng(seed: number): Rng {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return {
    next,
    normal,
    int: (n: number) => Math.floor(next() * n),
    f32: (n: number, sd = 1) => Float32Array.from({ length: n }, () => normal() * sd),
  };
}
