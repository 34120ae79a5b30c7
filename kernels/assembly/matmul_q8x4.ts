// q8_0 matmul over a 4-row-interleaved copy of the weights ("q8_0x4"), made once at model load by
// repackQ8_0x4, in place and in the same bytes. Rows 4g..4g+3 of a plain q8_0 matrix occupy
// 4 x nb x 34 contiguous bytes; repacked, that region holds per block index b (136 bytes):
//   [f16 d of rows 4g..4g+3 (8 B)] [row 4g quants (32 B)] .. [row 4g+3 quants (32 B)]
// Rows past the last multiple of 4 (the tail, < 4 rows) stay in the plain layout.
//
// One decode pass then reads one contiguous stream per 4 rows, gets the 4 scales with a single
// widening load (no 4 lane inserts) and advances one pointer. Results are bit-identical to
// matmulQ8_0 (same integer dots, same f32 operations in the same order).

import { Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, scratchBase, storeLanesStrided } from "./common";
import { HEAD, blockDot, pass4, prepBytes, prepare } from "./matmul_q8";
import { dequantizeRowQ8_0 } from "./quant";

const BB: usize = <usize>Q8_0_BLOCK_BYTES;
const GB: usize = 4 * BB; // one block index of a 4-row group

/**
 * Repack rows 0 .. 4*floor(rows/4) of the q8_0 matrix at w in place. Returns 0 (and changes
 * nothing) when a 4-row group does not fit the scratch, else 1.
 */
export function repackQ8_0x4(w: usize, rows: i32, cols: i32): i32 {
  const nb = (cols + QK - 1) / QK;
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
        store<u16>(o + (k << 1), load<u16>(src));
        v128.store(o + 8 + (k << 5), v128.load(src, 2));
        v128.store(o + 8 + (k << 5), v128.load(src, 18), 16);
      }
    }
  }
  return 1;
}

/** Row `row` of a repacked matrix as f32 (same values as dequantizeRowQ8_0 of the plain row). */
export function dequantizeRowQ8_0x4(dst: usize, w: usize, rows: i32, cols: i32, row: i32): void {
  const nb = (cols + QK - 1) / QK;
  const stride = <usize>nb * BB;
  if (row >= (rows & ~3)) {
    dequantizeRowQ8_0(dst, w + <usize>row * stride, cols);
    return;
  }
  if (stride > <usize>SCRATCH_BYTES) unreachable();
  // gather the row back into plain blocks in the scratch, then decode as usual
  const S = scratchBase();
  const p = w + <usize>(row >> 2) * stride * 4;
  const k = <usize>(row & 3);
  for (let b: usize = 0; b < <usize>nb; b++) {
    const o = S + b * BB, src = p + b * GB;
    store<u16>(o, load<u16>(src + (k << 1)));
    v128.store(o, v128.load(src + 8 + (k << 5)), 2);
    v128.store(o, v128.load(src + 8 + (k << 5), 16), 18);
  }
  dequantizeRowQ8_0(dst, S, cols);
}

/** 4 interleaved rows x one token over nb blocks (cf. pass4). */
@inline
function pass4x4<SIGNS>(p: usize, xp: usize, sp: usize, dp: usize, nb: i32, ones: v128, mask: v128): v128 {
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
    // blockDot reads quants at +2 and +18: row k's 32 quants start at p + 8 + 32k
    const d = hsum4iLocal(blockDot(p + 6, a0, a1, m0, m1, ones), blockDot(p + 38, a0, a1, m0, m1, ones),
      blockDot(p + 70, a0, a1, m0, m1, ones), blockDot(p + 102, a0, a1, m0, m1, ones));
    // 4 f16 scales sign-extended to i32; << 13 puts sign/exponent/mantissa where shr_s(h << 16, 3)
    // does in pass4, and the same mask yields d_w * 2^-112 bit-identically
    const scale = f32x4.mul(v128.and(i32x4.shl(v128.load16x4_s(p), 13), mask), v128.load32_splat(dp));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(d), scale));
    p += GB;
    if (sizeof<SIGNS>() == 1) sp += 64;
    else xp += BB;
    dp += 4;
  }
  return acc;
}

@inline
function hsum4iLocal(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

/** matmulQ8_0 for a matrix repacked by repackQ8_0x4 (same arguments, same results). */
export function matmulQ8_0x4(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = (cols + QK - 1) / QK;
  if (prepBytes(nb, 1, false) > <usize>SCRATCH_BYTES) unreachable();
  const signs = prepBytes(nb, 1, true) <= <usize>SCRATCH_BYTES;
  const S = scratchBase();
  const stride = <usize>nb * BB;
  const ostride = <usize>rows << 2;
  const G = rows >> 2;
  const tail = rows - (G << 2);
  const last = w + <usize>(rows - 1) * stride;
  let chunk = 1;
  while (chunk < nTok && prepBytes(nb, chunk * 2, signs) <= <usize>SCRATCH_BYTES) chunk *= 2;
  for (let t0 = 0; t0 < nTok; t0 += chunk) {
    const nt = min(chunk, nTok - t0);
    prepare(S, xq + <usize>t0 * stride, nb, nt, signs);
    const ones = v128.load(S), mask = v128.load(S, 16);
    const ds = S + HEAD;
    const ss = ds + ((<usize>nt * <usize>nb) << 2);
    for (let g = 0; g < G; g++) {
      const p = w + <usize>g * stride * 4;
      for (let t = 0; t < nt; t++) {
        const i = <usize>t * <usize>nb;
        const xp = xq + (<usize>t0 + <usize>t) * stride;
        const acc = signs
          ? pass4x4<u8>(p, xp, ss + (i << 6), ds + (i << 2), nb, ones, mask)
          : pass4x4<u16>(p, xp, 0, ds + (i << 2), nb, ones, mask);
        v128.store(out + (<usize>t0 + <usize>t) * ostride + (<usize>g << 4), acc);
      }
    }
    if (tail > 0) {
      const w0 = w + <usize>(G << 2) * stride;
      const w1 = min(w0 + stride, last), w2 = min(w0 + 2 * stride, last);
      for (let t = 0; t < nt; t++) {
        const i = <usize>t * <usize>nb;
        const xp = xq + (<usize>t0 + <usize>t) * stride;
        const acc = signs
          ? pass4<u8>(w0, w1, w2, last, xp, ss + (i << 6), ds + (i << 2), nb, ones, mask)
          : pass4<u16>(w0, w1, w2, last, xp, 0, ds + (i << 2), nb, ones, mask);
        storeLanesStrided(out + (<usize>t0 + <usize>t) * ostride + (<usize>(G << 2) << 2), 4, acc, tail);
      }
    }
  }
}
