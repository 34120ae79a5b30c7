// Block quantization formats: the single definition shared by the Worker, the CLI/converter
// and the kernel build (scripts/build-kernels.mjs imports this file to generate the
// AssemblyScript constants, so the wasm kernels can never disagree with it).
//
// The layouts are exactly ggml's `block_q8_0` / `block_q4_0` so tensors from a GGUF file can
// be copied in verbatim, and quantizers follow ggml's reference (`quantize_row_*_ref`)
// rounding so files we produce are byte-identical to llama.cpp's.
//
// This file must stay plain, dependency-free TypeScript using only erasable syntax (no enums,
// no namespaces): Node 22 imports it directly with type stripping.

export type DType = "f32" | "f16" | "q8_0" | "q4_0";

/** Values per quantization block (ggml QK8_0 = QK4_0 = 32). */
export const QK = 32;
/** f16 scale (2 bytes) + 32 int8. */
export const Q8_0_BLOCK_BYTES = 34;
/** f16 scale (2 bytes) + 16 bytes of packed nibbles. */
export const Q4_0_BLOCK_BYTES = 18;

/** Numeric codes for dtypes where they cross into wasm (e.g. the attention cache dtype). */
export const DTYPE_CODE: Readonly<Record<DType, number>> = { f32: 0, f16: 1, q8_0: 2, q4_0: 3 };

export function isQuantized(dtype: DType): boolean {
  return dtype === "q8_0" || dtype === "q4_0";
}

/** Number of QK blocks for a row of n values; the last block is zero padded. */
export function blocksPerRow(n: number): number {
  return Math.ceil(n / QK);
}

/** Bytes of one row of n values (quantized rows are padded to whole blocks). */
export function rowBytes(dtype: DType, n: number): number {
  switch (dtype) {
    case "f32": return 4 * n;
    case "f16": return 2 * n;
    case "q8_0": return blocksPerRow(n) * Q8_0_BLOCK_BYTES;
    case "q4_0": return blocksPerRow(n) * Q4_0_BLOCK_BYTES;
  }
  throw new Error(`unknown dtype ${String(dtype)}`);
}

/** Bytes of a row-major [rows, cols] matrix; quantized rows are padded independently. */
export function tensorBytes(dtype: DType, rows: number, cols: number): number {
  return rows * rowBytes(dtype, cols);
}

// ---------------------------------------------------------------------------------------------
// IEEE half precision. Bit-exact conversions (round to nearest even, subnormals, inf, NaN) so
// that scales written here equal ggml's GGML_FP32_TO_FP16 and the wasm conversions.

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float -> f16 bits. The input is first rounded to f32 (as ggml only ever converts floats). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0]!;
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x7f800000) {
    // NaN keeps the top payload bits and stays a (quiet) NaN; inf stays inf.
    return a > 0x7f800000 ? sign | 0x7e00 | ((a >>> 13) & 0x3ff) : sign | 0x7c00;
  }
  const e = (a >>> 23) - 112; // f16 biased exponent if the value is a normal f16
  if (e >= 31) return sign | 0x7c00;
  let mant: number;
  let shift: number;
  if (e >= 1) {
    mant = (e << 23) | (a & 0x7fffff); // exponent and mantissa shift down together: carries propagate
    shift = 13;
  } else {
    shift = 14 - e; // subnormal f16: value = m * 2^-24 with the implicit bit made explicit
    if (shift > 24) return sign; // below half the smallest subnormal: rounds to zero
    mant = (a & 0x7fffff) | 0x800000;
  }
  let h = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1) !== 0)) h += 1; // may carry into exponent / inf: correct
  return sign | h;
}

/** f16 bits -> number (exactly representable as f32). NaN payloads are not preserved. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 5.960464477539063e-8; // m * 2^-24
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** Float32 values -> little-endian f16 bytes. */
export function toF16(src: Float32Array): Uint8Array {
  const out = new Uint8Array(src.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < src.length; i++) dv.setUint16(2 * i, f32ToF16Bits(src[i]!), true);
  return out;
}

/** Little-endian f16 bytes -> Float32 values. */
export function fromF16(bytes: Uint8Array): Float32Array {
  const n = bytes.length >>> 1;
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Quantizers. All arithmetic is rounded to f32 (Math.fround) at the same points as ggml's C
// code so bytes match llama.cpp and the wasm quantizer exactly.

/** C roundf: halves round away from zero (Math.round would round -2.5 to -2). */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

function checkShape(src: Float32Array, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`bad shape [${rows}, ${cols}]`);
  }
  if (src.length < rows * cols) throw new Error(`source has ${src.length} values, shape [${rows}, ${cols}] needs ${rows * cols}`);
}

function checkBytes(bytes: Uint8Array, dtype: DType, rows: number, cols: number): void {
  const need = tensorBytes(dtype, rows, cols);
  if (bytes.length < need) throw new Error(`${dtype} tensor [${rows}, ${cols}] needs ${need} bytes, got ${bytes.length}`);
}

