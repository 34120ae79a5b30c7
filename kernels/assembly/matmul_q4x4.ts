// q4_0 matmul over a 4-row-interleaved copy of the weights ("q4_0x4"), made once at model load by
// repackQ4_0x4, in place and in the same bytes. Rows 4g..4g+3 of a plain q4_0 matrix occupy
// 4 x nb x 18 contiguous bytes; repacked, that region holds per block index b (72 bytes):
//   [f16 d of rows 4g..4g+3 (8 B)] [4 x 16 B of nibbles, 4-byte transposed]
// where nibble vector j (0..3) is [row 4g bytes 4j..4j+3, row 4g+1 bytes 4j..4j+3, .., row 4g+3].
// Rows past the last multiple of 4 (the tail, < 4 rows) stay in the plain layout.
//
// With that transpose, the low nibbles of vector j are elements 4j..4j+3 of each of the 4 rows
// and the high nibbles elements 16+4j..16+4j+3: a relaxed dot against those 4 activation bytes
// splatted to all lanes (prepared once per call) yields i16 lanes that belong to one row each
// (lanes 2k, 2k+1 -> row k), so the 8 dots of a block are added as i16 and one widening dot gives
// the 4 rows' sums directly (no horizontal shuffles; |lane| <= 8 * 2*128*15 = 30720 fits i16).
// The integer dots and the f32 operations are those of matmulQ4_0: results are bit-identical.

import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, SCRATCH_BYTES, scratchBase, storeLanesStrided } from "./common";
import { HEAD, PREP, pass4, prepBytes, prepare } from "./matmul_q4";
import { dequantizeRowQ4_0 } from "./quant";

const BB: usize = <usize>Q4_0_BLOCK_BYTES;
const XB: usize = <usize>Q8_0_BLOCK_BYTES;
const GB: usize = 4 * BB; // one block index of a 4-row group

/**
 * Repack rows 0 .. 4*floor(rows/4) of the q4_0 matrix at w in place. Returns 0 (and changes
 * nothing) when a 4-row group does not fit the scratch, else 1.
 */
export function repackQ4_0x4(w: usize, rows: i32, cols: i32): i32 {
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
        for (let j: usize = 0; j < 4; j++) store<u32>(o + 8 + (j << 4) + (k << 2), load<u32>(src + 2 + (j << 2)));
      }
    }
  }
  return 1;
}

/** Row `row` of a repacked matrix as f32 (same values as dequantizeRowQ4_0 of the plain row). */
export function dequantizeRowQ4_0x4(dst: usize, w: usize, rows: i32, cols: i32, row: i32): void {
  const nb = (cols + QK - 1) / QK;
  const stride = <usize>nb * BB;
  if (row >= (rows & ~3)) {
    dequantizeRowQ4_0(dst, w + <usize>row * stride, cols);
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
    for (let j: usize = 0; j < 4; j++) store<u32>(o + 2 + (j << 2), load<u32>(src + 8 + (j << 4) + (k << 2)));
  }
  dequantizeRowQ4_0(dst, S, cols);
}

/** One nibble vector's two relaxed dots (low nibbles with xl, high with xh) as i16x8. */
@inline
function nib(q: v128, xl: v128, xh: v128, low: v128): v128 {
  const lo = v128.and(q, low);
  const hi = v128.and(i16x8.shr_u(q, 4), low);
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xl, lo), i16x8.relaxed_dot_i8x16_i7x16_s(xh, hi));
}

/** Bytes per token and block of the splatted activations (8 x 16). */
const SPL: usize = 128;
/** Scratch for one block's unpacked nibbles and scales in the prefill tile. */
const U: usize = 144;

/**
 * The activation bytes of each block as the 8 splatted vectors term() uses, in use order, block
 * major (block b of token t at (b*nt + t)*SPL) so that the prefill tile walks them contiguously.
 */
