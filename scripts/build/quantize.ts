// Turns one f32 tensor into the bytes of its stored dtype, and measures what that cost.

import {
  dequantizeQ4_0,
  dequantizeQ8_0,
  fromF16,
  quantizeQ4_0,
  quantizeQ8_0,
  toF16,
  type DType,
} from "../../kernels/quant";
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

/** Matrices take the requested scheme; vectors (norm weights) stay f32. */
export function storedDtype(tensor: ImportedTensor, quant: DType): DType {
  return tensor.shape.length === 2 ? quant : "f32";
}

export function quantizeTensor(tensor: ImportedTensor, quant: DType): QuantizedTensor {
  const dtype = storedDtype(tensor, quant);
  const rows = tensor.shape.length === 2 ? tensor.shape[0] : 1;
  const cols = tensor.shape[tensor.shape.length - 1];
  let data: Uint8Array;
  let restored: Float32Array;
  if (tensor.quantized && tensor.quantized.dtype === dtype) {
    // Blocks from the source (GGUF) are ours already: copy, don't requantize.
    return { name: tensor.name, dtype, shape: tensor.shape, data: tensor.quantized.bytes, relRmsError: 0, maxAbsError: 0 };
  }
  switch (dtype) {
    case "f32":
      data = new Uint8Array(tensor.data.buffer.slice(tensor.data.byteOffset, tensor.data.byteOffset + tensor.data.byteLength));
      restored = tensor.data;
      break;
    case "f16":
      data = toF16(tensor.data);
      restored = fromF16(data);
      break;
    case "q8_0":
      data = quantizeQ8_0(tensor.data, rows, cols);
      restored = dequantizeQ8_0(data, rows, cols);
      break;
    case "q4_0":
      data = quantizeQ4_0(tensor.data, rows, cols);
      restored = dequantizeQ4_0(data, rows, cols);
      break;
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
