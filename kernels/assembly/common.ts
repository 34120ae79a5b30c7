// Shared helpers for the kernels: f16 conversion (scalar and 4-lane), horizontal reductions and
// the static scratch area. Everything here is @inline so the hot loops stay free of calls.

export { QK, Q8_0_BLOCK_BYTES, Q4_0_BLOCK_BYTES, DTYPE_F16 } from "../build/formats";

/**
 * Scratch for per-call precomputation (activation scales, widened activations): a fixed region
 * right after the static data. heapBase() reports its end as the first byte the host may use,
 * so the JS bump allocator never hands it out and kernels stay allocation-free (a memory.data
 * reservation would put 256 KiB of zeros into the binary). Kernels are not re-entrant.
 */
export const SCRATCH_BYTES: i32 = 256 * 1024;
@inline
export function scratchBase(): usize {
  return (__heap_base + 63) & ~(<usize>63);
}

/** 2^112: rebases an f16 exponent field (bias 15) placed in f32 position onto bias 127. */
export const F16_REBIAS: f32 = reinterpret<f32>(0x77800000);

/** Exact f16 -> f32 (subnormals via the float multiply, inf/NaN patched). */
@inline
export function f16ToF32(h: u32): f32 {
  const em = (h & 0x7fff) << 13;
  let f = reinterpret<f32>(em) * F16_REBIAS;
  if (em >= 0x0f800000) f = reinterpret<f32>(em | 0x7f800000);
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

/** Exact f32 -> f16 bits, round to nearest even (same algorithm as kernels/quant.ts). */
@inline
export function f32ToF16(x: f32): u32 {
  const u = reinterpret<u32>(x);
  const sign = (u >> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x7f800000) return a > 0x7f800000 ? sign | 0x7e00 | ((a >> 13) & 0x3ff) : sign | 0x7c00;
  const e = <i32>(a >> 23) - 112;
  if (e >= 31) return sign | 0x7c00;
  let mant: u32;
  let shift: u32;
  if (e >= 1) {
    mant = (<u32>e << 23) | (a & 0x7fffff);
    shift = 13;
  } else {
    if (e < -10) return sign;
    shift = <u32>(14 - e);
    mant = (a & 0x7fffff) | 0x800000;
  }
  let h = mant >> shift;
  const rem = mant & ((1 << shift) - 1);
  const half: u32 = 1 << (shift - 1);
  if (rem > half || (rem == half && (h & 1) != 0)) h += 1;
  return sign | h;
}

/**
 * f16 bits (in the low half of each i32 lane) of 4 f32 lanes, round to nearest even, valid
 * when every lane is in the f16 normal range, 2^-14 <= |x| < 65536 (see f16NormalRange): the
 * exponent rebias is an integer subtract and the rounding the usual add-then-shift (a carry
 * into the exponent is the correct RNE result, up to inf). Same bits as f32ToF16 there.
 */
@inline
export function f32x4ToF16Normal(u: v128): v128 {
  const a = v128.and(u, i32x4.splat(0x7fffffff));
  // (a - (112 << 23) + 0xfff + lsb) >> 13, lsb = bit 13 of a (the kept mantissa's last bit)
  const h = i32x4.shr_u(i32x4.add(i32x4.sub(a, i32x4.splat(0x38000000 - 0xfff)), v128.and(i32x4.shr_u(a, 13), i32x4.splat(1))), 13);
  return v128.or(h, v128.and(i32x4.shr_u(u, 16), i32x4.splat(0x8000)));
}

/** All-ones lanes where f32x4ToF16Normal applies (2^-14 <= |x| < 65536). */
@inline
export function f16NormalRange(u: v128): v128 {
  const a = v128.and(u, i32x4.splat(0x7fffffff));
  return v128.and(i32x4.gt_s(a, i32x4.splat(0x38800000 - 1)), i32x4.lt_s(a, i32x4.splat(0x47800000)));
}

/** Exact 4-lane f16 -> f32 with the halves in the high 16 bits of each lane (inf/NaN kept). */
@inline
export function h2fHighExact(s: v128): v128 {
  const em = v128.and(i32x4.shr_u(s, 3), i32x4.splat(0x0fffe000));
  const f = f32x4.mul(em, f32x4.splat(F16_REBIAS));
  const special = i32x4.gt_s(em, i32x4.splat(0x0f7fffff));
  const r = v128.bitselect(v128.or(em, i32x4.splat(0x7f800000)), f, special);
  return v128.or(r, v128.and(s, i32x4.splat(0x80000000)));
}

/** [sum(a), sum(b), sum(c), sum(d)] for f32x4 inputs. */
@inline
export function hsum4f(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** [sum(a), sum(b), sum(c), sum(d)] for i32x4 inputs. */
@inline
export function hsum4i(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

/** Sum of the 4 lanes of an f32x4. */
@inline
export function hsumf(a: v128): f32 {
  const s = f32x4.add(a, v128.shuffle<f32>(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** Max of the 4 lanes of an f32x4. */
@inline
export function hmaxf(a: v128): f32 {
  const s = f32x4.max(a, v128.shuffle<f32>(a, a, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

/**
 * Decode passes read 4 rows at once, one from each quarter of the matrix, so that each of the 4
 * streams walks its quarter contiguously (adjacent rows would restart 3 hardware-prefetch
 * streams per pass). Quarter k is additionally rotated by k*quarterShift(Q) rows: streams at
 * power-of-two distances (f32/f16 matrices) collide in DRAM banks and lose ~25% bandwidth.
 * Returns the row of lane k (1..3) in pass r (lane 0 is r); rows >= `rows` are padding.
 */
@inline
export function quarterRow(r: i32, k: i32, Q: i32): i32 {
  return k * Q + (r + k * ((Q >> 2) + 3)) % Q;
}

/**
 * quarterRow(r, k, Q) - k*Q for r = 0, 1, .. kept as a counter: the per-pass integer modulo
 * costs as much as a short row's whole pass. Start at quarterStart(k, Q), then quarterNext.
 */
@inline
export function quarterStart(k: i32, Q: i32): i32 {
  return (k * ((Q >> 2) + 3)) % Q;
}

@inline
export function quarterNext(c: i32, Q: i32): i32 {
  return c + 1 == Q ? 0 : c + 1;
}

/**
 * Sums of the 8 i16 lanes of each of a, b, c, d as i32x4, for lanes small enough that sums of 4
 * stay in i16 (|lane| <= 8191): two rounds of i16 adds, then one widening dot.
 */
@inline
export function hsum4i16(a: v128, b: v128, c: v128, d: v128, ones: v128): v128 {
  const ab = i16x8.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i16x8.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.dot_i16x8_s(i16x8.add(v128.shuffle<i64>(ab, cd, 0, 2), v128.shuffle<i64>(ab, cd, 1, 3)), ones);
}

/** Store lanes of s to out[r0], out[r1].. (f32), skipping padding rows >= rows. */
@inline
export function storeQuarterRows(out: usize, s: v128, r0: i32, r1: i32, r2: i32, r3: i32, rows: i32): void {
  store<f32>(out + (<usize>r0 << 2), f32x4.extract_lane(s, 0));
  if (r1 < rows) store<f32>(out + (<usize>r1 << 2), f32x4.extract_lane(s, 1));
  if (r2 < rows) store<f32>(out + (<usize>r2 << 2), f32x4.extract_lane(s, 2));
  if (r3 < rows) store<f32>(out + (<usize>r3 << 2), f32x4.extract_lane(s, 3));
}

/** Store the first `n` (1..4) lanes of an f32x4 at p, p+stride, p+2*stride, ... */
@inline
export function storeLanesStrided(p: usize, stride: usize, v: v128, n: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p + stride, f32x4.extract_lane(v, 1));
  if (n > 2) store<f32>(p + 2 * stride, f32x4.extract_lane(v, 2));
  if (n > 3) store<f32>(p + 3 * stride, f32x4.extract_lane(v, 3));
}
