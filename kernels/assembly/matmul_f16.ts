// f16 matrix x f32 activations. Weights are widened in registers: interleaving with zeros puts
// each half in the high 16 bits of an i32 lane, and an arithmetic shift + mask turns that into
// the f32 bit pattern of w * 2^-112 (exact, subnormals included). The 2^112 goes onto a
// prescaled copy of x, so each product (w*2^-112)*(x*2^112) rounds exactly like w*x with one
// multiply per weight. Prescaling overflows for |x| >= 2^16, so such inputs (and rows wider
// than the scratch) take the exact per-weight rebias path instead. Non-finite f16 weights are
// not supported on the vector paths (they decode as large finite values).
// Row/token organisation as in matmul_f32.ts.

import { F16_REBIAS, SCRATCH_BYTES, f16ToF32, hsum4f, quarterRow, scratchBase, storeLanesStrided, storeQuarterRows } from "./common";

/** Largest |x| for which x * 2^112 stays finite with margin. */
const PRESCALE_LIMIT: f32 = 32768.0;

/** dst[i] = src[i] * 2^112 for n values; false (and dst unusable) if some |x| >= 2^15 or NaN. */
function prescale(dst: usize, src: usize, n: i32): bool {
  const k = f32x4.splat(F16_REBIAS);
  let m = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(src + (<usize>i << 2));
    m = f32x4.max(m, f32x4.abs(v));
    v128.store(dst + (<usize>i << 2), f32x4.mul(v, k));
  }
  let s = max<f32>(max<f32>(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max<f32>(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; i < n; i++) {
    const v = load<f32>(src + (<usize>i << 2));
    s = max<f32>(s, abs<f32>(v));
    store<f32>(dst + (<usize>i << 2), v * F16_REBIAS);
  }
  return s < PRESCALE_LIMIT; // false for NaN as well
}

/** 4 halves (low or high 4 of h) as f32 bit patterns of w * 2^-112; with T = f32 also rebias. */
@inline
function widenLo<T>(h: v128, mask: v128): v128 {
  const v = v128.and(i32x4.shr_s(i16x8.shuffle(i16x8.splat(0), h, 0, 8, 1, 9, 2, 10, 3, 11), 3), mask);
  return isFloat<T>() ? f32x4.mul(v, f32x4.splat(F16_REBIAS)) : v;
}
@inline
function widenHi<T>(h: v128, mask: v128): v128 {
  const v = v128.and(i32x4.shr_s(i16x8.shuffle(i16x8.splat(0), h, 4, 12, 5, 13, 6, 14, 7, 15), 3), mask);
  return isFloat<T>() ? f32x4.mul(v, f32x4.splat(F16_REBIAS)) : v;
}

/**
 * 4 rows (quarter streams) x one token. T = i32: x is prescaled (fast path); T = f32: x is
 * plain and weights are rebiased per element (exact fallback). Tail columns are scalar, exact.
 * Each row sums in the tile's order (low then high half of every 8 columns into one
 * accumulator), so a token's result never depends on how many tokens share the call.
 */
function matvecF16<T>(out: usize, w: usize, x: usize, xTail: usize, rows: i32, cols: i32, mask: v128): void {
  const stride = <usize>cols << 1;
  const cols8 = cols & ~7;
  const last = w + <usize>(rows - 1) * stride;
  const Q = (rows + 3) >> 2;
  for (let r = 0; r < Q; r++) {
    const r1 = quarterRow(r, 1, Q), r2 = quarterRow(r, 2, Q), r3 = quarterRow(r, 3, Q);
    const w0 = w + <usize>r * stride;
    const w1 = min(w + <usize>r1 * stride, last), w2 = min(w + <usize>r2 * stride, last), w3 = min(w + <usize>r3 * stride, last);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let c = 0;
    for (; c < cols8; c += 8) {
      const o = <usize>c << 1;
      const xo = x + (<usize>c << 2);
      const x0 = v128.load(xo), x1 = v128.load(xo, 16);
      const h0 = v128.load(w0 + o), h1 = v128.load(w1 + o), h2 = v128.load(w2 + o), h3 = v128.load(w3 + o);
      a0 = f32x4.add(f32x4.add(a0, f32x4.mul(widenLo<T>(h0, mask), x0)), f32x4.mul(widenHi<T>(h0, mask), x1));
      a1 = f32x4.add(f32x4.add(a1, f32x4.mul(widenLo<T>(h1, mask), x0)), f32x4.mul(widenHi<T>(h1, mask), x1));
      a2 = f32x4.add(f32x4.add(a2, f32x4.mul(widenLo<T>(h2, mask), x0)), f32x4.mul(widenHi<T>(h2, mask), x1));
      a3 = f32x4.add(f32x4.add(a3, f32x4.mul(widenLo<T>(h3, mask), x0)), f32x4.mul(widenHi<T>(h3, mask), x1));
    }
    let s = hsum4f(a0, a1, a2, a3);
    if (c < cols) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (; c < cols; c++) {
        const o = <usize>c << 1;
        const xv = load<f32>(xTail + (<usize>c << 2));
        t0 += f16ToF32(load<u16>(w0 + o)) * xv;
        t1 += f16ToF32(load<u16>(w1 + o)) * xv;
        t2 += f16ToF32(load<u16>(w2 + o)) * xv;
        t3 += f16ToF32(load<u16>(w3 + o)) * xv;
      }
      s = f32x4.add(s, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t0), 1, t1), 2, t2), 3, t3));
    }
    storeQuarterRows(out, s, r, r1, r2, r3, rows);
  }
}

