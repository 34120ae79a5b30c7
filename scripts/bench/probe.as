// Roofline probe (AssemblyScript; compiled by scripts/bench/roofline.ts at bench time into
// .edgeinfer/bench/probe.wasm, never shipped). Kept as .as so the project's tsc run skips it;
// the bench copies it to a .ts file for asc.
//
// - streamSum*: single-thread read bandwidth, summing v128 loads (the sum is returned so the
//   loads cannot be dropped). Buffers far larger than the caches give the DRAM bound.
// - dot*/madd*: peak rate of the SIMD dot / multiply-add instructions in a register-only loop.
//   Every chain feeds its own result back as the next input, so nothing is loop-invariant
//   (no hoisting) and enough independent chains (12) hide the instruction latency.

/** One sequential stream, 128 bytes per iteration, 4 accumulators. */
export function streamSum(p: usize, bytes: usize): i32 {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  const end = p + bytes;
  while (p < end) {
    a0 = i32x4.add(a0, v128.load(p));
    a1 = i32x4.add(a1, v128.load(p, 16));
    a2 = i32x4.add(a2, v128.load(p, 32));
    a3 = i32x4.add(a3, v128.load(p, 48));
    a0 = i32x4.add(a0, v128.load(p, 64));
    a1 = i32x4.add(a1, v128.load(p, 80));
    a2 = i32x4.add(a2, v128.load(p, 96));
    a3 = i32x4.add(a3, v128.load(p, 112));
    p += 128;
  }
  const s = i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

/** Four streams over the four quarters of the buffer (the access pattern of the decode kernels). */
export function streamSum4(p: usize, bytes: usize): i32 {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  const q = (bytes >> 2) & ~(<usize>63);
  let p1 = p + q, p2 = p + 2 * q, p3 = p + 3 * q;
  const end = p + q;
  while (p < end) {
    a0 = i32x4.add(a0, v128.load(p));
    a1 = i32x4.add(a1, v128.load(p1));
    a2 = i32x4.add(a2, v128.load(p2));
    a3 = i32x4.add(a3, v128.load(p3));
    a0 = i32x4.add(a0, v128.load(p, 16));
    a1 = i32x4.add(a1, v128.load(p1, 16));
    a2 = i32x4.add(a2, v128.load(p2, 16));
    a3 = i32x4.add(a3, v128.load(p3, 16));
    a0 = i32x4.add(a0, v128.load(p, 32));
    a1 = i32x4.add(a1, v128.load(p1, 32));
    a2 = i32x4.add(a2, v128.load(p2, 32));
    a3 = i32x4.add(a3, v128.load(p3, 32));
    a0 = i32x4.add(a0, v128.load(p, 48));
    a1 = i32x4.add(a1, v128.load(p1, 48));
    a2 = i32x4.add(a2, v128.load(p2, 48));
    a3 = i32x4.add(a3, v128.load(p3, 48));
    p += 64; p1 += 64; p2 += 64; p3 += 64;
  }
  const s = i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3);
}

/** Writes a byte pattern over [p, p + bytes) so every page is really backed (not the zero page). */
export function fill(p: usize, bytes: usize, seed: i32): void {
  const v = i32x4.splat(seed);
  const end = p + bytes;
  while (p < end) {
    v128.store(p, v);
    p += 16;
  }
}

function fold(a: v128, b: v128, c: v128, d: v128): i32 {
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return i32x4.extract_lane(s, 0) ^ i32x4.extract_lane(s, 1) ^ i32x4.extract_lane(s, 2) ^ i32x4.extract_lane(s, 3);
}

