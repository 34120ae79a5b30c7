// Reference f16 row conversion (see kernels/assembly/convert.ts).
import { f16BitsToF32, f32ToF16Bits } from "../quant";

export function f16ToF32Row(dst: Float32Array, src: Uint16Array, n: number): void {
  for (let i = 0; i < n; i++) dst[i] = f16BitsToF32(src[i]!);
}

export function f32ToF16Row(dst: Uint16Array, src: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dst[i] = f32ToF16Bits(src[i]!);
}
