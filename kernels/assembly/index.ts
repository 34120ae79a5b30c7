// Entry point of kernels.wasm: re-exports every kernel. All pointers are byte offsets into the
// imported env.memory; kernels never allocate (see kernels/index.ts for the memory model).

import { QK, SCRATCH_BYTES, scratchBase } from "./common";

/** First byte the host may use: end of static data and of the kernels' scratch region. */
export function heapBase(): usize {
  return scratchBase() + <usize>SCRATCH_BYTES;
}

/** Largest `cols` the quantized matmuls accept (their per-call scratch is static). */
export function maxQuantCols(): i32 {
  return ((SCRATCH_BYTES - 64) / 8) * QK;
}

export { f16ToF32Row, f32ToF16Row } from "./convert";
export { quantizeRowQ8_0, quantizeRowsQ8_0, dequantizeRowQ8_0, dequantizeRowQ4_0 } from "./quant";
export { matmulF32 } from "./matmul_f32";
export { matmulF16 } from "./matmul_f16";
export { matmulQ8_0 } from "./matmul_q8";
export { matmulQ8_0x4, repackQ8_0x4, dequantizeRowQ8_0x4 } from "./matmul_q8x4";
export { matmulQ4_0 } from "./matmul_q4";
export { matmulQ4_0x4, repackQ4_0x4, dequantizeRowQ4_0x4 } from "./matmul_q4x4";
export { matmulQ4_Kx4, repackQ4_Kx4, dequantizeRowQ4_Kx4 } from "./matmul_k4x4";
export { matmulQ6_Kx4, repackQ6_Kx4, dequantizeRowQ6_Kx4 } from "./matmul_k6x4";
export {
  quantizeRowQ8_K, quantizeRowsQ8_K, quantizeRowQ8_1, quantizeRowsQ8_1,
  matmulQ4_K, matmulQ5_K, matmulQ6_K, matmulQ5_0, matmulQ4_1, matmulQ5_1,
  dequantizeRowQ4_K, dequantizeRowQ5_K, dequantizeRowQ6_K, dequantizeRowQ5_0, dequantizeRowQ4_1, dequantizeRowQ5_1,
} from "./matmul_k";
export { rmsnorm, layernorm } from "./norm";
export { softmax, swiglu, silu, gelu, addInPlace, addBias, mulInPlace, scale, argmax } from "./activation";
export { rope } from "./rope";
export { attention, attentionBatch } from "./attention";