/** i32x4.dot_i16x8_s: 8 multiply-adds per instruction; 12 chains x `iters`. */
export function dotI16(iters: i32, seed: i32): i32 {
  const b = i16x8.splat(<i16>(seed | 1));
  let c0 = i32x4.splat(seed), c1 = i32x4.splat(seed + 1), c2 = i32x4.splat(seed + 2), c3 = i32x4.splat(seed + 3);
  let c4 = i32x4.splat(seed + 4), c5 = i32x4.splat(seed + 5), c6 = i32x4.splat(seed + 6), c7 = i32x4.splat(seed + 7);
  let c8 = i32x4.splat(seed + 8), c9 = i32x4.splat(seed + 9), c10 = i32x4.splat(seed + 10), c11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.dot_i16x8_s(c0, b); c1 = i32x4.dot_i16x8_s(c1, b); c2 = i32x4.dot_i16x8_s(c2, b); c3 = i32x4.dot_i16x8_s(c3, b);
    c4 = i32x4.dot_i16x8_s(c4, b); c5 = i32x4.dot_i16x8_s(c5, b); c6 = i32x4.dot_i16x8_s(c6, b); c7 = i32x4.dot_i16x8_s(c7, b);
    c8 = i32x4.dot_i16x8_s(c8, b); c9 = i32x4.dot_i16x8_s(c9, b); c10 = i32x4.dot_i16x8_s(c10, b); c11 = i32x4.dot_i16x8_s(c11, b);
  }
  return fold(c0, c1, c2, c3) ^ fold(c4, c5, c6, c7) ^ fold(c8, c9, c10, c11);
}

/** i16x8.relaxed_dot_i8x16_i7x16_s: 16 multiply-adds (i8 x i7 -> i16 pairs) per instruction. */
export function dotI8(iters: i32, seed: i32): i32 {
  const b = i8x16.splat(<i8>(seed & 63));
  let c0 = i32x4.splat(seed), c1 = i32x4.splat(seed + 1), c2 = i32x4.splat(seed + 2), c3 = i32x4.splat(seed + 3);
  let c4 = i32x4.splat(seed + 4), c5 = i32x4.splat(seed + 5), c6 = i32x4.splat(seed + 6), c7 = i32x4.splat(seed + 7);
  let c8 = i32x4.splat(seed + 8), c9 = i32x4.splat(seed + 9), c10 = i32x4.splat(seed + 10), c11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    c0 = i16x8.relaxed_dot_i8x16_i7x16_s(c0, b); c1 = i16x8.relaxed_dot_i8x16_i7x16_s(c1, b);
    c2 = i16x8.relaxed_dot_i8x16_i7x16_s(c2, b); c3 = i16x8.relaxed_dot_i8x16_i7x16_s(c3, b);
    c4 = i16x8.relaxed_dot_i8x16_i7x16_s(c4, b); c5 = i16x8.relaxed_dot_i8x16_i7x16_s(c5, b);
    c6 = i16x8.relaxed_dot_i8x16_i7x16_s(c6, b); c7 = i16x8.relaxed_dot_i8x16_i7x16_s(c7, b);
    c8 = i16x8.relaxed_dot_i8x16_i7x16_s(c8, b); c9 = i16x8.relaxed_dot_i8x16_i7x16_s(c9, b);
    c10 = i16x8.relaxed_dot_i8x16_i7x16_s(c10, b); c11 = i16x8.relaxed_dot_i8x16_i7x16_s(c11, b);
  }
  return fold(c0, c1, c2, c3) ^ fold(c4, c5, c6, c7) ^ fold(c8, c9, c10, c11);
}

/** i32x4.relaxed_dot_i8x16_i7x16_add_s: 16 multiply-adds accumulated into i32 lanes per instruction. */
export function dotI8Add(iters: i32, seed: i32): i32 {
  const b = i8x16.splat(<i8>(seed & 63));
  let c0 = i32x4.splat(seed), c1 = i32x4.splat(seed + 1), c2 = i32x4.splat(seed + 2), c3 = i32x4.splat(seed + 3);
  let c4 = i32x4.splat(seed + 4), c5 = i32x4.splat(seed + 5), c6 = i32x4.splat(seed + 6), c7 = i32x4.splat(seed + 7);
  let c8 = i32x4.splat(seed + 8), c9 = i32x4.splat(seed + 9), c10 = i32x4.splat(seed + 10), c11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c0, b, c0); c1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c1, b, c1);
    c2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c2, b, c2); c3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c3, b, c3);
    c4 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c4, b, c4); c5 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c5, b, c5);
    c6 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c6, b, c6); c7 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c7, b, c7);
    c8 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c8, b, c8); c9 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c9, b, c9);
    c10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c10, b, c10); c11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(c11, b, c11);
  }
  return fold(c0, c1, c2, c3) ^ fold(c4, c5, c6, c7) ^ fold(c8, c9, c10, c11);
}

