// f32 matrix x activations. Decode (nTok = 1) is bound by streaming the weights: 4 rows per pass
// against one x load, the rows taken from the 4 quarters of the matrix so each is one contiguous
// stream for the hardware prefetcher (see quarterRow). Prefill reuses every weight vector for 4 tokens held in
// registers (2 rows, from the two halves), cutting weight traffic per token by 4.

import { hsum4f, quarterRow, storeLanesStrided, storeQuarterRows } from "./common";

/**
 * out[r] for r in [0, rows). Missing rows of the last pass are clamped (duplicate work). Each
 * row sums in exactly the tile's order (one f32x4 accumulator over 4 columns at a time, the
 * same horizontal sum and scalar tail), so a token's result never depends on how many tokens
 * share the call: batched sequences get the numbers they get alone.
 */
function matvecF32(out: usize, w: usize, x: usize, rows: i32, cols: i32): void {
  const stride = <usize>cols << 2;
  const cols4 = cols & ~3;
  const last = w + <usize>(rows - 1) * stride;
  const Q = (rows + 3) >> 2;
  for (let r = 0; r < Q; r++) {
    const r1 = quarterRow(r, 1, Q), r2 = quarterRow(r, 2, Q), r3 = quarterRow(r, 3, Q);
    const w0 = w + <usize>r * stride;
    const w1 = min(w + <usize>r1 * stride, last), w2 = min(w + <usize>r2 * stride, last), w3 = min(w + <usize>r3 * stride, last);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let c = 0;
    for (; c < cols4; c += 4) {
      const o = <usize>c << 2;
      const x0 = v128.load(x + o);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + o), x0));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + o), x0));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + o), x0));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + o), x0));
    }
    let s = hsum4f(a0, a1, a2, a3);
    if (c < cols) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (; c < cols; c++) {
        const o = <usize>c << 2;
        const xv = load<f32>(x + o);
        t0 += load<f32>(w0 + o) * xv;
        t1 += load<f32>(w1 + o) * xv;
        t2 += load<f32>(w2 + o) * xv;
        t3 += load<f32>(w3 + o) * xv;
      }
      s = f32x4.add(s, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t0), 1, t1), 2, t2), 3, t3));
    }
    storeQuarterRows(out, s, r, r1, r2, r3, rows);
  }
}

/** 4 tokens x 2 rows per pass: 8 accumulators, each weight vector feeds 4 multiply-adds. */
function tile4F32(out: usize, w: usize, x: usize, rows: i32, cols: i32, nt: i32): void {
  const stride = <usize>cols << 2;
  const ostride = <usize>rows << 2;
  const cols4 = cols & ~3;
  const last = w + <usize>(rows - 1) * stride;
  const x0p = x, x1p = x + (nt > 1 ? stride : 0), x2p = x + (nt > 2 ? 2 * stride : 0), x3p = x + (nt > 3 ? 3 * stride : 0);
  const H = (rows + 1) >> 1;
  for (let r = 0; r < H; r++) {
    const r1 = quarterRow(r, 1, H); // second half, rotated like the decode quarters
    const w0 = w + <usize>r * stride;
    const w1 = min(w + <usize>r1 * stride, last);
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
    let c = 0;
    for (; c < cols4; c += 4) {
      const o = <usize>c << 2;
      const v0 = v128.load(w0 + o), v1 = v128.load(w1 + o);
      const x0 = v128.load(x0p + o);
      a00 = f32x4.add(a00, f32x4.mul(v0, x0));
      a10 = f32x4.add(a10, f32x4.mul(v1, x0));
      const x1 = v128.load(x1p + o);
      a01 = f32x4.add(a01, f32x4.mul(v0, x1));
      a11 = f32x4.add(a11, f32x4.mul(v1, x1));
      const x2 = v128.load(x2p + o);
      a02 = f32x4.add(a02, f32x4.mul(v0, x2));
      a12 = f32x4.add(a12, f32x4.mul(v1, x2));
      const x3 = v128.load(x3p + o);
      a03 = f32x4.add(a03, f32x4.mul(v0, x3));
      a13 = f32x4.add(a13, f32x4.mul(v1, x3));
    }
    let s0 = hsum4f(a00, a01, a02, a03); // row r, tokens 0..3
    let s1 = hsum4f(a10, a11, a12, a13); // row r + H
    if (c < cols) {
      let t00: f32 = 0, t01: f32 = 0, t02: f32 = 0, t03: f32 = 0;
      let t10: f32 = 0, t11: f32 = 0, t12: f32 = 0, t13: f32 = 0;
      for (; c < cols; c++) {
        const o = <usize>c << 2;
        const u0 = load<f32>(w0 + o), u1 = load<f32>(w1 + o);
        const y0 = load<f32>(x0p + o), y1 = load<f32>(x1p + o), y2 = load<f32>(x2p + o), y3 = load<f32>(x3p + o);
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

/**
 * out[t*rows + r] = sum_c w[r*cols + c] * x[t*cols + c]. Token tiles of 4; a tail of 2-3 tokens
 * still goes through the tile (duplicated token slots, results dropped) because one weight
 * pass beats 2-3 decode passes; a single leftover token uses the decode path.
 */
export function matmulF32(out: usize, w: usize, x: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const xs = <usize>cols << 2;
  const os = <usize>rows << 2;
  let t = 0;
  while (t < nTok) {
    const left = nTok - t;
    if (left == 1) {
      matvecF32(out + <usize>t * os, w, x + <usize>t * xs, rows, cols);
      t += 1;
    } else {
      const nt = min(left, 4);
      tile4F32(out + <usize>t * os, w, x + <usize>t * xs, rows, cols, nt);
      t += nt;
    }
  }
}
