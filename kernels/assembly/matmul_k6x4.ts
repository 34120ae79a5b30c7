// q6_K matmul over a 4-row-interleaved copy of the weights ("q6_Kx4"), made once at model load
// by repackQ6_Kx4, in place and in the same bytes. Rows 4g..4g+3 of a plain q6_K matrix occupy
// 4 x nb x 210 contiguous bytes; repacked, that region holds per block index b (840 bytes):
//   [f16 d of rows 4g..4g+3 (8 B)] [4 scale tables of 16 B] [32 x 16 B of ql] [16 x 16 B of qh]
// Scale table m holds the i8 scales of the 16-value groups 4m..4m+3 of the 4 rows, group 4m + j
// of row k at byte 8(j >> 1) + 2k + (j & 1): its low 8 bytes widened to i16 are, per row, the
// pair (4m, 4m+1), so one widening dot with the activation sums (b[4m], b[4m+1]) repeated gives
// the 4 rows' share of the -32 offset (and the high 8 bytes the pair (4m+2, 4m+3)).
// ql vector c (0..31) is [row 4g bytes 4c..4c+3 of ql, row 4g+1's, .., row 4g+3's], qh vector e
// (0..15) the same of qh: the 6-bit codes of 4 consecutive values of each of the 4 rows come
// out of one ql and one qh vector with q6_K's usual masks and shifts, and a relaxed dot against
// those 4 activation bytes splatted to all lanes yields i16 lanes that belong to one row each
// (lanes 2k, 2k+1 -> row k). Two such dots add up as i16 (|lane| <= 2 * 2 * 127 * 63 = 32004),
// and one widening dot with the group's scales laid out as [s0, s0, s1, s1, ..] gives the 4 rows'
// scaled sums. Rows past the last multiple of 4 (the tail, < 4 rows) stay in the plain layout.
// The integer sums are exact and the f32 operations those of matmulQ6_K: bit-identical results.

import { SCRATCH_BYTES, scratchBase, h2fHighExact } from "./common";
import { QK_K, Q6_K_BLOCK_BYTES, Q8_K_BLOCK_BYTES } from "../build/formats";
import { rowDotQ6_K, dequantizeRowQ6_K } from "./matmul_k";

const BB: usize = <usize>Q6_K_BLOCK_BYTES;
const KB: usize = <usize>Q8_K_BLOCK_BYTES;
const GB: usize = 4 * BB; // one block index of a 4-row group
const QL: usize = 72; // offset of the ql vectors in a group's block
const QH: usize = 584; // offset of the qh vectors

/** Byte of scale table m (of 4) that holds group 4m + j of row k. */
@inline
function tableByte(j: usize, k: usize): usize {
  return ((j >> 1) << 3) + (k << 1) + (j & 1);
}

/**
 * Repack rows 0 .. 4*floor(rows/4) of the q6_K matrix at w in place (cols a multiple of 256).
 * Returns 0 (and changes nothing) when a 4-row group does not fit the scratch, else 1.
 */
export function repackQ6_Kx4(w: usize, rows: i32, cols: i32): i32 {
  const nb = cols / QK_K;
  const stride = <usize>nb * BB;
  if (stride * 4 > <usize>SCRATCH_BYTES) return 0;
  const S = scratchBase();
  const G = rows >> 2;
  for (let g = 0; g < G; g++) {
    const p = w + <usize>g * stride * 4;
    memory.copy(S, p, stride * 4);
    for (let b: usize = 0; b < <usize>nb; b++) {
      const o = p + b * GB;
      for (let k: usize = 0; k < 4; k++) {
        const src = S + k * stride + b * BB;
        store<u16>(o + (k << 1), load<u16>(src, 208));
        for (let i: usize = 0; i < 16; i++) store<u8>(o + 8 + ((i >> 2) << 4) + tableByte(i & 3, k), load<u8>(src + 192 + i));
        for (let c: usize = 0; c < 32; c++) store<u32>(o + QL + (c << 4) + (k << 2), load<u32>(src + (c << 2)));
        for (let e: usize = 0; e < 16; e++) store<u32>(o + QH + (e << 4) + (k << 2), load<u32>(src + 128 + (e << 2)));
      }
    }
  }
  return 1;
}

