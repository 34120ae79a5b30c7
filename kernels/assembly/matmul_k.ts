// The formats beyond q8_0 / q4_0 (see kernels/quant.ts): q4_K, q5_K, q6_K weights x q8_K
// activations, q5_0 x q8_0, q4_1 and q5_1 x q8_1, with the activation quantizers q8_K and q8_1
// and row dequantization. Per block the exact integer dot (SIMD; the codes, always in [0, 63],
// are the relaxed dot's second operand, so it is portable), then the same f32 operations as
// kernels/reference/matmul.ts blockDot, in block order: bit-identical to the reference.
//
// Rows go in order and each row meets every token of the call before the next row, so a
// prefill chunk reads each weight row from memory once and from L1 for the other tokens.

import { QK, Q8_0_BLOCK_BYTES, scratchBase, SCRATCH_BYTES, f16ToF32, f32ToF16, h2fHighExact, hsum4i, hsum4i16, storeLanesStrided } from "./common";
import { QK_K, Q4_1_BLOCK_BYTES, Q5_0_BLOCK_BYTES, Q5_1_BLOCK_BYTES, Q8_1_BLOCK_BYTES, Q4_K_BLOCK_BYTES, Q5_K_BLOCK_BYTES, Q6_K_BLOCK_BYTES, Q8_K_BLOCK_BYTES } from "../build/formats";

const KB: usize = <usize>Q8_K_BLOCK_BYTES;

@inline
function hsumI(v: v128): i32 {
  const s = i32x4.add(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1);
}

// ---- activations ------------------------------------------------------------------------------

/** ggml quantize_row_q8_K_ref (see kernels/quant.ts quantizeRowQ8_KInto); n values, zero padded. */
export function quantizeRowQ8_K(dst: usize, src: usize, n: i32): void {
  const nb = (n + QK_K - 1) / QK_K;
  for (let b = 0; b < nb; b++) {
    const base = src + (<usize>b * <usize>QK_K << 2);
    const len = min(QK_K, n - b * QK_K);
    const p = dst + <usize>b * KB;
    if (len == QK_K) quantizeBlockQ8_K(p, base);
    else quantizePartialQ8_K(p, base, len);
  }
}

/** One whole block of 256 values: the same operations as the scalar path, 4 lanes at a time. */
@inline
function quantizeBlockQ8_K(p: usize, x: usize): void {
  // the largest |x| (max is exact in any order), then the first value of that magnitude for its sign
  let m = f32x4.splat(0);
  for (let j: usize = 0; j < 1024; j += 16) m = f32x4.max(m, f32x4.abs(v128.load(x + j)));
  const amax = max<f32>(max<f32>(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max<f32>(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  if (!(amax > 0)) {
    // zero block (or NaN: the scalar path never sets amax then either)
    memory.fill(p, 0, KB);
    return;
  }
  let mx: f32 = 0;
  for (let j: usize = 0; j < 1024; j += 4) {
    const v = load<f32>(x + j);
    if (abs<f32>(v) == amax) { mx = v; break; }
  }
  const iscale: f32 = <f32>-127.0 / mx;
  const sc = f32x4.splat(iscale);
  const cap = i32x4.splat(127);
  for (let j: usize = 0; j < 256; j += 16) {
    // nearest (ties to even) is nearest_int; min(127, q); the narrowing saturates nothing else
    const q0 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(sc, v128.load(x + (j << 2))))), cap);
    const q1 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(sc, v128.load(x + (j << 2), 16)))), cap);
    const q2 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(sc, v128.load(x + (j << 2), 32)))), cap);
    const q3 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(sc, v128.load(x + (j << 2), 48)))), cap);
    const q = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3));
    v128.store(p + 4 + j, q);
    const s = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(q));
    store<i16>(p + 260 + (j >> 3), <i16>hsumI(s));
  }
  store<f32>(p, <f32>1.0 / iscale);
}

/** A last block of fewer than 256 values (zero padded), scalar. */
function quantizePartialQ8_K(p: usize, base: usize, len: i32): void {
  let amax: f32 = 0, mx: f32 = 0;
  for (let j = 0; j < len; j++) {
    const v = load<f32>(base + (<usize>j << 2));
    const a = abs<f32>(v);
    if (a > amax) { amax = a; mx = v; }
  }
  memory.fill(p, 0, KB);
  if (amax == 0) return;
  const iscale: f32 = <f32>-127.0 / mx;
  for (let j = 0; j < len; j++) {
    const q = min<i32>(127, <i32>nearest<f32>(iscale * load<f32>(base + (<usize>j << 2))));
    store<i8>(p + 4 + <usize>j, <i8>q);
  }
  for (let g = 0; g < 16; g++) {
    let s = 0;
    for (let j = 0; j < 16; j++) s += <i32>load<i8>(p + 4 + <usize>(16 * g + j));
    store<i16>(p + 260 + (<usize>g << 1), <i16>s);
  }
  store<f32>(p, <f32>1.0 / iscale);
}

