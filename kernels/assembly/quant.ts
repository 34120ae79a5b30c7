// q8_0 / q4_0 row (de)quantization. Byte layouts are ggml's; see kernels/quant.ts.

import { QK, Q8_0_BLOCK_BYTES, Q4_0_BLOCK_BYTES, scratchBase, f16NormalRange, f16ToF32, f32ToF16, f32x4ToF16Normal } from "./common";

/**
 * C roundf on 4 lanes (halves away from zero). wasm's f32x4.nearest rounds halves to even,
 * which would break byte-identity with ggml's reference quantizer. trunc and x - trunc(x) are
 * exact, so the |fraction| >= 0.5 test is exact too.
 */
@inline
function roundAwayI32<FINITE>(y: v128): v128 {
  const t = f32x4.trunc(y);
  const frac = f32x4.abs(f32x4.sub(y, t));
  const one = v128.or(v128.and(y, i32x4.splat(0x80000000)), f32x4.splat(1.0)); // copysign(1, y)
  const r = f32x4.add(t, v128.and(f32x4.ge(frac, f32x4.splat(0.5)), one));
  // FINITE: |r| <= 128, so the plain conversion is exact (one cvttps2dq; trunc_sat, which also
  // maps NaN to 0, is ~7 ops in V8)
  return sizeof<FINITE>() == 1 ? i32x4.relaxed_trunc_f32x4_s(r) : i32x4.trunc_sat_f32x4_s(r);
}

