// Block quantization formats: the single definition shared by the Worker, the CLI/converter
// and the kernel build (scripts/build-kernels.mjs imports this file to generate the
// AssemblyScript constants, so the wasm kernels can never disagree with it).
//
// The layouts are exactly ggml's (`block_q8_0`, `block_q4_0`, `block_q4_1`, `block_q5_0`,
// `block_q5_1`, `block_q4_K`, `block_q5_K`, `block_q6_K`, and the activation blocks `block_q8_1`
// and `block_q8_K`) so tensors from a GGUF file can be copied in verbatim, and quantizers follow
// ggml's reference (`quantize_row_*_ref`) rounding so files we produce are byte-identical to
// llama.cpp's. The K-quant formats and their quantizers are in kernels/quant-k.ts and
// re-exported here.
//
// This file must stay plain, dependency-free TypeScript using only erasable syntax (no enums,
// no namespaces): Node 22 imports it directly with type stripping.

export type DType = "f32" | "f16" | "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q4_k" | "q5_k" | "q6_k";
/** The quantized weight dtypes. */
export type QuantDType = Exclude<DType, "f32" | "f16">;
/** Every dtype, in the order of their numeric codes. */
export const DTYPES: readonly DType[] = ["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"];
/**
 * How activations are quantized for a weight dtype, as ggml does (its vec_dot_type): q8_0 for
 * q8_0 / q4_0 / q5_0, q8_1 (with the block sum) for q4_1 / q5_1, q8_K for the K-quants.
 */
export type ActivationFormat = "q8_0" | "q8_1" | "q8_k";

/** Values per quantization block (ggml QK8_0 = QK4_0 = 32). */
export const QK = 32;
/** f16 scale (2 bytes) + 32 int8. */
export const Q8_0_BLOCK_BYTES = 34;
/** f16 scale (2 bytes) + 16 bytes of packed nibbles. */
export const Q4_0_BLOCK_BYTES = 18;
/** f16 scale, f16 min, 16 bytes of nibbles: value = q * d + m. */
export const Q4_1_BLOCK_BYTES = 20;
/** f16 scale, 4 bytes of fifth bits, 16 bytes of nibbles: value = (q - 16) * d. */
export const Q5_0_BLOCK_BYTES = 22;
/** f16 scale, f16 min, 4 bytes of fifth bits, 16 bytes of nibbles: value = q * d + m. */
export const Q5_1_BLOCK_BYTES = 24;
/** Activations for q4_1 / q5_1: f16 scale, f16 d * sum(q), 32 int8. */
export const Q8_1_BLOCK_BYTES = 36;
/** Values per K-quant super-block (ggml QK_K). */
export const QK_K = 256;
/** f16 d, f16 dmin, 12 bytes of 6-bit scales and mins (8 each), 128 bytes of nibbles. */
export const Q4_K_BLOCK_BYTES = 144;
/** As q4_K plus 32 bytes of fifth bits (before the nibbles). */
export const Q5_K_BLOCK_BYTES = 176;
/** 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, f16 d (last). */
export const Q6_K_BLOCK_BYTES = 210;
/** Activations for the K-quants: f32 d, 256 int8, 16 int16 sums of 16 quants each. */
export const Q8_K_BLOCK_BYTES = 292;

export interface BlockFormat {
  /** Values per block. */
  values: number;
  /** Bytes per block. */
  bytes: number;
}