export function quantizeRowsQ8_K(dst: usize, src: usize, n: i32, nRows: i32): void {
  const rb = <usize>((n + QK_K - 1) / QK_K) * KB;
  for (let r = 0; r < nRows; r++) quantizeRowQ8_K(dst + <usize>r * rb, src + (<usize>r * <usize>n << 2), n);
}

/** C roundf. */
@inline
function roundAway(x: f32): i32 {
  const t = trunc<f32>(x);
  return <i32>t + (abs<f32>(x - t) >= 0.5 ? (x < 0 ? -1 : 1) : 0);
}

/** ggml quantize_row_q8_1_ref: q8_0's codes, plus s = f16(d * sum(q)). */
export function quantizeRowQ8_1(dst: usize, src: usize, n: i32): void {
  const nb = (n + QK - 1) / QK;
  for (let b = 0; b < nb; b++) {
    const base = src + (<usize>b * <usize>QK << 2);
    const len = min(QK, n - b * QK);
    const p = dst + <usize>b * <usize>Q8_1_BLOCK_BYTES;
    let amax: f32 = 0;
    for (let j = 0; j < len; j++) amax = max<f32>(amax, abs<f32>(load<f32>(base + (<usize>j << 2))));
    const d: f32 = amax / 127.0;
    const id: f32 = d != 0 ? <f32>1.0 / d : <f32>0.0;
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      const q = j < len ? roundAway(load<f32>(base + (<usize>j << 2)) * id) : 0;
      store<i8>(p + 4 + <usize>j, <i8>q);
      sum += q;
    }
    store<u16>(p, <u16>f32ToF16(d));
    store<u16>(p, <u16>f32ToF16(<f32>sum * d), 2);
  }
}

export function quantizeRowsQ8_1(dst: usize, src: usize, n: i32, nRows: i32): void {
  const rb = <usize>((n + QK - 1) / QK) * <usize>Q8_1_BLOCK_BYTES;
  for (let r = 0; r < nRows; r++) quantizeRowQ8_1(dst + <usize>r * rb, src + (<usize>r * <usize>n << 2), n);
}

// ---- K-quant scales ---------------------------------------------------------------------------

/** The 8 6-bit scales of a q4_K / q5_K block (12 bytes at p) as 2 u32 of bytes (ggml's utmp). */
@inline
function scalesLo(p: usize): u32 {
  return load<u32>(p) & 0x3f3f3f3f;
}
@inline
function scalesHi(p: usize): u32 {
  return (load<u32>(p, 8) & 0x0f0f0f0f) | (((load<u32>(p) >> 6) & 0x03030303) << 4);
}
/** The 8 mins as i16x8. */
@inline
function mins16(p: usize): v128 {
  const lo = load<u32>(p, 4) & 0x3f3f3f3f;
  const hi = ((load<u32>(p, 8) >> 4) & 0x0f0f0f0f) | (((load<u32>(p, 4) >> 6) & 0x03030303) << 4);
  return i16x8.extend_low_i8x16_u(i64x2.splat(<i64>lo | (<i64>hi << 32)));
}

/** Bytes of scratch per token and q8_K block (see preparePairSums). */
export const PAIRS: usize = 48;

/**
 * Per token and q8_K block, at scratch + (t * nb + b) * PAIRS: P = bsum[2j] + bsum[2j+1] for
 * j < 8 as i16x8 (each pair of 16-value sums is one q4_K / q5_K sub-block's activation sum),
 * then [P0..P3, P0..P3] and [P4..P7, P4..P7] for the 4-row path.
 */
export function preparePairSums(S: usize, xq: usize, nb: i32, nt: i32): void {
  const n = <usize>nt * <usize>nb;
  for (let i: usize = 0; i < n; i++) {
    const p = xq + i * KB + 260;
    const a = v128.load(p), b = v128.load(p, 16);
    // pairwise sums of 16 i16: |pair| <= 2 * 16 * 127, fits i16
    const s = i16x8.add(v128.shuffle<i16>(a, b, 0, 2, 4, 6, 8, 10, 12, 14), v128.shuffle<i16>(a, b, 1, 3, 5, 7, 9, 11, 13, 15));
    const o = S + i * PAIRS;
    v128.store(o, s);
    v128.store(o, v128.shuffle<i64>(s, s, 0, 0), 16);
    v128.store(o, v128.shuffle<i64>(s, s, 1, 1), 32);
  }
}

// ---- q4_K / q5_K ------------------------------------------------------------------------------

@inline
function scaleAt(lo: u32, hi: u32, j: i32): v128 {
  return i16x8.splat(<i16>(((j < 4 ? lo : hi) >> (8 * (j & 3))) & 0xff));
}

