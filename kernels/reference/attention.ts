// Reference grouped-query attention (see kernels/assembly/attention.ts), sums in double.
import { f16BitsToF32 } from "../quant";

export function attention(
  out: Float32Array, q: Float32Array, kCache: Float32Array | Uint16Array, vCache: Float32Array | Uint16Array,
  att: Float32Array, nHeads: number, nKvHeads: number, headSize: number, nPos: number, cacheDtype: number,
): void {
  const kvDim = nKvHeads * headSize;
  const group = nHeads / nKvHeads;
  const get = cacheDtype === 1 ? (a: Float32Array | Uint16Array, i: number) => f16BitsToF32(a[i]!) : (a: Float32Array | Uint16Array, i: number) => a[i]!;
  const scale = Math.fround(1 / Math.sqrt(headSize));
  for (let h = 0; h < nHeads; h++) {
    const kvo = Math.floor(h / group) * headSize;
    let m = -Infinity;
    for (let p = 0; p < nPos; p++) {
      let s = 0;
      for (let i = 0; i < headSize; i++) s += q[h * headSize + i]! * get(kCache, p * kvDim + kvo + i);
      att[h * nPos + p] = s * scale;
      m = Math.max(m, att[h * nPos + p]!);
    }
    let sum = 0;
    for (let p = 0; p < nPos; p++) sum += Math.exp(att[h * nPos + p]! - m);
    for (let p = 0; p < nPos; p++) att[h * nPos + p] = Math.exp(att[h * nPos + p]! - m) / sum;
    for (let i = 0; i < headSize; i++) {
      let o = 0;
      for (let p = 0; p < nPos; p++) o += att[h * nPos + p]! * get(vCache, p * kvDim + kvo + i);
      out[h * headSize + i] = o;
    }
  }
}

export function attentionBatch(
  out: Float32Array, q: Float32Array, kCache: Float32Array | Uint16Array, vCache: Float32Array | Uint16Array,
  att: Float32Array, nHeads: number, nKvHeads: number, headSize: number, startPos: number, nTok: number, cacheDtype: number,
): void {
  const dim = nHeads * headSize;
  for (let t = 0; t < nTok; t++) {
    attention(out.subarray(t * dim), q.subarray(t * dim), kCache, vCache, att, nHeads, nKvHeads, headSize, startPos + t + 1, cacheDtype);
  }
}