/** The quantized weight formats, with how their activations are quantized. */
export const QUANT_FORMATS: Readonly<Record<QuantDType, BlockFormat & { activation: ActivationFormat; ggml: string }>> = {
  q8_0: { values: QK, bytes: Q8_0_BLOCK_BYTES, activation: "q8_0", ggml: "Q8_0" },
  q4_0: { values: QK, bytes: Q4_0_BLOCK_BYTES, activation: "q8_0", ggml: "Q4_0" },
  q4_1: { values: QK, bytes: Q4_1_BLOCK_BYTES, activation: "q8_1", ggml: "Q4_1" },
  q5_0: { values: QK, bytes: Q5_0_BLOCK_BYTES, activation: "q8_0", ggml: "Q5_0" },
  q5_1: { values: QK, bytes: Q5_1_BLOCK_BYTES, activation: "q8_1", ggml: "Q5_1" },
  q4_k: { values: QK_K, bytes: Q4_K_BLOCK_BYTES, activation: "q8_k", ggml: "Q4_K" },
  q5_k: { values: QK_K, bytes: Q5_K_BLOCK_BYTES, activation: "q8_k", ggml: "Q5_K" },
  q6_k: { values: QK_K, bytes: Q6_K_BLOCK_BYTES, activation: "q8_k", ggml: "Q6_K" },
};

/** The activation block formats. */
export const ACTIVATION_FORMATS: Readonly<Record<ActivationFormat, BlockFormat>> = {
  q8_0: { values: QK, bytes: Q8_0_BLOCK_BYTES },
  q8_1: { values: QK, bytes: Q8_1_BLOCK_BYTES },
  q8_k: { values: QK_K, bytes: Q8_K_BLOCK_BYTES },
};

/** Numeric codes for dtypes where they cross into wasm (e.g. the attention cache dtype). */
export const DTYPE_CODE: Readonly<Record<DType, number>> = Object.fromEntries(DTYPES.map((d, i) => [d, i])) as Record<DType, number>;

export function isQuantized(dtype: DType): dtype is QuantDType {
  return dtype in QUANT_FORMATS;
}

export function isKQuant(dtype: DType): boolean {
  return dtype === "q4_k" || dtype === "q5_k" || dtype === "q6_k";
}

/** Number of QK blocks for a row of n values; the last block is zero padded. */
export function blocksPerRow(n: number): number {
  return Math.ceil(n / QK);
}

/**
 * Bytes of one row of n values. Rows of the 32-value formats are padded to whole blocks; the
 * K-quants (as in ggml) need n to be a multiple of 256: see `matrixDtype` for the fallback.
 */
export function rowBytes(dtype: DType, n: number): number {
  if (dtype === "f32") return 4 * n;
  if (dtype === "f16") return 2 * n;
  const f = QUANT_FORMATS[dtype as QuantDType];
  if (!f) throw new Error(`unknown dtype ${String(dtype)}`);
  return Math.ceil(n / f.values) * f.bytes;
}

/** Bytes of one row of n activations quantized to `format` (padded to whole blocks). */
export function activationRowBytes(format: ActivationFormat, n: number): number {
  const f = ACTIVATION_FORMATS[format];
  return Math.ceil(n / f.values) * f.bytes;
}

/** The activation format a weight dtype multiplies with (null for f32 / f16, which take f32). */
export function activationFormat(dtype: DType): ActivationFormat | null {
  return isQuantized(dtype) ? QUANT_FORMATS[dtype].activation : null;
}

/**
 * The dtype a matrix with rows of `cols` values is stored in when `quant` is asked for: a
 * K-quant needs whole 256-value blocks, and otherwise falls back as llama.cpp's quantizer does
 * (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0).
 */