/** Bit `bit` of each byte of qh moved to bit 4 (the fifth bit of a q5 code). */
@inline
function fifth(qh: v128, bit: i32): v128 {
  const m = i8x16.splat(0x10);
  return bit <= 4 ? v128.and(i16x8.shl(qh, 4 - bit), m) : v128.and(i16x8.shr_u(qh, bit - 4), m);
}

/** One row x one token of q4_K (FIVE = 0) or q5_K (FIVE = 1): sum over blocks in f32. */
@inline
function rowDotQxK<FIVE>(w: usize, x: usize, pairs: usize, nb: i32): f32 {
  const five = sizeof<FIVE>() == 2;
  const WB: usize = five ? <usize>Q5_K_BLOCK_BYTES : <usize>Q4_K_BLOCK_BYTES;
  const low = i8x16.splat(0x0f);
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const sl = scalesLo(w + 4), sh = scalesHi(w + 4);
    const qs = w + (five ? 48 : 16);
    let qh0 = i8x16.splat(0), qh1 = i8x16.splat(0);
    if (five) { qh0 = v128.load(w, 16); qh1 = v128.load(w, 32); }
    let s = i32x4.splat(0);
    for (let g = 0; g < 4; g++) {
      const q0 = v128.load(qs + (<usize>g << 5)), q1 = v128.load(qs + (<usize>g << 5), 16);
      let lo0 = v128.and(q0, low), lo1 = v128.and(q1, low);
      let hi0 = v128.and(i16x8.shr_u(q0, 4), low), hi1 = v128.and(i16x8.shr_u(q1, 4), low);
      if (five) {
        lo0 = v128.or(lo0, fifth(qh0, 2 * g)); lo1 = v128.or(lo1, fifth(qh1, 2 * g));
        hi0 = v128.or(hi0, fifth(qh0, 2 * g + 1)); hi1 = v128.or(hi1, fifth(qh1, 2 * g + 1));
      }
      const xa = x + 4 + (<usize>g << 6);
      // |lane| <= 2 * 2 * 127 * 31 < 2^15
      const dl = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xa), lo0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xa, 16), lo1));
      const dh = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xa, 32), hi0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xa, 48), hi1));
      s = i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(dl, scaleAt(sl, sh, 2 * g)), i32x4.dot_i16x8_s(dh, scaleAt(sl, sh, 2 * g + 1))));
    }
    const sumi = hsumI(s);
    const summ = hsumI(i32x4.dot_i16x8_s(mins16(w + 4), v128.load(pairs)));
    const dx = load<f32>(x);
    acc += (f16ToF32(load<u16>(w)) * dx) * <f32>sumi - (f16ToF32(load<u16>(w, 2)) * dx) * <f32>summ;
    w += WB;
    x += KB;
    pairs += PAIRS;
  }
  return acc;
}

/** rowDotQxK for q4_K (the tail rows of matmul_k4x4.ts). */
export function rowDotQ4_K(w: usize, x: usize, pairs: usize, nb: i32): f32 {
  return rowDotQxK<u8>(w, x, pairs, nb);
}

/** The 4 lanes' u32 at p, p + stride, p + 2 stride, p + 3 stride. */
@inline
function gather4(p: usize, stride: usize): v128 {
  let v = i32x4.splat(load<u32>(p));
  v = i32x4.replace_lane(v, 1, load<u32>(p + stride));
  v = i32x4.replace_lane(v, 2, load<u32>(p + 2 * stride));
  return i32x4.replace_lane(v, 3, load<u32>(p + 3 * stride));
}

/** q4_K: the i16 dot of 32 codes (low or high nibbles of the 32 bytes a, b) with 32 activations. */
@inline
function nib16(a: v128, b: v128, x0: v128, x1: v128, high: bool, low: v128): v128 {
  const ca = high ? v128.and(i16x8.shr_u(a, 4), low) : v128.and(a, low);
  const cb = high ? v128.and(i16x8.shr_u(b, 4), low) : v128.and(b, low);
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, ca), i16x8.relaxed_dot_i8x16_i7x16_s(x1, cb));
}

/**
 * q4_K, 4 rows `stride` bytes apart x one token: the activations are loaded once for the 4 rows, each
 * sub-block's integer dots of the 4 rows are summed across lanes together (hsum4i16) and scaled
 * by the 4 rows' 6-bit scales as one i32x4, and the f32 steps run in the 4 lanes: per lane
 * exactly rowDotQxK's operations.
 */
