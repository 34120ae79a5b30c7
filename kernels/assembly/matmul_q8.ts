// q8_0 weights x q8_0 activations (ggml's vec_dot_q8_0_q8_0 semantics): per 32-block an exact
// integer dot, times f32(d_w * d_x), accumulated in f32.

import { Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, scratchBase, f16ToF32, h2fHigh, hsum4i, storeLanes, storeLanesStrided } from "./common";

const BB: usize = <usize>Q8_0_BLOCK_BYTES;

/**
 * Integer dot of one 32-value weight block with the activation block given as |x| and its sign
 * mask m. relaxed_dot needs its second operand in [0, 127] to be portable (x86 treats it as
 * unsigned bytes), so the sign moves onto the weights: w*x = (sign(x)*w)*|x|. The saturating
 * subtract turns a (never ggml-produced) weight of -128 into 127 rather than wrapping. Pair sums
 * stay within i16 (2*127*127 < 32767), so each i16 relaxed dot is exact; they are widened
 * separately because their sum could overflow i16.
 */
@inline
function blockDotQ8(wp: usize, ax0: v128, ax1: v128, m0: v128, m1: v128): v128 {
  const s0 = i8x16.sub_sat_s(v128.xor(v128.load(wp, 2), m0), m0);
  const s1 = i8x16.sub_sat_s(v128.xor(v128.load(wp, 18), m1), m1);
  return i32x4.add(
    i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(s0, ax0)),
    i32x4.extadd_pairwise_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(s1, ax1)),
  );
}

/** Decode: one token, 4 rows per pass; activation scales are converted once into scratch. */
function matvecQ8(out: usize, w: usize, xq: usize, rows: i32, nb: i32): void {
  const S = scratchBase();
  for (let b = 0; b < nb; b++) store<f32>(S + (<usize>b << 2), f16ToF32(load<u16>(xq + <usize>b * BB)));
  const stride = <usize>nb * BB;
  const last = w + <usize>(rows - 1) * stride;
  const zero = i8x16.splat(0);
  for (let r = 0; r < rows; r += 4) {
    const p0 = w + <usize>r * stride;
    const p1 = min(p0 + stride, last), p2 = min(p0 + 2 * stride, last), p3 = min(p0 + 3 * stride, last);
    let acc = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const o = <usize>b * BB;
      const x0 = v128.load(xq + o, 2), x1 = v128.load(xq + o, 18);
      const ax0 = i8x16.abs(x0), ax1 = i8x16.abs(x1);
      const m0 = i8x16.lt_s(x0, zero), m1 = i8x16.lt_s(x1, zero);
      const d0 = blockDotQ8(p0 + o, ax0, ax1, m0, m1);
      const d1 = blockDotQ8(p1 + o, ax0, ax1, m0, m1);
      const d2 = blockDotQ8(p2 + o, ax0, ax1, m0, m1);
      const d3 = blockDotQ8(p3 + o, ax0, ax1, m0, m1);
      // the 4 rows' f16 scales land in the high half of each i32 lane
      let h = v128.load16_lane(p0 + o, zero, 1);
      h = v128.load16_lane(p1 + o, h, 3);
      h = v128.load16_lane(p2 + o, h, 5);
      h = v128.load16_lane(p3 + o, h, 7);
      const scale = f32x4.mul(h2fHigh(h), v128.load32_splat(S + (<usize>b << 2)));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(hsum4i(d0, d1, d2, d3)), scale));
    }
    storeLanes(out + (<usize>r << 2), acc, rows - r);
  }
}

/** Scratch layout for the prefill tile: per block [d_x of 4 tokens (16 B)][4 tokens x 32 i16]. */
const TILE_BLOCK: usize = 16 + 4 * 64;

/**
 * Prefill: 4 tokens per weight pass. Activations are sign-extended to i16 once per tile so each
 * (row, token) block costs four i32x4.dot_i16x8_s; the weight block is widened once per row.
 */
