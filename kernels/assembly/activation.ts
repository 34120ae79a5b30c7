// Elementwise ops of a transformer step. All in place or out-of-place over f32 rows.

import { expS, expV } from "./math";
import { hmaxf, hsumf } from "./common";

/** In place x = softmax(x): max-subtracted so exp never overflows (llama2.c semantics). */
export function softmax(x: usize, n: i32): void {
  if (n <= 0) return;
  let i = 0;
  let mv = f32x4.splat(-Infinity);
  for (; i + 4 <= n; i += 4) mv = f32x4.max(mv, v128.load(x + (<usize>i << 2)));
  let m = hmaxf(mv);
  for (; i < n; i++) m = max<f32>(m, load<f32>(x + (<usize>i << 2)));
  const ms = f32x4.splat(m);
  let sv = f32x4.splat(0);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    const e = expV(f32x4.sub(v128.load(p), ms));
    v128.store(p, e);
    sv = f32x4.add(sv, e);
  }
  let s = hsumf(sv);
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    const e = expS(load<f32>(p) - m);
    store<f32>(p, e);
    s += e;
  }
  const inv = f32x4.splat(s);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    v128.store(p, f32x4.div(v128.load(p), inv));
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, load<f32>(p) / s);
  }
}

/** SwiGLU gate: h[i] = silu(h[i]) * g[i], silu(x) = x / (1 + e^-x). */
export function swiglu(h: usize, g: usize, n: i32): void {
  let i = 0;
  const one = f32x4.splat(1.0);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(h + o);
    const s = f32x4.div(v, f32x4.add(one, expV(f32x4.neg(v))));
    v128.store(h + o, f32x4.mul(s, v128.load(g + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(h + o);
    store<f32>(h + o, (v / (<f32>1.0 + expS(-v))) * load<f32>(g + o));
  }
}

/** In place x = silu(x). */
export function silu(x: usize, n: i32): void {
  let i = 0;
  const one = f32x4.splat(1.0);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    v128.store(x + o, f32x4.div(v, f32x4.add(one, expV(f32x4.neg(v)))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(x + o, v / (<f32>1.0 + expS(-v)));
  }
}

/**
 * In place GELU, tanh approximation as GPT-2: 0.5x(1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715x^3).
 * Evaluated as x / (1 + e^(-2u)), the same function without the cancellation of 1 + tanh(u)
 * for very negative x.
 */
export function gelu(x: usize, n: i32): void {
  const c = f32x4.splat(-2.0 * 0.7978845608028654);
  const k = f32x4.splat(0.044715);
  const one = f32x4.splat(1.0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const u = f32x4.mul(c, f32x4.add(v, f32x4.mul(k, f32x4.mul(v, f32x4.mul(v, v)))));
    v128.store(x + o, f32x4.div(v, f32x4.add(one, expV(u))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    const u: f32 = <f32>(-2.0 * 0.7978845608028654) * (v + <f32>0.044715 * (v * (v * v)));
    store<f32>(x + o, v / (<f32>1.0 + expS(u)));
  }
}

/** a[i] += b[i] (residual connections). */
export function addInPlace(a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(a + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(a + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

/** x[t*n + i] += bias[i] for t < nTok (bias of a linear layer over a batch of tokens). */
export function addBias(x: usize, bias: usize, n: i32, nTok: i32): void {
  for (let t = 0; t < nTok; t++) addInPlace(x + ((<usize>t * <usize>n) << 2), bias, n);
}

/** a[i] *= b[i]. */
export function mulInPlace(a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(a + o, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(a + o, load<f32>(a + o) * load<f32>(b + o));
  }
}

/** x[i] *= s (e.g. logits / temperature, embedding scaling). */
export function scale(x: usize, n: i32, s: f32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), sv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(x + o, load<f32>(x + o) * s);
  }
}

/** Index of the largest value, first one on ties (llama2.c greedy sampling); -1 if n <= 0. */
export function argmax(x: usize, n: i32): i32 {
  if (n <= 0) return -1;
  if (isNaN(load<f32>(x))) return 0; // nothing compares greater than a NaN first element
  // per lane the first strict maximum (pmax keeps the old value on ties and NaN), then the
  // lowest index among the lanes holding the overall maximum: the first maximum overall
  let best = f32x4.splat(-Infinity);
  let bi = i32x4(0, 1, 2, 3);
  let ci = bi;
  const four = i32x4.splat(4);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    // lane masks are all-ones or all-zeros, where laneselect is exactly defined
    bi = i32x4.relaxed_laneselect(ci, bi, f32x4.gt(v, best));
    best = f32x4.pmax(best, v);
    ci = i32x4.add(ci, four);
  }
  let m = f32x4.extract_lane(best, 0);
  let mi = i32x4.extract_lane(bi, 0);
  const m1 = f32x4.extract_lane(best, 1), i1 = i32x4.extract_lane(bi, 1);
  if (m1 > m || (m1 == m && i1 < mi)) { m = m1; mi = i1; }
  const m2 = f32x4.extract_lane(best, 2), i2 = i32x4.extract_lane(bi, 2);
  if (m2 > m || (m2 == m && i2 < mi)) { m = m2; mi = i2; }
  const m3 = f32x4.extract_lane(best, 3), i3 = i32x4.extract_lane(bi, 3);
  if (m3 > m || (m3 == m && i3 < mi)) { m = m3; mi = i3; }
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > m) { m = v; mi = i; }
  }
  return mi;
}