export function matrixDtype(quant: DType, cols: number): DType {
  if (cols % QK_K === 0) return quant;
  switch (quant) {
    case "q4_k": return "q5_0";
    case "q5_k": return "q5_1";
    case "q6_k": return "q8_0";
    default: return quant;
  }
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

// ---------------------------------------------------------------------------------------------
// The other block formats: q4_1, q5_0, q5_1 (32 values) and the K-quants q4_K, q5_K, q6_K (256
// values in 8 or 16 sub-blocks with quantized scales), as ggml's dequantize_row_* and
// quantize_row_*_ref, float operation for float operation. In JS a single operation on two f32
// values computed in double and rounded once (Math.fround) is the correctly rounded f32 result,
// so every `fr(a op b)` below is exactly C's float `a op b` (compiled without FMA contraction,
// as ggml's reference code and gguf-py's numpy dequantizers are).

const fr = Math.fround;

function f16At(b: Uint8Array, p: number): number {
  return f16BitsToF32(b[p]! | (b[p + 1]! << 8));
}

function setF16(b: Uint8Array, p: number, x: number): void {
  const h = f32ToF16Bits(x);
  b[p] = h & 0xff;
  b[p + 1] = h >>> 8;
}

function u32At(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/** ggml's nearest_int: round to nearest, ties to even, through the f32 add of 1.5 * 2^23. */
export function nearestInt(x: number): number {
  return fr(x + 12582912) - 12582912;
}

/** ggml get_scale_min_k4: sub-block j's 6-bit scale and min from a q4_K / q5_K block's 12 bytes at p. */
export function scaleMinK4(b: Uint8Array, p: number, j: number): [number, number] {
  if (j < 4) return [b[p + j]! & 63, b[p + j + 4]! & 63];
  return [(b[p + j + 4]! & 0xf) | ((b[p + j - 4]! >> 6) << 4), (b[p + j + 4]! >> 4) | ((b[p + j]! >> 6) << 4)];
}

/**
 * Dequantize one block of `dtype` at src[p..] into out[o..o + n) (n <= the block's values: the
 * last block of a padded row writes only its real values).
 */
export function dequantizeBlock(dtype: QuantDType, src: Uint8Array, p: number, out: Float32Array, o: number, n: number): void {
  const put = (i: number, v: number) => {
    if (i < n) out[o + i] = v;
  };
  switch (dtype) {
    case "q8_0": {
      const d = f16At(src, p);
      for (let j = 0; j < 32; j++) put(j, ((src[p + 2 + j]! << 24) >> 24) * d);
      return;
    }
    case "q4_0": {
      const d = f16At(src, p);
      for (let j = 0; j < 16; j++) {
        put(j, ((src[p + 2 + j]! & 15) - 8) * d);
        put(j + 16, ((src[p + 2 + j]! >> 4) - 8) * d);
      }
      return;
    }
    case "q4_1": {
      const d = f16At(src, p), m = f16At(src, p + 2);
      for (let j = 0; j < 16; j++) {
        put(j, fr(fr((src[p + 4 + j]! & 15) * d) + m));
        put(j + 16, fr(fr((src[p + 4 + j]! >> 4) * d) + m));
      }
      return;
    }
    case "q5_0":
    case "q5_1": {
      const one = dtype === "q5_1";
      const d = f16At(src, p), m = one ? f16At(src, p + 2) : 0;
      const qh = u32At(src, p + (one ? 4 : 2));
      const qs = p + (one ? 8 : 6);
      for (let j = 0; j < 16; j++) {
        const q0 = (src[qs + j]! & 15) | (((qh >>> j) << 4) & 0x10);
        const q1 = (src[qs + j]! >> 4) | ((qh >>> (j + 12)) & 0x10);
        if (one) {
          put(j, fr(fr(q0 * d) + m));
          put(j + 16, fr(fr(q1 * d) + m));
        } else {
          put(j, (q0 - 16) * d);
          put(j + 16, (q1 - 16) * d);
        }
      }
      return;
    }
    case "q4_k":
    case "q5_k": {
      const five = dtype === "q5_k";
      const d = f16At(src, p), min = f16At(src, p + 2);
      const qh = p + 16;
      const qs = p + (five ? 48 : 16);
      for (let g = 0; g < 4; g++) {
        const [s1, m1] = scaleMinK4(src, p + 4, 2 * g);
        const [s2, m2] = scaleMinK4(src, p + 4, 2 * g + 1);
        const d1 = fr(d * s1), dm1 = fr(min * m1), d2 = fr(d * s2), dm2 = fr(min * m2);
        for (let l = 0; l < 32; l++) {
          const byte = src[qs + 32 * g + l]!;
          const h = five ? src[qh + l]! : 0;
          const lo = (byte & 15) + ((h >> (2 * g)) & 1) * 16;
          const hi = (byte >> 4) + ((h >> (2 * g + 1)) & 1) * 16;
          put(64 * g + l, fr(fr(d1 * lo) - dm1));
          put(64 * g + 32 + l, fr(fr(d2 * hi) - dm2));
        }
      }
      return;
    }
    case "q6_k": {
      const d = f16At(src, p + 208);
      for (let half = 0; half < 2; half++) {
        const ql = p + 64 * half, qh = p + 128 + 32 * half, sc = p + 192 + 8 * half;
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const h = src[qh + l]!;
          const q1 = ((src[ql + l]! & 15) | ((h & 3) << 4)) - 32;
          const q2 = ((src[ql + l + 32]! & 15) | (((h >> 2) & 3) << 4)) - 32;
          const q3 = ((src[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
          const q4 = ((src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
          const s = (k: number) => fr(d * ((src[sc + is + k]! << 24) >> 24));
          put(128 * half + l, fr(s(0) * q1));
          put(128 * half + l + 32, fr(s(2) * q2));
          put(128 * half + l + 64, fr(s(4) * q3));
          put(128 * half + l + 96, fr(s(6) * q4));
        }
      }
      return;
    }
  }
}

/** One row of n values of any quantized dtype at src[p..] -> out[o..o + n). */
export function dequantizeRowInto(dtype: QuantDType, src: Uint8Array, p: number, out: Float32Array, o: number, n: number): void {
  const f = QUANT_FORMATS[dtype];
  for (let b = 0, i = 0; i < n; b++, i += f.values) dequantizeBlock(dtype, src, p + b * f.bytes, out, o + i, Math.min(f.values, n - i));
}

/** [rows, cols] of any dtype -> f32 (ggml's dequantize_row_* values). */
export function dequantize(dtype: DType, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  checkBytes(bytes, dtype, rows, cols);
  if (dtype === "f32") return new Float32Array(bytes.slice(0, 4 * rows * cols).buffer);
  if (dtype === "f16") return fromF16(bytes.subarray(0, 2 * rows * cols));
  const out = new Float32Array(rows * cols);
  const rb = rowBytes(dtype, cols);
  for (let r = 0; r < rows; r++) dequantizeRowInto(dtype, bytes, r * rb, out, r * cols, cols);
  return out;
}

/** Checks a K-quant row length (whole 256-value super-blocks, as ggml requires). */
function checkKRow(dtype: DType, n: number): void {
  if (isKQuant(dtype) && n % QK_K !== 0) throw new Error(`${dtype} rows must be a multiple of ${QK_K} values, got ${n}`);
}

/** The values of block b of a row (zero past n). */
function blockValues(x: Float32Array, src: Float32Array, offset: number, n: number, b: number): Float32Array {
  const base = b * x.length;
  const len = Math.min(x.length, n - base);
  x.fill(0);
  for (let j = 0; j < len; j++) x[j] = src[offset + base + j]!;
  return x;
}

// ---- activations ----------------------------------------------------------------------------

/** ggml quantize_row_q8_1_ref: q8_0's rounding, plus s = f16(d * sum(q)). */
export function quantizeRowQ8_1Into(out: Uint8Array, o: number, src: Float32Array, offset: number, n: number): void {
  const x = new Float32Array(QK);
  for (let b = 0; b * QK < n; b++) {
    blockValues(x, src, offset, n, b);
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[j]!));
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0;
    const p = o + b * Q8_1_BLOCK_BYTES;
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      const v = roundAway(fr(x[j]! * id));
      out[p + 4 + j] = v & 0xff;
      sum += v;
    }
    setF16(out, p, d);
    setF16(out, p + 2, fr(sum * d));
  }
}

/**
 * ggml quantize_row_q8_K_ref: per 256 values d = max / -127 of the signed extreme (first wins),
 * q = nearest_int(x * (-127 / max)), and the 16 sums of 16 quants. An all-zero block has d = 0
 * and zero quants and sums.
 */
export function quantizeRowQ8_KInto(out: Uint8Array, o: number, src: Float32Array, offset: number, n: number): void {
  const x = new Float32Array(QK_K);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0; b * QK_K < n; b++) {
    blockValues(x, src, offset, n, b);
    const p = o + b * Q8_K_BLOCK_BYTES;
    let amax = 0, max = 0;
    for (let j = 0; j < QK_K; j++) {
      const a = Math.abs(x[j]!);
      if (a > amax) { amax = a; max = x[j]!; }
    }
    out.fill(0, p, p + Q8_K_BLOCK_BYTES);
    if (amax === 0) continue;
    const iscale = fr(-127 / max);
    for (let j = 0; j < QK_K; j++) out[p + 4 + j] = Math.min(127, nearestInt(fr(iscale * x[j]!))) & 0xff;
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let j = 0; j < 16; j++) sum += (out[p + 4 + 16 * g + j]! << 24) >> 24;
      dv.setInt16(p + 260 + 2 * g, sum, true);
    }
    dv.setFloat32(p, fr(1 / iscale), true);
  }
}

