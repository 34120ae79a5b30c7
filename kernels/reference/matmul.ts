// Reference matmuls (see kernels/assembly/matmul_*.ts): out[t*rows + r] = sum_c w[r,c] * x[t,c].
// Products and the running sum are rounded to f32 after every step, in column (or block) order,
// mirroring ggml's scalar code; the wasm kernels sum the same terms in another order.
import { ACTIVATION_FORMATS, Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QUANT_FORMATS, activationRowBytes, blocksPerRow, f16BitsToF32, scaleMinK4, type QuantDType } from "../quant";

const fr = Math.fround;

export function matmulF32(out: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number, nTok: number): void {
  for (let t = 0; t < nTok; t++) {
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc = fr(acc + fr(w[r * cols + c]! * x[t * cols + c]!));
      out[t * rows + r] = acc;
    }
  }
}

/** w holds f16 bits. */
export function matmulF16(out: Float32Array, w: Uint16Array, x: Float32Array, rows: number, cols: number, nTok: number): void {
  const wf = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) wf[c] = f16BitsToF32(w[r * cols + c]!);
    for (let t = 0; t < nTok; t++) {
      let acc = 0;
      for (let c = 0; c < cols; c++) acc = fr(acc + fr(wf[c]! * x[t * cols + c]!));
      out[t * rows + r] = acc;
    }
  }
}

function scaleAt(b: Uint8Array, p: number): number {
  return f16BitsToF32(b[p]! | (b[p + 1]! << 8));
}

/** ggml vec_dot_q8_0_q8_0: sum over blocks of f32(sumi) * f32(d_w * d_x), in f32. */
export function matmulQ8_0(out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const nb = blocksPerRow(cols);
  const rb = nb * Q8_0_BLOCK_BYTES;
  const wi = new Int8Array(w.buffer, w.byteOffset, w.byteLength);
  const xi = new Int8Array(xq.buffer, xq.byteOffset, xq.byteLength);
  for (let t = 0; t < nTok; t++) {
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const pw = r * rb + b * Q8_0_BLOCK_BYTES;
        const px = t * rb + b * Q8_0_BLOCK_BYTES;
        let sumi = 0;
        for (let j = 0; j < 32; j++) sumi += wi[pw + 2 + j]! * xi[px + 2 + j]!;
        acc = fr(acc + fr(sumi * fr(scaleAt(w, pw) * scaleAt(xq, px))));
      }
      out[t * rows + r] = acc;
    }
  }
}

/** ggml vec_dot_q4_0_q8_0: like q8_0 with weights (nibble - 8). */
export function matmulQ4_0(out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const nb = blocksPerRow(cols);
  const rbw = nb * Q4_0_BLOCK_BYTES;
  const rbx = nb * Q8_0_BLOCK_BYTES;
  const xi = new Int8Array(xq.buffer, xq.byteOffset, xq.byteLength);
  for (let t = 0; t < nTok; t++) {
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const pw = r * rbw + b * Q4_0_BLOCK_BYTES;
        const px = t * rbx + b * Q8_0_BLOCK_BYTES;
        let sumi = 0;
        for (let j = 0; j < 16; j++) {
          const byte = w[pw + 2 + j]!;
          sumi += ((byte & 15) - 8) * xi[px + 2 + j]! + ((byte >>> 4) - 8) * xi[px + 18 + j]!;
        }
        acc = fr(acc + fr(sumi * fr(scaleAt(w, pw) * scaleAt(xq, px))));
      }
      out[t * rows + r] = acc;
    }
  }
}

/**
 * In-place 4-row interleave of a q8_0 matrix (see kernels/assembly/matmul_q8x4.ts): each group of
 * 4 rows becomes, per block index, the 4 rows' f16 scales (8 bytes) then their 32 quants each;
 * the last rows % 4 rows stay plain.
 */
