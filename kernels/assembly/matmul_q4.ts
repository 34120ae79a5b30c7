// q4_0 weights x q8_0 activations (ggml's vec_dot_q4_0_q8_0 semantics): per block the exact
// integer dot of (nibble - 8) with x, times f32(d_w * d_x), accumulated in f32.

import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, scratchBase, f16ToF32, h2fHigh, hsum4i, storeLanes, storeLanesStrided } from "./common";

const WB: usize = <usize>Q4_0_BLOCK_BYTES;
const XB: usize = <usize>Q8_0_BLOCK_BYTES;

/**
 * The raw nibbles (0..15) are the relaxed dot's second operand, which must be in [0, 127] to be
 * portable; the -8 offset is applied once per activation block instead: sum x*(n-8) =
 * sum x*n - 8*sum x. `corr` holds -8 * (4-lane partial sums of x) and seeds the accumulation,
 * so the lanes' total is the exact block dot. i16 pair sums are at most 2*127*15, so the low
 * and high halves can be added in i16 before widening.
 */
@inline
function blockDotQ4(wp: usize, x0: v128, x1: v128, corr: v128): v128 {
  const q = v128.load(wp, 2);
  const lo = v128.and(q, i8x16.splat(0x0f)); // elements 0..15
  const hi = v128.and(i16x8.shr_u(q, 4), i8x16.splat(0x0f)); // elements 16..31
  const d16 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, lo), i16x8.relaxed_dot_i8x16_i7x16_s(x1, hi));
  return i32x4.add(i32x4.extadd_pairwise_i16x8_s(d16), corr);
}

/** -8 * (lane partial sums of the 32 activations); relaxed dot with 8s is exact and portable. */
@inline
function offsetCorrection(x0: v128, x1: v128): v128 {
  const eight = i8x16.splat(8);
  const s16 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, eight), i16x8.relaxed_dot_i8x16_i7x16_s(x1, eight));
  return i32x4.neg(i32x4.extadd_pairwise_i16x8_s(s16));
}

/** Decode scratch per activation block: [correction i32x4][d_x f32][pad]. */
const DEC_BLOCK: usize = 32;

function matvecQ4(out: usize, w: usize, xq: usize, rows: i32, nb: i32): void {
  const S = scratchBase();
  for (let b = 0; b < nb; b++) {
    const xb = xq + <usize>b * XB;
    const s = S + <usize>b * DEC_BLOCK;
    v128.store(s, offsetCorrection(v128.load(xb, 2), v128.load(xb, 18)));
    store<f32>(s, f16ToF32(load<u16>(xb)), 16);
  }
  const stride = <usize>nb * WB;
  const last = w + <usize>(rows - 1) * stride;
  const zero = i8x16.splat(0);
  for (let r = 0; r < rows; r += 4) {
    const p0 = w + <usize>r * stride;
    const p1 = min(p0 + stride, last), p2 = min(p0 + 2 * stride, last), p3 = min(p0 + 3 * stride, last);
    let acc = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const o = <usize>b * WB;
      const xb = xq + <usize>b * XB;
      const s = S + <usize>b * DEC_BLOCK;
      const x0 = v128.load(xb, 2), x1 = v128.load(xb, 18);
      const corr = v128.load(s);
      const d0 = blockDotQ4(p0 + o, x0, x1, corr);
      const d1 = blockDotQ4(p1 + o, x0, x1, corr);
      const d2 = blockDotQ4(p2 + o, x0, x1, corr);
      const d3 = blockDotQ4(p3 + o, x0, x1, corr);
      let h = v128.load16_lane(p0 + o, zero, 1);
      h = v128.load16_lane(p1 + o, h, 3);
      h = v128.load16_lane(p2 + o, h, 5);
      h = v128.load16_lane(p3 + o, h, 7);
      const scale = f32x4.mul(h2fHigh(h), v128.load32_splat(s + 16));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(hsum4i(d0, d1, d2, d3)), scale));
    }
    storeLanes(out + (<usize>r << 2), acc, rows - r);
  }
}