function prepareSplats(d: usize, xq: usize, nb: i32, nt: i32): void {
  for (let t: usize = 0; t < <usize>nt; t++) {
    for (let b: usize = 0; b < <usize>nb; b++) {
      const src = xq + (t * <usize>nb + b) * XB, o = d + (b * <usize>nt + t) * SPL;
      for (let j: usize = 0; j < 4; j++) {
        v128.store(o + (j << 5), v128.load32_splat(src + 2 + (j << 2)));
        v128.store(o + (j << 5), v128.load32_splat(src + 18 + (j << 2)), 16);
      }
    }
  }
}

/**
 * One block's conv(d) * scale for 4 interleaved rows (the f32 term pass4 adds for the block).
 * V8 issues loads in program order ahead of the pure ops that use them; the stores of the partial
 * sums to a dead scratch slot pin each nibble vector's work between its loads and the next ones,
 * so live registers stay few (without them, 8 more live loads spill).
 */
@inline
function term<SPLATS>(p: usize, sp: usize, pp: usize, ones: v128, mask: v128, low: v128, sink: usize): v128 {
  let s: v128;
  if (sizeof<SPLATS>() == 1) {
    s = nib(v128.load(p, 8), v128.load(sp), v128.load(sp, 16), low);
    v128.store(sink, s);
    s = i16x8.add(s, nib(v128.load(p, 24), v128.load(sp, 32), v128.load(sp, 48), low));
    v128.store(sink, s);
    s = i16x8.add(s, nib(v128.load(p, 40), v128.load(sp, 64), v128.load(sp, 80), low));
    v128.store(sink, s);
    s = i16x8.add(s, nib(v128.load(p, 56), v128.load(sp, 96), v128.load(sp, 112), low));
  } else {
    // sp is the q8_0 activation block itself (rows too wide for the splat scratch)
    s = nib(v128.load(p, 8), v128.load32_splat(sp, 2), v128.load32_splat(sp, 18), low);
    v128.store(sink, s);
    s = i16x8.add(s, nib(v128.load(p, 24), v128.load32_splat(sp, 6), v128.load32_splat(sp, 22), low));
    v128.store(sink, s);
    s = i16x8.add(s, nib(v128.load(p, 40), v128.load32_splat(sp, 10), v128.load32_splat(sp, 26), low));
    v128.store(sink, s);
    s = i16x8.add(s, nib(v128.load(p, 56), v128.load32_splat(sp, 14), v128.load32_splat(sp, 30), low));
  }
  const d = i32x4.add(i32x4.dot_i16x8_s(s, ones), v128.load32_splat(pp));
  // 4 f16 scales sign-extended to i32; << 13 matches shr_s(h << 16, 3) of pass4 under the mask
  const scale = f32x4.mul(v128.and(i32x4.shl(v128.load16x4_s(p), 13), mask), v128.load32_splat(pp, 4));
  return f32x4.mul(f32x4.convert_i32x4_s(d), scale);
}

/**
 * 4 interleaved rows x one token over nb blocks (cf. pass4 in matmul_q4.ts); sp walks the
 * splatted activations (SPLATS = u8) or the q8_0 activation blocks (u16).
 */
@inline
function pass4x4<SPLATS>(p: usize, sp: usize, pp: usize, nb: i32, ones: v128, mask: v128, low: v128, sink: usize): v128 {
  let acc = f32x4.splat(0);
  const pEnd = pp + <usize>nb * PREP;
  while (pp < pEnd) {
    acc = f32x4.add(acc, term<SPLATS>(p, sp, pp, ones, mask, low, sink));
    p += GB;
    sp += sizeof<SPLATS>() == 1 ? SPL : XB;
    pp += PREP;
  }
  return acc;
}

/**
 * Decode: two 4-row groups (at p and q) x one token over nb blocks. Both groups share each
 * block's activation splats and scales, so per 8 rows those loads and the loop overhead are paid
 * once. Same per-group arithmetic as pass4x4 (bit-identical).
 */