export function repackQ8_0x4(w: Uint8Array, rows: number, cols: number): void {
  const nb = blocksPerRow(cols);
  const rb = nb * Q8_0_BLOCK_BYTES;
  for (let g = 0; g + 4 <= rows; g += 4) {
    const src = w.slice(g * rb, (g + 4) * rb);
    const dst = w.subarray(g * rb, (g + 4) * rb);
    for (let b = 0; b < nb; b++) {
      const o = b * 4 * Q8_0_BLOCK_BYTES;
      for (let k = 0; k < 4; k++) {
        const s = k * rb + b * Q8_0_BLOCK_BYTES;
        dst[o + 2 * k] = src[s]!;
        dst[o + 2 * k + 1] = src[s + 1]!;
        dst.set(src.subarray(s + 2, s + Q8_0_BLOCK_BYTES), o + 8 + 32 * k);
      }
    }
  }
}

/** The plain q8_0 bytes of row r of a repacked matrix. */
export function unpackRowQ8_0x4(w: Uint8Array, rows: number, cols: number, r: number): Uint8Array {
  const nb = blocksPerRow(cols);
  const rb = nb * Q8_0_BLOCK_BYTES;
  if (r >= rows - (rows % 4)) return w.slice(r * rb, (r + 1) * rb);
  const out = new Uint8Array(rb);
  const base = (r - (r % 4)) * rb, k = r % 4;
  for (let b = 0; b < nb; b++) {
    const o = base + b * 4 * Q8_0_BLOCK_BYTES;
    out[b * Q8_0_BLOCK_BYTES] = w[o + 2 * k]!;
    out[b * Q8_0_BLOCK_BYTES + 1] = w[o + 2 * k + 1]!;
    out.set(w.subarray(o + 8 + 32 * k, o + 8 + 32 * k + 32), b * Q8_0_BLOCK_BYTES + 2);
  }
  return out;
}

/** matmulQ8_0 on a matrix repacked by repackQ8_0x4 (same results). */
export function matmulQ8_0x4(out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const rb = blocksPerRow(cols) * Q8_0_BLOCK_BYTES;
  const plain = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) plain.set(unpackRowQ8_0x4(w, rows, cols, r), r * rb);
  matmulQ8_0(out, plain, xq, rows, cols, nTok);
}

/**
 * In-place 4-row interleave of a q4_0 matrix (see kernels/assembly/matmul_q4x4.ts): each group of
 * 4 rows becomes, per block index, the 4 rows' f16 scales (8 bytes) then 4 nibble vectors of
 * 16 bytes, vector j holding bytes 4j..4j+3 of each of the 4 rows' blocks in row order; the last
 * rows % 4 rows stay plain.
 */
export function repackQ4_0x4(w: Uint8Array, rows: number, cols: number): void {
  const nb = blocksPerRow(cols);
  const rb = nb * Q4_0_BLOCK_BYTES;
  for (let g = 0; g + 4 <= rows; g += 4) {
    const src = w.slice(g * rb, (g + 4) * rb);
    const dst = w.subarray(g * rb, (g + 4) * rb);
    for (let b = 0; b < nb; b++) {
      const o = b * 4 * Q4_0_BLOCK_BYTES;
      for (let k = 0; k < 4; k++) {
        const s = k * rb + b * Q4_0_BLOCK_BYTES;
        dst[o + 2 * k] = src[s]!;
        dst[o + 2 * k + 1] = src[s + 1]!;
        for (let j = 0; j < 4; j++) dst.set(src.subarray(s + 2 + 4 * j, s + 6 + 4 * j), o + 8 + 16 * j + 4 * k);
      }
    }
  }
}

/** The plain q4_0 bytes of row r of a repacked matrix. */
export function unpackRowQ4_0x4(w: Uint8Array, rows: number, cols: number, r: number): Uint8Array {
  const nb = blocksPerRow(cols);
  const rb = nb * Q4_0_BLOCK_BYTES;
  if (r >= rows - (rows % 4)) return w.slice(r * rb, (r + 1) * rb);
  const out = new Uint8Array(rb);
  const base = (r - (r % 4)) * rb, k = r % 4;
  for (let b = 0; b < nb; b++) {
    const o = base + b * 4 * Q4_0_BLOCK_BYTES;
    out[b * Q4_0_BLOCK_BYTES] = w[o + 2 * k]!;
    out[b * Q4_0_BLOCK_BYTES + 1] = w[o + 2 * k + 1]!;
    for (let j = 0; j < 4; j++) out.set(w.subarray(o + 8 + 16 * j + 4 * k, o + 12 + 16 * j + 4 * k), b * Q4_0_BLOCK_BYTES + 2 + 4 * j);
  }
  return out;
}

