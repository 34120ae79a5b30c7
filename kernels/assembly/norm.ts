// Normalization layers.

import { hsumf } from "./common";

/** sum of x[i]^2 with 2 vector accumulators (8 lanes) */
@inline
function sumSquares(x: usize, n: i32): f32 {
  let a = f32x4.splat(0), b = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(x + (<usize>i << 2)), u = v128.load(x + (<usize>i << 2), 16);
    a = f32x4.add(a, f32x4.mul(v, v));
    b = f32x4.add(b, f32x4.mul(u, u));
  }
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    a = f32x4.add(a, f32x4.mul(v, v));
  }
  let s = hsumf(f32x4.add(a, b));
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    s += v * v;
  }
  return s;
}

/** out = weight * (x / sqrt(mean(x^2) + eps)), llama2.c's order of operations. out may alias x. */
export function rmsnorm(out: usize, x: usize, weight: usize, n: i32, eps: f32): void {
  if (n <= 0) return;
  const ss: f32 = <f32>1.0 / Mathf.sqrt(sumSquares(x, n) / <f32>n + eps);
  const sv = f32x4.splat(ss);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.mul(v128.load(weight + o), f32x4.mul(sv, v128.load(x + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(weight + o) * (ss * load<f32>(x + o)));
  }
}

/**
 * out = (x - mean) / sqrt(var + eps) * weight + bias (GPT-2). Two passes (mean, then centered
 * variance) rather than E[x^2] - E[x]^2, which cancels badly for rows with a large mean.
 * out may alias x.
 */
export function layernorm(out: usize, x: usize, weight: usize, bias: usize, n: i32, eps: f32): void {
  if (n <= 0) return;
  let a = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) a = f32x4.add(a, v128.load(x + (<usize>i << 2)));
  let s = hsumf(a);
  for (; i < n; i++) s += load<f32>(x + (<usize>i << 2));
  const mean: f32 = s / <f32>n;
  const mv = f32x4.splat(mean);
  a = f32x4.splat(0);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const d = f32x4.sub(v128.load(x + (<usize>i << 2)), mv);
    a = f32x4.add(a, f32x4.mul(d, d));
  }
  let v = hsumf(a);
  for (; i < n; i++) {
    const d = load<f32>(x + (<usize>i << 2)) - mean;
    v += d * d;
  }
  const rstd: f32 = <f32>1.0 / Mathf.sqrt(v / <f32>n + eps);
  const rv = f32x4.splat(rstd);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const d = f32x4.mul(f32x4.sub(v128.load(x + o), mv), rv);
    v128.store(out + o, f32x4.add(f32x4.mul(d, v128.load(weight + o)), v128.load(bias + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, ((load<f32>(x + o) - mean) * rstd) * load<f32>(weight + o) + load<f32>(bias + o));
  }
}