@inline
function pass8x4(o: usize, o2: usize, p: usize, q: usize, sp: usize, pp: usize, nb: i32, ones: v128, mask: v128, low: v128, sink: usize): void {
  let accA = f32x4.splat(0), accB = f32x4.splat(0);
  const pEnd = pp + <usize>nb * PREP;
  while (pp < pEnd) {
    let xl = v128.load(sp), xh = v128.load(sp, 16);
    let sa = nib(v128.load(p, 8), xl, xh, low);
    let sb = nib(v128.load(q, 8), xl, xh, low);
    v128.store(sink, sa); v128.store(sink, sb);
    xl = v128.load(sp, 32); xh = v128.load(sp, 48);
    sa = i16x8.add(sa, nib(v128.load(p, 24), xl, xh, low));
    sb = i16x8.add(sb, nib(v128.load(q, 24), xl, xh, low));
    v128.store(sink, sa); v128.store(sink, sb);
    xl = v128.load(sp, 64); xh = v128.load(sp, 80);
    sa = i16x8.add(sa, nib(v128.load(p, 40), xl, xh, low));
    sb = i16x8.add(sb, nib(v128.load(q, 40), xl, xh, low));
    v128.store(sink, sa); v128.store(sink, sb);
    xl = v128.load(sp, 96); xh = v128.load(sp, 112);
    sa = i16x8.add(sa, nib(v128.load(p, 56), xl, xh, low));
    sb = i16x8.add(sb, nib(v128.load(q, 56), xl, xh, low));
    const off = v128.load32_splat(pp), xs = v128.load32_splat(pp, 4);
    const da = i32x4.add(i32x4.dot_i16x8_s(sa, ones), off);
    const db = i32x4.add(i32x4.dot_i16x8_s(sb, ones), off);
    const scaleA = f32x4.mul(v128.and(i32x4.shl(v128.load16x4_s(p), 13), mask), xs);
    const scaleB = f32x4.mul(v128.and(i32x4.shl(v128.load16x4_s(q), 13), mask), xs);
    accA = f32x4.add(accA, f32x4.mul(f32x4.convert_i32x4_s(da), scaleA));
    accB = f32x4.add(accB, f32x4.mul(f32x4.convert_i32x4_s(db), scaleB));
    p += GB; q += GB;
    sp += SPL;
    pp += PREP;
  }
  v128.store(o, accA);
  v128.store(o2, accB);
}

/**
 * Prefill: one 4-row group x nt tokens. The nibbles and scales of each block are unpacked once and
 * feed all nt tokens (per token only the 8 dots, the sums and the f32 update remain); the tokens'
 * accumulators live in the scratch at acs (each updated in block order: same results).
 */
