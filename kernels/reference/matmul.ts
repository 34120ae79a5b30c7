// Reference matmuls (see kernels/assembly/matmul_*.ts): out[t*rows + r] = sum_c w[r,c] * x[t,c].
// Products and the running sum are rounded to f32 after every step, in column (or block) order,
// mirroring ggml's scalar code; the wasm kernels sum the same terms in another order.
import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, blocksPerRow, f16BitsToF32 } from "../quant";

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
