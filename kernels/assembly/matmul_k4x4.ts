// q4_K matmul over a 4-row-interleaved copy of the weights ("q4_Kx4"), made once at model load
// by repackQ4_Kx4, in place and in the same bytes. Rows 4g..4g+3 of a plain q4_K matrix occupy
// 4 x nb x 144 contiguous bytes; repacked, that region holds per block index b (576 bytes):
//   [f16 d of rows 4g..4g+3 (8 B)] [f16 dmin of the 4 rows (8 B)]
//   [V0, V1, V2: the 4 rows' 32 6-bit scales and 32 6-bit mins, decoded (48 B)]
//   [32 x 16 B of nibbles]
// V0..V2 hold four 16-byte tables of 6-bit values: S0 (scales of sub-blocks 0..3, byte
// 4j + k for sub-block j of row k), S1 (sub-blocks 4..7, byte 4(j - 4) + k), M0 (mins of
// sub-blocks 0..3, byte 4k + j) and M1 (mins of sub-blocks 4..7, byte 4k + j - 4):
// V0 = S0 | (M1 & 3) << 6, V1 = S1 | (M1 >> 2 & 3) << 6, V2 = M0 | (M1 >> 4) << 6. ggml packs
// the same 96 bits per row into 12 bytes in an order that takes ~20 operations per block to
// undo; here each table is one or three masks and shifts away.
// Nibble vector 8p + c (p = 0..3, c = 0..7) is [row 4g bytes 32p+4c..32p+4c+3, row 4g+1's, ..,
// row 4g+3's]: its low nibbles are elements 4c..4c+3 of sub-block 2p of each of the 4 rows, its
// high nibbles those of sub-block 2p+1. A relaxed dot against those 4 activation bytes splatted
// to all lanes yields i16 lanes that belong to one row each (lanes 2k, 2k+1 -> row k), so the 8
// dots of a sub-block add up as i16 (|lane| <= 8 * 2 * 127 * 15 = 30480), and one widening dot
// with the scales laid out as [s0, s0, s1, s1, s2, s2, s3, s3] gives the 4 rows' scaled sums.
// Rows past the last multiple of 4 (the tail, < 4 rows) stay in the plain layout.
// The integer sums are exact and the f32 operations those of matmulQ4_K: bit-identical results.

import { SCRATCH_BYTES, scratchBase, h2fHighExact } from "./common";
import { QK_K, Q4_K_BLOCK_BYTES, Q8_K_BLOCK_BYTES } from "../build/formats";
import { PAIRS, preparePairSums, rowDotQ4_K, dequantizeRowQ4_K } from "./matmul_k";

const BB: usize = <usize>Q4_K_BLOCK_BYTES;
const KB: usize = <usize>Q8_K_BLOCK_BYTES;
const GB: usize = 4 * BB; // one block index of a 4-row group

/** ggml's get_scale_min_k4: scale (low byte) and min (high byte) of sub-block j of the 12 bytes at q. */
@inline
function scaleMin(q: usize, j: usize): u32 {
  if (j < 4) return (<u32>load<u8>(q + j) & 63) | ((<u32>load<u8>(q + j + 4) & 63) << 8);
  const sc = (<u32>load<u8>(q + j + 4) & 0xf) | ((<u32>load<u8>(q + j - 4) >> 6) << 4);
  const m = (<u32>load<u8>(q + j + 4) >> 4) | ((<u32>load<u8>(q + j) >> 6) << 4);
  return sc | (m << 8);
}

/**
 * Repack rows 0 .. 4*floor(rows/4) of the q4_K matrix at w in place (cols a multiple of 256).
 * Returns 0 (and changes nothing) when a 4-row group does not fit the scratch, else 1.
 */
