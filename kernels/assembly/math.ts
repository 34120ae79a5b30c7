// Vector exp and friends for softmax / SiLU / GELU. These run over whole rows (vocabulary
// logits, FFN hidden), where scalar libm calls would cost as much as a small matmul.

/**
 * e^x on 4 lanes, within ~2 ulp of the correctly rounded result for x in [-87, 88.7];
 * overflows to +inf, underflows gradually to 0, NaN propagates.
 * x = k*ln2 + r with |r| <= ln2/2 (ln2 split hi/lo so k*ln2_hi is exact), e^r by its Taylor
 * series to degree 7 (truncation < 6e-9 relative), 2^k applied in two halves so that k up to
 * 128 or down to -150 never builds an invalid exponent field.
 */
@inline
export function expV(x: v128): v128 {
  const xc = f32x4.max(f32x4.min(x, f32x4.splat(89.0)), f32x4.splat(-104.0));
  const k = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.4426950408889634)));
  let r = f32x4.sub(xc, f32x4.mul(k, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  // k is integral and within [-151, 129] (or NaN, which the product below keeps NaN), so the
  // plain conversion is exact: V8 lowers relaxed_trunc to one cvttps2dq, trunc_sat to ~7 ops
  const ki = i32x4.relaxed_trunc_f32x4_s(k);
  const k1 = i32x4.shr_s(ki, 1);
  const k2 = i32x4.sub(ki, k1);
  const s1 = i32x4.shl(i32x4.add(k1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(k2, i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

/** Scalar e^x through the same vector code, for loop tails (keeps results identical). */
@inline
export function expS(x: f32): f32 {
  return f32x4.extract_lane(expV(f32x4.splat(x)), 0);
}