/** Quantize 32 f32 at src (16-byte readable) into one q8_0 block at dst. */
@inline
function quantizeBlockQ8_0(dst: usize, src: usize): void {
  let m = blockAbsMax(src);
  m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  const amax = max<f32>(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
  const d: f32 = amax / 127.0;
  const id: f32 = d != 0 ? <f32>1.0 / d : <f32>0.0;
  store<u16>(dst, <u16>f32ToF16(d));
  // finite amax: every x * id is finite and within +-127 (up to rounding)
  if (amax - amax == 0) quantizeQuants<u8>(dst, src, f32x4.splat(id));
  else quantizeQuants<u16>(dst, src, f32x4.splat(id));
}

/** Lane-wise max of |x| over one block's 8 vectors. */
@inline
function blockAbsMax(src: usize): v128 {
  const m = f32x4.max(f32x4.max(f32x4.abs(v128.load(src)), f32x4.abs(v128.load(src, 16))), f32x4.max(f32x4.abs(v128.load(src, 32)), f32x4.abs(v128.load(src, 48))));
  return f32x4.max(m, f32x4.max(f32x4.max(f32x4.abs(v128.load(src, 64)), f32x4.abs(v128.load(src, 80))), f32x4.max(f32x4.abs(v128.load(src, 96)), f32x4.abs(v128.load(src, 112)))));
}

/**
 * Four whole blocks at once: their amax, d and 1/d as the 4 lanes of one vector (the same f32
 * operations as quantizeBlockQ8_0, so the same values), which takes the two divisions and the
 * horizontal max off each block's critical path. Returns false, having written nothing, when a
 * block holds inf/NaN (those take quantizeBlockQ8_0).
 */
@inline
function quantize4BlocksQ8_0(dst: usize, src: usize): bool {
  const m0 = blockAbsMax(src), m1 = blockAbsMax(src + 128), m2 = blockAbsMax(src + 256), m3 = blockAbsMax(src + 384);
  // lane j: max over block j's lanes, in the scalar path's order (max is exact either way)
  const a01 = f32x4.max(v128.shuffle<f32>(m0, m1, 0, 4, 1, 5), v128.shuffle<f32>(m0, m1, 2, 6, 3, 7));
  const a23 = f32x4.max(v128.shuffle<f32>(m2, m3, 0, 4, 1, 5), v128.shuffle<f32>(m2, m3, 2, 6, 3, 7));
  const amax = f32x4.max(v128.shuffle<f32>(a01, a23, 0, 1, 4, 5), v128.shuffle<f32>(a01, a23, 2, 3, 6, 7));
  if (!i32x4.all_true(f32x4.eq(f32x4.sub(amax, amax), f32x4.splat(0)))) return false;
  const d = f32x4.div(amax, f32x4.splat(127.0));
  const id = v128.and(f32x4.div(f32x4.splat(1.0), d), f32x4.ne(d, f32x4.splat(0)));
  if (i32x4.all_true(f16NormalRange(d))) {
    const h = f32x4ToF16Normal(d);
    store<u16>(dst, <u16>i32x4.extract_lane(h, 0));
    store<u16>(dst + BB, <u16>i32x4.extract_lane(h, 1));
    store<u16>(dst + 2 * BB, <u16>i32x4.extract_lane(h, 2));
    store<u16>(dst + 3 * BB, <u16>i32x4.extract_lane(h, 3));
  } else {
    store<u16>(dst, <u16>f32ToF16(f32x4.extract_lane(d, 0)));
    store<u16>(dst + BB, <u16>f32ToF16(f32x4.extract_lane(d, 1)));
    store<u16>(dst + 2 * BB, <u16>f32ToF16(f32x4.extract_lane(d, 2)));
    store<u16>(dst + 3 * BB, <u16>f32ToF16(f32x4.extract_lane(d, 3)));
  }
  quantizeQuants<u8>(dst, src, v128.shuffle<f32>(id, id, 0, 0, 0, 0));
  quantizeQuants<u8>(dst + BB, src + 128, v128.shuffle<f32>(id, id, 1, 1, 1, 1));
  quantizeQuants<u8>(dst + 2 * BB, src + 256, v128.shuffle<f32>(id, id, 2, 2, 2, 2));
  quantizeQuants<u8>(dst + 3 * BB, src + 384, v128.shuffle<f32>(id, id, 3, 3, 3, 3));
  return true;
}

const BB: usize = <usize>Q8_0_BLOCK_BYTES;

@inline
function quant4<FINITE>(p: usize, vid: v128): v128 {
  return roundAwayI32<FINITE>(f32x4.mul(v128.load(p), vid));
}

/** The 32 quants of the block at dst: round(x * id) for the 32 f32 at src (FINITE: see roundAwayI32). */
@inline
function quantizeQuants<FINITE>(dst: usize, src: usize, vid: v128): void {
  const a = i16x8.narrow_i32x4_s(quant4<FINITE>(src, vid), quant4<FINITE>(src + 16, vid));
  const b = i16x8.narrow_i32x4_s(quant4<FINITE>(src + 32, vid), quant4<FINITE>(src + 48, vid));
  const c = i16x8.narrow_i32x4_s(quant4<FINITE>(src + 64, vid), quant4<FINITE>(src + 80, vid));
  const e = i16x8.narrow_i32x4_s(quant4<FINITE>(src + 96, vid), quant4<FINITE>(src + 112, vid));
  v128.store(dst, i8x16.narrow_i16x8_s(a, b), 2);
  v128.store(dst, i8x16.narrow_i16x8_s(c, e), 18);
}

/**
 * f32[n] -> ceil(n/32) q8_0 blocks, byte-identical to kernels/quant.ts (ggml's reference
 * rounding), so activations quantized here and in TS are interchangeable.
 */
export function quantizeRowQ8_0(dst: usize, src: usize, n: i32): void {
  const full = n / QK;
  let b = 0;
  for (; b + 4 <= full; b += 4) {
    const d = dst + <usize>(b * Q8_0_BLOCK_BYTES), s = src + (<usize>(b * QK) << 2);
    if (!quantize4BlocksQ8_0(d, s)) for (let j = 0; j < 4; j++) quantizeBlockQ8_0(d + <usize>j * BB, s + (<usize>j << 7));
  }
  for (; b < full; b++) {
    quantizeBlockQ8_0(dst + <usize>(b * Q8_0_BLOCK_BYTES), src + (<usize>(b * QK) << 2));
  }
  const rem = n - full * QK;
  if (rem > 0) {
    // zero-pad the tail block in scratch so the padding quantizes to 0 and never affects d
    const tmp = scratchBase();
    memory.fill(tmp, 0, QK * 4);
    memory.copy(tmp, src + (<usize>(full * QK) << 2), <usize>rem << 2);
    quantizeBlockQ8_0(dst + <usize>(full * Q8_0_BLOCK_BYTES), tmp);
  }
}

/** nRows rows of n f32 (contiguous) -> nRows q8_0 rows of ceil(n/32) blocks each. */
export function quantizeRowsQ8_0(dst: usize, src: usize, n: i32, nRows: i32): void {
  const rb = <usize>(((n + QK - 1) / QK) * Q8_0_BLOCK_BYTES);
  for (let r = 0; r < nRows; r++) quantizeRowQ8_0(dst + <usize>r * rb, src + ((<usize>r * <usize>n) << 2), n);
}

/** ceil(n/32) q8_0 blocks -> f32[n] (value = q * f32(d)); embedding lookup. */
export function dequantizeRowQ8_0(dst: usize, src: usize, n: i32): void {
  const nb = (n + QK - 1) / QK;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>(b * Q8_0_BLOCK_BYTES);
    const o = dst + (<usize>(b * QK) << 2);
    const d = f32x4.splat(f16ToF32(load<u16>(p)));
    if ((b + 1) * QK <= n) {
      const q0 = v128.load(p, 2), q1 = v128.load(p, 18);
      const l0 = i16x8.extend_low_i8x16_s(q0), h0 = i16x8.extend_high_i8x16_s(q0);
      const l1 = i16x8.extend_low_i8x16_s(q1), h1 = i16x8.extend_high_i8x16_s(q1);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)), d));
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)), d), 16);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)), d), 32);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)), d), 48);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)), d), 64);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)), d), 80);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)), d), 96);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)), d), 112);
    } else {
      const ds = f32x4.extract_lane(d, 0);
      const len = n - b * QK;
      for (let j = 0; j < len; j++) store<f32>(o + (<usize>j << 2), <f32>load<i8>(p + 2 + <usize>j) * ds);
    }
  }
}

