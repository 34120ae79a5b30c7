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
