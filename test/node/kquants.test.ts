// The q4_1 / q5_0 / q5_1 / q4_K / q5_K / q6_K formats (kernels/quant.ts) and their references
// (kernels/reference/matmul.ts matmulQuant), then kernels.wasm held bit-identical to them.
//   npx vitest run --project node test/node/kquants.test.ts
import { beforeAll, describe, expect, it } from "vitest";
import { Kernels, type Ptr } from "../../kernels/index";
import * as Q from "../../kernels/quant";
import * as ref from "../../kernels/reference/index";
import { rng } from "../../scripts/rng";
import { testKernels } from "../support/kernels";

const NEW: Q.QuantDType[] = ["q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"];


/** Random bytes for `blocks` blocks of dtype, with every f16 scale a finite value of about `scale`. */
function randomBlocks(dtype: Q.QuantDType, blocks: number, r: ReturnType<typeof rng>, scale = 0.01): Uint8Array {
  const f = Q.QUANT_FORMATS[dtype];
  const out = new Uint8Array(blocks * f.bytes);
  for (let i = 0; i < out.length; i++) out[i] = r.int(256);
  const halves = dtype === "q6_k" ? [208] : dtype === "q8_0" || dtype === "q4_0" || dtype === "q5_0" ? [0] : [0, 2];
  for (let b = 0; b < blocks; b++) {
    for (const h of halves) {
      const v = Q.f32ToF16Bits(r.normal() * scale);
      out[b * f.bytes + h] = v & 0xff;
      out[b * f.bytes + h + 1] = v >> 8;
    }
  }
  return out;
}

/** value of element i of a row from a plain reading of ggml's struct comments */
function plainValue(dtype: Q.QuantDType, b: Uint8Array, i: number): number {
  const f = Q.QUANT_FORMATS[dtype];
  const p = Math.floor(i / f.values) * f.bytes;
  const j = i % f.values;
  const h = (o: number) => Q.f16BitsToF32(b[p + o]! | (b[p + o + 1]! << 8));
  const fr = Math.fround;
  const nib = (o: number, k: number) => (k < 16 ? b[p + o + k]! & 15 : b[p + o + k - 16]! >> 4);
  const bit = (o: number, k: number) => (b[p + o + (k >> 3)]! >> (k & 7)) & 1;
  switch (dtype) {
    case "q4_1": return fr(fr(nib(4, j) * h(0)) + h(2));
    case "q5_0": return fr((nib(6, j) + 16 * bit(2, j) - 16) * h(0));
    case "q5_1": return fr(fr((nib(8, j) + 16 * bit(4, j)) * h(0)) + h(2));
    case "q4_k":
    case "q5_k": {
      const sub = j >> 5, l = j & 31;
      const [sc, m] = Q.scaleMinK4(b, p + 4, sub);
      const qs = p + (dtype === "q5_k" ? 48 : 16) + 32 * (sub >> 1);
      const q = ((sub & 1) ? b[qs + l]! >> 4 : b[qs + l]! & 15) + (dtype === "q5_k" ? 16 * ((b[p + 16 + l]! >> sub) & 1) : 0);
      return fr(fr(fr(h(0) * sc) * q) - fr(h(2) * m));
    }
    case "q6_k": {
      const half = j >> 7, k = j & 127, quarter = k >> 5, l = k & 31;
      const ql = b[p + 64 * half + l + 32 * (quarter & 1)]!;
      const q = ((quarter < 2 ? ql & 15 : ql >> 4) | (((b[p + 128 + 32 * half + l]! >> (2 * quarter)) & 3) << 4)) - 32;
      const sc = (b[p + 192 + (j >> 4)]! << 24) >> 24;
      return fr(fr(h(208) * sc) * q);
    }
  }
  throw new Error(dtype);
}