/** Row-major [rows, n] f32 -> activations in `format`. */
export function quantizeActivations(format: ActivationFormat, src: Float32Array, rows: number, n: number): Uint8Array {
  checkShape(src, rows, n);
  const rb = activationRowBytes(format, n);
  const out = new Uint8Array(rows * rb);
  const row = format === "q8_0" ? quantizeRowQ8_0Into : format === "q8_1" ? quantizeRowQ8_1Into : quantizeRowQ8_KInto;
  for (let r = 0; r < rows; r++) row(out, r * rb, src, r * n, n);
  return out;
}

// ---- weights --------------------------------------------------------------------------------

/** ggml quantize_row_q4_1_ref / q5_1_ref: d = (max - min) / (2^bits - 1), m = min. */
function quantizeBlockQx_1(bits: 4 | 5, x: Float32Array, out: Uint8Array, p: number): void {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < QK; j++) {
    if (x[j]! < min) min = x[j]!;
    if (x[j]! > max) max = x[j]!;
  }
  const d = fr(fr(max - min) / ((1 << bits) - 1));
  const id = d !== 0 ? fr(1 / d) : 0;
  setF16(out, p, d);
  setF16(out, p + 2, min);
  let qh = 0;
  const qs = p + (bits === 5 ? 8 : 4);
  for (let j = 0; j < 16; j++) {
    const x0 = fr(fr(x[j]! - min) * id), x1 = fr(fr(x[j + 16]! - min) * id);
    // C: (uint8_t)(x + 0.5f) for q5_1, MIN(15, (int8_t)(x + 0.5f)) for q4_1; x >= 0 so trunc == floor
    let q0 = Math.trunc(fr(x0 + 0.5)), q1 = Math.trunc(fr(x1 + 0.5));
    if (bits === 4) { q0 = Math.min(15, q0); q1 = Math.min(15, q1); }
    out[qs + j] = (q0 & 15) | ((q1 & 15) << 4);
    qh |= ((q0 >> 4) & 1) << j;
    qh |= ((q1 >> 4) & 1) << (j + 16);
  }
  if (bits === 5) for (let k = 0; k < 4; k++) out[p + 4 + k] = (qh >>> (8 * k)) & 0xff;
}

