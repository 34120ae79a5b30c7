// q4_0 weights x q8_0 activations (ggml's vec_dot_q4_0_q8_0 semantics): per block the exact
// integer dot of (nibble - 8) with x, times f32(d_w * d_x), accumulated in f32.
// Same organisation as matmul_q8.ts (4 rows from the 4 quarters of the matrix per pass, tokens
// of a chunk back to back over the same rows).

import { F16_REBIAS, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, f16ToF32, hsum4i, scratchBase, storeLanesStrided } from "./common";

const WB: usize = <usize>Q4_0_BLOCK_BYTES;
const XB: usize = <usize>Q8_0_BLOCK_BYTES;
/** Scratch head: constants kept in memory so V8 holds them in registers. */
const HEAD: usize = 64;
/** Per token and block: [-8 * sum(x) as i32][d_x * 2^112 as f32]. */
const PREP: usize = 8;

/**
 * The raw nibbles (0..15) are the relaxed dot's second operand, which must be in [0, 127] to be
 * portable; the -8 offset is applied once per activation block instead:
 * sum x*(n-8) = sum x*n - 8*sum x, with -8*sum x precomputed per token. Scales are stored times
 * 2^112 to fold in the weight scale's f16 exponent rebias (exact).
 */
function prepare(S: usize, xq: usize, nb: i32, nt: i32): void {
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
function prepBytes(nb: i32, nt: i32): usize {
  return HEAD + <usize>nt * <usize>nb * PREP;
}

/**
 * Integer dot of one q4_0 block with x (without the -8 offset). Low nibbles are elements
 * 0..15, high nibbles 16..31 (ggml layout). i16 pair sums are at most 2*127*15, so both halves
 * can be added in i16 before one widening dot.
 */
@inline
function blockDot(wp: usize, x0: v128, x1: v128, ones: v128, low: v128): v128 {
  const q = v128.load(wp, 2);
  const lo = v128.and(q, low);
  const hi = v128.and(i16x8.shr_u(q, 4), low);
  return i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, lo), i16x8.relaxed_dot_i8x16_i7x16_s(x1, hi)), ones);
}

/** 4 rows x one token over nb blocks, one block per iteration (see matmul_q8.ts). */
@inline
function pass4(w0: usize, w1: usize, w2: usize, w3: usize, xp: usize, pp: usize, nb: i32, ones: v128, mask: v128, low: v128): v128 {
  let acc = f32x4.splat(0);
  const zero = i8x16.splat(0);
  const pEnd = pp + <usize>nb * PREP;
  while (pp < pEnd) {
    const x0 = v128.load(xp, 2), x1 = v128.load(xp, 18);
    const d = i32x4.add(
      hsum4i(blockDot(w0, x0, x1, ones, low), blockDot(w1, x0, x1, ones, low), blockDot(w2, x0, x1, ones, low), blockDot(w3, x0, x1, ones, low)),
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

/**
 * out[t*rows + r] = sum over blocks of dot(w_r - 8, xq_t) * f32(d_w * d_x). w: rows x
 * ceil(cols/32) q4_0 blocks; xq: nTok rows of q8_0 blocks. Traps if cols exceeds maxQuantCols().
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
  let chunk = 1;
  while (chunk < nTok && prepBytes(nb, chunk * 2) <= <usize>SCRATCH_BYTES) chunk *= 2;
  for (let t0 = 0; t0 < nTok; t0 += chunk) {
    const nt = min(chunk, nTok - t0);
    prepare(S, xq + <usize>t0 * xstride, nb, nt);
    const ones = v128.load(S), mask = v128.load(S, 16), low = v128.load(S, 32);
    // rows r, r+Q, r+2Q, r+3Q: 4 contiguous streams (see matmul_q8.ts)
    const Q = (rows + 3) >> 2;
    for (let r = 0; r < Q; r++) {
      const w0 = w + <usize>r * stride;
      const w1 = min(w0 + <usize>Q * stride, last), w2 = min(w0 + <usize>(2 * Q) * stride, last), w3 = min(w0 + <usize>(3 * Q) * stride, last);
      const n = min(4, (rows - r + Q - 1) / Q);
      for (let t = 0; t < nt; t++) {
        const acc = pass4(w0, w1, w2, w3, xq + (<usize>t0 + <usize>t) * xstride, S + HEAD + <usize>t * <usize>nb * PREP, nb, ones, mask, low);
        storeLanesStrided(out + (<usize>t0 + <usize>t) * ostride + (<usize>r << 2), <usize>Q << 2, acc, n);
      }
    }
  }
}