@inline
function pass4Q4K(w: usize, stride: usize, x: usize, pairs: usize, nb: i32): v128 {
  const low = i8x16.splat(0x0f);
  const ones = i16x8.splat(1);
  const byte = i32x4.splat(0xff);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    // the 4 rows' scales (bytes 0..3 and 4..7 of each row's ggml utmp) as i32 lanes
    const A = gather4(w + 4, stride), B = gather4(w + 8, stride), C = gather4(w + 12, stride);
    const SL = v128.and(A, i32x4.splat(0x3f3f3f3f));
    const SH = v128.or(v128.and(C, i32x4.splat(0x0f0f0f0f)), i32x4.shl(v128.and(i32x4.shr_u(A, 6), i32x4.splat(0x03030303)), 4));
    let sumi = i32x4.splat(0);
    for (let g = 0; g < 4; g++) {
      const xa = x + 4 + (<usize>g << 6);
      const x0 = v128.load(xa), x1 = v128.load(xa, 16), x2 = v128.load(xa, 32), x3 = v128.load(xa, 48);
      const q = w + 16 + (<usize>g << 5);
      const a0 = v128.load(q), b0 = v128.load(q, 16), a1 = v128.load(q + stride), b1 = v128.load(q + stride, 16);
      const a2 = v128.load(q + 2 * stride), b2 = v128.load(q + 2 * stride, 16), a3 = v128.load(q + 3 * stride), b3 = v128.load(q + 3 * stride, 16);
      // |lane| <= 2 * 2 * 127 * 15 = 7620: hsum4i16 may add 4 of them
      const lo = hsum4i16(nib16(a0, b0, x0, x1, false, low), nib16(a1, b1, x0, x1, false, low), nib16(a2, b2, x0, x1, false, low), nib16(a3, b3, x0, x1, false, low), ones);
      const hi = hsum4i16(nib16(a0, b0, x2, x3, true, low), nib16(a1, b1, x2, x3, true, low), nib16(a2, b2, x2, x3, true, low), nib16(a3, b3, x2, x3, true, low), ones);
      const src = g < 2 ? SL : SH;
      const sh = (g & 1) << 4; // sub-blocks 2g, 2g + 1: bytes 2(g & 1), 2(g & 1) + 1 of src
      sumi = i32x4.add(sumi, i32x4.add(i32x4.mul(lo, v128.and(i32x4.shr_u(src, sh), byte)), i32x4.mul(hi, v128.and(i32x4.shr_u(src, sh + 8), byte))));
    }
    // mins (6-bit, bytes of i32 lanes = rows) times the sub-blocks' activation sums, 2 rows per dot
    const ML = v128.and(B, i32x4.splat(0x3f3f3f3f));
    const MH = v128.or(v128.and(i32x4.shr_u(C, 4), i32x4.splat(0x0f0f0f0f)), i32x4.shl(v128.and(i32x4.shr_u(B, 6), i32x4.splat(0x03030303)), 4));
    const P0 = v128.load(pairs, 16), P1 = v128.load(pairs, 32);
    const m01 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(ML), P0), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(MH), P1));
    const m23 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(ML), P0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(MH), P1));
    const summ = i32x4.add(v128.shuffle<i32>(m01, m23, 0, 2, 4, 6), v128.shuffle<i32>(m01, m23, 1, 3, 5, 7));
    const dm = gather4(w, stride); // d (low half), dmin (high half)
    const d = h2fHighExact(i32x4.shl(dm, 16)), dmin = h2fHighExact(v128.and(dm, i32x4.splat(0xffff0000)));
    const dx = v128.load32_splat(x);
    acc = f32x4.add(acc, f32x4.sub(f32x4.mul(f32x4.mul(d, dx), f32x4.convert_i32x4_s(sumi)), f32x4.mul(f32x4.mul(dmin, dx), f32x4.convert_i32x4_s(summ))));
    w += <usize>Q4_K_BLOCK_BYTES;
    x += KB;
    pairs += PAIRS;
  }
  return acc;
}

function matmulQxK<FIVE>(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  const nb = cols / QK_K;
  const WB: usize = sizeof<FIVE>() == 2 ? <usize>Q5_K_BLOCK_BYTES : <usize>Q4_K_BLOCK_BYTES;
  const stride = <usize>nb * WB;
  const S = scratchBase();
  const perTok = <usize>nb * PAIRS;
  const tile = max(1, min(nTok, <i32>(<usize>SCRATCH_BYTES / perTok)));
  for (let t0 = 0; t0 < nTok; t0 += tile) {
    const nt = min(tile, nTok - t0);
    const xt = xq + <usize>t0 * <usize>nb * KB;
    preparePairSums(S, xt, nb, nt);
    let r = 0;
    if (sizeof<FIVE>() == 1) {
      // rows r, r + Q, r + 2Q, r + 3Q: one contiguous stream per quarter of the matrix (4 rows
      // side by side in one page would make the hardware prefetcher give up, see matmul_q4.ts)
      const Q = rows >> 2;
      for (; r < Q; r++) {
        const wr = w + <usize>r * stride;
        for (let t = 0; t < nt; t++) {
          const acc = pass4Q4K(wr, <usize>Q * stride, xt + <usize>t * <usize>nb * KB, S + <usize>t * perTok, nb);
          storeLanesStrided(out + ((<usize>(t0 + t) * <usize>rows + <usize>r) << 2), <usize>Q << 2, acc, 4);
        }
      }
      r = 4 * Q;
    }
    for (; r < rows; r++) {
      const wr = w + <usize>r * <usize>nb * WB;
      for (let t = 0; t < nt; t++) {
        store<f32>(out + ((<usize>(t0 + t) * <usize>rows + <usize>r) << 2), rowDotQxK<FIVE>(wr, xt + <usize>t * <usize>nb * KB, S + <usize>t * perTok, nb));
      }
    }
  }
}