/** matmulQ4_0 on a matrix repacked by repackQ4_0x4 (same results). */
export function matmulQ4_0x4(out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const rb = blocksPerRow(cols) * Q4_0_BLOCK_BYTES;
  const plain = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) plain.set(unpackRowQ4_0x4(w, rows, cols, r), r * rb);
  matmulQ4_0(out, plain, xq, rows, cols, nTok);
}

/**
 * In-place 4-row interleave of a q4_K matrix (see kernels/assembly/matmul_k4x4.ts): each group of
 * 4 rows becomes, per block index (576 bytes), the 4 rows' f16 d (8 bytes) and dmin (8 bytes),
 * three 16-byte vectors V0..V2 holding the 6-bit scales and mins as tables (S0[4j+k] = scale
 * of sub-block j < 4 of row k, S1[4(j-4)+k] for j >= 4, M0[4k+j] = min of sub-block j < 4,
 * M1[4k+j-4]; V0 = S0 | (M1 & 3) << 6, V1 = S1 | (M1 >> 2 & 3) << 6, V2 = M0 | (M1 >> 4) << 6),
 * then 32 nibble vectors of 16 bytes, vector v holding bytes 4v..4v+3 of each of the 4 rows'
 * 128 nibble bytes in row order; the last rows % 4 rows stay plain.
 */
export function repackQ4_Kx4(w: Uint8Array, rows: number, cols: number): void {
  const B = QUANT_FORMATS.q4_k.bytes;
  const nb = cols / QUANT_FORMATS.q4_k.values;
  const rb = nb * B;
  for (let g = 0; g + 4 <= rows; g += 4) {
    const src = w.slice(g * rb, (g + 4) * rb);
    const dst = w.subarray(g * rb, (g + 4) * rb);
    for (let b = 0; b < nb; b++) {
      const o = b * 4 * B;
      dst.fill(0, o + 16, o + 64);
      for (let k = 0; k < 4; k++) {
        const s = k * rb + b * B;
        dst[o + 2 * k] = src[s]!;
        dst[o + 2 * k + 1] = src[s + 1]!;
        dst[o + 8 + 2 * k] = src[s + 2]!;
        dst[o + 9 + 2 * k] = src[s + 3]!;
        for (let j = 0; j < 8; j++) {
          const [sc, m] = scaleMinK4(src, s + 4, j);
          if (j < 4) {
            dst[o + 16 + 4 * j + k] |= sc;
            dst[o + 48 + 4 * k + j] |= m;
          } else {
            const i = 4 * k + j - 4;
            dst[o + 32 + 4 * (j - 4) + k] |= sc;
            dst[o + 16 + i] |= (m & 3) << 6;
            dst[o + 32 + i] |= ((m >> 2) & 3) << 6;
            dst[o + 48 + i] |= (m >> 4) << 6;
          }
        }
        for (let v = 0; v < 32; v++) dst.set(src.subarray(s + 16 + 4 * v, s + 20 + 4 * v), o + 64 + 16 * v + 4 * k);
      }
    }
  }
}

