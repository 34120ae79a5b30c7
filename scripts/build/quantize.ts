// Turns one f32 tensor into the bytes of its stored dtype, and measures what that cost.

import { dequantize, fromF16, isQuantized, matrixDtype, quantize, toF16, type DType } from "../../kernels/quant";
import type { ImportedTensor } from "../../functions/model/description";

export interface QuantizedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
  /** Root-mean-square error relative to the tensor's RMS (0 for f32). */
  relRmsError: number;
  maxAbsError: number;
}

/**
 * Matrices take the requested scheme (a K-quant falls back for rows that are not whole
 * 256-value blocks, see matrixDtype); vectors (norm weights) stay f32. `quant` null keeps each
 * matrix as the source stored it (a GGUF file's own types; f32 where the source has no blocks).
 */
export function storedDtype(tensor: Pick<ImportedTensor, "shape" | "quantized">, quant: DType | null): DType {
  if (tensor.shape.length !== 2) return "f32";
  if (quant === null) return tensor.quantized?.dtype ?? "f32";
  return matrixDtype(quant, tensor.shape[1]!);
}

export function quantizeTensor(tensor: ImportedTensor, quant: DType | null): QuantizedTensor {
  const dtype = storedDtype(tensor, quant);
  const rows = tensor.shape.length === 2 ? tensor.shape[0] : 1;
  const cols = tensor.shape[tensor.shape.length - 1];
  let data: Uint8Array;
  let restored: Float32Array;
  if (tensor.quantized && tensor.quantized.dtype === dtype) {
    // Blocks from the source (GGUF) are ours already: copy, don't requantize.
    return { name: tensor.name, dtype, shape: tensor.shape, data: tensor.quantized.bytes, relRmsError: 0, maxAbsError: 0 };
  }
  if (dtype === "f32") {
    data = new Uint8Array(tensor.data.buffer.slice(tensor.data.byteOffset, tensor.data.byteOffset + tensor.data.byteLength));
    restored = tensor.data;
  } else if (dtype === "f16") {
    data = toF16(tensor.data);
    restored = fromF16(data);
  } else if (isQuantized(dtype)) {
    data = quantize(dtype, tensor.data, rows, cols);
    restored = dequantize(dtype, data, rows, cols);
  } else {
    throw new Error(`tensor ${tensor.name}: unknown dtype ${String(dtype)}`);
  }
  let sq = 0;
  let err = 0;
  let maxAbs = 0;
  for (let i = 0; i < tensor.data.length; i++) {
    const d = restored[i] - tensor.data[i];
    sq += tensor.data[i] * tensor.data[i];
    err += d * d;
    if (Math.abs(d) > maxAbs) maxAbs = Math.abs(d);
  }
  return {
    name: tensor.name,
    dtype,
    shape: tensor.shape,
    data,
    relRmsError: sq > 0 ? Math.sqrt(err / sq) : 0,
    maxAbsError: maxAbs,
  };
}
