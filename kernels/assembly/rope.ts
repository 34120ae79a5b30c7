// Rotary position embedding for one token's q or k vector.

/**
 * Rotates every head of vec in place by the angles of the current position. cosSin holds
 * headSize/2 (cos, sin) f32 pairs (pair i at frequency theta^(-2i/headSize)), precomputed once
 * per position by the caller and shared by q, k and all layers.
 * layout 0: pairs (2i, 2i+1) (llama2.c / GGUF llama); layout 1: pairs (i, i + headSize/2)
 * (Hugging Face "rotate half", GPT-NeoX).
 */
export function rope(vec: usize, nHeads: i32, headSize: i32, cosSin: usize, layout: i32): void {
  const half = headSize >> 1;
  for (let h = 0; h < nHeads; h++) {
    const base = vec + ((<usize>h * <usize>headSize) << 2);
    let i = 0;
    if (layout == 0) {
      const sign = f32x4(-1.0, 1.0, -1.0, 1.0);
      // 2 pairs per vector: out = v*[c0 c0 c1 c1] + [v1 v0 v3 v2]*[-s0 s0 -s1 s1]
      for (; i + 2 <= half; i += 2) {
        const p = base + (<usize>i << 3);
        const v = v128.load(p);
        const cs = v128.load(cosSin + (<usize>i << 3));
        const c = v128.shuffle<f32>(cs, cs, 0, 0, 2, 2);
        const s = f32x4.mul(v128.shuffle<f32>(cs, cs, 1, 1, 3, 3), sign);
        v128.store(p, f32x4.add(f32x4.mul(v, c), f32x4.mul(v128.shuffle<f32>(v, v, 1, 0, 3, 2), s)));
      }
      for (; i < half; i++) {
        const p = base + (<usize>i << 3);
        const c = load<f32>(cosSin + (<usize>i << 3)), s = load<f32>(cosSin + (<usize>i << 3), 4);
        const v0 = load<f32>(p), v1 = load<f32>(p, 4);
        store<f32>(p, v0 * c - v1 * s);
        store<f32>(p, v0 * s + v1 * c, 4);
      }
    } else {
      const hb = base + (<usize>half << 2);
      for (; i + 4 <= half; i += 4) {
        const cs0 = v128.load(cosSin + (<usize>i << 3)), cs1 = v128.load(cosSin + (<usize>i << 3), 16);
        const c = v128.shuffle<f32>(cs0, cs1, 0, 2, 4, 6);
        const s = v128.shuffle<f32>(cs0, cs1, 1, 3, 5, 7);
        const o = <usize>i << 2;
        const lo = v128.load(base + o), hi = v128.load(hb + o);
        v128.store(base + o, f32x4.sub(f32x4.mul(lo, c), f32x4.mul(hi, s)));
        v128.store(hb + o, f32x4.add(f32x4.mul(lo, s), f32x4.mul(hi, c)));
      }
      for (; i < half; i++) {
        const c = load<f32>(cosSin + (<usize>i << 3)), s = load<f32>(cosSin + (<usize>i << 3), 4);
        const o = <usize>i << 2;
        const v0 = load<f32>(base + o), v1 = load<f32>(hb + o);
        store<f32>(base + o, v0 * c - v1 * s);
        store<f32>(hb + o, v0 * s + v1 * c);
      }
    }
  }
}