function tileX4(o: usize, ostride: usize, p: usize, ss: usize, ps: usize, acs: usize, nb: i32, nt: i32, ones: v128, mask: v128, low: v128, sink: usize): void {
  const aEnd = acs + (<usize>nt << 4);
  const u = aEnd;
  for (let a = acs; a < aEnd; a += 16) v128.store(a, f32x4.splat(0));
  const tstride = <usize>nb * PREP;
  for (let b = 0; b < nb; b++) {
    // unpacked once into the scratch at u: V8 would otherwise sink the unpacking into the token loop
    const q0 = v128.load(p, 8), q1 = v128.load(p, 24), q2 = v128.load(p, 40), q3 = v128.load(p, 56);
    v128.store(u, v128.and(q0, low)); v128.store(u, v128.and(i16x8.shr_u(q0, 4), low), 16);
    v128.store(u, v128.and(q1, low), 32); v128.store(u, v128.and(i16x8.shr_u(q1, 4), low), 48);
    v128.store(u, v128.and(q2, low), 64); v128.store(u, v128.and(i16x8.shr_u(q2, 4), low), 80);
    v128.store(u, v128.and(q3, low), 96); v128.store(u, v128.and(i16x8.shr_u(q3, 4), low), 112);
    v128.store(u, v128.and(i32x4.shl(v128.load16x4_s(p), 13), mask), 128);
    let sp = ss + <usize>b * <usize>nt * SPL;
    let pp = ps + <usize>b * PREP;
    let a = acs;
    // four tokens per step: each unpacked nibble vector is loaded once for all four
    const aEnd4 = acs + ((<usize>nt >> 2) << 6);
    const ws4 = v128.load(u, 128);
    for (; a < aEnd4; a += 64) {
      let w0 = v128.load(u), w1 = v128.load(u, 16);
      let s0 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 16), w1));
      let s1 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, SPL), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, SPL + 16), w1));
      let s2 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 2 * SPL), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 2 * SPL + 16), w1));
      let s3 = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 3 * SPL), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 3 * SPL + 16), w1));
      v128.store(sink, s0); v128.store(sink, s1); v128.store(sink, s2); v128.store(sink, s3);
      for (let j: usize = 32; j < 128; j += 32) {
        w0 = v128.load(u + j); w1 = v128.load(u + j, 16);
        s0 = i16x8.add(s0, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, 16), w1)));
        s1 = i16x8.add(s1, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, SPL), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, SPL + 16), w1)));
        s2 = i16x8.add(s2, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, 2 * SPL), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, 2 * SPL + 16), w1)));
        s3 = i16x8.add(s3, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, 3 * SPL), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp + j, 3 * SPL + 16), w1)));
        v128.store(sink, s0); v128.store(sink, s1); v128.store(sink, s2); v128.store(sink, s3);
      }
      const d0 = i32x4.add(i32x4.dot_i16x8_s(s0, ones), v128.load32_splat(pp));
      v128.store(a, f32x4.add(v128.load(a), f32x4.mul(f32x4.convert_i32x4_s(d0), f32x4.mul(ws4, v128.load32_splat(pp, 4)))));
      const d1 = i32x4.add(i32x4.dot_i16x8_s(s1, ones), v128.load32_splat(pp + tstride));
      v128.store(a, f32x4.add(v128.load(a, 16), f32x4.mul(f32x4.convert_i32x4_s(d1), f32x4.mul(ws4, v128.load32_splat(pp + tstride, 4)))), 16);
      const d2 = i32x4.add(i32x4.dot_i16x8_s(s2, ones), v128.load32_splat(pp + 2 * tstride));
      v128.store(a, f32x4.add(v128.load(a, 32), f32x4.mul(f32x4.convert_i32x4_s(d2), f32x4.mul(ws4, v128.load32_splat(pp + 2 * tstride, 4)))), 32);
      const d3 = i32x4.add(i32x4.dot_i16x8_s(s3, ones), v128.load32_splat(pp + 3 * tstride));
      v128.store(a, f32x4.add(v128.load(a, 48), f32x4.mul(f32x4.convert_i32x4_s(d3), f32x4.mul(ws4, v128.load32_splat(pp + 3 * tstride, 4)))), 48);
      sp += 4 * SPL;
      pp += 4 * tstride;
    }
    for (; a < aEnd; a += 16) {
      let s = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp), v128.load(u)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 16), v128.load(u, 16)));
      v128.store(sink, s);
      s = i16x8.add(s, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 32), v128.load(u, 32)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 48), v128.load(u, 48))));
      v128.store(sink, s);
      s = i16x8.add(s, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 64), v128.load(u, 64)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 80), v128.load(u, 80))));
      v128.store(sink, s);
      s = i16x8.add(s, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 96), v128.load(u, 96)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(sp, 112), v128.load(u, 112))));
      const d = i32x4.add(i32x4.dot_i16x8_s(s, ones), v128.load32_splat(pp));
      const scale = f32x4.mul(v128.load(u, 128), v128.load32_splat(pp, 4));
      v128.store(a, f32x4.add(v128.load(a), f32x4.mul(f32x4.convert_i32x4_s(d), scale)));
      sp += SPL;
      pp += tstride;
    }
    p += GB;
  }
  for (let t: usize = 0; t < <usize>nt; t++) v128.store(o + t * ostride, v128.load(acs + (t << 4)));
}