export function matmulQ4_K(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  matmulQxK<u8>(out, w, xq, rows, cols, nTok);
}

export function matmulQ5_K(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  matmulQxK<u16>(out, w, xq, rows, cols, nTok);
}

// ---- q6_K -------------------------------------------------------------------------------------

@inline
function dot6(x: usize, v: v128, sc: usize): v128 {
  // |lane| <= 2 * 127 * 63 < 2^15
  return i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x), v), i16x8.splat(<i16>load<i8>(sc)));
}

/**
 * One q6_K block's integer dot with one q8_K block as i32x4 partial sums: the 6-bit codes (the
 * relaxed dot's second operand, in [0, 63]) times the activations, times each 16-value group's
 * scale, less the -32 offset (32 * sum of scale * group activation sum, from the bsums).
 */
@inline
function blockQ6K(w: usize, x: usize): v128 {
  const m4 = i8x16.splat(0x0f), m30 = i8x16.splat(0x30);
  let s = i32x4.splat(0);
  for (let half = 0; half < 2; half++) {
    const ql = w + (<usize>half << 6), qh = w + 128 + (<usize>half << 5), sc = w + 192 + (<usize>half << 3);
    const xa = x + 4 + (<usize>half << 7);
    const L0 = v128.load(ql), L1 = v128.load(ql, 16), L2 = v128.load(ql, 32), L3 = v128.load(ql, 48);
    const H0 = v128.load(qh), H1 = v128.load(qh, 16);
    s = i32x4.add(s, dot6(xa, v128.or(v128.and(L0, m4), v128.and(i16x8.shl(H0, 4), m30)), sc));
    s = i32x4.add(s, dot6(xa + 16, v128.or(v128.and(L1, m4), v128.and(i16x8.shl(H1, 4), m30)), sc + 1));
    s = i32x4.add(s, dot6(xa + 32, v128.or(v128.and(L2, m4), v128.and(i16x8.shl(H0, 2), m30)), sc + 2));
    s = i32x4.add(s, dot6(xa + 48, v128.or(v128.and(L3, m4), v128.and(i16x8.shl(H1, 2), m30)), sc + 3));
    s = i32x4.add(s, dot6(xa + 64, v128.or(v128.and(i16x8.shr_u(L0, 4), m4), v128.and(H0, m30)), sc + 4));
    s = i32x4.add(s, dot6(xa + 80, v128.or(v128.and(i16x8.shr_u(L1, 4), m4), v128.and(H1, m30)), sc + 5));
    s = i32x4.add(s, dot6(xa + 96, v128.or(v128.and(i16x8.shr_u(L2, 4), m4), v128.and(i16x8.shr_u(H0, 2), m30)), sc + 6));
    s = i32x4.add(s, dot6(xa + 112, v128.or(v128.and(i16x8.shr_u(L3, 4), m4), v128.and(i16x8.shr_u(H1, 2), m30)), sc + 7));
  }
  // the -32 offset: 32 * sum over the 16 groups of scale * (sum of the group's activations)
  const scales = v128.load(w, 192);
  const bias = i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(scales), v128.load(x, 260)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(scales), v128.load(x, 276)),
  );
  return i32x4.sub(s, i32x4.shl(bias, 5));
}

@inline
function rowDotQ6K(w: usize, x: usize, nb: i32): f32 {
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const sumi = hsumI(blockQ6K(w, x));
    acc += (f16ToF32(load<u16>(w, 208)) * load<f32>(x)) * <f32>sumi;
    w += <usize>Q6_K_BLOCK_BYTES;
    x += KB;
  }
  return acc;
}

/** rowDotQ6K for the tail rows of matmul_k6x4.ts. */
export function rowDotQ6_K(w: usize, x: usize, nb: i32): f32 {
  return rowDotQ6K(w, x, nb);
}

/** q6_K, 4 rows `stride` bytes apart x one token: each lane exactly rowDotQ6K's operations. */
@inline
function pass4Q6K(w: usize, stride: usize, x: usize, nb: i32): v128 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const sumi = hsum4i(blockQ6K(w, x), blockQ6K(w + stride, x), blockQ6K(w + 2 * stride, x), blockQ6K(w + 3 * stride, x));
    let h = i32x4.splat(<i32>load<u16>(w, 208));
    h = i32x4.replace_lane(h, 1, <i32>load<u16>(w + stride, 208));
    h = i32x4.replace_lane(h, 2, <i32>load<u16>(w + 2 * stride, 208));
    h = i32x4.replace_lane(h, 3, <i32>load<u16>(w + 3 * stride, 208));
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(h2fHighExact(i32x4.shl(h, 16)), v128.load32_splat(x)), f32x4.convert_i32x4_s(sumi)));
    w += <usize>Q6_K_BLOCK_BYTES;
    x += KB;
  }
  return acc;
}