export function repackQ4_Kx4(w: usize, rows: i32, cols: i32): i32 {
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
      memory.fill(o + 16, 0, 48);
      for (let k: usize = 0; k < 4; k++) {
        const src = S + k * stride + b * BB;
        store<u16>(o + (k << 1), load<u16>(src));
        store<u16>(o + 8 + (k << 1), load<u16>(src, 2));
        for (let j: usize = 0; j < 4; j++) {
          const lo = scaleMin(src + 4, j), hi = scaleMin(src + 4, j + 4);
          // S0, S1, M0 in the low 6 bits of V0, V1, V2; M1's 6 bits in their top 2 bits
          const m1 = hi >> 8;
          const i: usize = (k << 2) + j;
          store<u8>(o + 16 + 4 * j + k, load<u8>(o + 16 + 4 * j + k) | (lo & 0xff));
          store<u8>(o + 32 + 4 * j + k, load<u8>(o + 32 + 4 * j + k) | (hi & 0xff));
          store<u8>(o + 48 + i, load<u8>(o + 48 + i) | (lo >> 8));
          store<u8>(o + 16 + i, load<u8>(o + 16 + i) | ((m1 & 3) << 6));
          store<u8>(o + 32 + i, load<u8>(o + 32 + i) | (((m1 >> 2) & 3) << 6));
          store<u8>(o + 48 + i, load<u8>(o + 48 + i) | ((m1 >> 4) << 6));
        }
        for (let q: usize = 0; q < 32; q++) store<u32>(o + 64 + (q << 4) + (k << 2), load<u32>(src + 16 + (q << 2)));
      }
    }
  }
  return 1;
}

/** The 6-bit table at `o` (S0, S1, M0: V & 63; M1: the top bits of V0, V1, V2). */
@inline
function table(o: usize, which: i32): v128 {
  const m = i8x16.splat(63);
  if (which < 3) return v128.and(v128.load(o + 16 + 16 * <usize>which), m);
  return v128.or(
    v128.or(v128.and(i16x8.shr_u(v128.load(o, 16), 6), i8x16.splat(3)), v128.and(i16x8.shr_u(v128.load(o, 32), 4), i8x16.splat(12))),
    v128.and(i16x8.shr_u(v128.load(o, 48), 2), i8x16.splat(48)),
  );
}

/** Row `row` of a repacked matrix as f32 (same values as dequantizeRowQ4_K of the plain row). */
export function dequantizeRowQ4_Kx4(dst: usize, w: usize, rows: i32, cols: i32, row: i32): void {
  const nb = cols / QK_K;
  const stride = <usize>nb * BB;
  if (row >= (rows & ~3)) {
    dequantizeRowQ4_K(dst, w + <usize>row * stride, cols);
    return;
  }
  if (stride + 64 > <usize>SCRATCH_BYTES) unreachable();
  // gather the row back into plain blocks in the scratch (ggml's 12-byte scales re-encoded), then decode as usual
  const S = scratchBase();
  const p = w + <usize>(row >> 2) * stride * 4;
  const k = <usize>(row & 3);
  for (let b: usize = 0; b < <usize>nb; b++) {
    const o = S + b * BB, src = p + b * GB;
    store<u16>(o, load<u16>(src + (k << 1)));
    store<u16>(o + 2, load<u16>(src + 8 + (k << 1)));
    v128.store(S + stride, table(src, 0));
    v128.store(S + stride, table(src, 1), 16);
    v128.store(S + stride, table(src, 2), 32);
    v128.store(S + stride, table(src, 3), 48);
    for (let j: usize = 0; j < 4; j++) {
      const sc0 = <u32>load<u8>(S + stride + 4 * j + k), sc1 = <u32>load<u8>(S + stride + 16 + 4 * j + k);
      const m0 = <u32>load<u8>(S + stride + 32 + 4 * k + j), m1 = <u32>load<u8>(S + stride + 48 + 4 * k + j);
      store<u8>(o + 4 + j, sc0 | ((sc1 >> 4) << 6));
      store<u8>(o + 8 + j, m0 | ((m1 >> 4) << 6));
      store<u8>(o + 12 + j, (sc1 & 15) | ((m1 & 15) << 4));
    }
    for (let q: usize = 0; q < 32; q++) store<u32>(o + 16 + (q << 2), load<u32>(src + 64 + (q << 4) + (k << 2)));
  }
  dequantizeRowQ4_K(dst, S, cols);
}

/**
 * Masks for relaxed_swizzle: j-th gives [s0, s0, s1, s1, s2, s2, s3, s3] as i16 from bytes
 * 4j..4j+3 of a scale table. Index 0x80 gives 0 on every engine (relaxed_swizzle's
 * implementation choice is only for indices 16..127), so the result is deterministic.
 */
const EXPAND = memory.data<u8>([
  0, 128, 0, 128, 1, 128, 1, 128, 2, 128, 2, 128, 3, 128, 3, 128,
  4, 128, 4, 128, 5, 128, 5, 128, 6, 128, 6, 128, 7, 128, 7, 128,
  8, 128, 8, 128, 9, 128, 9, 128, 10, 128, 10, 128, 11, 128, 11, 128,
  12, 128, 12, 128, 13, 128, 13, 128, 14, 128, 14, 128, 15, 128, 15, 128,
]);