/** matmulQ4_0 for a matrix repacked by repackQ4_0x4 (same arguments, same results). */
export function matmulQ4_0x4(out: usize, w: usize, xq: usize, rows: i32, cols: i32, nTok: i32): void {
  if (rows <= 0 || nTok <= 0) return;
  const nb = (cols + QK - 1) / QK;
  if (prepBytes(nb, 1) > <usize>SCRATCH_BYTES) unreachable();
  const S = scratchBase();
  const stride = <usize>nb * BB;
  const xstride = <usize>nb * XB;
  const ostride = <usize>rows << 2;
  const G = rows >> 2;
  const tail = rows - (G << 2);
  const last = w + <usize>(rows - 1) * stride;
  // scratch: [HEAD: constants, 48..63 the dead "sink" slot][per-block data, nt tokens]
  // [splatted activations, block major][prefill accumulators, 16 B a token][U: unpacked block];
  // splatted activations when a token's fit beside its per-block data
  const splats = HEAD + <usize>nb * (PREP + SPL) <= <usize>SCRATCH_BYTES;
  const tb = <usize>nb * (splats ? PREP + SPL : PREP) + 16;
  let chunk = 1;
  while (chunk < nTok && HEAD + U + <usize>(chunk * 2) * tb <= <usize>SCRATCH_BYTES) chunk *= 2;
  for (let t0 = 0; t0 < nTok; t0 += chunk) {
    const nt = min(chunk, nTok - t0);
    const xt = xq + <usize>t0 * xstride;
    prepare(S, xt, nb, nt);
    const ones = v128.load(S), mask = v128.load(S, 16), low = v128.load(S, 32);
    const ps = S + HEAD;
    const tstride = <usize>nb * PREP;
    const ss = ps + <usize>nt * tstride;
    if (splats) prepareSplats(ss, xt, nb, nt);
    const acs = ss + (splats ? <usize>nt * <usize>nb * SPL : 0);
    if (splats && nt > 1) {
      const o = out + <usize>t0 * ostride;
      for (let g = 0; g < G; g++) tileX4(o + (<usize>g << 4), ostride, w + <usize>g * stride * 4, ss, ps, acs, nb, nt, ones, mask, low, S + 48);
    } else {
      // decode (splats: nt == 1), or rows too wide for the splats: one token per pass
      let g0 = 0;
      if (splats && nt == 1) {
        // groups g and g + H together: two streams far apart (two interleaved streams in one
        // page defeat the hardware prefetcher once the matrix is out of cache)
        const H = G >> 1, o = out + <usize>t0 * ostride;
        for (let g = 0; g < H; g++) {
          pass8x4(o + (<usize>g << 4), o + (<usize>(g + H) << 4), w + <usize>g * stride * 4, w + <usize>(g + H) * stride * 4, ss, ps, nb, ones, mask, low, S + 48);
        }
        g0 = H << 1;
      }
      for (let g = g0; g < G; g++) {
        const p = w + <usize>g * stride * 4;
        for (let t = 0; t < nt; t++) {
          const acc = splats
            ? pass4x4<u8>(p, ss, ps + <usize>t * tstride, nb, ones, mask, low, S + 48)
            : pass4x4<u16>(p, xt + <usize>t * xstride, ps + <usize>t * tstride, nb, ones, mask, low, S + 48);
          v128.store(out + (<usize>t0 + <usize>t) * ostride + (<usize>g << 4), acc);
        }
      }
    }
    if (tail > 0) {
      const w0 = w + <usize>(G << 2) * stride;
      const w1 = min(w0 + stride, last), w2 = min(w0 + 2 * stride, last);
      for (let t = 0; t < nt; t++) {
        const acc = pass4(w0, w1, w2, last, xt + <usize>t * xstride, ps + <usize>t * tstride, nb, ones, mask, low);
        storeLanesStrided(out + (<usize>t0 + <usize>t) * ostride + (<usize>(G << 2) << 2), 4, acc, tail);
      }
    }
  }
}