/** Row `row` of a repacked matrix as f32 (same values as dequantizeRowQ6_K of the plain row). */
export function dequantizeRowQ6_Kx4(dst: usize, w: usize, rows: i32, cols: i32, row: i32): void {
  const nb = cols / QK_K;
  const stride = <usize>nb * BB;
  if (row >= (rows & ~3)) {
    dequantizeRowQ6_K(dst, w + <usize>row * stride, cols);
    return;
  }
  if (stride > <usize>SCRATCH_BYTES) unreachable();
  // gather the row back into plain blocks in the scratch, then decode as usual
  const S = scratchBase();
  const p = w + <usize>(row >> 2) * stride * 4;
  const k = <usize>(row & 3);
  for (let b: usize = 0; b < <usize>nb; b++) {
    const o = S + b * BB, src = p + b * GB;
    store<u16>(o, load<u16>(src + (k << 1)), 208);
    for (let i: usize = 0; i < 16; i++) store<u8>(o + 192 + i, load<u8>(src + 8 + ((i >> 2) << 4) + tableByte(i & 3, k)));
    for (let c: usize = 0; c < 32; c++) store<u32>(o + (c << 2), load<u32>(src + QL + (c << 4) + (k << 2)));
    for (let e: usize = 0; e < 16; e++) store<u32>(o + 128 + (e << 2), load<u32>(src + QH + (e << 4) + (k << 2)));
  }
  dequantizeRowQ6_K(dst, S, cols);
}

/**
 * Masks for relaxed_swizzle: the j-th puts byte tableByte(j, k) of a scale table into both bytes
 * of i16 lanes 2k and 2k + 1; an arithmetic shift by 8 then gives the sign-extended scale.
 */
const EXPAND = memory.data<u8>([
  0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6,
  1, 1, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 7, 7, 7, 7,
  8, 8, 8, 8, 10, 10, 10, 10, 12, 12, 12, 12, 14, 14, 14, 14,
  9, 9, 9, 9, 11, 11, 11, 11, 13, 13, 13, 13, 15, 15, 15, 15,
]);

/** [s0, s0, s1, s1, s2, s2, s3, s3] (i16) of group 4m + j of the table at t. */
@inline
function expand(t: usize, j: usize): v128 {
  return i16x8.shr_s(i8x16.relaxed_swizzle(v128.load(t), v128.load(EXPAND + (j << 4))), 8);
}

/**
 * The 6-bit codes of value quarter J (0..3: ggml's q1..q4) of the 4 rows from their ql and qh
 * vectors (J a constant; as matmul_k.ts blockQ6K).
 */
@inline
function codes(q: v128, h: v128, J: i32, m4: v128, m30: v128): v128 {
  if (J == 0) return v128.or(v128.and(q, m4), v128.and(i16x8.shl(h, 4), m30));
  if (J == 1) return v128.or(v128.and(q, m4), v128.and(i16x8.shl(h, 2), m30));
  if (J == 2) return v128.or(v128.and(i16x8.shr_u(q, 4), m4), v128.and(h, m30));
  return v128.or(v128.and(i16x8.shr_u(q, 4), m4), v128.and(i16x8.shr_u(h, 2), m30));
}

/**
 * 4 consecutive values of each of the 4 rows in each quarter of one half of a block (ql vectors
 * A at a and B at a + 128, qh vector H at h; activations of quarter J at x + 32 J): the four
 * quarters' relaxed dots, added to d0..d3 of the scratch at acc (i16x8 each).
 */
@inline
function chunk4(a: usize, h: usize, x: usize, acc: usize, m4: v128, m30: v128): void {
  const A = v128.load(a), B = v128.load(a, 128), H = v128.load(h);
  v128.store(acc, i16x8.add(v128.load(acc), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x), codes(A, H, 0, m4, m30))));
  v128.store(acc, i16x8.add(v128.load(acc, 16), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 32), codes(B, H, 1, m4, m30))), 16);
  v128.store(acc, i16x8.add(v128.load(acc, 32), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 64), codes(A, H, 2, m4, m30))), 32);
  v128.store(acc, i16x8.add(v128.load(acc, 48), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(x, 96), codes(B, H, 3, m4, m30))), 48);
}