describe("block formats", () => {
  it("sizes are ggml's", () => {
    expect(Q.rowBytes("q4_1", 64)).toBe(40);
    expect(Q.rowBytes("q5_0", 64)).toBe(44);
    expect(Q.rowBytes("q5_1", 64)).toBe(48);
    expect(Q.rowBytes("q4_k", 512)).toBe(288);
    expect(Q.rowBytes("q5_k", 256)).toBe(176);
    expect(Q.rowBytes("q6_k", 768)).toBe(630);
    expect(Q.activationRowBytes("q8_k", 512)).toBe(584);
    expect(Q.activationRowBytes("q8_1", 64)).toBe(72);
    expect(Q.matrixDtype("q4_k", 576)).toBe("q5_0");
    expect(Q.matrixDtype("q5_k", 576)).toBe("q5_1");
    expect(Q.matrixDtype("q6_k", 576)).toBe("q8_0");
    expect(Q.matrixDtype("q4_k", 768)).toBe("q4_k");
  });

  for (const dtype of NEW) {
    it(`${dtype}: dequantization of random blocks matches a plain reading of the layout`, () => {
      const r = rng(11);
      const f = Q.QUANT_FORMATS[dtype];
      const n = 4 * f.values;
      const bytes = randomBlocks(dtype, 4, r);
      const got = Q.dequantize(dtype, bytes, 1, n);
      for (let i = 0; i < n; i++) expect(got[i], `element ${i}`).toBe(plainValue(dtype, bytes, i));
    });
  }

  it("q4_K / q5_K edge values: zero blocks, maximum scales and mins (63), negative results from the mins", () => {
    for (const dtype of ["q4_k", "q5_k"] as const) {
      const f = Q.QUANT_FORMATS[dtype];
      const zero = new Uint8Array(f.bytes);
      expect(Array.from(Q.dequantize(dtype, zero, 1, 256)).every((v) => v === 0)).toBe(true);
      const full = new Uint8Array(f.bytes).fill(0xff);
      full.set([0x00, 0x3c, 0x00, 0x3c], 0); // d = dmin = 1
      const v = Q.dequantize(dtype, full, 1, 256);
      // every code at its maximum, every scale and min 63: 63 * max - 63
      const max = dtype === "q5_k" ? 31 : 15;
      for (const x of v) expect(x).toBe(63 * max - 63);
      const low = new Uint8Array(f.bytes).fill(0xff);
      low.set([0x00, 0x3c, 0x00, 0x40], 0); // d = 1, dmin = 2
      low.fill(0, dtype === "q5_k" ? 16 : 16, f.bytes); // codes 0
      low.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 4);
      for (const x of Q.dequantize(dtype, low, 1, 256)) expect(x).toBe(-126);
    }
  });

  it("q4_1 / q5_0 / q5_1 edge values: zero blocks, the largest codes, negative mins", () => {
    for (const dtype of ["q4_1", "q5_0", "q5_1"] as const) {
      const f = Q.QUANT_FORMATS[dtype];
      expect(Array.from(Q.dequantize(dtype, new Uint8Array(f.bytes), 1, 32)).every((v) => v === 0)).toBe(true);
      const b = new Uint8Array(f.bytes).fill(0xff); // every code and fifth bit set
      b.set([0x00, 0x40], 0); // d = 2
      if (dtype !== "q5_0") b.set([0x00, 0xc2], 2); // m = -3
      const max = dtype === "q4_1" ? 15 : 31;
      const want = dtype === "q5_0" ? (31 - 16) * 2 : max * 2 - 3;
      for (const v of Q.dequantize(dtype, b, 1, 32)) expect(v).toBe(want);
    }
  });

  it("q6_K edge values: scale -128 and 127, codes 0 and 63", () => {
    const b = new Uint8Array(210);
    b.set([0x00, 0x3c], 208); // d = 1
    b[192] = 0x80; // scale -128 for values 0..15
    b[193] = 127;
    // codes 0: value (0 - 32) * scale
    const v = Q.dequantize("q6_k", b, 1, 256);
    expect(v[0]).toBe(4096);
    expect(v[16]).toBe(-4064);
    b.fill(0xff, 0, 192);
    const w = Q.dequantize("q6_k", b, 1, 256);
    expect(w[0]).toBe(-128 * 31);
    expect(w[16]).toBe(127 * 31);
  });

  it("q8_K activations: d = max / -127 of the signed extreme, ties to even, bsums; zero block", () => {
    const x = new Float32Array(512);
    // the extreme -1.984375 comes first: iscale = -127 / max = 64 exactly, d = 1/64
    x[3] = -1.984375; x[7] = 1.984375; x[10] = 2.5 / 64; x[11] = 1.5 / 64; x[12] = -0.5 / 64; x[20] = 0.75 / 64;
    const q = Q.quantizeActivations("q8_k", x, 1, 512);
    const dv = new DataView(q.buffer);
    expect(dv.getFloat32(0, true)).toBe(1 / 64);
    const code = (i: number) => (q[4 + i]! << 24) >> 24;
    // x * 64 rounded to nearest, ties to even
    expect([code(3), code(7), code(10), code(11), code(12), code(20)]).toEqual([-127, 127, 2, 2, 0, 1]);
    expect(dv.getInt16(260, true)).toBe(-127 + 127 + 2 + 2); // values 0..15
    expect(dv.getInt16(262, true)).toBe(1); // values 16..31
    // second block all zero
    expect(dv.getFloat32(292, true)).toBe(0);
    expect(Array.from(q.subarray(292, 584)).every((v) => v === 0)).toBe(true);
  });

  it("q8_1 activations: q8_0's codes and s = f16(d * sum)", () => {
    const r = rng(3);
    const x = r.f32(64);
    const a = Q.quantizeActivations("q8_1", x, 1, 64);
    const b = Q.quantizeActivations("q8_0", x, 1, 64);
    for (let k = 0; k < 2; k++) {
      expect(Array.from(a.subarray(36 * k + 4, 36 * k + 36))).toEqual(Array.from(b.subarray(34 * k + 2, 34 * k + 34)));
      expect(a[36 * k]).toBe(b[34 * k]);
      let sum = 0;
      for (let j = 0; j < 32; j++) sum += (a[36 * k + 4 + j]! << 24) >> 24;
      const d = Q.f16BitsToF32(a[36 * k]! | (a[36 * k + 1]! << 8));
      expect(a[36 * k + 2]! | (a[36 * k + 3]! << 8)).toBe(Q.f32ToF16Bits(Math.fround(sum * d)));
    }
  });

  for (const dtype of NEW) {
    it(`${dtype}: reference quantizer round trip stays within the format's resolution`, () => {
      const r = rng(5);
      const cols = 512;
      const x = r.f32(4 * cols, 0.02);
      const bytes = Q.quantize(dtype, x, 4, cols);
      expect(bytes.length).toBe(4 * Q.rowBytes(dtype, cols));
      const y = Q.dequantize(dtype, bytes, 4, cols);
      let err = 0, sq = 0;
      for (let i = 0; i < x.length; i++) { err += (x[i]! - y[i]!) ** 2; sq += x[i]! ** 2; }
      const rel = Math.sqrt(err / sq);
      // ggml's own figures for gaussian data: ~4 bits ~ 0.1, 5 bits ~ 0.05, 6 bits ~ 0.025
      const bound = { q4_1: 0.13, q5_0: 0.07, q5_1: 0.07, q4_k: 0.1, q5_k: 0.05, q6_k: 0.025 }[dtype as "q4_1"];
      expect(rel).toBeLessThan(bound);
      expect(rel).toBeGreaterThan(bound / 8);
    });
  }

  it("K-quant rows must be whole super-blocks", () => {
    expect(() => Q.quantize("q4_k", new Float32Array(300), 1, 300)).toThrow(/multiple of 256/);
  });

  for (const dtype of NEW) {
    it(`${dtype}: reference dot equals the dequantized dot up to f32 rounding`, () => {
      const r = rng(9);
      const f = Q.QUANT_FORMATS[dtype];
      const cols = 4 * Math.max(f.values, 64), rows = 3;
      const w = randomBlocks(dtype, rows * cols / f.values, r);
      const x = r.f32(2 * cols);
      const xq = Q.quantizeActivations(f.activation, x, 2, cols);
      const out = new Float32Array(2 * rows);
      ref.matmulQuant(dtype, out, w, xq, rows, cols, 2);
      const wf = Q.dequantize(dtype, w, rows, cols);
      const xf = new Float32Array(2 * cols);
      for (let t = 0; t < 2; t++) {
        const a = Q.ACTIVATION_FORMATS[f.activation];
        for (let b = 0; b < cols / a.values; b++) {
          const p = t * Q.activationRowBytes(f.activation, cols) + b * a.bytes;
          const d = f.activation === "q8_k" ? new DataView(xq.buffer).getFloat32(p, true) : Q.f16BitsToF32(xq[p]! | (xq[p + 1]! << 8));
          const o = f.activation === "q8_0" ? 2 : 4;
          for (let j = 0; j < a.values; j++) xf[t * cols + b * a.values + j] = d * ((xq[p + o + j]! << 24) >> 24);
        }
      }
      for (let t = 0; t < 2; t++) {
        for (let rr = 0; rr < rows; rr++) {
          let s = 0, mag = 0;
          for (let c = 0; c < cols; c++) { s += wf[rr * cols + c]! * xf[t * cols + c]!; mag += Math.abs(wf[rr * cols + c]! * xf[t * cols + c]!); }
          // q4_1/q5_1: the min term uses s = f16(d * sum), rounded to f16
          const tol = mag * 1e-5 + (f.activation === "q8_1" ? mag * 2 ** -9 : 0);
          expect(Math.abs(out[t * rows + rr]! - s), `${dtype} t${t} r${rr}`).toBeLessThanOrEqual(tol);
        }
      }
    });
  }
});