/** Quantize one row of n values (from src at offset) into q8_0 blocks at out[o..]. */
export function quantizeRowQ8_0Into(out: Uint8Array, o: number, src: Float32Array, offset: number, n: number): void {
  const nb = blocksPerRow(n);
  for (let b = 0; b < nb; b++) {
    const base = offset + b * QK;
    const len = Math.min(QK, n - b * QK);
    let amax = 0;
    for (let j = 0; j < len; j++) amax = Math.max(amax, Math.abs(src[base + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const h = f32ToF16Bits(d);
    const p = o + b * Q8_0_BLOCK_BYTES;
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
    for (let j = 0; j < QK; j++) {
      const v = j < len ? roundAway(Math.fround(src[base + j]! * id)) : 0;
      out[p + 2 + j] = v & 0xff;
    }
  }
}

/** Quantize one row of n values into q4_0 blocks at out[o..] (ggml: d = max / -8). */
export function quantizeRowQ4_0Into(out: Uint8Array, o: number, src: Float32Array, offset: number, n: number): void {
  const nb = blocksPerRow(n);
  const half = QK / 2;
  const x = new Float32Array(QK);
  for (let b = 0; b < nb; b++) {
    const base = offset + b * QK;
    const len = Math.min(QK, n - b * QK);
    x.fill(0);
    for (let j = 0; j < len; j++) x[j] = src[base + j]!;
    // The signed value of largest magnitude, first one wins ties (strict <), as in ggml.
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[j]!);
      if (amax < a) { amax = a; max = x[j]!; }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const h = f32ToF16Bits(d);
    const p = o + b * Q4_0_BLOCK_BYTES;
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
    for (let j = 0; j < half; j++) {
      // (int8_t)(x*id + 8.5f) truncates toward zero; the sum is always > -1 so trunc == floor.
      const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[j]! * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[j + half]! * id) + 8.5)));
      out[p + 2 + j] = q0 | (q1 << 4);
    }
  }
}

/** Row-major [rows, cols] f32 -> q8_0 (each row padded to whole blocks). */
export function quantizeQ8_0(src: Float32Array, rows: number, cols: number): Uint8Array {
  checkShape(src, rows, cols);
  const rb = rowBytes("q8_0", cols);
  const out = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) quantizeRowQ8_0Into(out, r * rb, src, r * cols, cols);
  return out;
}

/** Row-major [rows, cols] f32 -> q4_0 (each row padded to whole blocks). */
export function quantizeQ4_0(src: Float32Array, rows: number, cols: number): Uint8Array {
  checkShape(src, rows, cols);
  const rb = rowBytes("q4_0", cols);
  const out = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) quantizeRowQ4_0Into(out, r * rb, src, r * cols, cols);
  return out;
}

/** q8_0 [rows, cols] -> f32; value = q * f32(d), rounded to f32. */
export function dequantizeQ8_0(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  checkBytes(bytes, "q8_0", rows, cols);
  const out = new Float32Array(rows * cols);
  const rb = rowBytes("q8_0", cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const p = r * rb + (c >>> 5) * Q8_0_BLOCK_BYTES;
      const d = f16BitsToF32(bytes[p]! | (bytes[p + 1]! << 8));
      const q = (bytes[p + 2 + (c & 31)]! << 24) >> 24;
      out[r * cols + c] = q * d;
    }
  }
  return out;
}

/** q4_0 [rows, cols] -> f32; value = (nibble - 8) * f32(d). */
export function dequantizeQ4_0(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  checkBytes(bytes, "q4_0", rows, cols);
  const out = new Float32Array(rows * cols);
  const rb = rowBytes("q4_0", cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const p = r * rb + (c >>> 5) * Q4_0_BLOCK_BYTES;
      const d = f16BitsToF32(bytes[p]! | (bytes[p + 1]! << 8));
      const j = c & 31;
      const byte = bytes[p + 2 + (j & 15)]!;
      const q = (j < 16 ? byte & 15 : byte >>> 4) - 8;
      out[r * cols + c] = q * d;
    }
  }
  return out;
}

/** Rounding error of the f16 scale: relative 2^-11 for normal halves, absolute 2^-25 below. */
function f16ScaleError(d: number): number {
  return Math.abs(d) * 2 ** -11 + 2 ** -25;
}

/** Largest possible |x - dequant(quant(x))| for a q8_0 block with absolute max amax. */
export function q8_0ErrorBound(amax: number): number {
  // Half a step (d/2), plus the f16 rounding of d scaled by the largest code (127), plus a
  // few f32 ulps for x*id landing on the other side of a rounding boundary.
  const d = amax / 127;
  return d / 2 + 127 * f16ScaleError(d) + amax * 2 ** -20;
}

/** Largest possible |x - dequant(quant(x))| for a q4_0 block with absolute max amax. */
export function q4_0ErrorBound(amax: number): number {
  // |d| = amax/8. The extreme of the opposite sign to `max` maps to code 16, clamped to 15:
  // a full step of error. Elsewhere half a step. Plus f16 rounding of d times the largest
  // code magnitude (8) and f32 slack as for q8_0.
  const d = amax / 8;
  return d + 8 * f16ScaleError(d) + amax * 2 ** -20;
}