@inline
function expand(t: v128, j: i32): v128 {
  return i8x16.relaxed_swizzle(t, v128.load(EXPAND + (<usize>j << 4)));
}

/** One block's summ (mins times the sub-blocks' activation sums) for the 4 rows, as matmul_k.ts pass4Q4K. */
@inline
function mins4(o: usize, pairs: usize): v128 {
  const M0 = table(o, 2), M1 = table(o, 3);
  const P0 = v128.load(pairs, 16), P1 = v128.load(pairs, 32);
  const m01 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(M0), P0), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(M1), P1));
  const m23 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(M0), P0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(M1), P1));
  return i32x4.add(v128.shuffle<i32>(m01, m23, 0, 2, 4, 6), v128.shuffle<i32>(m01, m23, 1, 3, 5, 7));
}

/** acc + (d * dx) * sumi - (dmin * dx) * summ per lane: matmul_k.ts rowDotQxK's f32 steps. */
@inline
function update(acc: v128, o: usize, dx: v128, sumi: v128, summ: v128): v128 {
  const d = h2fHighExact(i32x4.shl(v128.load16x4_u(o), 16)), dmin = h2fHighExact(i32x4.shl(v128.load16x4_u(o, 8), 16));
  return f32x4.add(acc, f32x4.sub(f32x4.mul(f32x4.mul(d, dx), f32x4.convert_i32x4_s(sumi)), f32x4.mul(f32x4.mul(dmin, dx), f32x4.convert_i32x4_s(summ))));
}

/** The two relaxed dots of nibble vector q: low nibbles with xl, high with xh. */
@inline
function lo(q: v128, xl: v128, low: v128): v128 {
  return i16x8.relaxed_dot_i8x16_i7x16_s(xl, v128.and(q, low));
}
@inline
function hi(q: v128, xh: v128, low: v128): v128 {
  return i16x8.relaxed_dot_i8x16_i7x16_s(xh, v128.and(i16x8.shr_u(q, 4), low));
}

/** Sub-blocks 2sp and 2sp + 1 of one block of one 4-row group: the scaled integer dots (sp a constant). */
@inline
function subPair4(p: usize, x: usize, sp: i32, low: v128): v128 {
  const q = p + 64 + (<usize>sp << 7), xa = x + 4 + (<usize>sp << 6);
  let sl = i16x8.splat(0), sh = i16x8.splat(0);
  for (let c: usize = 0; c < 8; c += 2) {
    const q0 = v128.load(q + (c << 4)), q1 = v128.load(q + (c << 4), 16);
    sl = i16x8.add(sl, i16x8.add(lo(q0, v128.load32_splat(xa + (c << 2)), low), lo(q1, v128.load32_splat(xa + (c << 2), 4), low)));
    sh = i16x8.add(sh, i16x8.add(hi(q0, v128.load32_splat(xa + (c << 2), 32), low), hi(q1, v128.load32_splat(xa + (c << 2), 36), low)));
  }
  const t = table(p, sp >> 1);
  const j = (sp & 1) << 1;
  return i32x4.add(i32x4.dot_i16x8_s(sl, expand(t, j)), i32x4.dot_i16x8_s(sh, expand(t, j + 1)));
}

/** One 4-row group x one token over nb blocks. */
@inline
function pass4(p: usize, x: usize, pairs: usize, nb: i32): v128 {
  const low = i8x16.splat(0x0f);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const sumi = i32x4.add(i32x4.add(subPair4(p, x, 0, low), subPair4(p, x, 1, low)), i32x4.add(subPair4(p, x, 2, low), subPair4(p, x, 3, low)));
    acc = update(acc, p, v128.load32_splat(x), sumi, mins4(p, pairs));
    p += GB;
    x += KB;
    pairs += PAIRS;
  }
  return acc;
}

/**
 * Sub-blocks 2sp and 2sp + 1 of one block for two 4-row groups (at p and q): their scaled
 * integer dots added to sums[0] and sums[16] (i32x4 in the scratch; sp a constant).
 */