/** ceil(n/32) q4_0 blocks -> f32[n] (value = (nibble - 8) * f32(d)). */
export function dequantizeRowQ4_0(dst: usize, src: usize, n: i32): void {
  const nb = (n + QK - 1) / QK;
  for (let b = 0; b < nb; b++) {
    const p = src + <usize>(b * Q4_0_BLOCK_BYTES);
    const o = dst + (<usize>(b * QK) << 2);
    const d = f32x4.splat(f16ToF32(load<u16>(p)));
    if ((b + 1) * QK <= n) {
      const q = v128.load(p, 2);
      const eight = i8x16.splat(8);
      const lo = i8x16.sub(v128.and(q, i8x16.splat(0x0f)), eight);
      const hi = i8x16.sub(i8x16.shr_u(q, 4), eight);
      const l0 = i16x8.extend_low_i8x16_s(lo), l1 = i16x8.extend_high_i8x16_s(lo);
      const h0 = i16x8.extend_low_i8x16_s(hi), h1 = i16x8.extend_high_i8x16_s(hi);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)), d));
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)), d), 16);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)), d), 32);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)), d), 48);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)), d), 64);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)), d), 80);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)), d), 96);
      v128.store(o, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)), d), 112);
    } else {
      const ds = f32x4.extract_lane(d, 0);
      const len = n - b * QK;
      for (let j = 0; j < len; j++) {
        const byte = <i32>load<u8>(p + 2 + <usize>(j & 15));
        const q = (j < 16 ? byte & 15 : byte >> 4) - 8;
        store<f32>(o + (<usize>j << 2), <f32>q * ds);
      }
    }
  }
}