/**
 * The exact q8_0 x q8_0 step (matmul_q8.ts blockDot for 16 bytes): move x's sign onto w (xor,
 * saturating subtract), relaxed i8 dot against |x|, widen the i16 pairs to i32, add. 16
 * multiply-adds per step; each chain's accumulator is also its next weights, so nothing hoists.
 * A ceiling for any exact 8-bit x 8-bit kernel built on the relaxed dot (no loads, no scales).
 */
export function q8Dot(iters: i32, seed: i32): i32 {
  const a = i8x16.splat(<i8>(seed & 63)), m = i8x16.splat(<i8>-(seed & 1)), ones = i16x8.splat(1);
  let c0 = i32x4.splat(seed), c1 = i32x4.splat(seed + 1), c2 = i32x4.splat(seed + 2), c3 = i32x4.splat(seed + 3);
  let c4 = i32x4.splat(seed + 4), c5 = i32x4.splat(seed + 5), c6 = i32x4.splat(seed + 6), c7 = i32x4.splat(seed + 7);
  let c8 = i32x4.splat(seed + 8), c9 = i32x4.splat(seed + 9), c10 = i32x4.splat(seed + 10), c11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    c0 = q8Step(c0, a, m, ones); c1 = q8Step(c1, a, m, ones); c2 = q8Step(c2, a, m, ones); c3 = q8Step(c3, a, m, ones);
    c4 = q8Step(c4, a, m, ones); c5 = q8Step(c5, a, m, ones); c6 = q8Step(c6, a, m, ones); c7 = q8Step(c7, a, m, ones);
    c8 = q8Step(c8, a, m, ones); c9 = q8Step(c9, a, m, ones); c10 = q8Step(c10, a, m, ones); c11 = q8Step(c11, a, m, ones);
  }
  return fold(c0, c1, c2, c3) ^ fold(c4, c5, c6, c7) ^ fold(c8, c9, c10, c11);
}

@inline
function q8Step(c: v128, a: v128, m: v128, ones: v128): v128 {
  const s = i8x16.sub_sat_s(v128.xor(c, m), m);
  return i32x4.add(c, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(s, a), ones));
}

/**
 * The other exact 8-bit route: both operands widened to i16 beforehand (once per tile in a
 * prefill kernel), then an i16 dot into i32 and an add. 8 multiply-adds per step.
 */
export function q8DotWide(iters: i32, seed: i32): i32 {
  const x = i16x8.splat(<i16>(seed | 1));
  let c0 = i32x4.splat(seed), c1 = i32x4.splat(seed + 1), c2 = i32x4.splat(seed + 2), c3 = i32x4.splat(seed + 3);
  let c4 = i32x4.splat(seed + 4), c5 = i32x4.splat(seed + 5), c6 = i32x4.splat(seed + 6), c7 = i32x4.splat(seed + 7);
  let c8 = i32x4.splat(seed + 8), c9 = i32x4.splat(seed + 9), c10 = i32x4.splat(seed + 10), c11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    c0 = i32x4.add(c0, i32x4.dot_i16x8_s(c0, x)); c1 = i32x4.add(c1, i32x4.dot_i16x8_s(c1, x));
    c2 = i32x4.add(c2, i32x4.dot_i16x8_s(c2, x)); c3 = i32x4.add(c3, i32x4.dot_i16x8_s(c3, x));
    c4 = i32x4.add(c4, i32x4.dot_i16x8_s(c4, x)); c5 = i32x4.add(c5, i32x4.dot_i16x8_s(c5, x));
    c6 = i32x4.add(c6, i32x4.dot_i16x8_s(c6, x)); c7 = i32x4.add(c7, i32x4.dot_i16x8_s(c7, x));
    c8 = i32x4.add(c8, i32x4.dot_i16x8_s(c8, x)); c9 = i32x4.add(c9, i32x4.dot_i16x8_s(c9, x));
    c10 = i32x4.add(c10, i32x4.dot_i16x8_s(c10, x)); c11 = i32x4.add(c11, i32x4.dot_i16x8_s(c11, x));
  }
  return fold(c0, c1, c2, c3) ^ fold(c4, c5, c6, c7) ^ fold(c8, c9, c10, c11);
}