/** ggml quantize_row_q5_0_ref: d = max / -16 of the signed extreme. */
function quantizeBlockQ5_0(x: Float32Array, out: Uint8Array, p: number): void {
  let amax = 0, max = 0;
  for (let j = 0; j < QK; j++) {
    const a = Math.abs(x[j]!);
    if (amax < a) { amax = a; max = x[j]!; }
  }
  const d = fr(max / -16);
  const id = d !== 0 ? fr(1 / d) : 0;
  setF16(out, p, d);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = Math.min(31, Math.trunc(fr(fr(x[j]! * id) + 16.5)));
    const q1 = Math.min(31, Math.trunc(fr(fr(x[j + 16]! * id) + 16.5)));
    out[p + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
    qh |= ((q0 >> 4) & 1) << j;
    qh |= ((q1 >> 4) & 1) << (j + 16);
  }
  for (let k = 0; k < 4; k++) out[p + 2 + k] = (qh >>> (8 * k)) & 0xff;
}

/**
 * ggml make_qkx2_quants: codes L in [0, nmax] and (scale, -min) for x ≈ scale * L - (-min),
 * searching nstep + 1 candidate scales around nmax / (max - min) for the least weighted error.
 */
function makeQkx2Quants(n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, L: Uint8Array, lo: number, Laux: Uint8Array, rmin: number, rdelta: number, nstep: number): [number, number] {
  let min = x[xo]!, max = x[xo]!;
  let sumW = w[0]!;
  let sumX = fr(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    if (x[xo + i]! < min) min = x[xo + i]!;
    if (x[xo + i]! > max) max = x[xo + i]!;
    sumW = fr(sumW + w[i]!);
    sumX = fr(sumX + fr(w[i]! * x[xo + i]!));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return [0, -min];
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[xo + i]! - min)))));
    L[lo + i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[xo + i]!);
    bestError = fr(bestError + fr(w[i]! * fr(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[xo + i]! - min)))));
      Laux[i] = l;
      sumL = fr(sumL + fr(w[i]! * l));
      sumL2 = fr(sumL2 + fr(fr(w[i]! * l) * l));
      sumXL = fr(sumXL + fr(fr(w[i]! * l) * x[xo + i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        curError = fr(curError + fr(w[i]! * fr(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** ggml quantize_row_q4_K_ref / q5_K_ref for one 256-value block. */
function quantizeBlockQxK(five: boolean, x: Float32Array, out: Uint8Array, p: number): void {
  const nmax = five ? 31 : 15;
  const L = new Uint8Array(QK_K), Laux = new Uint8Array(32), w = new Float32Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  let maxScale = 0, maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[32 * j + l]! * x[32 * j + l]!));
    const av = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) w[l] = fr(av + Math.abs(x[32 * j + l]!));
    const [s, m] = makeQkx2Quants(32, nmax, x, 32 * j, w, L, 32 * j, Laux, five ? -0.5 : -1, fr(0.1), five ? 15 : 20);
    scales[j] = s;
    mins[j] = m;
    if (scales[j]! > maxScale) maxScale = scales[j]!;
    if (mins[j]! > maxMin) maxMin = mins[j]!;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const sc = p + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j]!)) & 0xff);
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[sc + j - 4] |= (ls >> 4) << 6;
      out[sc + j] |= (lm >> 4) << 6;
    }
  }
  setF16(out, p, fr(maxScale / 63));
  setF16(out, p + 2, fr(maxMin / 63));
  const dAll = f16At(out, p), mAll = f16At(out, p + 2);
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMinK4(out, sc, j);
    const d = fr(dAll * s);
    if (d === 0) continue;
    const dm = fr(mAll * m);
    for (let i = 0; i < 32; i++) L[32 * j + i] = Math.max(0, Math.min(nmax, nearestInt(fr(fr(x[32 * j + i]! + dm) / d))));
  }
  const qs = p + (five ? 48 : 16);
  if (five) out.fill(0, p + 16, p + 48);
  for (let g = 0; g < 4; g++) {
    for (let l = 0; l < 32; l++) {
      let l1 = L[64 * g + l]!, l2 = L[64 * g + l + 32]!;
      if (five) {
        if (l1 > 15) { l1 -= 16; out[p + 16 + l] |= 1 << (2 * g); }
        if (l2 > 15) { l2 -= 16; out[p + 16 + l] |= 2 << (2 * g); }
      }
      out[qs + 32 * g + l] = l1 | (l2 << 4);
    }
  }
}

