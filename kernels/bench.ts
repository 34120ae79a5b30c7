// Micro-benchmark of the matmul kernels (Node 22): `npx tsx kernels/bench.ts [filter]`
// (the whole comparison, with onnxruntime-web and the roofline, is `npm run bench`).
// Reports time per call, weight bytes streamed per second, and prefill speed-up per token.
// A "big" shape larger than the last-level cache shows the DRAM-bound regime.
import { Kernels } from "./index";
import { loadKernelsModuleForNode } from "./node";
import { QUANT_FORMATS, activationFormat, activationRowBytes, f32ToF16Bits, quantizeQ4_0, rowBytes, toF16, type DType, type QuantDType } from "./quant";

const filter = process.argv[2] ?? "";
const shapes: Array<[number, number, string]> = [
  [32000, 288, "classifier stories15M"],
  [768, 2048, "ffn 768x2048"],
  [2048, 768, "ffn 2048x768"],
  [288, 768, "ffn 288x768"],
  [16384, 4096, "big (DRAM) 16384x4096"],
  [262144, 288, "big (DRAM) 262144x288"],
  [4096, 16384, "big (DRAM) 4096x16384"],
];
const dtypes: DType[] = ["q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q5_0", "q4_1", "q5_1", "f16", "f32"];

/** Random blocks of a quantized dtype with small finite f16 scales (speed does not depend on the values). */
function randomBlocks(dtype: QuantDType, n: number): Uint8Array {
  const f = QUANT_FORMATS[dtype];
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = seed >>> 24;
  }
  const halves = dtype === "q6_k" ? [208] : dtype === "q5_0" ? [0] : [0, 2];
  const h = f32ToF16Bits(0.01);
  for (let b = 0; b < n; b += f.bytes) for (const o of halves) { out[b + o] = h & 0xff; out[b + o + 1] = h >> 8; }
  return out;
}

const K = Kernels.create(loadKernelsModuleForNode(), 1200 << 20);

function timeIt(fn: () => void, minMs = 300): number {
  fn();
  const times: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < minMs || times.length < 5) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return Math.min(...times); // best-of: other processes share these cores
}

let seed = 1;
function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = (seed / 2 ** 32 - 0.5) * 2;
  }
  return a;
}

console.log("shape                      dtype  nTok=1 ms   GB/s | prefill nTok=16 ms/token  speed-up");
for (const [rows, cols, name] of shapes) {
  for (const dtype of dtypes) {
    if (filter && !`${name} ${dtype}`.includes(filter)) continue;
    const mark = K.mark();
    const wBytes = rowBytes(dtype, cols) * rows;
    if (wBytes > 600 << 20 || (QUANT_FORMATS[dtype as QuantDType]?.values === 256 && cols % 256 !== 0)) { K.release(mark); continue; }
    const w = K.alloc(wBytes);
    // weights: random values in the dtype's layout (f32 staging in chunks of rows)
    const chunk = 256;
    const stage = K.alloc(4 * chunk * cols);
    for (let r = 0; r < rows; r += chunk) {
      const n = Math.min(chunk, rows - r);
      const src = rand(n * cols);
      const dst = w + r * rowBytes(dtype, cols);
      if (dtype === "f32") K.write(dst, src);
      else if (dtype === "f16") K.write(dst, toF16(src));
      else if (dtype === "q4_0") K.write(dst, quantizeQ4_0(src, n, cols));
      else if (dtype === "q8_0") { K.write(stage, src); K.quantizeRows(dst, stage, cols, n); }
      else K.write(dst, randomBlocks(dtype as QuantDType, n * rowBytes(dtype, cols)));
    }
    const nT = 16;
    const x = K.alloc(4 * cols * nT);
    K.write(x, rand(cols * nT));
    const format = activationFormat(dtype);
    const xq = K.alloc(activationRowBytes(format ?? "q8_k", cols) * nT);
    if (format) K.quantizeActivations(format, xq, x, cols, nT);
    const xin = format ? xq : x;
    const out = K.alloc(4 * rows * nT);
    // quantized matrices as the runtime holds them: repacked into the 4-row layout at load
    const packed = dtype === "q8_0" ? K.repackQ8_0x4(w, rows, cols) : dtype === "q4_0" ? K.repackQ4_0x4(w, rows, cols) : dtype === "q4_k" ? K.repackQ4_Kx4(w, rows, cols) : dtype === "q6_k" && K.repackQ6_Kx4(w, rows, cols);
    const mm = (n: number) => {
      if (packed && dtype === "q8_0") K.matmulQ8_0x4(out, w, xin, rows, cols, n);
      else if (packed && dtype === "q4_k") K.matmulQ4_Kx4(out, w, xin, rows, cols, n);
      else if (packed && dtype === "q6_k") K.matmulQ6_Kx4(out, w, xin, rows, cols, n);
      else if (packed) K.matmulQ4_0x4(out, w, xin, rows, cols, n);
      else K.matmul(dtype, out, w, xin, rows, cols, n);
    };
    const t1 = timeIt(() => mm(1));
    const tN = timeIt(() => mm(nT));
    console.log(
      `${name.padEnd(26)} ${dtype.padEnd(5)} ${t1.toFixed(3).padStart(9)} ${(wBytes / t1 / 1e6).toFixed(1).padStart(6)} | ` +
      `${(tN / nT).toFixed(3).padStart(9)} ${(t1 / (tN / nT)).toFixed(2).padStart(8)}x`,
    );
    K.release(mark);
  }
}
