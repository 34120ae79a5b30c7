// f16 <-> f32 row conversion: f16 embedding tables and the f16 KV cache.

import { f16NormalRange, f16ToF32, f32ToF16, f32x4ToF16Normal, h2fHighExact } from "./common";

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
 * f16 normal range (f32x4ToF16Normal); any other group of 8 (zeros, subnormals, overflow,
 * inf/NaN) goes value by value.
 */
export function f32ToF16Row(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const u0 = v128.load(src + (<usize>i << 2)), u1 = v128.load(src + (<usize>i << 2), 16);
    if (i32x4.all_true(v128.and(f16NormalRange(u0), f16NormalRange(u1)))) {
      v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(f32x4ToF16Normal(u0), f32x4ToF16Normal(u1)));
    } else {
      for (let j = i; j < i + 8; j++) store<u16>(dst + (<usize>j << 1), f32ToF16(load<f32>(src + (<usize>j << 2))));
    }
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), f32ToF16(load<f32>(src + (<usize>i << 2))));
}