export function matmulQ6_K(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  const nb = cols / QK_K;
  const stride = <usize>nb * <usize>Q6_K_BLOCK_BYTES;
  // rows r, r + Q, r + 2Q, r + 3Q: one contiguous stream per quarter of the matrix
  const Q = rows >> 2;
  for (let r = 0; r < Q; r++) {
    for (let t = 0; t < nTok; t++) {
      storeLanesStrided(out + ((<usize>t * <usize>rows + <usize>r) << 2), <usize>Q << 2, pass4Q6K(w + <usize>r * stride, <usize>Q * stride, xq + <usize>t * <usize>nb * KB, nb), 4);
    }
  }
  for (let r = 4 * Q; r < rows; r++) {
    const wr = w + <usize>r * <usize>nb * <usize>Q6_K_BLOCK_BYTES;
    for (let t = 0; t < nTok; t++) {
      store<f32>(out + ((<usize>t * <usize>rows + <usize>r) << 2), rowDotQ6K(wr, xq + <usize>t * <usize>nb * KB, nb));
    }
  }
}

// ---- q5_0, q4_1, q5_1 -------------------------------------------------------------------------

/** The 32 fifth bits of a q5 block (u32 at p) as bytes 0x10 / 0: low half (codes 0..15), high half. */
@inline
function fifthBits(p: usize, half: i32): v128 {
  const bits = i32x4.splat(load<u32>(p));
  // lane j takes byte (16 * half + j) >> 3 of the u32 and tests bit j & 7
  const sel = half == 0
    ? i8x16.swizzle(bits, v128(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))
    : i8x16.swizzle(bits, v128(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const mask = v128(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(sel, mask), mask), i8x16.splat(0x10));
}

/**
 * One row x one token of a 32-value format: KIND 0 q5_0 (x q8_0, codes - 16), 1 q4_1, 2 q5_1
 * (x q8_1, d * sumi + m * s).
 */
@inline
function rowDot32<KIND>(w: usize, x: usize, nb: i32): f32 {
  const kind = sizeof<KIND>() == 1 ? 0 : sizeof<KIND>() == 2 ? 1 : 2;
  const WB: usize = kind == 0 ? <usize>Q5_0_BLOCK_BYTES : kind == 1 ? <usize>Q4_1_BLOCK_BYTES : <usize>Q5_1_BLOCK_BYTES;
  const XB: usize = kind == 0 ? <usize>Q8_0_BLOCK_BYTES : <usize>Q8_1_BLOCK_BYTES;
  const xOff: usize = kind == 0 ? 2 : 4;
  const low = i8x16.splat(0x0f);
  const ones = i16x8.splat(1);
  const sixteen = i8x16.splat(16);
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const x0 = v128.load(x + xOff), x1 = v128.load(x + xOff, 16);
    let sumi = hsumI(codes32Dot<KIND>(w, x0, x1, low, ones));
    if (kind == 0) sumi -= sixteenTimesSum(x0, x1, sixteen, ones); // codes - 16
    const dw = f16ToF32(load<u16>(w)), dx = f16ToF32(load<u16>(x));
    if (kind == 0) acc += <f32>sumi * (dw * dx);
    else acc += (dw * dx) * <f32>sumi + f16ToF32(load<u16>(w, 2)) * f16ToF32(load<u16>(x, 2));
    w += WB;
    x += XB;
  }
  return acc;
}

/** 16 * sum of a block's 32 activations (q5_0's codes are stored + 16). */
@inline
function sixteenTimesSum(x0: v128, x1: v128, sixteen: v128, ones: v128): i32 {
  return hsumI(i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, sixteen), i16x8.relaxed_dot_i8x16_i7x16_s(x1, sixteen)), ones));
}

/** One row's i32x4 partial sums of a 32-value block's integer dot (codes 0..31, no offset). */
@inline
function codes32Dot<KIND>(w: usize, x0: v128, x1: v128, low: v128, ones: v128): v128 {
  const kind = sizeof<KIND>() == 1 ? 0 : sizeof<KIND>() == 2 ? 1 : 2;
  const qsOff: usize = kind == 0 ? 6 : kind == 1 ? 4 : 8;
  const q = v128.load(w + qsOff);
  let lo = v128.and(q, low), hi = v128.and(i16x8.shr_u(q, 4), low);
  if (kind != 1) {
    const qh = w + (kind == 0 ? 2 : 4);
    lo = v128.or(lo, fifthBits(qh, 0));
    hi = v128.or(hi, fifthBits(qh, 1));
  }
  // |lane| <= 2 * 2 * 127 * 31 < 2^15
  return i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, lo), i16x8.relaxed_dot_i8x16_i7x16_s(x1, hi)), ones);
}

