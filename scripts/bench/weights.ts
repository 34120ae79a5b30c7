// Random matrices in our layouts (f32 rows, ggml q8_0 / q4_0 blocks) and the same values in
// the layouts onnxruntime-web's operators take, so both sides run the same product.
// Weights are generated directly as blocks (random codes, scales around 0.01): timing does not
// depend on the values, and quantizing hundreds of MB in TypeScript would only cost time.

import { blocksPerRow, f16BitsToF32, f32ToF16Bits, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, rowBytes } from "../../kernels/quant";
import { lcg } from "./timing";

export type BenchQuant = "f32" | "q8_0" | "q4_0";

/** A [rows, cols] matrix (rows = outputs N, cols = inputs K) in our layout. */
export function randomMatrix(quant: BenchQuant, rows: number, cols: number, seed: number): Uint8Array {
  const rnd = lcg(seed);
  if (quant === "f32") {
    const f = new Float32Array(rows * cols);
    for (let i = 0; i < f.length; i++) f[i] = rnd() / Math.sqrt(cols);
    return new Uint8Array(f.buffer);
  }
  const nb = blocksPerRow(cols);
  const bb = quant === "q8_0" ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES;
  const out = new Uint8Array(rows * nb * bb);
  const dv = new DataView(out.buffer);
  // random codes via 32-bit words, then the scales written over their two bytes
  let s = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= out.length; i += 4) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    dv.setUint32(i, s >>> 0, true);
  }
  for (let b = 0; b < rows * nb; b++) {
    const o = b * bb;
    if (quant === "q8_0") for (let j = 0; j < QK; j++) if (out[o + 2 + j] === 0x80) out[o + 2 + j] = 0x81; // no -128 (ggml never writes it)
    dv.setUint16(o, f32ToF16Bits(0.01 * (1 + 0.5 * rnd())), true);
  }
  return out;
}

/** Dequantized f32 values of a matrix in our layout (reference for output checks). */
export function dequantize(quant: BenchQuant, w: Uint8Array, rows: number, cols: number): Float32Array {
  if (quant === "f32") return new Float32Array(w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength));
  const out = new Float32Array(rows * cols);
  const nb = blocksPerRow(cols);
  const rb = rowBytes(quant, cols);
  const dv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const o = r * rb + b * (quant === "q8_0" ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES);
      const d = f16BitsToF32(dv.getUint16(o, true));
      for (let j = 0; j < QK && b * QK + j < cols; j++) {
        let q: number;
        if (quant === "q8_0") q = dv.getInt8(o + 2 + j);
        else q = (j < 16 ? w[o + 2 + j] & 0x0f : w[o + 2 + j - 16] >> 4) - 8;
        out[r * cols + b * QK + j] = q * d;
      }
    }
  }
  return out;
}

/** f32 [rows, cols] -> [cols, rows] (ONNX MatMul's B is [K, N]). */
export function transposeF32(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

/**
 * Our q8_0 / q4_0 blocks -> MatMulNBits inputs (block 32): B uint8 [N, blocks, blob] and f32
 * scales [N * blocks]. q8_0: the int8 code q becomes the unsigned q + 128 (MatMulNBits'
 * default 8-bit zero point is 128). q4_0: ggml keeps element j in the low nibble and j+16 in
 * the high nibble of byte j; MatMulNBits packs elements 2i (low) and 2i+1 (high) into byte i;
 * the default 4-bit zero point 8 is q4_0's offset.
 */
export function toMatMulNBits(quant: "q8_0" | "q4_0", w: Uint8Array, rows: number, cols: number): { b: Uint8Array; scales: Float32Array; blob: number } {
  if (cols % QK !== 0) throw new Error(`MatMulNBits comparison needs cols (${cols}) to be a multiple of ${QK}`);
  const nb = cols / QK;
  const bb = quant === "q8_0" ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES;
  const blob = quant === "q8_0" ? QK : QK / 2;
  const b = new Uint8Array(rows * nb * blob);
  const scales = new Float32Array(rows * nb);
  const dv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  for (let i = 0; i < rows * nb; i++) {
    const o = i * bb;
    scales[i] = f16BitsToF32(dv.getUint16(o, true));
    const dst = i * blob;
    if (quant === "q8_0") {
      for (let j = 0; j < QK; j++) b[dst + j] = (w[o + 2 + j] + 128) & 0xff; // int8 bits + 128 = q + 128
    } else {
      const code = (j: number) => (j < 16 ? w[o + 2 + j] & 0x0f : w[o + 2 + j - 16] >> 4);
      for (let k = 0; k < 16; k++) b[dst + k] = code(2 * k) | (code(2 * k + 1) << 4);
    }
  }
  return { b, scales, blob };
}

/**
 * Our q8_0 blocks -> int8 B [K, N] with one scale per output column (the most an ONNX
 * MatMulInteger / DynamicQuantizeMatMul can express: no per-block scales, so these do less
 * work than q8_0). The column scale is the mean of its block scales.
 */
export function toInt8Columns(w: Uint8Array, rows: number, cols: number): { b: Int8Array; scales: Float32Array } {
  const nb = blocksPerRow(cols);
  const b = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  const dv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  const rb = rowBytes("q8_0", cols);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let blk = 0; blk < nb; blk++) {
      const o = r * rb + blk * Q8_0_BLOCK_BYTES;
      sum += f16BitsToF32(dv.getUint16(o, true));
      for (let j = 0; j < QK && blk * QK + j < cols; j++) b[(blk * QK + j) * rows + r] = dv.getInt8(o + 2 + j);
    }
    scales[r] = sum / nb;
  }
  return { b, scales };
}

/**
 * Our q8_0 / q4_0 blocks -> a blocked DequantizeLinear input (opset 21, axis 0, block 32):
 * codes as B [K, N] (int8, or int4 packed two per byte in flat order, low nibble first; q4_0's
 * code - 8 is the int4 value) and f32 scales [K / 32, N]. Exact q8_0 / q4_0 values.
 */
export function toBlockedDq(quant: "q8_0" | "q4_0", w: Uint8Array, rows: number, cols: number): { b: Uint8Array; scales: Float32Array } {
  if (cols % QK !== 0) throw new Error(`blocked DequantizeLinear needs cols (${cols}) to be a multiple of ${QK}`);
  const nb = cols / QK;
  const bb = quant === "q8_0" ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES;
  const codes = new Int8Array(rows * cols); // [K, N]
  const scales = new Float32Array(nb * rows);
  const dv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let blk = 0; blk < nb; blk++) {
      const o = (r * nb + blk) * bb;
      scales[blk * rows + r] = f16BitsToF32(dv.getUint16(o, true));
      for (let j = 0; j < QK; j++) {
        const q = quant === "q8_0" ? dv.getInt8(o + 2 + j) : (j < 16 ? w[o + 2 + j] & 0x0f : w[o + 2 + j - 16] >> 4) - 8;
        codes[(blk * QK + j) * rows + r] = q;
      }
    }
  }
  if (quant === "q8_0") return { b: new Uint8Array(codes.buffer), scales };
  const packed = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i += 2) packed[i >> 1] = (codes[i] & 0x0f) | ((i + 1 < codes.length ? codes[i + 1] & 0x0f : 0) << 4);
  return { b: packed, scales };
}
