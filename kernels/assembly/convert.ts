// f16 <-> f32 row conversion: f16 embedding tables and the f16 KV cache.

import { f16ToF32, f32ToF16, h2fHighExact } from "./common";

/** dst[i] = f32(src f16 bits[i]). Exact for every bit pattern (NaN stays NaN with its payload). */
export function f16ToF32Row(dst: usize, src: usize, n: i32): void {
  let i = 0;
  const zero = i16x8.splat(0);
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), h2fHighExact(i16x8.shuffle(zero, h, 0, 8, 1, 9, 2, 10, 3, 11)));
    v128.store(dst + (<usize>i << 2), h2fHighExact(i16x8.shuffle(zero, h, 4, 12, 5, 13, 6, 14, 7, 15)), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), f16ToF32(load<u16>(src + (<usize>i << 1))));
}

/**
 * dst[i] = f16 bits of src[i], round to nearest even. 8 values at a time when all are in the
 * f16 normal range (2^-14 <= |x| < 65536: the exponent rebias is an integer subtract and the
 * rounding the usual add-then-shift; a carry into the exponent is the correct RNE result, up to
 * inf); any other group of 8 (zeros, subnormals, overflow, inf/NaN) goes value by value.
 */
export function f32ToF16Row(dst: usize, src: usize, n: i32): void {
  let i = 0;
  const absMask = i32x4.splat(0x7fffffff), lo = i32x4.splat(0x38800000 - 1), hi = i32x4.splat(0x47800000);
  const rebias = i32x4.splat(0x38000000 - 0xfff), one = i32x4.splat(1), signBit = i32x4.splat(0x8000);
  for (; i + 8 <= n; i += 8) {
    const u0 = v128.load(src + (<usize>i << 2)), u1 = v128.load(src + (<usize>i << 2), 16);
    const a0 = v128.and(u0, absMask), a1 = v128.and(u1, absMask);
    const ok = v128.and(v128.and(i32x4.gt_s(a0, lo), i32x4.lt_s(a0, hi)), v128.and(i32x4.gt_s(a1, lo), i32x4.lt_s(a1, hi)));
    if (i32x4.all_true(ok)) {
      // (a - (112 << 23) + 0xfff + lsb) >> 13, lsb = bit 13 of a (the kept mantissa's last bit)
      const h0 = i32x4.shr_u(i32x4.add(i32x4.sub(a0, rebias), v128.and(i32x4.shr_u(a0, 13), one)), 13);
      const h1 = i32x4.shr_u(i32x4.add(i32x4.sub(a1, rebias), v128.and(i32x4.shr_u(a1, 13), one)), 13);
      const s0 = v128.or(h0, v128.and(i32x4.shr_u(u0, 16), signBit));
      const s1 = v128.or(h1, v128.and(i32x4.shr_u(u1, 16), signBit));
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(s0, s1));
    } else {
      for (let j = i; j < i + 8; j++) store<u16>(dst + (<usize>j << 1), f32ToF16(load<f32>(src + (<usize>j << 2))));
    }
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), f32ToF16(load<f32>(src + (<usize>i << 2))));
}
