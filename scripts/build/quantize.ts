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
 * What a build asks for: one dtype for every matrix, "keep" (each matrix as the source stored
 * it: a GGUF file's own types, no requantization), or a llama.cpp-style mix: "q4_k_m" / "q5_k_m"
 * (q4_K / q5_K for most matrices; q6_K for the classifier, and for attn_v and ffn_down in the
 * layers llama.cpp's use_more_bits picks).
 */
export type BuildQuant = DType | "keep" | "q4_k_m" | "q5_k_m";
export const BUILD_QUANTS: readonly BuildQuant[] = ["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m", "keep"];

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between. */
function useMoreBits(layer: number, nLayers: number): boolean {
  const e = Math.floor(nLayers / 8);
  return layer < e || layer >= Math.floor((7 * nLayers) / 8) || (layer - e) % 3 === 2;
}

/** The dtype of a matrix in a q4_k_m / q5_k_m mix, before the fallback for rows not of 256s. */
function mixDtype(name: string, quant: "q4_k_m" | "q5_k_m", nLayers: number, tiedEmbeddings: boolean): DType {
  const base = quant === "q4_k_m" ? "q4_k" : "q5_k";
  if (name === "output.weight" || (tiedEmbeddings && name === "token_embd.weight")) return "q6_k";
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  if (m && useMoreBits(Number(m[1]), nLayers)) return "q6_k";
  return base;
}

/**
 * The dtype a tensor is stored in. Vectors (norm weights) stay f32. Matrices take the requested
 * dtype or mix (a K-quant falls back for rows that are not whole 256-value blocks, see
 * matrixDtype); "keep" keeps the source's dtype (f32 where the source has none).
 */
export function storedDtype(
  tensor: Pick<ImportedTensor, "name" | "shape" | "quantized" | "sourceDtype">,
  quant: BuildQuant,
  model: { nLayers: number; tiedEmbeddings?: boolean } = { nLayers: 0 },
): DType {
  if (tensor.shape.length !== 2) return "f32";
  if (quant === "keep") return tensor.quantized?.dtype ?? tensor.sourceDtype ?? "f32";
  const want = quant === "q4_k_m" || quant === "q5_k_m" ? mixDtype(tensor.name, quant, model.nLayers, model.tiedEmbeddings ?? false) : quant;
  return matrixDtype(want, tensor.shape[1]!);
}

export function quantizeTensor(tensor: ImportedTensor, dtype: DType): QuantizedTensor {
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