/** 4 tokens x 2 rows (halves): each weight is widened once and used for 4 tokens. */
function tile4F16<T>(out: usize, w: usize, x: usize, xTail: usize, rows: i32, cols: i32, nt: i32, mask: v128): void {
  const stride = <usize>cols << 1;
  const xs = <usize>cols << 2;
  const ostride = <usize>rows << 2;
  const cols8 = cols & ~7;
  const last = w + <usize>(rows - 1) * stride;
  const x0p = x, x1p = x + (nt > 1 ? xs : 0), x2p = x + (nt > 2 ? 2 * xs : 0), x3p = x + (nt > 3 ? 3 * xs : 0);
  const y0p = xTail, y1p = xTail + (nt > 1 ? xs : 0), y2p = xTail + (nt > 2 ? 2 * xs : 0), y3p = xTail + (nt > 3 ? 3 * xs : 0);
  const H = (rows + 1) >> 1;
  for (let r = 0; r < H; r++) {
    const r1 = quarterRow(r, 1, H); // second half, rotated like the decode quarters
    const w0 = w + <usize>r * stride;
    const w1 = min(w + <usize>r1 * stride, last);
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
    let c = 0;
    for (; c < cols8; c += 8) {
      const h0 = v128.load(w0 + (<usize>c << 1)), h1 = v128.load(w1 + (<usize>c << 1));
      const u0 = widenLo<T>(h0, mask), v0 = widenHi<T>(h0, mask), u1 = widenLo<T>(h1, mask), v1 = widenHi<T>(h1, mask);
      const o = <usize>c << 2;
      let xl = v128.load(x0p + o), xh = v128.load(x0p + o, 16);
      a00 = f32x4.add(f32x4.add(a00, f32x4.mul(u0, xl)), f32x4.mul(v0, xh));
      a10 = f32x4.add(f32x4.add(a10, f32x4.mul(u1, xl)), f32x4.mul(v1, xh));
      xl = v128.load(x1p + o); xh = v128.load(x1p + o, 16);
      a01 = f32x4.add(f32x4.add(a01, f32x4.mul(u0, xl)), f32x4.mul(v0, xh));
      a11 = f32x4.add(f32x4.add(a11, f32x4.mul(u1, xl)), f32x4.mul(v1, xh));
      xl = v128.load(x2p + o); xh = v128.load(x2p + o, 16);
      a02 = f32x4.add(f32x4.add(a02, f32x4.mul(u0, xl)), f32x4.mul(v0, xh));
      a12 = f32x4.add(f32x4.add(a12, f32x4.mul(u1, xl)), f32x4.mul(v1, xh));
      xl = v128.load(x3p + o); xh = v128.load(x3p + o, 16);
      a03 = f32x4.add(f32x4.add(a03, f32x4.mul(u0, xl)), f32x4.mul(v0, xh));
      a13 = f32x4.add(f32x4.add(a13, f32x4.mul(u1, xl)), f32x4.mul(v1, xh));
    }
    let s0 = hsum4f(a00, a01, a02, a03);
    let s1 = hsum4f(a10, a11, a12, a13);
    if (c < cols) {
      let t00: f32 = 0, t01: f32 = 0, t02: f32 = 0, t03: f32 = 0;
      let t10: f32 = 0, t11: f32 = 0, t12: f32 = 0, t13: f32 = 0;
      for (; c < cols; c++) {
        const u0 = f16ToF32(load<u16>(w0 + (<usize>c << 1))), u1 = f16ToF32(load<u16>(w1 + (<usize>c << 1)));
        const o = <usize>c << 2;
        const y0 = load<f32>(y0p + o), y1 = load<f32>(y1p + o), y2 = load<f32>(y2p + o), y3 = load<f32>(y3p + o);
        t00 += u0 * y0; t01 += u0 * y1; t02 += u0 * y2; t03 += u0 * y3;
        t10 += u1 * y0; t11 += u1 * y1; t12 += u1 * y2; t13 += u1 * y3;
      }
      s0 = f32x4.add(s0, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t00), 1, t01), 2, t02), 3, t03));
      s1 = f32x4.add(s1, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t10), 1, t11), 2, t12), 3, t13));
    }
    storeLanesStrided(out + (<usize>r << 2), ostride, s0, nt);
    if (r1 < rows) storeLanesStrided(out + (<usize>r1 << 2), ostride, s1, nt);
  }
}

/** out[t*rows + r] = sum_c f32(w[r*cols + c]) * x[t*cols + c]; w is f16 bits, row-major. */
export function matmulF16(out: usize, w: usize, x: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const S = scratchBase();
  const mask = i32x4.splat(0x8fffe000);
  const xs = <usize>cols << 2;
  const os = <usize>rows << 2;
  let t = 0;
  while (t < nTok) {
    const nt = nTok - t == 1 ? 1 : min(nTok - t, 4);
    const xt = x + <usize>t * xs;
    const ot = out + <usize>t * os;
    const fast = <usize>nt * xs <= <usize>SCRATCH_BYTES && prescale(S, xt, nt * cols);
    if (nt == 1) {
      if (fast) matvecF16<i32>(ot, w, S, xt, rows, cols, mask);
      else matvecF16<f32>(ot, w, xt, xt, rows, cols, mask);
    } else {
      if (fast) tile4F16<i32>(ot, w, S, xt, rows, cols, nt, mask);
      else tile4F16<f32>(ot, w, xt, xt, rows, cols, nt, mask);
    }
    t += nt;
  }
}
