// trial
export function heapBase(): usize { return __heap_base; }
export function sumF32(p: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = f32x4.add(acc, v128.load(p + (<usize>i << 2)));
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < n; i++) s += load<f32>(p + (<usize>i << 2));
  return s;
}
export function dotRelaxed(a: usize, b: usize): i32 {
  let r = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(a), v128.load(b), i32x4.splat(0));
  return i32x4.extract_lane(r, 0) + i32x4.extract_lane(r, 1) + i32x4.extract_lane(r, 2) + i32x4.extract_lane(r, 3);
}