/** Prefill scratch per block: [d_x of 4 tokens (16 B)][correction of 4 tokens (64 B)]. */
const TILE_BLOCK: usize = 80;

/** Prefill: 4 tokens per weight pass; nibbles are unpacked once per row and block. */
function tile4Q4(out: usize, w: usize, xq: usize, rows: i32, nb: i32, nt: i32): void {
  const S = scratchBase();
  const xrow = <usize>nb * XB;
  const xp0 = xq, xp1 = xq + <usize>min(1, nt - 1) * xrow, xp2 = xq + <usize>min(2, nt - 1) * xrow, xp3 = xq + <usize>min(3, nt - 1) * xrow;
  for (let b = 0; b < nb; b++) {
    const s = S + <usize>b * TILE_BLOCK;
    for (let t = 0; t < 4; t++) {
      const xb = xq + <usize>min(t, nt - 1) * xrow + <usize>b * XB;
      store<f32>(s + (<usize>t << 2), f16ToF32(load<u16>(xb)));
      v128.store(s + 16 + (<usize>t << 4), offsetCorrection(v128.load(xb, 2), v128.load(xb, 18)));
    }
  }
  const stride = <usize>nb * WB;
  const ostride = <usize>rows << 2;
  for (let r = 0; r < rows; r++) {
    const p = w + <usize>r * stride;
    let acc = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const o = <usize>b * WB;
      const xo = <usize>b * XB;
      const s = S + <usize>b * TILE_BLOCK;
      const q = v128.load(p + o, 2);
      const lo = v128.and(q, i8x16.splat(0x0f));
      const hi = v128.and(i16x8.shr_u(q, 4), i8x16.splat(0x0f));
      const t0 = i32x4.add(i32x4.extadd_pairwise_i16x8_s(i16x8.add(
        i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp0 + xo, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp0 + xo, 18), hi))), v128.load(s, 16));
      const t1 = i32x4.add(i32x4.extadd_pairwise_i16x8_s(i16x8.add(
        i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp1 + xo, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp1 + xo, 18), hi))), v128.load(s, 32));
      const t2 = i32x4.add(i32x4.extadd_pairwise_i16x8_s(i16x8.add(
        i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp2 + xo, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp2 + xo, 18), hi))), v128.load(s, 48));
      const t3 = i32x4.add(i32x4.extadd_pairwise_i16x8_s(i16x8.add(
        i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp3 + xo, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp3 + xo, 18), hi))), v128.load(s, 64));
      const scale = f32x4.mul(f32x4.splat(f16ToF32(load<u16>(p + o))), v128.load(s));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(hsum4i(t0, t1, t2, t3)), scale));
    }
    storeLanesStrided(out + (<usize>r << 2), ostride, acc, nt);
  }
}

/**
 * out[t*rows + r] = sum over blocks of dot(w_r - 8, xq_t) * f32(d_w * d_x). w: rows x
 * ceil(cols/32) q4_0 blocks; xq: nTok rows of q8_0 blocks. Traps if cols exceeds
 * maxQuantCols(); prefill falls back to per-token passes when a tile does not fit.
 */
export function matmulQ4_0(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = (cols + QK - 1) / QK;
  if (<usize>nb * DEC_BLOCK > <usize>SCRATCH_BYTES) unreachable();
  const xs = <usize>nb * XB;
  const os = <usize>rows << 2;
  const tiled = <usize>nb * TILE_BLOCK <= <usize>SCRATCH_BYTES;
  let t = 0;
  while (t < nTok) {
    const left = nTok - t;
    if (left == 1 || !tiled) {
      matvecQ4(out + <usize>t * os, w, xq + <usize>t * xs, rows, nb);
      t += 1;
    } else {
      const nt = min(left, 4);
      tile4Q4(out + <usize>t * os, w, xq + <usize>t * xs, rows, nb, nt);
      t += nt;
    }
  }
}
