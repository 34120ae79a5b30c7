// q4_0 weights x q8_0 activations (ggml's vec_dot_q4_0_q8_0 semantics): per block the exact
// integer dot of (nibble - 8) with x, times f32(d_w * d_x), accumulated in f32.
// Same organisation as matmul_q8.ts (4 rows from the 4 quarters of the matrix per pass, tokens
// of a chunk back to back over the same rows).

import { F16_REBIAS, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, f16ToF32, hsum4i16, quarterNext, quarterStart, scratchBase, storeLanesStrided, storeQuarterRows } from "./common";

const WB: usize = <usize>Q4_0_BLOCK_BYTES;
const XB: usize = <usize>Q8_0_BLOCK_BYTES;
/** Scratch head: constants kept in memory so V8 holds them in registers. */
export const HEAD: usize = 64;
/** Per token and block: [-8 * sum(x) as i32][d_x * 2^112 as f32]. */
export const PREP: usize = 8;

/**
 * The raw nibbles (0..15) are the relaxed dot's second operand, which must be in [0, 127] to be
 * portable; the -8 offset is applied once per activation block instead:
 * sum x*(n-8) = sum x*n - 8*sum x, with -8*sum x precomputed per token. Scales are stored times
 * 2^112 to fold in the weight scale's f16 exponent rebias (exact).
 */
export function prepare(S: usize, xq: usize, nb: i32, nt: i32): void {
  v128.store(S, i16x8.splat(1));
  v128.store(S, i32x4.splat(0x8fffe000), 16);
  v128.store(S, i8x16.splat(0x0f), 32);
  const eight = i8x16.splat(8);
  const ones = i16x8.splat(1);
  const n = <usize>nt * <usize>nb;
  for (let i: usize = 0; i < n; i++) {
    const src = xq + i * XB;
    const s16 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(src, 2), eight), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(src, 18), eight));
    const s = i32x4.dot_i16x8_s(s16, ones);
    const t = i32x4.add(s, v128.shuffle<i32>(s, s, 2, 3, 0, 1));
    const p = S + HEAD + i * PREP;
    store<i32>(p, -(i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1)));
    store<f32>(p, f16ToF32(load<u16>(src)) * F16_REBIAS, 4);
  }
}

@inline
export function prepBytes(nb: i32, nt: i32): usize {
  return HEAD + <usize>nt * <usize>nb * PREP;
}

/**
 * Integer dot of one q4_0 block with x (without the -8 offset) as 8 i16 partial sums. Low
 * nibbles are elements 0..15, high nibbles 16..31 (ggml layout). Each i16 lane is at most
 * 2 * 2*128*15 = 7680 in magnitude, so hsum4i16 can add 4 of them before widening.
 */
@inline
function blockDot16(wp: usize, x0: v128, x1: v128, low: v128): v128 {
  const q = v128.load(wp, 2);
  const lo = v128.and(q, low);
  const hi = v128.and(i16x8.shr_u(q, 4), low);
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, lo), i16x8.relaxed_dot_i8x16_i7x16_s(x1, hi));
}

/** 4 rows x one token over nb blocks, one block per iteration (see matmul_q8.ts). */
@inline
export function pass4(w0: usize, w1: usize, w2: usize, w3: usize, xp: usize, pp: usize, nb: i32, ones: v128, mask: v128, low: v128): v128 {
  let acc = f32x4.splat(0);
  const zero = i8x16.splat(0);
  const pEnd = pp + <usize>nb * PREP;
  while (pp < pEnd) {
    const x0 = v128.load(xp, 2), x1 = v128.load(xp, 18);
    const d = i32x4.add(
      hsum4i16(blockDot16(w0, x0, x1, low), blockDot16(w1, x0, x1, low), blockDot16(w2, x0, x1, low), blockDot16(w3, x0, x1, low), ones),
      v128.load32_splat(pp),
    );
    let h = v128.load16_lane(w0, zero, 1);
    h = v128.load16_lane(w1, h, 3);
    h = v128.load16_lane(w2, h, 5);
    h = v128.load16_lane(w3, h, 7);
    const scale = f32x4.mul(v128.and(i32x4.shr_s(h, 3), mask), v128.load32_splat(pp, 4));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), scale));
    w0 += WB; w1 += WB; w2 += WB; w3 += WB;
    xp += XB;
    pp += PREP;
  }
  return acc;
}

/** Prefill scratch per block: [-8*sum(x) of 4 tokens (i32x4)][d_x*2^112 of 4 tokens (f32x4)]. */
const TILE: usize = 32;

/** Per-block token data for a tile of 4 tokens (slots past nt duplicate the last token). */
function prepareTile(S: usize, xq: usize, nb: i32, nt: i32): void {
  v128.store(S, i16x8.splat(1));
  v128.store(S, i32x4.splat(0x8fffe000), 16);
  v128.store(S, i8x16.splat(0x0f), 32);
  const xstride = <usize>nb * XB;
  const eight = i8x16.splat(8);
  const ones = i16x8.splat(1);
  for (let b = 0; b < nb; b++) {
    const p = S + HEAD + <usize>b * TILE;
    for (let t = 0; t < 4; t++) {
      const src = xq + <usize>min(t, nt - 1) * xstride + <usize>b * XB;
      const s16 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(src, 2), eight), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(src, 18), eight));
      const s = i32x4.dot_i16x8_s(s16, ones);
      const u = i32x4.add(s, v128.shuffle<i32>(s, s, 2, 3, 0, 1));
      store<i32>(p + (<usize>t << 2), -(i32x4.extract_lane(u, 0) + i32x4.extract_lane(u, 1)));
      store<f32>(p + (<usize>t << 2), f16ToF32(load<u16>(src)) * F16_REBIAS, 16);
    }
  }
}