@inline
function subPair8(p: usize, q: usize, x: usize, sp: i32, sums: usize, low: v128): void {
  const off = (<usize>sp << 7) + 64, xa = x + 4 + (<usize>sp << 6);
  const pa = p + off, pb = q + off;
  let xl = v128.load32_splat(xa), xh = v128.load32_splat(xa, 32);
  let qa = v128.load(pa), qb = v128.load(pb);
  let la = lo(qa, xl, low), lb = lo(qb, xl, low), ha = hi(qa, xh, low), hb = hi(qb, xh, low);
  for (let c: usize = 1; c < 8; c++) {
    xl = v128.load32_splat(xa + (c << 2)); xh = v128.load32_splat(xa + (c << 2), 32);
    qa = v128.load(pa + (c << 4)); qb = v128.load(pb + (c << 4));
    la = i16x8.add(la, lo(qa, xl, low));
    lb = i16x8.add(lb, lo(qb, xl, low));
    ha = i16x8.add(ha, hi(qa, xh, low));
    hb = i16x8.add(hb, hi(qb, xh, low));
  }
  const j = (sp & 1) << 1;
  const ta = table(p, sp >> 1), tb = table(q, sp >> 1);
  v128.store(sums, i32x4.add(v128.load(sums), i32x4.add(i32x4.dot_i16x8_s(la, expand(ta, j)), i32x4.dot_i16x8_s(ha, expand(ta, j + 1)))));
  v128.store(sums, i32x4.add(v128.load(sums, 16), i32x4.add(i32x4.dot_i16x8_s(lb, expand(tb, j)), i32x4.dot_i16x8_s(hb, expand(tb, j + 1)))), 16);
}

/**
 * Decode: two 4-row groups (at p and q) x one token over nb blocks, sharing each block's
 * activation splats. Same per-group arithmetic as pass4 (bit-identical). `sums`: 32 bytes of scratch.
 */
@inline
function pass8(o: usize, o2: usize, p: usize, q: usize, x: usize, pairs: usize, nb: i32, sums: usize): void {
  const low = i8x16.splat(0x0f), zero = i8x16.splat(0);
  let accA = f32x4.splat(0), accB = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    v128.store(sums, zero);
    v128.store(sums, zero, 16);
    subPair8(p, q, x, 0, sums, low);
    subPair8(p, q, x, 1, sums, low);
    subPair8(p, q, x, 2, sums, low);
    subPair8(p, q, x, 3, sums, low);
    const dx = v128.load32_splat(x);
    accA = update(accA, p, dx, v128.load(sums), mins4(p, pairs));
    accB = update(accB, q, dx, v128.load(sums, 16), mins4(q, pairs));
    p += GB;
    q += GB;
    x += KB;
    pairs += PAIRS;
  }
  v128.store(o, accA);
  v128.store(o2, accB);
}

/** matmulQ4_K for a matrix repacked by repackQ4_Kx4 (same arguments, same results). */
export function matmulQ4_Kx4(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = cols / QK_K;
  const stride = <usize>nb * BB;
  const xstride = <usize>nb * KB;
  const ostride = <usize>rows << 2;
  const G = rows >> 2;
  const S = scratchBase();
  const perTok = <usize>nb * PAIRS;
  const tile = max(1, min(nTok, <i32>((<usize>SCRATCH_BYTES - 32) / perTok)));
  for (let t0 = 0; t0 < nTok; t0 += tile) {
    const nt = min(tile, nTok - t0);
    const xt = xq + <usize>t0 * xstride;
    const o = out + <usize>t0 * ostride;
    preparePairSums(S, xt, nb, nt);
    const sums = S + <usize>nt * perTok;
    // groups g and g + H together: two streams far apart (two interleaved streams in one page
    // defeat the hardware prefetcher once the matrix is out of cache); in prefill the two groups
    // meet every token of the tile while they are in L1
    const H = G >> 1;
    for (let g = 0; g < H; g++) {
      const p = w + <usize>g * stride * 4, q = w + <usize>(g + H) * stride * 4;
      for (let t = 0; t < nt; t++) {
        const ot = o + <usize>t * ostride;
        pass8(ot + (<usize>g << 4), ot + (<usize>(g + H) << 4), p, q, xt + <usize>t * xstride, S + <usize>t * perTok, nb, sums);
      }
    }
    // the odd last group
    for (let g = H << 1; g < G; g++) {
      const p = w + <usize>g * stride * 4;
      for (let t = 0; t < nt; t++) v128.store(o + <usize>t * ostride + (<usize>g << 4), pass4(p, xt + <usize>t * xstride, S + <usize>t * perTok, nb));
    }
    for (let r = G << 2; r < rows; r++) {
      const wr = w + <usize>r * stride;
      for (let t = 0; t < nt; t++) store<f32>(o + <usize>t * ostride + (<usize>r << 2), rowDotQ4_K(wr, xt + <usize>t * xstride, S + <usize>t * perTok, nb));
    }
  }
}