/** The plain q4_K bytes of row r of a repacked matrix (ggml's 12-byte scale packing rebuilt). */
export function unpackRowQ4_Kx4(w: Uint8Array, rows: number, cols: number, r: number): Uint8Array {
  const B = QUANT_FORMATS.q4_k.bytes;
  const nb = cols / QUANT_FORMATS.q4_k.values;
  const rb = nb * B;
  if (r >= rows - (rows % 4)) return w.slice(r * rb, (r + 1) * rb);
  const out = new Uint8Array(rb);
  const base = (r - (r % 4)) * rb, k = r % 4;
  for (let b = 0; b < nb; b++) {
    const o = base + b * 4 * B, d = b * B;
    out[d] = w[o + 2 * k]!;
    out[d + 1] = w[o + 2 * k + 1]!;
    out[d + 2] = w[o + 8 + 2 * k]!;
    out[d + 3] = w[o + 9 + 2 * k]!;
    const sc = new Array<number>(8), m = new Array<number>(8);
    for (let j = 0; j < 4; j++) {
      const i = 4 * k + j;
      sc[j] = w[o + 16 + 4 * j + k]! & 63;
      sc[j + 4] = w[o + 32 + 4 * j + k]! & 63;
      m[j] = w[o + 48 + i]! & 63;
      m[j + 4] = (w[o + 16 + i]! >> 6) | ((w[o + 32 + i]! >> 6) << 2) | ((w[o + 48 + i]! >> 6) << 4);
    }
    // ggml's get_scale_min_k4 layout: bytes 0..3 scales 0..3 (+ top bits of scales 4..7), 4..7
    // mins 0..3 (+ top bits of mins 4..7), 8..11 low nibbles of scales and mins 4..7
    for (let j = 0; j < 4; j++) {
      out[d + 4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
      out[d + 8 + j] = m[j]! | ((m[j + 4]! >> 4) << 6);
      out[d + 12 + j] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
    }
    for (let v = 0; v < 32; v++) out.set(w.subarray(o + 64 + 16 * v + 4 * k, o + 68 + 16 * v + 4 * k), d + 16 + 4 * v);
  }
  return out;
}

/** matmulQuant("q4_k", ...) on a matrix repacked by repackQ4_Kx4 (same results). */
export function matmulQ4_Kx4(out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const rb = (cols / QUANT_FORMATS.q4_k.values) * QUANT_FORMATS.q4_k.bytes;
  const plain = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) plain.set(unpackRowQ4_Kx4(w, rows, cols, r), r * rb);
  matmulQuant("q4_k", out, plain, xq, rows, cols, nTok);
}

/** The 6-bit code (0..63, before the -32) of value v of the q6_K block at b[p..]. */
function q6Code(b: Uint8Array, p: number, v: number): number {
  const h = v >> 7, J = (v >> 5) & 3, l = v & 31;
  const ql = b[p + 64 * h + l + 32 * (J & 1)]!;
  return (J < 2 ? ql & 15 : ql >> 4) | (((b[p + 128 + 32 * h + l]! >> (2 * J)) & 3) << 4);
}

/**
 * In-place 4-row interleave of a q6_K matrix (see kernels/assembly/matmul_k6x4.ts): each group of
 * 4 rows becomes, per block index (840 bytes), the 4 rows' f16 d (8 bytes), 4 scale tables of 16
 * bytes (table m holds groups 4m..4m+3, group 4m + j of row k at byte 8(j >> 1) + 2k + (j & 1)),
 * then 16 code sets of 48 bytes: set 8h + c holds values 128h + 32J + 4c + i (J = 0..3, i = 0..3)
 * of the 4 rows as three vectors, byte 4k + i of vector j being the code of quarter j of row k
 * with bits 2j, 2j + 1 of quarter 3's code in its top 2 bits; the last rows % 4 rows stay plain.
 */
export function repackQ6_Kx4(w: Uint8Array, rows: number, cols: number): void {
  const B = QUANT_FORMATS.q6_k.bytes;
  const nb = cols / QUANT_FORMATS.q6_k.values;
  const rb = nb * B;
  for (let g = 0; g + 4 <= rows; g += 4) {
    const src = w.slice(g * rb, (g + 4) * rb);
    const dst = w.subarray(g * rb, (g + 4) * rb);
    for (let b = 0; b < nb; b++) {
      const o = b * 4 * B;
      for (let k = 0; k < 4; k++) {
        const s = k * rb + b * B;
        dst[o + 2 * k] = src[s + 208]!;
        dst[o + 2 * k + 1] = src[s + 209]!;
        for (let i = 0; i < 16; i++) dst[o + 8 + 16 * (i >> 2) + 8 * ((i & 3) >> 1) + 2 * k + (i & 1)] = src[s + 192 + i]!;
        for (let h = 0; h < 2; h++) {
          for (let l = 0; l < 32; l++) {
            const c3 = q6Code(src, s, 128 * h + 96 + l);
            const at = o + 72 + 48 * (8 * h + (l >> 2)) + 4 * k + (l & 3);
            for (let j = 0; j < 3; j++) dst[at + 16 * j] = q6Code(src, s, 128 * h + 32 * j + l) | (((c3 >> (2 * j)) & 3) << 6);
          }
        }
      }
    }
  }
}

