// q8_0 weights x q8_0 activations (ggml's vec_dot_q8_0_q8_0 semantics): per 32-block an exact
// integer dot, times f32(d_w * d_x), accumulated in f32.
//
// Work is organised as passes of 4 weight rows against one token; prefill runs all tokens of a
// chunk over the same 4 rows back to back, so the rows (4 x 34 B per block) are read from memory
// once and then hit L1. Integer work dominates, so the per-block instruction count (as lowered
// by V8) is what the loop shape optimises.

import { F16_REBIAS, Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, f16ToF32, hsum4i, quarterNext, quarterStart, scratchBase, storeQuarterRows } from "./common";

const BB: usize = <usize>Q8_0_BLOCK_BYTES;
/** Scratch: constants (kept in memory so V8 holds them in registers instead of rebuilding them
 *  every iteration), then per token and block the activation scale times 2^112. */
export const HEAD: usize = 64;

/**
 * Per-token activation scales, stored times 2^112: this folds the f16 exponent rebias of the
 * weight scale into one precomputed factor (exact: the product is the same f32 value). With
 * `signs`, each block's |x| and sign masks (64 bytes) follow at S + HEAD + 4*nt*nb, so the
 * 4-row passes load them instead of recomputing them per pass.
 */
export function prepare(S: usize, xq: usize, nb: i32, nt: i32, signs: bool): void {
  v128.store(S, i16x8.splat(1));
  v128.store(S, i32x4.splat(0x8fffe000), 16);
  const ds = S + HEAD;
  const n = <usize>nt * <usize>nb;
  for (let i: usize = 0; i < n; i++) store<f32>(ds + (i << 2), f16ToF32(load<u16>(xq + i * BB)) * F16_REBIAS);
  if (!signs) return;
  const zero = i8x16.splat(0);
  let sp = ds + (n << 2);
  for (let i: usize = 0; i < n; i++) {
    const x0 = v128.load(xq + i * BB, 2), x1 = v128.load(xq + i * BB, 18);
    v128.store(sp, i8x16.abs(x0));
    v128.store(sp, i8x16.abs(x1), 16);
    v128.store(sp, i8x16.lt_s(x0, zero), 32);
    v128.store(sp, i8x16.lt_s(x1, zero), 48);
    sp += 64;
  }
}

@inline
export function prepBytes(nb: i32, nt: i32, signs: bool): usize {
  return HEAD + <usize>nt * <usize>nb * (signs ? 68 : 4);
}

/**
 * Exact integer dot of one weight block with activations given as |x| and sign mask m.
 * relaxed_dot needs its second operand in [0, 127] to be portable (x86 treats it as unsigned
 * bytes), so the sign moves from x onto the weights: w*x = (sign(x)*w)*|x|. The saturating
 * subtract maps a (never ggml-produced) weight of -128 with negative x to 127 instead of
 * wrapping. i16 pair sums stay within 2*127*127 < 32767, so each relaxed i16 dot is exact; the
 * halves are widened separately because their sum could overflow i16.
 */
@inline
export function blockDot(wp: usize, a0: v128, a1: v128, m0: v128, m1: v128, ones: v128): v128 {
  const s0 = i8x16.sub_sat_s(v128.xor(v128.load(wp, 2), m0), m0);
  const s1 = i8x16.sub_sat_s(v128.xor(v128.load(wp, 18), m1), m1);
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(s0, a0), ones),
    i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(s1, a1), ones),
  );
}

/**
 * 4 rows x one token over nb blocks. One block per iteration on purpose: V8 issues a loop body's
 * loads up front, and a bigger body spills registers (measured slower). SIGNS: |x| and the sign
 * masks come precomputed from the scratch at sp (see prepare), else from xp.
 */
