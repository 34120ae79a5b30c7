// Plain TypeScript references for every wasm kernel, same names and argument order, typed arrays
// instead of pointers. They define the kernels' semantics for the tests and serve as a slow
// fallback; none of them is meant for production speed.
export { f16ToF32Row, f32ToF16Row } from "./convert";
export { quantizeRowQ8_0, quantizeRowsQ8_0, dequantizeRowQ8_0, dequantizeRowQ4_0 } from "./quant";
export { matmulF32, matmulF16, matmulQ8_0, matmulQ4_0, matmulQuant, blockDot, blockDotInts, matmulQ8_0x4, repackQ8_0x4, unpackRowQ8_0x4, matmulQ4_0x4, repackQ4_0x4, unpackRowQ4_0x4, matmulQ4_Kx4, repackQ4_Kx4, unpackRowQ4_Kx4, matmulQ6_Kx4, repackQ6_Kx4, unpackRowQ6_Kx4 } from "./matmul";
export { rmsnorm, layernorm } from "./norm";
export { softmax, swiglu, silu, gelu, addInPlace, addBias, mulInPlace, scale, argmax } from "./activation";
export { rope } from "./rope";
export { attention, attentionBatch } from "./attention";