/** The plain q6_K bytes of row r of a repacked matrix (ggml's ql / qh split rebuilt). */
export function unpackRowQ6_Kx4(w: Uint8Array, rows: number, cols: number, r: number): Uint8Array {
  const B = QUANT_FORMATS.q6_k.bytes;
  const nb = cols / QUANT_FORMATS.q6_k.values;
  const rb = nb * B;
  if (r >= rows - (rows % 4)) return w.slice(r * rb, (r + 1) * rb);
  const out = new Uint8Array(rb);
  const base = (r - (r % 4)) * rb, k = r % 4;
  for (let b = 0; b < nb; b++) {
    const o = base + b * 4 * B, d = b * B;
    out[d + 208] = w[o + 2 * k]!;
    out[d + 209] = w[o + 2 * k + 1]!;
    for (let i = 0; i < 16; i++) out[d + 192 + i] = w[o + 8 + 16 * (i >> 2) + 8 * ((i & 3) >> 1) + 2 * k + (i & 1)]!;
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const at = o + 72 + 48 * (8 * h + (l >> 2)) + 4 * k + (l & 3);
        const [v0, v1, v2] = [w[at]!, w[at + 16]!, w[at + 32]!];
        const c = [v0 & 63, v1 & 63, v2 & 63, (v0 >> 6) | ((v1 >> 6) << 2) | ((v2 >> 6) << 4)];
        out[d + 64 * h + l] = (c[0]! & 15) | ((c[2]! & 15) << 4);
        out[d + 64 * h + 32 + l] = (c[1]! & 15) | ((c[3]! & 15) << 4);
        out[d + 128 + 32 * h + l] = (c[0]! >> 4) | ((c[1]! >> 4) << 2) | ((c[2]! >> 4) << 4) | ((c[3]! >> 4) << 6);
      }
    }
  }
  return out;
}

/** matmulQuant("q6_k", ...) on a matrix repacked by repackQ6_Kx4 (same results). */
export function matmulQ6_Kx4(out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const rb = (cols / QUANT_FORMATS.q6_k.values) * QUANT_FORMATS.q6_k.bytes;
  const plain = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) plain.set(unpackRowQ6_Kx4(w, rows, cols, r), r * rb);
  matmulQuant("q6_k", out, plain, xq, rows, cols, nTok);
}

/**
 * Integer part of one block's dot product for the formats beyond q8_0 / q4_0, exactly as ggml's
 * vec_dot_*_q8_* sums it: `sumi` (the codes times the activations, times each sub-block's scale
 * for K-quants) and, for q4_K / q5_K, `summ` (each sub-block's min code times its activations'
 * sum, from q8_K's bsums). Integers, so any order gives the same values.
 */