/**
 * Prefill: one row x 4 tokens per pass, rows in order (one contiguous stream). The nibbles are
 * unpacked once per row and block and feed 4 tokens, so per (row, token, block) only the two
 * relaxed dots, an i16 add and one widening dot remain: about half the work of a decode pass.
 */
function tile4Q4(out: usize, w: usize, xq: usize, rows: i32, nb: i32, nt: i32, ones: v128, mask: v128, low: v128): void {
  const S = scratchBase();
  const stride = <usize>nb * WB;
  const xstride = <usize>nb * XB;
  const ostride = <usize>rows << 2;
  const x1s = <usize>min(1, nt - 1) * xstride, x2s = <usize>min(2, nt - 1) * xstride, x3s = <usize>min(3, nt - 1) * xstride;
  for (let r = 0; r < rows; r++) {
    let wp = w + <usize>r * stride;
    // loop-carried pointers: recomputing them from a base each iteration costs more than the math
    let x0p = xq, x1p = xq + x1s, x2p = xq + x2s, x3p = xq + x3s;
    let pp = S + HEAD;
    const pEnd = pp + <usize>nb * TILE;
    let acc = f32x4.splat(0);
    while (pp < pEnd) {
      const q = v128.load(wp, 2);
      const lo = v128.and(q, low);
      const hi = v128.and(i16x8.shr_u(q, 4), low);
      const d0 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x0p, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x0p, 18), hi));
      const d1 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x1p, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x1p, 18), hi));
      const d2 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x2p, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x2p, 18), hi));
      const d3 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x3p, 2), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x3p, 18), hi));
      const d = i32x4.add(hsum4i16(d0, d1, d2, d3, ones), v128.load(pp));
      const scale = f32x4.mul(v128.and(i32x4.shr_s(v128.load16_splat(wp), 3), mask), v128.load(pp, 16));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), scale));
      wp += WB;
      x0p += XB; x1p += XB; x2p += XB; x3p += XB;
      pp += TILE;
    }
    storeLanesStrided(out + (<usize>r << 2), ostride, acc, nt);
  }
}

/**
 * out[t*rows + r] = sum over blocks of dot(w_r - 8, xq_t) * f32(d_w * d_x). w: rows x
 * ceil(cols/32) q4_0 blocks; xq: nTok rows of q8_0 blocks. Traps if cols exceeds maxQuantCols().
 * Decode (and a single leftover token) uses 4-row passes; 2+ tokens go through the 4-token tile.
 */
export function matmulQ4_0(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = (cols + QK - 1) / QK;
  if (prepBytes(nb, 1) > <usize>SCRATCH_BYTES) unreachable();
  const S = scratchBase();
  const stride = <usize>nb * WB;
  const xstride = <usize>nb * XB;
  const ostride = <usize>rows << 2;
  const last = w + <usize>(rows - 1) * stride;
  const tiled = HEAD + <usize>nb * TILE <= <usize>SCRATCH_BYTES;
  let t0 = 0;
  while (t0 < nTok) {
    const nt = nTok - t0 == 1 || !tiled ? 1 : min(nTok - t0, 4);
    const xt = xq + <usize>t0 * xstride;
    const ot = out + <usize>t0 * ostride;
    if (nt > 1) {
      prepareTile(S, xt, nb, nt);
      tile4Q4(ot, w, xt, rows, nb, nt, v128.load(S), v128.load(S, 16), v128.load(S, 32));
    } else {
      prepare(S, xt, nb, 1);
      const ones = v128.load(S), mask = v128.load(S, 16), low = v128.load(S, 32);
      // one row from each quarter of the matrix per pass: 4 contiguous streams (see quarterRow)
      const Q = (rows + 3) >> 2;
      let c1 = quarterStart(1, Q), c2 = quarterStart(2, Q), c3 = quarterStart(3, Q);
      for (let r = 0; r < Q; r++) {
        const r1 = Q + c1, r2 = 2 * Q + c2, r3 = 3 * Q + c3;
        c1 = quarterNext(c1, Q); c2 = quarterNext(c2, Q); c3 = quarterNext(c3, Q);
        const w0 = w + <usize>r * stride;
        const w1 = min(w + <usize>r1 * stride, last), w2 = min(w + <usize>r2 * stride, last), w3 = min(w + <usize>r3 * stride, last);
        const acc = pass4(w0, w1, w2, w3, xt, S + HEAD, nb, ones, mask, low);
        storeQuarterRows(ot, acc, r, r1, r2, r3, rows);
      }
    }
    t0 += nt;
  }
}
