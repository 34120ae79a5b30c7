// Reference rotary embedding (see kernels/assembly/rope.ts). Same f32 operations in the same
// order as the wasm kernel, so results are bit-identical.
const fr = Math.fround;

export function rope(vec: Float32Array, nHeads: number, headSize: number, cosSin: Float32Array, layout: number): void {
  const half = headSize >> 1;
  for (let h = 0; h < nHeads; h++) {
    const base = h * headSize;
    for (let i = 0; i < half; i++) {
      const c = cosSin[2 * i]!, s = cosSin[2 * i + 1]!;
      const a = layout === 0 ? base + 2 * i : base + i;
      const b = layout === 0 ? a + 1 : a + half;
      const v0 = vec[a]!, v1 = vec[b]!;
      vec[a] = fr(fr(v0 * c) - fr(v1 * s));
      vec[b] = fr(fr(v0 * s) + fr(v1 * c));
    }
  }
}