describe("kernels.wasm against the references", () => {
  const kernels = testKernels(32 << 20);
  let K: Kernels;
  beforeAll(() => {
    K = kernels.K;
  });
  const put = (data: ArrayBufferView): Ptr => kernels.put(data, 64);
  const { scoped } = kernels;
  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

  for (const format of ["q8_1", "q8_k"] as const) {
    it(`${format} activation quantization is byte-identical (random, zero and partial blocks, outliers)`, () => {
      const r = rng(21);
      for (const n of [32, 64, 100, 256, 512, 768, 1000]) {
        for (const nRows of [1, 3]) {
          const x = r.f32(n * nRows);
          if (n >= 256) x.fill(0, 0, 256); // a zero block
          x[n - 1] = 40; // an outlier
          x[1] = -x[n - 1]!; // a tie of magnitudes: the first one wins
          scoped(() => {
            const src = put(x);
            const dst = K.alloc(Q.activationRowBytes(format, n) * nRows, 64);
            K.quantizeActivations(format, dst, src, n, nRows);
            expect(Array.from(K.u8(dst, Q.activationRowBytes(format, n) * nRows)), `${format} n=${n}`).toEqual(Array.from(Q.quantizeActivations(format, x, nRows, n)));
          });
        }
      }
    });
  }

  for (const dtype of NEW) {
    it(`${dtype} matmul is bit-identical to the reference (decode and prefill, odd rows)`, () => {
      const r = rng(31);
      const f = Q.QUANT_FORMATS[dtype];
      const colsList = f.values === 256 ? [256, 512, 768, 2048] : [32, 64, 96, 288, 576];
      for (const cols of colsList) {
        for (const [rows, nTok] of [[1, 1], [5, 1], [17, 3], [8, 16]] as const) {
          const w = randomBlocks(dtype, (rows * cols) / f.values, r, 0.02);
          const x = r.f32(nTok * cols);
          const xq = Q.quantizeActivations(f.activation, x, nTok, cols);
          const want = new Float32Array(rows * nTok);
          ref.matmulQuant(dtype, want, w, xq, rows, cols, nTok);
          const got = scoped(() => {
            const out = K.alloc(4 * rows * nTok, 64);
            K.matmul(dtype, out, put(w), put(xq), rows, cols, nTok);
            return Float32Array.from(K.f32(out, rows * nTok));
          });
          expect(bits(got), `${dtype} ${rows}x${cols} nTok ${nTok}`).toEqual(bits(want));
        }
      }
    });

    it(`${dtype} linear (activation quantization + product) equals the reference; extreme codes and scales`, () => {
      const r = rng(41);
      const f = Q.QUANT_FORMATS[dtype];
      const cols = f.values === 256 ? 512 : 64, rows = 6;
      // every code and scale byte at its maximum (0xff), then at 0, with large f16 scales
      for (const fill of [0xff, 0x00, -1]) {
        const w = randomBlocks(dtype, (rows * cols) / f.values, r, 4);
        if (fill >= 0) {
          const halves = dtype === "q6_k" ? [208] : dtype === "q5_0" ? [0] : [0, 2];
          for (let b = 0; b < w.length / f.bytes; b++) {
            for (let i = 0; i < f.bytes; i++) if (!halves.some((h) => i === h || i === h + 1)) w[b * f.bytes + i] = fill;
          }
        }
        const x = r.f32(cols, 30);
        const want = new Float32Array(rows);
        ref.matmulQuant(dtype, want, w, Q.quantizeActivations(f.activation, x, 1, cols), rows, cols, 1);
        const got = scoped(() => {
          const out = K.alloc(4 * rows, 64);
          const xq = K.alloc(Q.activationRowBytes(f.activation, cols), 64);
          K.linear(dtype, out, put(w), put(x), xq, rows, cols, 1);
          return Float32Array.from(K.f32(out, rows));
        });
        expect(bits(got), `fill ${fill}`).toEqual(bits(want));
      }
    });

    it(`${dtype} dequantizeRow equals kernels/quant.ts`, () => {
      const r = rng(51);
      const f = Q.QUANT_FORMATS[dtype];
      const n = f.values === 256 ? 768 : 96;
      const w = randomBlocks(dtype, n / f.values, r, 0.5);
      const got = scoped(() => {
        const dst = K.alloc(4 * n, 64);
        K.dequantizeRow(dtype, dst, put(w), n);
        return Float32Array.from(K.f32(dst, n));
      });
      expect(bits(got)).toEqual(bits(Q.dequantize(dtype, w, 1, n)));
    });
  }

  /** The 4-row-interleaved K-quant layouts (kernels/assembly/matmul_k4x4.ts, matmul_k6x4.ts). */
  const PACKED_K = [
    {
      dtype: "q4_k" as const,
      repack: (w: Ptr, rows: number, cols: number) => K.repackQ4_Kx4(w, rows, cols),
      matmul: (o: Ptr, w: Ptr, x: Ptr, rows: number, cols: number, n: number) => K.matmulQ4_Kx4(o, w, x, rows, cols, n),
      dequantizeRow: (d: Ptr, w: Ptr, rows: number, cols: number, row: number) => K.dequantizeRowQ4_Kx4(d, w, rows, cols, row),
      refRepack: ref.repackQ4_Kx4,
      refUnpackRow: ref.unpackRowQ4_Kx4,
      refMatmul: ref.matmulQ4_Kx4,
      seed: 60,
    },
    {
      dtype: "q6_k" as const,
      repack: (w: Ptr, rows: number, cols: number) => K.repackQ6_Kx4(w, rows, cols),
      matmul: (o: Ptr, w: Ptr, x: Ptr, rows: number, cols: number, n: number) => K.matmulQ6_Kx4(o, w, x, rows, cols, n),
      dequantizeRow: (d: Ptr, w: Ptr, rows: number, cols: number, row: number) => K.dequantizeRowQ6_Kx4(d, w, rows, cols, row),
      refRepack: ref.repackQ6_Kx4,
      refUnpackRow: ref.unpackRowQ6_Kx4,
      refMatmul: ref.matmulQ6_Kx4,
      seed: 160,
    },
  ];
  describe.each(PACKED_K)("$dtype x4 (the 4-row-interleaved layout the runtime repacks $dtype into at load)", (f) => {
    const ROWS = [1, 3, 4, 5, 7, 8, 9, 12, 13, 33];
    const COLS = [256, 512, 768, 2048];
    const B = Q.QUANT_FORMATS[f.dtype].bytes;
    /** Random blocks, with every scale (and min) byte at its extremes in some of them: 6-bit 0 / 63 (q4_K), i8 -128 / 127 (q6_K). */
    function weights(rows: number, cols: number, r: ReturnType<typeof rng>): Uint8Array {
      const w = randomBlocks(f.dtype, (rows * cols) / 256, r, 0.05);
      for (let b = 0; b < w.length / B; b++) {
        if (b % 3 !== 1) continue;
        if (f.dtype === "q4_k") w.fill(b % 2 ? 0xff : 0, b * B + 4, b * B + 16);
        else w.fill(b % 2 ? 0x80 : 0x7f, b * B + 192, b * B + 208);
      }
      return w;
    }

    it("wasm repack = reference repack, in place, byte for byte; rows unpack to the original", () => {
      const r = rng(f.seed + 1);
      for (const cols of COLS) for (const rows of ROWS) {
        const wq = weights(rows, cols, r);
        const want = wq.slice();
        f.refRepack(want, rows, cols);
        const got = scoped(() => {
          const w = put(wq);
          expect(f.repack(w, rows, cols)).toBe(true);
          return K.u8(w, wq.length).slice();
        });
        expect(got, `${rows}x${cols}`).toEqual(want);
        const rb = Q.rowBytes(f.dtype, cols);
        for (let i = 0; i < rows; i++) expect(f.refUnpackRow(got, rows, cols, i)).toEqual(wq.slice(i * rb, (i + 1) * rb));
      }
    });

    it("the x4 matmul on the repacked matrix = the plain matmul and the reference, bit for bit (decode and prefill)", () => {
      const r = rng(f.seed + 2);
      for (const cols of COLS) for (const rows of ROWS) for (const nTok of [1, 2, 5, 16]) {
        const wq = weights(rows, cols, r);
        const x = r.f32(nTok * cols, 3);
        x[0] = 50; // an outlier
        const xq = Q.quantizeActivations("q8_k", x, nTok, cols);
        const want = new Float32Array(rows * nTok);
        ref.matmulQuant(f.dtype, want, wq, xq, rows, cols, nTok);
        const packedBytes = wq.slice();
        f.refRepack(packedBytes, rows, cols);
        const viaRef = new Float32Array(rows * nTok);
        f.refMatmul(viaRef, packedBytes, xq, rows, cols, nTok);
        expect(bits(viaRef)).toEqual(bits(want));
        const got = scoped(() => {
          const w = put(wq), xp = put(xq);
          const out = K.alloc(4 * rows * nTok + 64, 64);
          K.f32(out, rows * nTok + 16).fill(NaN);
          K.f32(out + 4 * rows * nTok, 16).fill(7);
          f.repack(w, rows, cols);
          f.matmul(out, w, xp, rows, cols, nTok);
          expect(Array.from(K.f32(out + 4 * rows * nTok, 16))).toEqual(new Array(16).fill(7));
          return Float32Array.from(K.f32(out, rows * nTok));
        });
        expect(bits(got), `${rows}x${cols} nTok ${nTok}`).toEqual(bits(want));
      }
    });

    it.each([[36, 256], [100, 768], [260, 2048], [1024, 768]])("%i x %i, one token (groups g and g + G/2 in one pass): = the plain matmul", (rows, cols) => {
      const r = rng(rows + cols);
      const wq = weights(rows, cols, r);
      const xq = Q.quantizeActivations("q8_k", r.f32(cols, 2), 1, cols);
      const [plain, packed] = scoped(() => {
        const w = put(wq), xp = put(xq);
        const o1 = K.alloc(4 * rows, 64), o2 = K.alloc(4 * rows, 64);
        K.matmul(f.dtype, o1, w, xp, rows, cols, 1);
        expect(f.repack(w, rows, cols)).toBe(true);
        f.matmul(o2, w, xp, rows, cols, 1);
        return [Float32Array.from(K.f32(o1, rows)), Float32Array.from(K.f32(o2, rows))];
      });
      expect(bits(packed)).toEqual(bits(plain));
    });

    it("a row of a repacked matrix reads back as dequantizeRow of the plain row", () => {
      const r = rng(f.seed + 3);
      for (const cols of COLS) for (const rows of ROWS) {
        const wq = weights(rows, cols, r);
        const rb = Q.rowBytes(f.dtype, cols);
        scoped(() => {
          const w = put(wq), dst = K.alloc(4 * cols, 64);
          f.repack(w, rows, cols);
          for (let i = 0; i < rows; i++) {
            f.dequantizeRow(dst, w, rows, cols, i);
            expect(bits(Float32Array.from(K.f32(dst, cols))), `${rows}x${cols} row ${i}`).toEqual(bits(Q.dequantize(f.dtype, wq.subarray(i * rb, (i + 1) * rb), 1, cols)));
          }
        });
      }
    });

    it("repack declines rows too wide for its scratch and leaves them untouched", () => {
      const rows = 4, cols = 256 * 256; // 4 rows of 256 blocks: 144 KiB (q4_K), 210 KiB (q6_K) fit the 256 KiB scratch
      const wide = 256 * 512; // twice as wide does not
      scoped(() => {
        const ok = randomBlocks(f.dtype, (rows * cols) / 256, rng(91));
        expect(f.repack(put(ok), rows, cols)).toBe(true);
        const wq = randomBlocks(f.dtype, (rows * wide) / 256, rng(92));
        const w = put(wq);
        expect(f.repack(w, rows, wide)).toBe(false);
        expect(K.u8(w, wq.length).slice()).toEqual(wq);
      });
    });
  });

  it("K-quant rows that are not whole super-blocks are refused", () => {
    scoped(() => {
      const p = K.alloc(4096, 64);
      expect(() => K.matmul("q4_k", p, p, p, 1, 300, 1)).toThrow(/multiple of 256/);
    });
  });
});