/**
 * The q4_0 x q8_0 step (matmul_q4x4.ts nib for 16 bytes of nibbles): low nibbles by a mask,
 * high nibbles by a shift and the mask, a relaxed i8 dot for each against x, the two added as
 * i16. 32 multiply-adds per step (the widening to i32, once per 8 steps in the kernels, is left
 * out: this is an upper bound).
 */
export function q4Dot(iters: i32, seed: i32): i32 {
  const x0 = i8x16.splat(<i8>(seed & 127)), x1 = i8x16.splat(<i8>-(seed & 127)), low = i8x16.splat(0x0f);
  let c0 = i32x4.splat(seed), c1 = i32x4.splat(seed + 1), c2 = i32x4.splat(seed + 2), c3 = i32x4.splat(seed + 3);
  let c4 = i32x4.splat(seed + 4), c5 = i32x4.splat(seed + 5), c6 = i32x4.splat(seed + 6), c7 = i32x4.splat(seed + 7);
  let c8 = i32x4.splat(seed + 8), c9 = i32x4.splat(seed + 9), c10 = i32x4.splat(seed + 10), c11 = i32x4.splat(seed + 11);
  for (let i = 0; i < iters; i++) {
    c0 = q4Step(c0, x0, x1, low); c1 = q4Step(c1, x0, x1, low); c2 = q4Step(c2, x0, x1, low); c3 = q4Step(c3, x0, x1, low);
    c4 = q4Step(c4, x0, x1, low); c5 = q4Step(c5, x0, x1, low); c6 = q4Step(c6, x0, x1, low); c7 = q4Step(c7, x0, x1, low);
    c8 = q4Step(c8, x0, x1, low); c9 = q4Step(c9, x0, x1, low); c10 = q4Step(c10, x0, x1, low); c11 = q4Step(c11, x0, x1, low);
  }
  return fold(c0, c1, c2, c3) ^ fold(c4, c5, c6, c7) ^ fold(c8, c9, c10, c11);
}

@inline
function q4Step(c: v128, x0: v128, x1: v128, low: v128): v128 {
  const lo = v128.and(c, low);
  const hi = v128.and(i16x8.shr_u(c, 4), low);
  return i16x8.add(c, i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, lo), i16x8.relaxed_dot_i8x16_i7x16_s(x1, hi)));
}

/** f32x4 mul + add: 4 multiply-adds per pair of instructions (the f32 kernels' inner step). */
export function maddF32(iters: i32, m: f32, a: f32): f32 {
  const vm = f32x4.splat(m), va = f32x4.splat(a);
  let c0 = f32x4.splat(1), c1 = f32x4.splat(2), c2 = f32x4.splat(3), c3 = f32x4.splat(4);
  let c4 = f32x4.splat(5), c5 = f32x4.splat(6), c6 = f32x4.splat(7), c7 = f32x4.splat(8);
  let c8 = f32x4.splat(9), c9 = f32x4.splat(10), c10 = f32x4.splat(11), c11 = f32x4.splat(12);
  for (let i = 0; i < iters; i++) {
    c0 = f32x4.add(f32x4.mul(c0, vm), va); c1 = f32x4.add(f32x4.mul(c1, vm), va);
    c2 = f32x4.add(f32x4.mul(c2, vm), va); c3 = f32x4.add(f32x4.mul(c3, vm), va);
    c4 = f32x4.add(f32x4.mul(c4, vm), va); c5 = f32x4.add(f32x4.mul(c5, vm), va);
    c6 = f32x4.add(f32x4.mul(c6, vm), va); c7 = f32x4.add(f32x4.mul(c7, vm), va);
    c8 = f32x4.add(f32x4.mul(c8, vm), va); c9 = f32x4.add(f32x4.mul(c9, vm), va);
    c10 = f32x4.add(f32x4.mul(c10, vm), va); c11 = f32x4.add(f32x4.mul(c11, vm), va);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)));
  const t = f32x4.add(s, f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11)));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1) + f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3);
}
