// q6_K matmul over a 4-row-interleaved copy of the weights ("q6_Kx4"), made once at model load
// by repackQ6_Kx4, in place and in the same bytes. Rows 4g..4g+3 of a plain q6_K matrix occupy
// 4 x nb x 210 contiguous bytes; repacked, that region holds per block index b (840 bytes):
//   [f16 d of rows 4g..4g+3 (8 B)] [4 scale tables of 16 B] [16 x 48 B of codes]
// Scale table m holds the i8 scales of the 16-value groups 4m..4m+3 of the 4 rows, group 4m + j
// of row k at byte 8(j >> 1) + 2k + (j & 1): its low 8 bytes widened to i16 are, per row, the
// pair (4m, 4m+1), so one widening dot with the activation sums (b[4m], b[4m+1]) repeated gives
// the 4 rows' share of the -32 offset (and the high 8 bytes the pair (4m+2, 4m+3)).
// The codes: q6_K's 6-bit codes (0..63, before the -32) of values 128h + 32J + 4c + i (half h,
// quarter J = 0..3, c = 0..7, i = 0..3) of the 4 rows go to 48-byte set 8h + c, three vectors
// V0, V1, V2 with byte 4k + i of Vj = code of quarter j of row k | 2 bits of quarter 3's code
// (bits 2j, 2j + 1) << 6. So quarters 0..2 are one mask away (V & 63) and quarter 3 six shifts
// and masks (ggml's ql / qh split costs 17 operations for the four). A relaxed dot of 4 codes
// a row against those 4 activation bytes splatted to all lanes yields i16 lanes that belong to
// one row each (lanes 2k, 2k+1 -> row k). Two such dots add up as i16 (|lane| <= 2 * 2 * 127 *
// 63 = 32004), and one widening dot with the group's scales laid out as [s0, s0, s1, s1, ..]
// gives the 4 rows' scaled sums. Rows past the last multiple of 4 (the tail, < 4 rows) stay in
// the plain layout. The integer sums are exact and the f32 operations those of matmulQ6_K:
// bit-identical results.

import { SCRATCH_BYTES, scratchBase, h2fHighExact } from "./common";
import { QK_K, Q6_K_BLOCK_BYTES, Q8_K_BLOCK_BYTES } from "../build/formats";
import { rowDotQ6_K, dequantizeRowQ6_K } from "./matmul_k";

const BB: usize = <usize>Q6_K_BLOCK_BYTES;
const KB: usize = <usize>Q8_K_BLOCK_BYTES;
const GB: usize = 4 * BB; // one block index of a 4-row group
const CODES: usize = 72; // offset of the code sets in a group's block

/** The 6-bit code (0..63) of value v of the plain q6_K block at b (ggml's ql / qh layout). */
@inline
function codeAt(b: usize, v: usize): u32 {
  const h = v >> 7, J = (v >> 5) & 3, l = v & 31;
  const ql = <u32>load<u8>(b + (h << 6) + l + ((J & 1) << 5));
  const low = J < 2 ? ql & 15 : ql >> 4;
  return low | (((<u32>load<u8>(b + 128 + (h << 5) + l) >> (<u32>J << 1)) & 3) << 4);
}

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
        for (let h: usize = 0; h < 2; h++) {
          for (let l: usize = 0; l < 32; l++) {
            const c3 = codeAt(src, (h << 7) + 96 + l);
            const at = o + CODES + 48 * ((h << 3) + (l >> 2)) + (k << 2) + (l & 3);
            for (let j: usize = 0; j < 3; j++) store<u8>(at + (j << 4), codeAt(src, (h << 7) + (j << 5) + l) | (((c3 >> (<u32>j << 1)) & 3) << 6));
          }
        }
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
    for (let h: usize = 0; h < 2; h++) {
      for (let l: usize = 0; l < 32; l++) {
        const at = src + CODES + 48 * ((h << 3) + (l >> 2)) + (k << 2) + (l & 3);
        const v0 = <u32>load<u8>(at), v1 = <u32>load<u8>(at + 16), v2 = <u32>load<u8>(at + 32);
        const c0 = v0 & 63, c1 = v1 & 63, c2 = v2 & 63, c3 = (v0 >> 6) | ((v1 >> 6) << 2) | ((v2 >> 6) << 4);
        store<u8>(o + (h << 6) + l, (c0 & 15) | ((c2 & 15) << 4));
        store<u8>(o + (h << 6) + 32 + l, (c1 & 15) | ((c3 & 15) << 4));
        store<u8>(o + 128 + (h << 5) + l, (c0 >> 4) | ((c1 >> 4) << 2) | ((c2 >> 4) << 4) | ((c3 >> 4) << 6));
      }
    }
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