/** ggml make_qx_quants with rmse_type 1 and no importance weights (what q6_K uses). */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[xo + i]!);
    if (a > amax) { amax = a; max = x[xo + i]!; }
  }
  if (amax < fr(1e-15)) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L[lo + i] = l + nmax;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
      const w = fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[xo + i]!))));
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/** ggml quantize_row_q6_K_ref for one 256-value block. */
function quantizeBlockQ6K(x: Float32Array, out: Uint8Array, p: number): void {
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  let maxScale = 0, maxAbsScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const s = makeQxQuants(16, 32, x, 16 * ib, L, 16 * ib);
    scales[ib] = s;
    if (Math.abs(s) > maxAbsScale) { maxAbsScale = Math.abs(s); maxScale = s; }
  }
  out.fill(0, p, p + Q6_K_BLOCK_BYTES);
  if (maxAbsScale < fr(1e-15)) return; // d = f16(0) = 0 as well
  const iscale = fr(-128 / maxScale);
  setF16(out, p + 208, fr(1 / iscale));
  const d16 = f16At(out, p + 208);
  for (let ib = 0; ib < 16; ib++) out[p + 192 + ib] = Math.min(127, nearestInt(fr(iscale * scales[ib]!))) & 0xff;
  for (let j = 0; j < 16; j++) {
    const d = fr(d16 * ((out[p + 192 + j]! << 24) >> 24));
    if (d === 0) continue;
    for (let i = 0; i < 16; i++) L[16 * j + i] = Math.max(-32, Math.min(31, nearestInt(fr(x[16 * j + i]! / d)))) + 32;
  }
  for (let half = 0; half < 2; half++) {
    const j = 128 * half, ql = p + 64 * half, qh = p + 128 + 32 * half;
    for (let l = 0; l < 32; l++) {
      const a = L[j + l]!, b = L[j + l + 32]!, c = L[j + l + 64]!, e = L[j + l + 96]!;
      out[ql + l] = (a & 15) | ((c & 15) << 4);
      out[ql + l + 32] = (b & 15) | ((e & 15) << 4);
      out[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
    }
  }
}

