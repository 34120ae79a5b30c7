// Reference row (de)quantization (see kernels/assembly/quant.ts); delegates to kernels/quant.ts,
// the definition of the formats.
import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, blocksPerRow, f16BitsToF32, quantizeRowQ8_0Into } from "../quant";

export function quantizeRowQ8_0(dst: Uint8Array, src: Float32Array, n: number): void {
  quantizeRowQ8_0Into(dst, 0, src, 0, n);
}

export function quantizeRowsQ8_0(dst: Uint8Array, src: Float32Array, n: number, nRows: number): void {
  const rb = blocksPerRow(n) * Q8_0_BLOCK_BYTES;
  for (let r = 0; r < nRows; r++) quantizeRowQ8_0Into(dst, r * rb, src, r * n, n);
}

export function dequantizeRowQ8_0(dst: Float32Array, src: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const p = Math.floor(i / QK) * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(src[p]! | (src[p + 1]! << 8));
    dst[i] = ((src[p + 2 + (i % QK)]! << 24) >> 24) * d;
  }
}

export function dequantizeRowQ4_0(dst: Float32Array, src: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const p = Math.floor(i / QK) * Q4_0_BLOCK_BYTES;
    const d = f16BitsToF32(src[p]! | (src[p + 1]! << 8));
    const j = i % QK;
    const byte = src[p + 2 + (j % 16)]!;
    dst[i] = ((j < 16 ? byte & 15 : byte >>> 4) - 8) * d;
  }
}