/** One block of one 4-row group at p with the q8_K block at x: the integer dot before the -32 offset. */
@inline
function block4(p: usize, x: usize, acc: usize, m4: v128, m30: v128): v128 {
  let s = i32x4.splat(0);
  let a = p + QL, h = p + QH, t = p + 8, xa = x + 4;
  const zero = i16x8.splat(0);
  for (let half = 0; half < 2; half++) {
    for (let mm: usize = 0; mm < 2; mm++) {
      // groups 8 half + 2J + mm of quarters J = 0..3: tables t (J = 0, 1) and t + 16 (J = 2, 3)
      const e0 = expand(t, mm), e1 = expand(t, 2 + mm), e2 = expand(t + 16, mm), e3 = expand(t + 16, 2 + mm);
      for (let pr = 0; pr < 2; pr++) {
        // two chunks of 4 values (|i16 lane| <= 2 * 2 * 127 * 63), then scaled into s
        let A = v128.load(a), B = v128.load(a, 128), H = v128.load(h);
        let d0 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa), codes(A, H, 0, m4, m30));
        let d1 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 32), codes(B, H, 1, m4, m30));
        let d2 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 64), codes(A, H, 2, m4, m30));
        let d3 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 96), codes(B, H, 3, m4, m30));
        A = v128.load(a, 16); B = v128.load(a, 144); H = v128.load(h, 16);
        d0 = i16x8.add(d0, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 4), codes(A, H, 0, m4, m30)));
        d1 = i16x8.add(d1, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 36), codes(B, H, 1, m4, m30)));
        d2 = i16x8.add(d2, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 68), codes(A, H, 2, m4, m30)));
        d3 = i16x8.add(d3, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 100), codes(B, H, 3, m4, m30)));
        s = i32x4.add(s, i32x4.add(i32x4.add(i32x4.dot_i16x8_s(d0, e0), i32x4.dot_i16x8_s(d1, e1)), i32x4.add(i32x4.dot_i16x8_s(d2, e2), i32x4.dot_i16x8_s(d3, e3))));
        a += 32; h += 32; xa += 8;
      }
    }
    // the next half: ql 256 bytes on (a moved 128), qh 128 on (h moved 128), tables 32 on, activations 128 on (xa moved 32)
    a += 128; t += 32; xa += 96;
  }
  return s;
}

/** The 4 rows' sum over the 16 groups of scale * (the group's activation sum), from q8_K's bsums. */
@inline
function offset4(p: usize, x: usize): v128 {
  let acc = i32x4.splat(0);
  for (let m: usize = 0; m < 4; m++) {
    const t = v128.load(p + 8 + (m << 4));
    acc = i32x4.add(acc, i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(t), v128.load32_splat(x + 260 + (m << 3))),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(t), v128.load32_splat(x + 264 + (m << 3))),
    ));
  }
  return acc;
}

/** acc + (d * dx) * (sumi - 32 * offset) per lane: matmul_k.ts rowDotQ6K's f32 steps. */
@inline
function update(acc: v128, p: usize, x: usize, s: v128): v128 {
  const sumi = i32x4.sub(s, i32x4.shl(offset4(p, x), 5));
  const d = h2fHighExact(i32x4.shl(v128.load16x4_u(p), 16));
  return f32x4.add(acc, f32x4.mul(f32x4.mul(d, v128.load32_splat(x)), f32x4.convert_i32x4_s(sumi)));
}

/** Two 4-row groups (at p and q; q == p for one group alone) x one token over nb blocks. */
@inline
function pass8(o: usize, o2: usize, p: usize, q: usize, x: usize, nb: i32, acc: usize): void {
  const m4 = i8x16.splat(0x0f), m30 = i8x16.splat(0x30);
  let accA = f32x4.splat(0), accB = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    accA = update(accA, p, x, block4(p, x, acc, m4, m30));
    accB = update(accB, q, x, block4(q, x, acc, m4, m30));
    p += GB;
    q += GB;
    x += KB;
  }
  v128.store(o, accA);
  v128.store(o2, accB);
}

/** matmulQ6_K for a matrix repacked by repackQ6_Kx4 (same arguments, same results). */
export function matmulQ6_Kx4(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = cols / QK_K;
  const stride = <usize>nb * BB;
  const xstride = <usize>nb * KB;
  const ostride = <usize>rows << 2;
  const G = rows >> 2;
  const S = scratchBase();
  // groups g and g + H together: two streams far apart (two interleaved streams in one page
  // defeat the hardware prefetcher once the matrix is out of cache); in prefill the two groups
  // meet every token while they are in L1
  const H = G >> 1;
  for (let g = 0; g < H; g++) {
    const p = w + <usize>g * stride * 4, q = w + <usize>(g + H) * stride * 4;
    for (let t = 0; t < nTok; t++) {
      const ot = out + <usize>t * ostride;
      pass8(ot + (<usize>g << 4), ot + (<usize>(g + H) << 4), p, q, xq + <usize>t * xstride, nb, S);
    }
  }
  // the odd last group, with itself as the second
  for (let g = H << 1; g < G; g++) {
    const p = w + <usize>g * stride * 4;
    for (let t = 0; t < nTok; t++) {
      const o = out + <usize>t * ostride + (<usize>g << 4);
      pass8(o, o, p, p, xq + <usize>t * xstride, nb, S);
    }
  }
  for (let r = G << 2; r < rows; r++) {
    const wr = w + <usize>r * stride;
    for (let t = 0; t < nTok; t++) store<f32>(out + <usize>t * ostride + (<usize>r << 2), rowDotQ6_K(wr, xq + <usize>t * xstride, nb));
  }
}