function tile4Q8(out: usize, w: usize, xq: usize, rows: i32, nb: i32, nt: i32): void {
  const S = scratchBase();
  const xrow = <usize>nb * BB;
  for (let b = 0; b < nb; b++) {
    const s = S + <usize>b * TILE_BLOCK;
    for (let t = 0; t < 4; t++) {
      const xb = xq + <usize>min(t, nt - 1) * xrow + <usize>b * BB; // missing tokens duplicate the last
      store<f32>(s + (<usize>t << 2), f16ToF32(load<u16>(xb)));
      const x0 = v128.load(xb, 2), x1 = v128.load(xb, 18);
      const d = s + 16 + (<usize>t << 6);
      v128.store(d, i16x8.extend_low_i8x16_s(x0));
      v128.store(d, i16x8.extend_high_i8x16_s(x0), 16);
      v128.store(d, i16x8.extend_low_i8x16_s(x1), 32);
      v128.store(d, i16x8.extend_high_i8x16_s(x1), 48);
    }
  }
  const stride = <usize>nb * BB;
  const ostride = <usize>rows << 2;
  for (let r = 0; r < rows; r++) {
    const p = w + <usize>r * stride;
    let acc = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const o = <usize>b * BB;
      const q0 = v128.load(p + o, 2), q1 = v128.load(p + o, 18);
      const wl0 = i16x8.extend_low_i8x16_s(q0), wh0 = i16x8.extend_high_i8x16_s(q0);
      const wl1 = i16x8.extend_low_i8x16_s(q1), wh1 = i16x8.extend_high_i8x16_s(q1);
      const s = S + <usize>b * TILE_BLOCK;
      const t0 = i32x4.add(
        i32x4.add(i32x4.dot_i16x8_s(wl0, v128.load(s, 16)), i32x4.dot_i16x8_s(wh0, v128.load(s, 32))),
        i32x4.add(i32x4.dot_i16x8_s(wl1, v128.load(s, 48)), i32x4.dot_i16x8_s(wh1, v128.load(s, 64))));
      const t1 = i32x4.add(
        i32x4.add(i32x4.dot_i16x8_s(wl0, v128.load(s, 80)), i32x4.dot_i16x8_s(wh0, v128.load(s, 96))),
        i32x4.add(i32x4.dot_i16x8_s(wl1, v128.load(s, 112)), i32x4.dot_i16x8_s(wh1, v128.load(s, 128))));
      const t2 = i32x4.add(
        i32x4.add(i32x4.dot_i16x8_s(wl0, v128.load(s, 144)), i32x4.dot_i16x8_s(wh0, v128.load(s, 160))),
        i32x4.add(i32x4.dot_i16x8_s(wl1, v128.load(s, 176)), i32x4.dot_i16x8_s(wh1, v128.load(s, 192))));
      const t3 = i32x4.add(
        i32x4.add(i32x4.dot_i16x8_s(wl0, v128.load(s, 208)), i32x4.dot_i16x8_s(wh0, v128.load(s, 224))),
        i32x4.add(i32x4.dot_i16x8_s(wl1, v128.load(s, 240)), i32x4.dot_i16x8_s(wh1, v128.load(s, 256))));
      const scale = f32x4.mul(f32x4.splat(f16ToF32(load<u16>(p + o))), v128.load(s));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(hsum4i(t0, t1, t2, t3)), scale));
    }
    storeLanesStrided(out + (<usize>r << 2), ostride, acc, nt);
  }
}

/**
 * out[t*rows + r] = sum over blocks of dot(w_r, xq_t) * f32(d_w * d_x). w: rows x ceil(cols/32)
 * q8_0 blocks; xq: nTok rows of ceil(cols/32) q8_0 blocks (from quantizeRowQ8_0). Block padding
 * is zero on both sides so it contributes nothing. Traps if cols exceeds the scratch capacity
 * (maxQuantCols()); prefill falls back to per-token passes when a tile does not fit.
 */
export function matmulQ8_0(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = (cols + QK - 1) / QK;
  if (nb * 4 > SCRATCH_BYTES) unreachable();
  const xs = <usize>nb * BB;
  const os = <usize>rows << 2;
  const tiled = <usize>nb * TILE_BLOCK <= <usize>SCRATCH_BYTES;
  let t = 0;
  while (t < nTok) {
    const left = nTok - t;
    if (left == 1 || !tiled) {
      matvecQ8(out + <usize>t * os, w, xq + <usize>t * xs, rows, nb);
      t += 1;
    } else {
      const nt = min(left, 4);
      tile4Q8(out + <usize>t * os, w, xq + <usize>t * xs, rows, nb, nt);
      t += nt;
    }
  }
}