/** Quarter J's 6-bit codes of the 4 rows from a code set's V0, V1, V2 (J a constant). */
@inline
function codes(v0: v128, v1: v128, v2: v128, J: i32, m63: v128, m: v128): v128 {
  if (J == 0) return v128.and(v0, m63);
  if (J == 1) return v128.and(v1, m63);
  if (J == 2) return v128.and(v2, m63);
  // the top 2 bits of each byte (m = 0xc0 in every byte) moved down: nothing crosses a byte
  return v128.or(v128.or(i16x8.shr_u(v128.and(v0, m), 6), i16x8.shr_u(v128.and(v1, m), 4)), i16x8.shr_u(v128.and(v2, m), 2));
}

/** One block of one 4-row group at p with the q8_K block at x: the integer dot before the -32 offset. */
@inline
function block4(p: usize, x: usize, m63: v128, mC0: v128, sink: usize): v128 {
  let s = i32x4.splat(0);
  let a = p + CODES, t = p + 8, xa = x + 4;
  for (let half = 0; half < 2; half++) {
    for (let mm = 0; mm < 2; mm++) {
      // groups 8 half + 2J + mm of quarters J = 0..3: tables t (J = 0, 1) and t + 16 (J = 2, 3)
      const e0 = expand(t, mm), e1 = expand(t, 2 + mm), e2 = expand(t + 16, mm), e3 = expand(t + 16, 2 + mm);
      for (let pr = 0; pr < 2; pr++) {
        // two code sets (4 values a row and quarter; |i16 lane| <= 2 * 2 * 127 * 63), then scaled into s
        let v0 = v128.load(a), v1 = v128.load(a, 16), v2 = v128.load(a, 32);
        let d0 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa), codes(v0, v1, v2, 0, m63, mC0));
        let d1 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 32), codes(v0, v1, v2, 1, m63, mC0));
        let d2 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 64), codes(v0, v1, v2, 2, m63, mC0));
        let d3 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 96), codes(v0, v1, v2, 3, m63, mC0));
        // the stores pin this set's work before the next set's loads (V8 would hoist those and spill)
        v128.store(sink, d0); v128.store(sink, d1); v128.store(sink, d2); v128.store(sink, d3);
        v0 = v128.load(a, 48); v1 = v128.load(a, 64); v2 = v128.load(a, 80);
        d0 = i16x8.add(d0, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 4), codes(v0, v1, v2, 0, m63, mC0)));
        d1 = i16x8.add(d1, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 36), codes(v0, v1, v2, 1, m63, mC0)));
        d2 = i16x8.add(d2, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 68), codes(v0, v1, v2, 2, m63, mC0)));
        d3 = i16x8.add(d3, i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xa, 100), codes(v0, v1, v2, 3, m63, mC0)));
        s = i32x4.add(s, i32x4.add(i32x4.add(i32x4.dot_i16x8_s(d0, e0), i32x4.dot_i16x8_s(d1, e1)), i32x4.add(i32x4.dot_i16x8_s(d2, e2), i32x4.dot_i16x8_s(d3, e3))));
        a += 96;
        xa += 8;
      }
    }
    // the next half: tables 32 on, activations 128 on (xa moved 32); the code sets follow on
    t += 32;
    xa += 96;
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
function pass8(o: usize, o2: usize, p: usize, q: usize, x: usize, nb: i32, sink: usize): void {
  const m63 = i8x16.splat(63), mC0 = i8x16.splat(<i8>0xc0);
  let accA = f32x4.splat(0), accB = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    accA = update(accA, p, x, block4(p, x, m63, mC0, sink));
    accB = update(accB, q, x, block4(q, x, m63, mC0, sink));
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