/**
 * 4 rows `stride` bytes apart x one token of a 32-value format: activations loaded once per block, the 4
 * rows' integer dots reduced together (hsum4i), and the f32 steps in the 4 lanes, each lane
 * exactly rowDot32's operations.
 */
@inline
function pass4x32<KIND>(w: usize, stride: usize, x: usize, nb: i32): v128 {
  const kind = sizeof<KIND>() == 1 ? 0 : sizeof<KIND>() == 2 ? 1 : 2;
  const WB: usize = kind == 0 ? <usize>Q5_0_BLOCK_BYTES : kind == 1 ? <usize>Q4_1_BLOCK_BYTES : <usize>Q5_1_BLOCK_BYTES;
  const XB: usize = kind == 0 ? <usize>Q8_0_BLOCK_BYTES : <usize>Q8_1_BLOCK_BYTES;
  const xOff: usize = kind == 0 ? 2 : 4;
  const low = i8x16.splat(0x0f);
  const ones = i16x8.splat(1);
  const sixteen = i8x16.splat(16);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const x0 = v128.load(x + xOff), x1 = v128.load(x + xOff, 16);
    let sumi = hsum4i(codes32Dot<KIND>(w, x0, x1, low, ones), codes32Dot<KIND>(w + stride, x0, x1, low, ones), codes32Dot<KIND>(w + 2 * stride, x0, x1, low, ones), codes32Dot<KIND>(w + 3 * stride, x0, x1, low, ones));
    const dx = f32x4.splat(f16ToF32(load<u16>(x)));
    if (kind == 0) {
      // codes - 16: subtract 16 * sum(x), the same for the 4 rows
      sumi = i32x4.sub(sumi, i32x4.splat(sixteenTimesSum(x0, x1, sixteen, ones)));
      let h = i32x4.splat(<i32>load<u16>(w));
      h = i32x4.replace_lane(h, 1, <i32>load<u16>(w + stride));
      h = i32x4.replace_lane(h, 2, <i32>load<u16>(w + 2 * stride));
      h = i32x4.replace_lane(h, 3, <i32>load<u16>(w + 3 * stride));
      acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(sumi), f32x4.mul(h2fHighExact(i32x4.shl(h, 16)), dx)));
    } else {
      const dm = gather4(w, stride); // d (low half), m (high half)
      const sx = f32x4.splat(f16ToF32(load<u16>(x, 2)));
      acc = f32x4.add(acc, f32x4.add(f32x4.mul(f32x4.mul(h2fHighExact(i32x4.shl(dm, 16)), dx), f32x4.convert_i32x4_s(sumi)), f32x4.mul(h2fHighExact(v128.and(dm, i32x4.splat(0xffff0000))), sx)));
    }
    w += WB;
    x += XB;
  }
  return acc;
}

function matmul32<KIND>(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  const kind = sizeof<KIND>() == 1 ? 0 : sizeof<KIND>() == 2 ? 1 : 2;
  const WB: usize = kind == 0 ? <usize>Q5_0_BLOCK_BYTES : kind == 1 ? <usize>Q4_1_BLOCK_BYTES : <usize>Q5_1_BLOCK_BYTES;
  const XB: usize = kind == 0 ? <usize>Q8_0_BLOCK_BYTES : <usize>Q8_1_BLOCK_BYTES;
  const nb = (cols + QK - 1) / QK;
  const stride = <usize>nb * WB;
  // rows r, r + Q, r + 2Q, r + 3Q: one contiguous stream per quarter of the matrix
  const Q = rows >> 2;
  for (let r = 0; r < Q; r++) {
    const wr = w + <usize>r * stride;
    for (let t = 0; t < nTok; t++) {
      storeLanesStrided(out + ((<usize>t * <usize>rows + <usize>r) << 2), <usize>Q << 2, pass4x32<KIND>(wr, <usize>Q * stride, xq + <usize>t * <usize>nb * XB, nb), 4);
    }
  }
  for (let r = 4 * Q; r < rows; r++) {
    const wr = w + <usize>r * <usize>nb * WB;
    for (let t = 0; t < nTok; t++) {
      store<f32>(out + ((<usize>t * <usize>rows + <usize>r) << 2), rowDot32<KIND>(wr, xq + <usize>t * <usize>nb * XB, nb));
    }
  }
}

export function matmulQ5_0(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  matmul32<u8>(out, w, xq, rows, cols, nTok);
}

export function matmulQ4_1(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  matmul32<u16>(out, w, xq, rows, cols, nTok);
}

export function matmulQ5_1(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  matmul32<u32>(out, w, xq, rows, cols, nTok);
}