@inline
export function pass4<SIGNS>(w0: usize, w1: usize, w2: usize, w3: usize, xp: usize, sp: usize, dp: usize, nb: i32, ones: v128, mask: v128): v128 {
  let acc = f32x4.splat(0);
  const zero = i8x16.splat(0);
  const dEnd = dp + (<usize>nb << 2);
  while (dp < dEnd) {
    let a0: v128, a1: v128, m0: v128, m1: v128;
    if (sizeof<SIGNS>() == 1) {
      a0 = v128.load(sp); a1 = v128.load(sp, 16);
      m0 = v128.load(sp, 32); m1 = v128.load(sp, 48);
    } else {
      const x0 = v128.load(xp, 2), x1 = v128.load(xp, 18);
      a0 = i8x16.abs(x0); a1 = i8x16.abs(x1);
      m0 = i8x16.lt_s(x0, zero); m1 = i8x16.lt_s(x1, zero);
    }
    const d = hsum4i(blockDot(w0, a0, a1, m0, m1, ones), blockDot(w1, a0, a1, m0, m1, ones),
      blockDot(w2, a0, a1, m0, m1, ones), blockDot(w3, a0, a1, m0, m1, ones));
    // the 4 rows' f16 scales in the high half of each i32 lane; shift + mask gives d_w * 2^-112
    // (the low halves are don't-care: the mask below clears them, so any vector is a base)
    let h = v128.load16_lane(w0, mask, 1);
    h = v128.load16_lane(w1, h, 3);
    h = v128.load16_lane(w2, h, 5);
    h = v128.load16_lane(w3, h, 7);
    const scale = f32x4.mul(v128.and(i32x4.shr_s(h, 3), mask), v128.load32_splat(dp));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), scale));
    w0 += BB; w1 += BB; w2 += BB; w3 += BB;
    if (sizeof<SIGNS>() == 1) sp += 64;
    else xp += BB;
    dp += 4;
  }
  return acc;
}

/**
 * out[t*rows + r] = sum over blocks of dot(w_r, xq_t) * f32(d_w * d_x). w: rows x ceil(cols/32)
 * q8_0 blocks; xq: nTok rows of ceil(cols/32) q8_0 blocks (from quantizeRowQ8_0). Block padding
 * is zero on both sides so it contributes nothing. Traps if cols exceeds maxQuantCols().
 */
export function matmulQ8_0(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = (cols + QK - 1) / QK;
  if (prepBytes(nb, 1, false) > <usize>SCRATCH_BYTES) unreachable();
  const signs = prepBytes(nb, 1, true) <= <usize>SCRATCH_BYTES;
  const S = scratchBase();
  const stride = <usize>nb * BB;
  const ostride = <usize>rows << 2;
  const last = w + <usize>(rows - 1) * stride;
  // tokens per chunk: as many as the scratch holds (prepared once, reused by every row group)
  let chunk = 1;
  while (chunk < nTok && prepBytes(nb, chunk * 2, signs) <= <usize>SCRATCH_BYTES) chunk *= 2;
  for (let t0 = 0; t0 < nTok; t0 += chunk) {
    const nt = min(chunk, nTok - t0);
    prepare(S, xq + <usize>t0 * stride, nb, nt, signs);
    const ones = v128.load(S), mask = v128.load(S, 16);
    const ds = S + HEAD;
    const ss = ds + ((<usize>nt * <usize>nb) << 2);
    // one row from each quarter of the matrix per pass: 4 contiguous streams (see quarterRow)
    const Q = (rows + 3) >> 2;
    let c1 = quarterStart(1, Q), c2 = quarterStart(2, Q), c3 = quarterStart(3, Q);
    for (let r = 0; r < Q; r++) {
      const r1 = Q + c1, r2 = 2 * Q + c2, r3 = 3 * Q + c3;
      c1 = quarterNext(c1, Q); c2 = quarterNext(c2, Q); c3 = quarterNext(c3, Q);
      const w0 = w + <usize>r * stride;
      const w1 = min(w + <usize>r1 * stride, last), w2 = min(w + <usize>r2 * stride, last), w3 = min(w + <usize>r3 * stride, last);
      for (let t = 0; t < nt; t++) {
        const i = <usize>t * <usize>nb;
        const xp = xq + (<usize>t0 + <usize>t) * stride;
        const acc = signs
          ? pass4<u8>(w0, w1, w2, w3, xp, ss + (i << 6), ds + (i << 2), nb, ones, mask)
          : pass4<u16>(w0, w1, w2, w3, xp, 0, ds + (i << 2), nb, ones, mask);
        storeQuarterRows(out + (<usize>t0 + <usize>t) * ostride, acc, r, r1, r2, r3, rows);
      }
    }
  }
}