export function blockDotInts(dtype: QuantDType, w: Uint8Array, pw: number, xq: Uint8Array, px: number): { sumi: number; summ: number } {
  const xi = (j: number) => (xq[px + j]! << 24) >> 24;
  let sumi = 0, summ = 0;
  switch (dtype) {
    case "q4_1":
      for (let j = 0; j < 16; j++) sumi += (w[pw + 4 + j]! & 15) * xi(4 + j) + (w[pw + 4 + j]! >> 4) * xi(20 + j);
      break;
    case "q5_0":
    case "q5_1": {
      const one = dtype === "q5_1";
      const qh = (w[pw + (one ? 4 : 2)]! | (w[pw + (one ? 5 : 3)]! << 8) | (w[pw + (one ? 6 : 4)]! << 16) | (w[pw + (one ? 7 : 5)]! << 24)) >>> 0;
      const qs = pw + (one ? 8 : 6), xo = one ? 4 : 2, off = one ? 0 : 16;
      for (let j = 0; j < 16; j++) {
        const q0 = ((w[qs + j]! & 15) | (((qh >>> j) & 1) << 4)) - off;
        const q1 = ((w[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - off;
        sumi += q0 * xi(xo + j) + q1 * xi(xo + 16 + j);
      }
      break;
    }
    case "q4_k":
    case "q5_k": {
      const five = dtype === "q5_k";
      const qs = pw + (five ? 48 : 16);
      const bsum = (g: number) => (xq[px + 260 + 2 * g]! | (xq[px + 261 + 2 * g]! << 8)) << 16 >> 16;
      for (let j = 0; j < 8; j++) {
        const [sc, m] = scaleMinK4(w, pw + 4, j);
        summ += m * (bsum(2 * j) + bsum(2 * j + 1));
        const g = j >> 1, shift = (j & 1) * 4;
        let dot = 0;
        for (let l = 0; l < 32; l++) {
          const h = five ? ((w[pw + 16 + l]! >> j) & 1) << 4 : 0;
          dot += (((w[qs + 32 * g + l]! >> shift) & 15) | h) * xi(4 + 32 * j + l);
        }
        sumi += sc * dot;
      }
      break;
    }
    case "q6_k":
      for (let v = 0; v < 256; v++) {
        const half = v >> 7, k = v & 127, quarter = k >> 5, l = k & 31;
        const ql = w[pw + 64 * half + l + (quarter & 1) * 32]!;
        const low = quarter < 2 ? ql & 15 : ql >> 4;
        const high = (w[pw + 128 + 32 * half + l]! >> (2 * quarter)) & 3;
        const sc = (w[pw + 192 + (v >> 4)]! << 24) >> 24;
        sumi += sc * ((low | (high << 4)) - 32) * xi(4 + v);
      }
      break;
    default:
      throw new Error(`blockDotInts: ${dtype} is not one of these formats`);
  }
  return { sumi, summ };
}

/** The f32 contribution of one block (the kernels compute exactly these operations per block). */
export function blockDot(dtype: QuantDType, w: Uint8Array, pw: number, xq: Uint8Array, px: number): number {
  const { sumi, summ } = blockDotInts(dtype, w, pw, xq, px);
  switch (dtype) {
    case "q5_0":
      return fr(fr(sumi) * fr(scaleAt(w, pw) * scaleAt(xq, px)));
    case "q4_1":
    case "q5_1":
      return fr(fr(fr(scaleAt(w, pw) * scaleAt(xq, px)) * fr(sumi)) + fr(scaleAt(w, pw + 2) * scaleAt(xq, px + 2)));
    case "q4_k":
    case "q5_k": {
      const dx = new DataView(xq.buffer, xq.byteOffset + px, 4).getFloat32(0, true);
      return fr(fr(fr(scaleAt(w, pw) * dx) * fr(sumi)) - fr(fr(scaleAt(w, pw + 2) * dx) * fr(summ)));
    }
    case "q6_k": {
      const dx = new DataView(xq.buffer, xq.byteOffset + px, 4).getFloat32(0, true);
      return fr(fr(scaleAt(w, pw + 208) * dx) * fr(sumi));
    }
  }
  throw new Error(`blockDot: ${dtype} is not one of these formats`);
}

/**
 * Weights of any of q4_1, q5_0, q5_1, q4_K, q5_K, q6_K times activations in their format
 * (activationFormat: q8_0, q8_1 or q8_K): per block the exact integer dot, then blockDot's f32
 * operations, summed over blocks in order in f32.
 */
export function matmulQuant(dtype: QuantDType, out: Float32Array, w: Uint8Array, xq: Uint8Array, rows: number, cols: number, nTok: number): void {
  const f = QUANT_FORMATS[dtype];
  const a = ACTIVATION_FORMATS[f.activation];
  const nb = Math.ceil(cols / f.values);
  const rbw = nb * f.bytes, rbx = activationRowBytes(f.activation, cols);
  for (let t = 0; t < nTok; t++) {
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) acc = fr(acc + blockDot(dtype, w, r * rbw + b * f.bytes, xq, t * rbx + b * a.bytes));
      out[t * rows + r] = acc;
    }
  }
}
