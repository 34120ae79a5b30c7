// f16 matrix x f32 activations. Weights are widened in registers (h2fLo/h2fHi: interleave with
// zeros, shift, mask, one multiply) so f16 halves the bytes streamed versus f32. Non-finite f16
// weights are not supported on the vector path (they would decode as large finite values).

import { f16ToF32, h2fHi, h2fLo, hsum4f, storeLanes, storeLanesStrided } from "./common";

function matvecF16(out: usize, w: usize, x: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 1;
  const cols8 = cols & ~7;
  const last = w + <usize>(rows - 1) * stride;
  for (let r = 0; r < rows; r += 4) {
    const w0 = w + <usize>r * stride;
    const w1 = min(w0 + stride, last), w2 = min(w0 + 2 * stride, last), w3 = min(w0 + 3 * stride, last);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    let c = 0;
    for (; c < cols8; c += 8) {
      const o = <usize>c << 1;
      const xo = x + (<usize>c << 2);
      const x0 = v128.load(xo), x1 = v128.load(xo, 16);
      const h0 = v128.load(w0 + o), h1 = v128.load(w1 + o), h2 = v128.load(w2 + o), h3 = v128.load(w3 + o);
      a0 = f32x4.add(a0, f32x4.mul(h2fLo(h0), x0));
      b0 = f32x4.add(b0, f32x4.mul(h2fHi(h0), x1));
      a1 = f32x4.add(a1, f32x4.mul(h2fLo(h1), x0));
      b1 = f32x4.add(b1, f32x4.mul(h2fHi(h1), x1));
      a2 = f32x4.add(a2, f32x4.mul(h2fLo(h2), x0));
      b2 = f32x4.add(b2, f32x4.mul(h2fHi(h2), x1));
      a3 = f32x4.add(a3, f32x4.mul(h2fLo(h3), x0));
      b3 = f32x4.add(b3, f32x4.mul(h2fHi(h3), x1));
    }
    let s = hsum4f(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    if (c < cols) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (; c < cols; c++) {
        const o = <usize>c << 1;
        const xv = load<f32>(x + (<usize>c << 2));
        t0 += f16ToF32(load<u16>(w0 + o)) * xv;
        t1 += f16ToF32(load<u16>(w1 + o)) * xv;
        t2 += f16ToF32(load<u16>(w2 + o)) * xv;
        t3 += f16ToF32(load<u16>(w3 + o)) * xv;
      }
      s = f32x4.add(s, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t0), 1, t1), 2, t2), 3, t3));
    }
    storeLanes(out + (<usize>r << 2), s, rows - r);
  }
}

/** 4 tokens x 2 rows: each weight is converted once and used for 4 tokens. */
function tile4F16(out: usize, w: usize, x: usize, rows: i32, cols: i32, nt: i32): void {
  const stride = <usize>cols << 1;
  const xs = <usize>cols << 2;
  const ostride = <usize>rows << 2;
  const cols8 = cols & ~7;
  const last = w + <usize>(rows - 1) * stride;
  const x0p = x, x1p = x + (nt > 1 ? xs : 0), x2p = x + (nt > 2 ? 2 * xs : 0), x3p = x + (nt > 3 ? 3 * xs : 0);
  for (let r = 0; r < rows; r += 2) {
    const w0 = w + <usize>r * stride;
    const w1 = min(w0 + stride, last);
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
    let c = 0;
    for (; c < cols8; c += 8) {
      const h0 = v128.load(w0 + (<usize>c << 1)), h1 = v128.load(w1 + (<usize>c << 1));
      const u0 = h2fLo(h0), v0 = h2fHi(h0), u1 = h2fLo(h1), v1 = h2fHi(h1);
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
        const y0 = load<f32>(x0p + o), y1 = load<f32>(x1p + o), y2 = load<f32>(x2p + o), y3 = load<f32>(x3p + o);
        t00 += u0 * y0; t01 += u0 * y1; t02 += u0 * y2; t03 += u0 * y3;
        t10 += u1 * y0; t11 += u1 * y1; t12 += u1 * y2; t13 += u1 * y3;
      }
      s0 = f32x4.add(s0, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t00), 1, t01), 2, t02), 3, t03));
      s1 = f32x4.add(s1, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t10), 1, t11), 2, t12), 3, t13));
    }
    storeLanesStrided(out + (<usize>r << 2), ostride, s0, nt);
    if (r + 1 < rows) storeLanesStrided(out + (<usize>(r + 1) << 2), ostride, s1, nt);
  }
}

/** out[t*rows + r] = sum_c f32(w[r*cols + c]) * x[t*cols + c]; w is f16 bits, row-major. */
export function matmulF16(out: usize, w: usize, x: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const xs = <usize>cols << 2;
  const os = <usize>rows << 2;
  let t = 0;
  while (t < nTok) {
    const left = nTok - t;
    if (left == 1) {
      matvecF16(out + <usize>t * os, w, x + <usize>t * xs, rows, cols);
      t += 1;
    } else {
      const nt = min(left, 4);
      tile4F16(out + <usize>t * os, w, x + <usize>t * xs, rows, cols, nt);
      t += nt;
    }
  }
}