// ---- dequantization ---------------------------------------------------------------------------

/** One row of n values of q4_1 (KIND u16), q5_0 (u8) or q5_1 (u32), as kernels/quant.ts dequantizeBlock. */
function dequantizeRow32<KIND>(dst: usize, src: usize, n: i32): void {
  const kind = sizeof<KIND>() == 1 ? 0 : sizeof<KIND>() == 2 ? 1 : 2;
  const WB: usize = kind == 0 ? <usize>Q5_0_BLOCK_BYTES : kind == 1 ? <usize>Q4_1_BLOCK_BYTES : <usize>Q5_1_BLOCK_BYTES;
  const qsOff: usize = kind == 0 ? 6 : kind == 1 ? 4 : 8;
  for (let i = 0; i < n; i++) {
    const p = src + <usize>(i / QK) * WB;
    const j = i % QK;
    const byte = <u32>load<u8>(p + qsOff + <usize>(j & 15));
    let q = j < 16 ? byte & 15 : byte >> 4;
    if (kind != 1) q |= ((load<u32>(p + (kind == 0 ? 2 : 4)) >> j) & 1) << 4;
    const d = f16ToF32(load<u16>(p));
    store<f32>(dst + (<usize>i << 2), kind == 0 ? <f32>(<i32>q - 16) * d : <f32>q * d + f16ToF32(load<u16>(p, 2)));
  }
}

export function dequantizeRowQ5_0(dst: usize, src: usize, n: i32): void {
  dequantizeRow32<u8>(dst, src, n);
}

export function dequantizeRowQ4_1(dst: usize, src: usize, n: i32): void {
  dequantizeRow32<u16>(dst, src, n);
}

export function dequantizeRowQ5_1(dst: usize, src: usize, n: i32): void {
  dequantizeRow32<u32>(dst, src, n);
}

/** One row of q4_K (FIVE u8) or q5_K (u16), n a multiple of 256. */
function dequantizeRowQxK<FIVE>(dst: usize, src: usize, n: i32): void {
  const five = sizeof<FIVE>() == 2;
  const WB: usize = five ? <usize>Q5_K_BLOCK_BYTES : <usize>Q4_K_BLOCK_BYTES;
  for (let b = 0; b < n / QK_K; b++) {
    const p = src + <usize>b * WB;
    const d = f16ToF32(load<u16>(p)), dmin = f16ToF32(load<u16>(p, 2));
    const sl = scalesLo(p + 4), sh = scalesHi(p + 4);
    const ml = load<u32>(p, 8) & 0x3f3f3f3f;
    const mh = ((load<u32>(p, 12) >> 4) & 0x0f0f0f0f) | (((load<u32>(p, 8) >> 6) & 0x03030303) << 4);
    const qs = p + (five ? 48 : 16);
    for (let j = 0; j < 8; j++) {
      const sc = ((j < 4 ? sl : sh) >> (8 * (j & 3))) & 0xff;
      const m = ((j < 4 ? ml : mh) >> (8 * (j & 3))) & 0xff;
      const d1 = d * <f32>sc, m1 = dmin * <f32>m;
      for (let l = 0; l < 32; l++) {
        let q = (<u32>load<u8>(qs + <usize>((j >> 1) * 32 + l)) >> (4 * (j & 1))) & 15;
        if (five) q |= ((<u32>load<u8>(p + 16 + <usize>l) >> j) & 1) << 4;
        store<f32>(dst + (<usize>(b * QK_K + 32 * j + l) << 2), d1 * <f32>q - m1);
      }
    }
  }
}

export function dequantizeRowQ4_K(dst: usize, src: usize, n: i32): void {
  dequantizeRowQxK<u8>(dst, src, n);
}

export function dequantizeRowQ5_K(dst: usize, src: usize, n: i32): void {
  dequantizeRowQxK<u16>(dst, src, n);
}

export function dequantizeRowQ6_K(dst: usize, src: usize, n: i32): void {
  for (let b = 0; b < n / QK_K; b++) {
    const p = src + <usize>b * <usize>Q6_K_BLOCK_BYTES;
    const d = f16ToF32(load<u16>(p, 208));
    for (let v = 0; v < QK_K; v++) {
      const half = v >> 7, k = v & 127, quarter = k >> 5, l = k & 31;
      const ql = <u32>load<u8>(p + <usize>(64 * half + l + 32 * (quarter & 1)));
      const lowBits = quarter < 2 ? ql & 15 : ql >> 4;
      const high = (<u32>load<u8>(p + 128 + <usize>(32 * half + l)) >> (2 * quarter)) & 3;
      const sc = <f32>load<i8>(p + 192 + <usize>(v >> 4));
      store<f32>(dst + (<usize>(b * QK_K + v) << 2), (d * sc) * <f32>(<i32>(lowBits | (high << 4)) - 32));
    }
  }
}