/** Quantize one row of n values into `dtype` blocks at out[o..] (ggml's reference quantizers). */
export function quantizeRowInto(dtype: QuantDType, out: Uint8Array, o: number, src: Float32Array, offset: number, n: number): void {
  if (dtype === "q8_0") return quantizeRowQ8_0Into(out, o, src, offset, n);
  if (dtype === "q4_0") return quantizeRowQ4_0Into(out, o, src, offset, n);
  checkKRow(dtype, n);
  const f = QUANT_FORMATS[dtype];
  const x = new Float32Array(f.values);
  for (let b = 0; b * f.values < n; b++) {
    blockValues(x, src, offset, n, b);
    const p = o + b * f.bytes;
    switch (dtype) {
      case "q4_1": quantizeBlockQx_1(4, x, out, p); break;
      case "q5_1": quantizeBlockQx_1(5, x, out, p); break;
      case "q5_0": quantizeBlockQ5_0(x, out, p); break;
      case "q4_k": quantizeBlockQxK(false, x, out, p); break;
      case "q5_k": quantizeBlockQxK(true, x, out, p); break;
      case "q6_k": quantizeBlockQ6K(x, out, p); break;
    }
  }
}

/** Row-major [rows, cols] f32 -> any quantized dtype (each row padded to whole blocks). */
export function quantize(dtype: QuantDType, src: Float32Array, rows: number, cols: number): Uint8Array {
  checkShape(src, rows, cols);
  checkKRow(dtype, cols);
  const rb = rowBytes(dtype, cols);
  const out = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) quantizeRowInto(dtype, out, r * rb, src, r * cols, cols);
  return out;
}
