// kernels.wasm vs the TypeScript references (kernels/reference) and the format definition
// (kernels/quant.ts). Run after `npm run build:kernels`:
//   npx vitest run --project node test/node/kernels.test.ts
//
// Tolerances are error bounds, not fudge factors. Where the wasm kernel performs the same f32
// operations as the reference in another order (matmuls, norms), two f32 sums of the same n
// terms differ by at most 2*gamma(n)*sum|terms|, gamma(n) = n*u/(1-n*u), u = 2^-24. Exact
// operations (quantization, f16, rope, elementwise add/mul) must match bit for bit.
import { beforeAll, describe, expect, it } from "vitest";
import { Kernels, ropeCosSin, type DType, type Ptr } from "../../kernels/index";
import * as Q from "../../kernels/quant";
import * as ref from "../../kernels/reference/index";
import { loadKernelsModuleForNode } from "../../kernels/node";
import { rng } from "../../scripts/rng";
import { testKernels } from "../support/kernels";

const U = 2 ** -24;
const gamma = (n: number) => (n * U) / (1 - n * U);
const SIZES = [1, 3, 31, 32, 33, 64, 100, 172, 288, 768];
const NTOKS = [1, 2, 3, 5, 8];


const kernels = testKernels(64 << 20);
let K: Kernels;
beforeAll(() => {
  K = kernels.K;
});
const { scoped, put } = kernels;

function f32bits(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0]!;
}

/** Assert |a - b| <= tol[i] elementwise with a useful message. */
function expectClose(actual: Float32Array, expected: Float32Array, tol: (i: number) => number, label: string) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) throw new Error(`${label}[${i}]: got ${a}, expected NaN`);
      continue;
    }
    const d = Math.abs(a - e);
    if (!(d <= tol(i))) throw new Error(`${label}[${i}]: got ${a}, expected ${e}, |diff| ${d} > tol ${tol(i)}`);
  }
}

function expectBitwise(actual: Float32Array, expected: Float32Array, label: string) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (f32bits(actual[i]!) !== f32bits(expected[i]!) && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) {
      throw new Error(`${label}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

// -----------------------------------------------------------------------------------------------

describe("module and memory", () => {
  it("imports only env.memory and records its heap base", () => {
    const mod = loadKernelsModuleForNode();
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
    expect(K.heapBase).toBe(K.exports.heapBase());
    expect(K.heapBase % 16).toBe(0);
  });

  it("allocates aligned, never grows, and throws when full", () => {
    const k = Kernels.create(loadKernelsModuleForNode(), 100_000);
    const buf = k.memory.buffer;
    expect(k.capacityBytes).toBeGreaterThanOrEqual(100_000);
    expect(k.capacityBytes).toBeLessThan(100_000 + 65536);
    const a = k.alloc(3, 1);
    const b = k.alloc(10);
    expect(a).toBe(k.heapBase);
    expect(b % 16).toBe(0);
    expect(b).toBeGreaterThanOrEqual(a + 3);
    const c = k.alloc(8, 64);
    expect(c % 64).toBe(0);
    expect(k.usedBytes).toBe(c + 8 - k.heapBase);
    expect(() => k.alloc(k.capacityBytes)).toThrow(/out of memory/);
    expect(() => k.alloc(4, 3)).toThrow(/power of two/);
    const m = k.mark();
    k.alloc(1000);
    k.release(m);
    expect(k.mark()).toBe(m);
    k.alloc(k.capacityBytes - k.usedBytes, 1); // exactly fills
    expect(k.memory.buffer).toBe(buf); // never grown or detached
    expect(() => k.f32(k.heapBase + k.capacityBytes - 4, 2)).toThrow(RangeError);
  });

  it("rejects out-of-range kernel arguments and oversized quantized rows", () => {
    scoped(() => {
      const out = K.alloc(16);
      expect(() => K.matmul("f32", out, K.heapBase + K.capacityBytes - 8, out, 4, 4, 1)).toThrow(RangeError);
      const big = K.maxQuantCols + 32;
      expect(() => K.matmul("q8_0", out, out, out, 0, big, 1)).toThrow(/cols/);
    });
  });
});

// -----------------------------------------------------------------------------------------------

describe("quant format definition", () => {
  it("has ggml's block sizes and padded row sizes", () => {
    expect(Q.QK).toBe(32);
    expect(Q.Q8_0_BLOCK_BYTES).toBe(34);
    expect(Q.Q4_0_BLOCK_BYTES).toBe(18);
    expect(Q.rowBytes("q8_0", 33)).toBe(68);
    expect(Q.rowBytes("q4_0", 32)).toBe(18);
    expect(Q.rowBytes("q4_0", 1)).toBe(18);
    expect(Q.rowBytes("f16", 7)).toBe(14);
    expect(Q.tensorBytes("q8_0", 3, 100)).toBe(3 * 4 * 34);
    expect(Q.tensorBytes("f32", 3, 5)).toBe(60);
  });

  it("q8_0 rounds halves away from zero (C roundf), scale amax/127", () => {
    const x = new Float32Array(32);
    x.set([127, 2.5, -2.5, 0.5, -0.5, 1.5, 126.5]);
    const b = Q.quantizeQ8_0(x, 1, 32);
    expect(b[0]! | (b[1]! << 8)).toBe(0x3c00); // d = 1.0
    expect(Array.from(new Int8Array(b.buffer, 2, 7))).toEqual([127, 3, -3, 1, -1, 2, 127]);
  });

  it("q4_0 uses d = max/-8 (signed extreme, first wins), low nibbles first", () => {
    const x = Float32Array.from({ length: 32 }, (_, j) => j - 16); // extreme is -16 at j = 0
    const b = Q.quantizeQ4_0(x, 1, 32);
    expect(Q.f16BitsToF32(b[0]! | (b[1]! << 8))).toBe(2); // -16 / -8
    // q = min(15, trunc(x/2 + 8.5)): j=0 -> 0, j=16 (x=0) -> 8, j=31 (x=15) -> 16 -> 15
    expect(b[2]! & 15).toBe(0);
    expect(b[2]! >> 4).toBe(8);
    expect(b[2 + 15]! >> 4).toBe(15);
    const d = Q.dequantizeQ4_0(b, 1, 32);
    expect(d[0]).toBe(-16);
    expect(d[16]).toBe(0);
    expect(d[31]).toBe(14); // clamped end: one full step short
    // a tie in magnitude keeps the first value: +4 then -4 -> d = -0.5
    const y = new Float32Array(32);
    y[3] = 4;
    y[9] = -4;
    const c = Q.quantizeQ4_0(y, 1, 32);
    expect(Q.f16BitsToF32(c[0]! | (c[1]! << 8))).toBe(-0.5);
  });

  it("pads partial blocks with zeros", () => {
    const r = rng(1);
    const x = r.f32(33);
    const b = Q.quantizeQ8_0(x, 1, 33);
    expect(b.length).toBe(68);
    expect(Array.from(b.subarray(34 + 3))).toEqual(new Array(31).fill(0));
    const c = Q.quantizeQ4_0(x, 1, 33);
    for (let j = 1; j < 16; j++) expect(c[18 + 2 + j]).toBe(0x88); // code 8 = value 0, both nibbles
  });

  it("round-trips within the format's error bound", () => {
    const r = rng(2);
    for (const cols of SIZES) {
      const rows = 3;
      const x = r.f32(rows * cols, 2);
      // one tiny-valued row exercises subnormal f16 scales
      for (let c = 0; c < cols; c++) x[c] = x[c]! * 1e-6;
      for (const [name, quant, dequant, bound] of [
        ["q8_0", Q.quantizeQ8_0, Q.dequantizeQ8_0, Q.q8_0ErrorBound],
        ["q4_0", Q.quantizeQ4_0, Q.dequantizeQ4_0, Q.q4_0ErrorBound],
      ] as const) {
        const y = dequant(quant(x, rows, cols), rows, cols);
        for (let rr = 0; rr < rows; rr++) {
          for (let b0 = 0; b0 < cols; b0 += 32) {
            let amax = 0;
            for (let c = b0; c < Math.min(cols, b0 + 32); c++) amax = Math.max(amax, Math.abs(x[rr * cols + c]!));
            const tol = bound(amax);
            for (let c = b0; c < Math.min(cols, b0 + 32); c++) {
              const e = Math.abs(y[rr * cols + c]! - x[rr * cols + c]!);
              if (e > tol) throw new Error(`${name} cols=${cols} [${rr},${c}] error ${e} > ${tol}`);
            }
          }
        }
      }
    }
  });
});

// -----------------------------------------------------------------------------------------------

describe("f16 conversion", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

  it("f16 -> f32 is exact on all 65536 patterns (wasm = TS), NaN payload kept in wasm", () => {
    const tsv = new Float32Array(65536);
    ref.f16ToF32Row(tsv, all, 65536);
    const got = scoped(() => {
      const src = put(all);
      const dst = K.alloc(4 * 65536);
      K.f16ToF32Row(dst, src, 65536);
      return K.f32(dst, 65536).slice();
    });
    const bits = new Uint32Array(got.buffer);
    for (let h = 0; h < 65536; h++) {
      const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN16) {
        expect(Number.isNaN(got[h])).toBe(true);
        expect(bits[h]).toBe((((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0);
      } else if (f32bits(got[h]!) !== f32bits(tsv[h]!)) {
        throw new Error(`h=0x${h.toString(16)}: wasm ${got[h]} ts ${tsv[h]}`);
      }
    }
    // the decoding is the IEEE one: spot values and strict monotonicity over finite positives
    expect(tsv[0x3c00]).toBe(1);
    expect(tsv[0xc000]).toBe(-2);
    expect(tsv[0x7bff]).toBe(65504);
    expect(tsv[0x0001]).toBe(2 ** -24);
    expect(tsv[0x0400]).toBe(2 ** -14);
    expect(tsv[0x7c00]).toBe(Infinity);
    expect(tsv[0xfc00]).toBe(-Infinity);
    expect(Object.is(tsv[0x8000], -0)).toBe(true);
    for (let h = 1; h < 0x7c00; h++) expect(tsv[h]! > tsv[h - 1]!).toBe(true);
  });

  /** Independent oracle: nearest finite half by search, ties to even mantissa, overflow rule. */
  const halves = Float64Array.from({ length: 0x7c00 }, (_, h) => Q.f16BitsToF32(h));
  function oracleF16(x: number): number {
    const xf = Math.fround(x);
    if (Number.isNaN(xf)) return 0x7e00;
    const sign = xf < 0 || Object.is(xf, -0) ? 0x8000 : 0;
    const a = Math.abs(xf);
    if (a >= 65520) return sign | 0x7c00; // 65504 + half an ulp (16) rounds to inf
    let lo = 0, hi = 0x7bff;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (halves[mid]! <= a) lo = mid;
      else hi = mid - 1;
    }
    if (lo < 0x7bff) {
      const dl = a - halves[lo]!, dh = halves[lo + 1]! - a;
      if (dh < dl || (dh === dl && (lo & 1) === 1)) lo += 1;
    }
    return sign | lo;
  }

  it("f32 -> f16 rounds to nearest even incl. subnormals, overflow, inf/NaN (wasm = TS = oracle)", () => {
    const r = rng(3);
    const inputs: number[] = [0, -0, Infinity, -Infinity, NaN, 65504, 65519.99, 65520, 65536, 1e30, 2 ** -25, 2 ** -26, 3 * 2 ** -26, 2 ** -24 * 1.5, 1e-45];
    for (let h = 0; h < 0x7c00; h++) {
      const v = halves[h]!;
      inputs.push(v, -v);
      if (h < 0x7bff) {
        const mid = (v + halves[h + 1]!) / 2; // exact tie (representable in f32)
        inputs.push(mid, -mid, mid * (1 + 2 ** -23), mid * (1 - 2 ** -24));
      }
    }
    for (let i = 0; i < 100_000; i++) {
      const bits = (r.next() * 2 ** 32) >>> 0;
      inputs.push(new Float32Array(new Uint32Array([bits]).buffer)[0]!);
    }
    const src = Float32Array.from(inputs);
    const n = src.length;
    const tsv = new Uint16Array(n);
    ref.f32ToF16Row(tsv, src, n);
    const got = scoped(() => {
      const s = put(src);
      const d = K.alloc(2 * n);
      K.f32ToF16Row(d, s, n);
      return K.u16(d, n).slice();
    });
    for (let i = 0; i < n; i++) {
      const x = src[i]!;
      if (Number.isNaN(x)) {
        expect((got[i]! & 0x7c00) === 0x7c00 && (got[i]! & 0x3ff) !== 0).toBe(true);
        expect(got[i]).toBe(tsv[i]);
        continue;
      }
      const want = oracleF16(x);
      if (tsv[i] !== want || got[i] !== want) {
        throw new Error(`x=${x}: ts 0x${tsv[i]!.toString(16)} wasm 0x${got[i]!.toString(16)} oracle 0x${want.toString(16)}`);
      }
    }
  });

  it("toF16 / fromF16 round-trip exactly representable values", () => {
    const x = Float32Array.from([0, 1, -2, 0.5, 65504, 2 ** -24, -(2 ** -14)]);
    expect(Array.from(Q.fromF16(Q.toF16(x)))).toEqual(Array.from(x));
  });
});

// -----------------------------------------------------------------------------------------------

describe("quantize / dequantize rows", () => {
  it("wasm quantizeRowQ8_0 is byte-identical to TS, including ties and zero blocks", () => {
    const r = rng(4);
    for (const n of [...SIZES, 2048]) {
      for (let trial = 0; trial < 3; trial++) {
        const x = r.f32(n, trial === 2 ? 1e-3 : 3);
        if (trial === 1) {
          // exact .5 ties: amax 127 gives d = 1, id = 1
          for (let i = 0; i < n; i++) x[i] = Math.round(x[i]! * 20) / 2;
          x[0] = 127;
          if (n > 40) x.fill(0, 32, 64); // an all-zero block
        }
        const want = new Uint8Array(Q.rowBytes("q8_0", n));
        ref.quantizeRowQ8_0(want, x, n);
        expect(want).toEqual(Q.quantizeQ8_0(x, 1, n));
        const got = scoped(() => {
          const s = put(x);
          const d = K.alloc(want.length);
          K.u8(d, want.length).fill(0xaa); // padding must be written, not inherited
          K.quantizeRows(d, s, n, 1);
          return K.u8(d, want.length).slice();
        });
        if (!got.every((v, i) => v === want[i])) {
          const i = got.findIndex((v, j) => v !== want[j]);
          throw new Error(`n=${n} trial=${trial}: first differing byte ${i}: wasm ${got[i]} ts ${want[i]}`);
        }
      }
    }
  });

  it("quantizeRowQ8_0 on blocks holding NaN or inf is still byte-identical to TS (the exact slow path)", () => {
    const r = rng(6);
    for (const special of [NaN, Infinity, -Infinity]) {
      for (const at of [0, 31, 40, 95]) {
        const x = r.f32(96, 3);
        x[at] = special;
        const want = Q.quantizeQ8_0(x, 1, 96);
        const got = scoped(() => {
          const d = K.alloc(want.length);
          K.quantizeRows(d, put(x), 96, 1);
          return K.u8(d, want.length).slice();
        });
        expect(got, `${special} at ${at}`).toEqual(want);
      }
    }
  });

  it("quantizeRowsQ8_0 handles several rows of odd length", () => {
    const r = rng(5);
    const n = 100, rowsN = 5;
    const x = r.f32(n * rowsN);
    const want = Q.quantizeQ8_0(x, rowsN, n);
    const got = scoped(() => {
      const s = put(x);
      const d = K.alloc(want.length);
      K.quantizeRows(d, s, n, rowsN);
      return K.u8(d, want.length).slice();
    });
    expect(got).toEqual(want);
  });

  it("dequantizeRow q8_0 / q4_0 / f16 / f32 match TS exactly", () => {
    const r = rng(6);
    for (const n of SIZES) {
      const x = r.f32(n, 2);
      for (const dtype of ["q8_0", "q4_0", "f16", "f32"] as DType[]) {
        const bytes = dtype === "q8_0" ? Q.quantizeQ8_0(x, 1, n)
          : dtype === "q4_0" ? Q.quantizeQ4_0(x, 1, n)
          : dtype === "f16" ? Q.toF16(x)
          : new Uint8Array(x.buffer.slice(0));
        const want = dtype === "q8_0" ? Q.dequantizeQ8_0(bytes, 1, n)
          : dtype === "q4_0" ? Q.dequantizeQ4_0(bytes, 1, n)
          : dtype === "f16" ? Q.fromF16(bytes)
          : x;
        const alsoRef = new Float32Array(n);
        if (dtype === "q8_0") ref.dequantizeRowQ8_0(alsoRef, bytes, n);
        if (dtype === "q4_0") ref.dequantizeRowQ4_0(alsoRef, bytes, n);
        if (dtype === "q8_0" || dtype === "q4_0") expectBitwise(alsoRef, want, `ref ${dtype} n=${n}`);
        const got = scoped(() => {
          const s = put(bytes);
          const d = K.alloc(4 * n + 64);
          K.f32(d + 4 * n, 16).fill(7); // sentinel: must not write past n
          K.dequantizeRow(dtype, d, s, n);
          expect(Array.from(K.f32(d + 4 * n, 16))).toEqual(new Array(16).fill(7));
          return K.f32(d, n).slice();
        });
        expectBitwise(got, want, `${dtype} n=${n}`);
      }
    }
  });
});

// -----------------------------------------------------------------------------------------------

describe("matmul", () => {
  const ROWS = [1, 3, 5, 7, 33];

  /** Inputs in the layout each dtype's kernel takes, plus the reference result. */
  function problem(dtype: DType, rows: number, cols: number, nTok: number, seed: number) {
    const r = rng(seed);
    const wf = r.f32(rows * cols);
    const x = r.f32(nTok * cols, 2);
    const out = new Float32Array(rows * nTok);
    /** |term| sums per output, for the summation-order bound, and the number of terms */
    const absSum = new Float64Array(rows * nTok);
    let wBytes: Uint8Array;
    let xIn: ArrayBufferView;
    let nTerms: number;
    if (dtype === "f32" || dtype === "f16") {
      const w16 = Q.toF16(wf);
      const wv = dtype === "f32" ? wf : Q.fromF16(w16);
      wBytes = dtype === "f32" ? new Uint8Array(wf.buffer) : w16;
      xIn = x;
      nTerms = cols;
      if (dtype === "f32") ref.matmulF32(out, wf, x, rows, cols, nTok);
      else ref.matmulF16(out, new Uint16Array(w16.buffer), x, rows, cols, nTok);
      for (let t = 0; t < nTok; t++) for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += Math.abs(wv[i * cols + c]! * x[t * cols + c]!);
        absSum[t * rows + i] = s;
      }
    } else {
      wBytes = dtype === "q8_0" ? Q.quantizeQ8_0(wf, rows, cols) : Q.quantizeQ4_0(wf, rows, cols);
      const xq = Q.quantizeQ8_0(x, nTok, cols);
      xIn = xq;
      nTerms = Math.ceil(cols / 32);
      if (dtype === "q8_0") ref.matmulQ8_0(out, wBytes, xq, rows, cols, nTok);
      else ref.matmulQ4_0(out, wBytes, xq, rows, cols, nTok);
      // |sum_b sumi_b * d_w d_x| <= sum over elements of |dequant(w)| |dequant(x)|
      const wd = dtype === "q8_0" ? Q.dequantizeQ8_0(wBytes, rows, cols) : Q.dequantizeQ4_0(wBytes, rows, cols);
      const xd = Q.dequantizeQ8_0(xq, nTok, cols);
      for (let t = 0; t < nTok; t++) for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += Math.abs(wd[i * cols + c]! * xd[t * cols + c]!);
        absSum[t * rows + i] = s;
      }
    }
    return { wBytes, xIn, out, absSum, nTerms };
  }

  function runWasm(dtype: DType, wBytes: Uint8Array, xIn: ArrayBufferView, rows: number, cols: number, nTok: number) {
    return scoped(() => {
      const w = put(wBytes);
      const x = put(xIn);
      const out = K.alloc(4 * rows * nTok + 64);
      K.f32(out, rows * nTok + 16).fill(NaN); // every output must be written...
      K.f32(out + 4 * rows * nTok, 16).fill(7); // ...and nothing past the end
      K.matmul(dtype, out, w, x, rows, cols, nTok);
      expect(Array.from(K.f32(out + 4 * rows * nTok, 16))).toEqual(new Array(16).fill(7));
      return K.f32(out, rows * nTok).slice();
    });
  }

  for (const dtype of ["f32", "f16", "q8_0", "q4_0"] as DType[]) {
    it(`${dtype}: wasm = reference up to f32 summation order, all edge sizes`, () => {
      let seed = 100;
      for (const cols of SIZES) {
        for (const rows of ROWS) {
          for (const nTok of NTOKS) {
            if (rows === 33 && nTok > 3 && cols > 300) continue; // keep the reference fast
            const { wBytes, xIn, out, absSum, nTerms } = problem(dtype, rows, cols, nTok, seed++);
            const got = runWasm(dtype, wBytes, xIn, rows, cols, nTok);
            expectClose(got, out, (i) => 2 * gamma(nTerms) * absSum[i]! + 1e-30, `${dtype} ${rows}x${cols} nTok=${nTok}`);
          }
        }
      }
    });
  }

  for (const dtype of ["f32", "f16", "q8_0", "q4_0"] as DType[]) {
    it(`${dtype}: a token's result does not depend on how many tokens share the call (batched sequences get their numbers alone)`, () => {
      let seed = 900;
      for (const cols of SIZES) {
        for (const rows of ROWS) {
          const nTok = 11; // full 4-token tiles, a 3-token tail and single tokens all occur below
          const { wBytes, xIn } = problem(dtype, rows, cols, nTok, seed++);
          const all = runWasm(dtype, wBytes, xIn, rows, cols, nTok);
          const perToken = xIn.byteLength / nTok;
          for (const [from, n] of [[0, 1], [3, 1], [10, 1], [2, 2], [5, 3], [1, 4], [6, 5]]) {
            const part = new Uint8Array(xIn.buffer, xIn.byteOffset + from * perToken, n * perToken).slice();
            const got = runWasm(dtype, wBytes, part, rows, cols, n);
            expect(Array.from(got), `${dtype} ${rows}x${cols} tokens ${from}..${from + n - 1}`).toEqual(Array.from(all.slice(from * rows, (from + n) * rows)));
          }
        }
      }
    });
  }

  it("quantized references equal f32 matmul of the dequantized operands", () => {
    // ties the block decoding in the quantized references to kernels/quant.ts (nibble order etc.)
    const r = rng(7);
    for (const dtype of ["q8_0", "q4_0"] as const) {
      const rows = 6, cols = 100, nTok = 2;
      const wf = r.f32(rows * cols), x = r.f32(nTok * cols);
      const wq = dtype === "q8_0" ? Q.quantizeQ8_0(wf, rows, cols) : Q.quantizeQ4_0(wf, rows, cols);
      const xq = Q.quantizeQ8_0(x, nTok, cols);
      const wd = dtype === "q8_0" ? Q.dequantizeQ8_0(wq, rows, cols) : Q.dequantizeQ4_0(wq, rows, cols);
      const xd = Q.dequantizeQ8_0(xq, nTok, cols);
      const a = new Float32Array(rows * nTok), b = new Float32Array(rows * nTok);
      if (dtype === "q8_0") ref.matmulQ8_0(a, wq, xq, rows, cols, nTok);
      else ref.matmulQ4_0(a, wq, xq, rows, cols, nTok);
      ref.matmulF32(b, wd, xd, rows, cols, nTok);
      for (let i = 0; i < a.length; i++) {
        let s = 0;
        const t = Math.floor(i / rows), rr = i % rows;
        for (let c = 0; c < cols; c++) s += Math.abs(wd[rr * cols + c]! * xd[t * cols + c]!);
        expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(2 * gamma(cols + 4) * s);
      }
    }
  });

  it("prefill results equal per-token decode results (token tiling is transparent)", () => {
    for (const dtype of ["f32", "f16", "q8_0", "q4_0"] as DType[]) {
      const rows = 13, cols = 200, nTok = 7;
      const { wBytes, xIn, absSum, nTerms } = problem(dtype, rows, cols, nTok, 999);
      const batch = runWasm(dtype, wBytes, xIn, rows, cols, nTok);
      const xb = new Uint8Array(xIn.buffer, xIn.byteOffset, xIn.byteLength);
      const perTok = xb.length / nTok;
      for (let t = 0; t < nTok; t++) {
        const one = runWasm(dtype, wBytes, xb.slice(t * perTok, (t + 1) * perTok), rows, cols, 1);
        expectClose(one, batch.subarray(t * rows, (t + 1) * rows), (i) => 2 * gamma(nTerms) * absSum[t * rows + i]! + 1e-30, `${dtype} token ${t}`);
      }
    }
  });

  it("very wide quantized rows (smaller token chunks, no prefill tile) stay correct", () => {
    for (const [dtype, cols] of [["q8_0", 31013], ["q4_0", 31013], ["q8_0", 270_000 + 7], ["q4_0", 270_000 + 7]] as const) {
      const rows = 3, nTok = 2;
      const { wBytes, xIn, out, absSum, nTerms } = problem(dtype, rows, cols, nTok, 4242);
      const got = runWasm(dtype, wBytes, xIn, rows, cols, nTok);
      expectClose(got, out, (i) => 2 * gamma(nTerms) * absSum[i]! + 1e-30, `${dtype} wide`);
    }
  });

  it("f16 stays exact for activations too large for the prescaled fast path (|x| >= 2^15)", () => {
    const r = rng(9);
    for (const nTok of [1, 3, 4]) {
      const rows = 5, cols = 72;
      const wf = r.f32(rows * cols);
      const x = r.f32(nTok * cols);
      x[7] = 1e5; // x * 2^112 would overflow to inf
      x[nTok * cols - 1] = -40000;
      const w16 = Q.toF16(wf);
      const want = new Float32Array(rows * nTok);
      ref.matmulF16(want, new Uint16Array(w16.buffer), x, rows, cols, nTok);
      const wv = Q.fromF16(w16);
      const got = runWasm("f16", w16, x, rows, cols, nTok);
      expectClose(got, want, (i) => {
        const t = Math.floor(i / rows), rr = i % rows;
        let s = 0;
        for (let c = 0; c < cols; c++) s += Math.abs(wv[rr * cols + c]! * x[t * cols + c]!);
        return 2 * gamma(cols) * s;
      }, `f16 large x nTok=${nTok}`);
    }
  });

  it("linear() quantizes activations for quantized weights", () => {
    const r = rng(8);
    const rows = 9, cols = 96, nTok = 3;
    const wf = r.f32(rows * cols), x = r.f32(nTok * cols);
    const wq = Q.quantizeQ4_0(wf, rows, cols);
    const want = new Float32Array(rows * nTok);
    ref.matmulQ4_0(want, wq, Q.quantizeQ8_0(x, nTok, cols), rows, cols, nTok);
    const got = scoped(() => {
      const w = put(wq), xp = put(x), out = K.alloc(4 * rows * nTok), xq = K.alloc(Q.rowBytes("q8_0", cols) * nTok);
      K.linear("q4_0", out, w, xp, xq, rows, cols, nTok);
      return K.f32(out, rows * nTok).slice();
    });
    expectClose(got, want, (i) => 1e-5 * (1 + Math.abs(want[i]!)), "linear");
  });
});

// -----------------------------------------------------------------------------------------------

/** The 4-row-interleaved layouts the runtime repacks q8_0 and q4_0 matrices into at load. */
const PACKED_FORMATS = [
  {
    dtype: "q8_0" as const,
    quantize: Q.quantizeQ8_0,
    repack: (w: number, rows: number, cols: number) => K.repackQ8_0x4(w, rows, cols),
    matmul: (o: number, w: number, x: number, rows: number, cols: number, nTok: number) => K.matmulQ8_0x4(o, w, x, rows, cols, nTok),
    dequantizeRow: (dst: number, w: number, rows: number, cols: number, row: number) => K.dequantizeRowQ8_0x4(dst, w, rows, cols, row),
    refRepack: ref.repackQ8_0x4,
    refUnpackRow: ref.unpackRowQ8_0x4,
    refMatmulPlain: ref.matmulQ8_0,
    refMatmulPacked: ref.matmulQ8_0x4,
    nToks: NTOKS,
    /** Wider than the scratch one 4-row group is copied through. */
    tooWideCols: 70_000,
    seed: 500,
  },
  {
    dtype: "q4_0" as const,
    quantize: Q.quantizeQ4_0,
    repack: (w: number, rows: number, cols: number) => K.repackQ4_0x4(w, rows, cols),
    matmul: (o: number, w: number, x: number, rows: number, cols: number, nTok: number) => K.matmulQ4_0x4(o, w, x, rows, cols, nTok),
    dequantizeRow: (dst: number, w: number, rows: number, cols: number, row: number) => K.dequantizeRowQ4_0x4(dst, w, rows, cols, row),
    refRepack: ref.repackQ4_0x4,
    refUnpackRow: ref.unpackRowQ4_0x4,
    refMatmulPlain: ref.matmulQ4_0,
    refMatmulPacked: ref.matmulQ4_0x4,
    nToks: [1, 2, 3, 4, 5, 6, 7, 8, 17],
    tooWideCols: 130_000,
    seed: 900,
  },
];

describe.each(PACKED_FORMATS)("$dtype x4 (4-row-interleaved $dtype)", (f) => {
  const ROWS4 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 33];
  const COLS4 = [1, 31, 32, 33, 288, 300];

  it("wasm repack = reference repack, in place, byte for byte; rows unpack to the original", () => {
    let seed = f.seed;
    for (const cols of COLS4) for (const rows of ROWS4) {
      const r = rng(seed++);
      const wq = f.quantize(r.f32(rows * cols), rows, cols);
      const want = wq.slice();
      f.refRepack(want, rows, cols);
      const got = scoped(() => {
        const w = put(wq);
        expect(f.repack(w, rows, cols)).toBe(true);
        return K.u8(w, wq.length).slice();
      });
      expect(got).toEqual(want);
      const rb = Q.rowBytes(f.dtype, cols);
      for (let i = 0; i < rows; i++) expect(f.refUnpackRow(got, rows, cols, i)).toEqual(wq.slice(i * rb, (i + 1) * rb));
    }
  });

  it("the packed matmul on the repacked matrix = the plain matmul, bit for bit (decode and prefill)", () => {
    let seed = f.seed + 100;
    for (const cols of COLS4) for (const rows of ROWS4) for (const nTok of f.nToks) {
      const r = rng(seed++);
      const wq = f.quantize(r.f32(rows * cols), rows, cols);
      const xq = Q.quantizeQ8_0(r.f32(nTok * cols, 2), nTok, cols);
      const [plain, packed] = scoped(() => {
        const w = put(wq), x = put(xq);
        const o1 = K.alloc(4 * rows * nTok + 64), o2 = K.alloc(4 * rows * nTok + 64);
        K.f32(o2, rows * nTok + 16).fill(NaN);
        K.f32(o2 + 4 * rows * nTok, 16).fill(7);
        K.matmul(f.dtype, o1, w, x, rows, cols, nTok);
        f.repack(w, rows, cols);
        f.matmul(o2, w, x, rows, cols, nTok);
        expect(Array.from(K.f32(o2 + 4 * rows * nTok, 16))).toEqual(new Array(16).fill(7));
        return [K.f32(o1, rows * nTok).slice(), K.f32(o2, rows * nTok).slice()];
      });
      expect(packed, `${rows}x${cols} nTok=${nTok}`).toEqual(plain);
      // and the reference of the packed layout is the plain reference
      const packedBytes = wq.slice();
      f.refRepack(packedBytes, rows, cols);
      const a = new Float32Array(rows * nTok), b = new Float32Array(rows * nTok);
      f.refMatmulPlain(a, wq, xq, rows, cols, nTok);
      f.refMatmulPacked(b, packedBytes, xq, rows, cols, nTok);
      expect(b).toEqual(a);
    }
  });

  it("a row of a repacked matrix reads back as dequantizeRow of the plain row", () => {
    let seed = f.seed + 200;
    for (const cols of COLS4) for (const rows of ROWS4) {
      const r = rng(seed++);
      const wq = f.quantize(r.f32(rows * cols), rows, cols);
      const rb = Q.rowBytes(f.dtype, cols);
      scoped(() => {
        const w = put(wq), plain = put(wq), dst = K.alloc(4 * cols), want = K.alloc(4 * cols);
        f.repack(w, rows, cols);
        for (let i = 0; i < rows; i++) {
          K.dequantizeRow(f.dtype, want, plain + i * rb, cols);
          f.dequantizeRow(dst, w, rows, cols, i);
          expect(K.f32(dst, cols).slice(), `${rows}x${cols} row ${i}`).toEqual(K.f32(want, cols).slice());
        }
      });
    }
  });

  it("repack declines rows too wide for its scratch and leaves them untouched", () => {
    const rows = 4, cols = f.tooWideCols;
    const wq = f.quantize(rng(800).f32(rows * cols), rows, cols);
    scoped(() => {
      const w = put(wq);
      expect(f.repack(w, rows, cols)).toBe(false);
      expect(K.u8(w, wq.length).slice()).toEqual(wq);
    });
  });
});

describe("q4_0x4 decode over many groups", () => {
  // groups g and g + G/2 in one pass (two streams), the odd last group alone: every row must get
  // the plain kernel's bits
  it.each([
    [36, 64], [44, 288], [100, 300], [108, 2048], [260, 2048], [1024, 768],
  ])("%i x %i: matmulQ4_0x4 (one token) = matmulQ4_0, bit for bit", (rows, cols) => {
    const r = rng(rows + cols);
    const wq = Q.quantizeQ4_0(r.f32(rows * cols), rows, cols);
    const xq = Q.quantizeQ8_0(r.f32(cols, 2), 1, cols);
    const [plain, packed] = scoped(() => {
      const w = put(wq), x = put(xq);
      const o1 = K.alloc(4 * rows), o2 = K.alloc(4 * rows);
      K.matmul("q4_0", o1, w, x, rows, cols, 1);
      expect(K.repackQ4_0x4(w, rows, cols)).toBe(true);
      K.f32(o2, rows).fill(NaN);
      K.matmulQ4_0x4(o2, w, x, rows, cols, 1);
      return [K.f32(o1, rows).slice(), K.f32(o2, rows).slice()];
    });
    expect(packed).toEqual(plain);
  });
});

describe("q4_0x4 prefill on wide rows", () => {
  it("matmulQ4_0x4 on rows too wide for the splatted activations (70000 cols) = matmulQ4_0", () => {
    const rows = 5, cols = 70_000;
    const r = rng(1200);
    const wq = Q.quantizeQ4_0(r.f32(rows * cols), rows, cols);
    for (const nTok of [1, 3]) {
      const xq = Q.quantizeQ8_0(r.f32(nTok * cols, 2), nTok, cols);
      const [plain, packed] = scoped(() => {
        const w = put(wq), x = put(xq);
        const o1 = K.alloc(4 * rows * nTok), o2 = K.alloc(4 * rows * nTok);
        K.matmul("q4_0", o1, w, x, rows, cols, nTok);
        expect(K.repackQ4_0x4(w, rows, cols)).toBe(true);
        K.matmulQ4_0x4(o2, w, x, rows, cols, nTok);
        return [K.f32(o1, rows * nTok).slice(), K.f32(o2, rows * nTok).slice()];
      });
      expect(packed, `nTok=${nTok}`).toEqual(plain);
    }
  });
});

// -----------------------------------------------------------------------------------------------

describe("normalization", () => {
  it("rmsnorm matches the reference within the sum-of-squares bound", () => {
    const r = rng(10);
    for (const n of SIZES) {
      const x = r.f32(n, 3), w = r.f32(n);
      const want = new Float32Array(n);
      ref.rmsnorm(want, x, w, n, 1e-5);
      const got = scoped(() => {
        const xp = put(x), wp = put(w), o = K.alloc(4 * n);
        K.rmsnorm(o, xp, wp, n, 1e-5);
        return K.f32(o, n).slice();
      });
      // sum of squares: relative error gamma(n); 1/sqrt halves it; plus ~6 roundings in f32
      expectClose(got, want, (i) => (gamma(n) + 8 * U) * Math.abs(want[i]!) + 1e-37, `rmsnorm n=${n}`);
      // in place (out aliases x)
      const inPlace = scoped(() => {
        const xp = put(x), wp = put(w);
        K.rmsnorm(xp, xp, wp, n, 1e-5);
        return K.f32(xp, n).slice();
      });
      expectBitwise(inPlace, got, `rmsnorm in place n=${n}`);
    }
  });

  it("layernorm matches the reference within the two-pass bound", () => {
    const r = rng(11);
    for (const n of SIZES) {
      const x = r.f32(n, 2), w = r.f32(n), b = r.f32(n);
      for (let i = 0; i < n; i++) x[i] = x[i]! + 5; // non-zero mean
      const want = new Float32Array(n);
      ref.layernorm(want, x, w, b, n, 1e-5);
      const got = scoped(() => {
        const xp = put(x), wp = put(w), bp = put(b), o = K.alloc(4 * n);
        K.layernorm(o, xp, wp, bp, n, 1e-5);
        return K.f32(o, n).slice();
      });
      let meanAbs = 0, mean = 0, v = 0;
      for (let i = 0; i < n; i++) { meanAbs += Math.abs(x[i]!) / n; mean += x[i]! / n; }
      for (let i = 0; i < n; i++) v += (x[i]! - mean) ** 2 / n;
      const rstd = 1 / Math.sqrt(v + 1e-5);
      expectClose(got, want, (i) => {
        const c = Math.abs(x[i]! - mean);
        // mean error gamma(n)*mean|x| (plus f32 rounding of the mean itself), centered value u,
        // variance/rstd relative gamma(n) + few u; scaled by rstd*|w|; final mul/add roundings
        const centered = gamma(n) * meanAbs + 2 * U * (c + Math.abs(mean));
        return 2 * (centered + c * (gamma(n) + 6 * U)) * rstd * Math.abs(w[i]!) + 4 * U * (Math.abs(want[i]!) + Math.abs(b[i]!)) + 1e-37;
      }, `layernorm n=${n}`);
    }
  });
});

// -----------------------------------------------------------------------------------------------

describe("elementwise", () => {
  function special(n: number, r: ReturnType<typeof rng>, sd: number) {
    const x = r.f32(n, sd);
    const sp = [0, -0, 1e-8, -1e-8, 20, -20, 88, -88, 100, -100, 1e-30];
    for (let i = 0; i < Math.min(n, sp.length); i++) x[(i * 7) % n] = sp[i]!;
    return x;
  }

  it("softmax matches within exp accuracy + sum bound", () => {
    const r = rng(20);
    for (const n of [...SIZES, 32000]) {
      const x = r.f32(n, 3);
      const want = Float32Array.from(x);
      ref.softmax(want, n);
      const got = scoped(() => {
        const p = put(x);
        K.softmax(p, n);
        return K.f32(p, n).slice();
      });
      let m = -Infinity;
      for (let i = 0; i < n; i++) m = Math.max(m, x[i]!);
      // per element: f32 rounding of x - m (relative u|x-m| in exp), exp ~3 ulp, sum gamma(n), divide
      expectClose(got, want, (i) => want[i]! * (U * Math.abs(x[i]! - m) + 8 * U + gamma(n)) + 1e-44, `softmax n=${n}`);
      let s = 0;
      for (let i = 0; i < n; i++) s += got[i]!;
      expect(Math.abs(s - 1)).toBeLessThan(2 * gamma(n) + 1e-6);
    }
  });

  it("silu / swiglu / gelu match within a few ulp of exp", () => {
    const r = rng(21);
    for (const n of SIZES) {
      const x = special(n, r, 4), g = r.f32(n);
      // relative: ~8 roundings plus exp's argument error, which grows with |argument|
      const tolFor = (want: Float32Array, arg: (i: number) => number) => (i: number) =>
        U * (16 + 4 * Math.abs(arg(i))) * Math.abs(want[i]!) + 1e-38;
      {
        const want = Float32Array.from(x);
        ref.silu(want, n);
        const got = scoped(() => { const p = put(x); K.silu(p, n); return K.f32(p, n).slice(); });
        expectClose(got, want, tolFor(want, (i) => x[i]!), `silu n=${n}`);
      }
      {
        const want = Float32Array.from(x);
        ref.swiglu(want, g, n);
        const got = scoped(() => { const p = put(x), q = put(g); K.swiglu(p, q, n); return K.f32(p, n).slice(); });
        expectClose(got, want, tolFor(want, (i) => x[i]!), `swiglu n=${n}`);
      }
      {
        const want = Float32Array.from(x);
        ref.gelu(want, n);
        const got = scoped(() => { const p = put(x); K.gelu(p, n); return K.f32(p, n).slice(); });
        const arg = (i: number) => 2 * 0.7978845608 * (x[i]! + 0.044715 * x[i]! ** 3);
        expectClose(got, want, tolFor(want, arg), `gelu n=${n}`);
      }
    }
  });

  it("add / addBias / mul / scale are exact", () => {
    const r = rng(22);
    for (const n of SIZES) {
      const a = r.f32(n), b = r.f32(n);
      for (const op of ["add", "mul", "scale"] as const) {
        const want = Float32Array.from(a);
        if (op === "add") ref.addInPlace(want, b, n);
        if (op === "mul") ref.mulInPlace(want, b, n);
        if (op === "scale") ref.scale(want, n, 0.37);
        const got = scoped(() => {
          const p = put(a), q = put(b);
          if (op === "add") K.addInPlace(p, q, n);
          if (op === "mul") K.mulInPlace(p, q, n);
          if (op === "scale") K.scale(p, n, 0.37);
          return K.f32(p, n).slice();
        });
        expectBitwise(got, want, `${op} n=${n}`);
      }
      const nTok = 3;
      const xs = r.f32(n * nTok);
      const want = Float32Array.from(xs);
      ref.addBias(want, b, n, nTok);
      const got = scoped(() => { const p = put(xs), q = put(b); K.addBias(p, q, n, nTok); return K.f32(p, n * nTok).slice(); });
      expectBitwise(got, want, `addBias n=${n}`);
    }
  });

  it("argmax returns the first maximum", () => {
    const r = rng(23);
    for (const n of [...SIZES, 32000]) {
      for (let trial = 0; trial < 8; trial++) {
        const x = r.f32(n);
        if (trial === 1) x.fill(-3); // all ties -> 0
        if (trial === 2 && n > 5) { x[n - 1] = 50; x[n - 3] = 50; } // tie late in the row
        if (trial === 3) for (let i = 0; i < n; i++) x[i] = -Math.abs(x[i]!) - 1; // all negative
        if (trial === 4) { x[n >> 1] = NaN; x[n - 1] = NaN; } // NaNs never win (reference: x[i] > x[best])
        if (trial === 5) x[0] = NaN; // ...and a NaN first element wins
        if (trial === 6) { x.fill(-Infinity); if (n > 2) x[n - 2] = -Infinity; }
        if (trial === 7) { x.fill(-Infinity); x[n - 1] = -5; if (n > 6) x[5] = -5; }
        const got = scoped(() => K.argmax(put(x), n));
        expect(got).toBe(ref.argmax(x, n));
      }
    }
  });
});

// -----------------------------------------------------------------------------------------------

describe("rope", () => {
  it("matches the reference bit for bit in both layouts", () => {
    const r = rng(30);
    for (const [nHeads, headSize] of [[1, 2], [3, 6], [2, 8], [4, 48], [6, 64], [2, 128]] as const) {
      for (const layout of [0, 1] as const) {
        for (const pos of [0, 1, 17, 4095]) {
          const v = r.f32(nHeads * headSize);
          const cs = ropeCosSin(pos, headSize, 10000);
          const want = Float32Array.from(v);
          ref.rope(want, nHeads, headSize, cs, layout);
          const got = scoped(() => {
            const p = put(v), c = put(cs);
            K.rope(p, nHeads, headSize, c, layout);
            return K.f32(p, nHeads * headSize).slice();
          });
          expectBitwise(got, want, `rope ${nHeads}x${headSize} layout=${layout} pos=${pos}`);
        }
      }
    }
  });

  it("rotates the right pairs (norm preserved per pair, position 0 is identity)", () => {
    const headSize = 8;
    const v = Float32Array.from({ length: headSize }, (_, i) => i + 1);
    const cs = ropeCosSin(3, headSize);
    for (const layout of [0, 1] as const) {
      const out = Float32Array.from(v);
      ref.rope(out, 1, headSize, cs, layout);
      for (let i = 0; i < headSize / 2; i++) {
        const [a, b] = layout === 0 ? [2 * i, 2 * i + 1] : [i, i + headSize / 2];
        expect(Math.hypot(out[a]!, out[b]!)).toBeCloseTo(Math.hypot(v[a]!, v[b]!), 5);
        const angle = Math.atan2(out[b]!, out[a]!) - Math.atan2(v[b]!, v[a]!);
        const wantAngle = 3 * Math.pow(10000, (-2 * i) / headSize);
        expect(Math.cos(angle)).toBeCloseTo(Math.cos(wantAngle), 5);
      }
      const same = Float32Array.from(v);
      ref.rope(same, 1, headSize, ropeCosSin(0, headSize), layout);
      expect(Array.from(same)).toEqual(Array.from(v));
    }
  });
});

// -----------------------------------------------------------------------------------------------

describe("attention", () => {
  function cacheFor(dtype: "f32" | "f16", x: Float32Array) {
    return dtype === "f32" ? { bytes: x, view: x } : { bytes: Q.toF16(x), view: new Uint16Array(Q.toF16(x).buffer) };
  }

  /** Bound from score errors (dot products, relative through exp) plus the weighted-sum error. */
  function attTol(q: Float32Array, kv: Float32Array, vv: Float32Array, att: Float32Array, nHeads: number, nKv: number, hs: number, nPos: number) {
    const group = nHeads / nKv, kvDim = nKv * hs, scale = 1 / Math.sqrt(hs);
    const tol = new Float64Array(nHeads * hs);
    for (let h = 0; h < nHeads; h++) {
      const kvo = Math.floor(h / group) * hs;
      let maxErr = 0;
      for (let p = 0; p < nPos; p++) {
        let s = 0, sa = 0;
        for (let i = 0; i < hs; i++) { const t = q[h * hs + i]! * kv[p * kvDim + kvo + i]!; s += t; sa += Math.abs(t); }
        maxErr = Math.max(maxErr, (gamma(hs) * sa + 2 * U * Math.abs(s)) * scale + U * Math.abs(s * scale));
      }
      for (let i = 0; i < hs; i++) {
        let wsum = 0;
        for (let p = 0; p < nPos; p++) wsum += att[h * nPos + p]! * Math.abs(vv[p * kvDim + kvo + i]!);
        // a score error e perturbs weights by ~2e relative (own + max/normalizer)
        tol[h * hs + i] = wsum * (4 * maxErr + gamma(nPos) * 2 + 16 * U) + 1e-30;
      }
    }
    return tol;
  }

  for (const dtype of ["f32", "f16"] as const) {
    it(`single token, ${dtype} cache, GQA configurations`, () => {
      const r = rng(dtype === "f32" ? 40 : 41);
      for (const [nHeads, nKv, hs] of [[1, 1, 4], [4, 1, 6], [4, 2, 8], [6, 3, 48], [8, 8, 64], [4, 2, 18]] as const) {
        for (const nPos of [1, 3, 5, 17, 64]) {
          const kvDim = nKv * hs;
          const q = r.f32(nHeads * hs, 1.5);
          const kf = r.f32(nPos * kvDim, 1.5), vf = r.f32(nPos * kvDim);
          const k = cacheFor(dtype, kf), v = cacheFor(dtype, vf);
          const kv = dtype === "f32" ? kf : Q.fromF16(k.bytes as Uint8Array);
          const vv = dtype === "f32" ? vf : Q.fromF16(v.bytes as Uint8Array);
          const want = new Float32Array(nHeads * hs), att = new Float32Array(nHeads * nPos);
          ref.attention(want, q, k.view, v.view, att, nHeads, nKv, hs, nPos, dtype === "f32" ? 0 : 1);
          const [got, gotAtt] = scoped(() => {
            const qp = put(q), kp = put(k.bytes), vp = put(v.bytes), o = K.alloc(4 * nHeads * hs), a = K.alloc(4 * nHeads * nPos);
            K.attention(o, qp, kp, vp, a, nHeads, nKv, hs, nPos, dtype);
            return [K.f32(o, nHeads * hs).slice(), K.f32(a, nHeads * nPos).slice()];
          });
          const tol = attTol(q, kv, vv, att, nHeads, nKv, hs, nPos);
          expectClose(got, want, (i) => tol[i]!, `attention ${dtype} ${nHeads}/${nKv}x${hs} nPos=${nPos}`);
          expectClose(gotAtt, att, (i) => att[i]! * 1e-4 + 1e-30, `attention weights ${dtype}`);
        }
      }
    });
  }

  it("f16 cache: the prescaled fast path is bit-identical to the exact path (subnormals, zeros, specials elsewhere)", () => {
    const r = rng(43);
    const nHeads = 2, nKv = 2, hs = 20, nPos = 13, kvDim = nKv * hs;
    const q = r.f32(nHeads * hs, 1.5), kf = r.f32(nPos * kvDim, 1.5), vf = r.f32(nPos * kvDim);
    for (let i = 0; i < kf.length; i += 7) { kf[i] = (i % 3 - 1) * 3e-6; vf[i] = i % 2 ? -0 : 2e-7; } // f16 subnormals, zeros
    q[3] = 1e-40; // f32 subnormal query
    const run = (qq: Float32Array, kk: Float32Array, vv: Float32Array) => scoped(() => {
      const qp = put(qq), kp = put(Q.toF16(kk)), vp = put(Q.toF16(vv)), o = K.alloc(4 * nHeads * hs), a = K.alloc(4 * nHeads * nPos);
      K.attention(o, qp, kp, vp, a, nHeads, nKv, hs, nPos, "f16");
      return [K.f32(o, hs).slice(), K.f32(a, nPos).slice()]; // head 0 only
    });
    const [fast, fastAtt] = run(q, kf, vf);
    const bigQ = Float32Array.from(q); bigQ[hs + 1] = 40000; // head 1: q * 2^112 would overflow
    const infK = Float32Array.from(kf); infK[hs + 2] = Infinity; // head 1's keys: f16 inf
    const nanV = Float32Array.from(vf); nanV[5 * kvDim + hs] = NaN;
    for (const [qq, kk, vv, what] of [[bigQ, kf, vf, "large q"], [q, infK, vf, "inf key"], [q, kf, nanV, "NaN value"]] as const) {
      const [exact, exactAtt] = run(qq, kk, vv);
      expectBitwise(exact, fast, `head 0 output, ${what}`);
      expectBitwise(exactAtt, fastAtt, `head 0 weights, ${what}`);
    }
  });

  it("attentionBatch is causal and equals per-token attention", () => {
    const r = rng(42);
    for (const dtype of ["f32", "f16"] as const) {
      const nHeads = 4, nKv = 2, hs = 16, startPos = 5, nTok = 4, nPos = startPos + nTok, kvDim = nKv * hs;
      const q = r.f32(nTok * nHeads * hs), kf = r.f32(nPos * kvDim), vf = r.f32(nPos * kvDim);
      const k = cacheFor(dtype, kf), v = cacheFor(dtype, vf);
      const want = new Float32Array(nTok * nHeads * hs);
      ref.attentionBatch(want, q, k.view, v.view, new Float32Array(nHeads * nPos), nHeads, nKv, hs, startPos, nTok, dtype === "f32" ? 0 : 1);
      const got = scoped(() => {
        const qp = put(q), kp = put(k.bytes), vp = put(v.bytes), o = K.alloc(4 * want.length), a = K.alloc(4 * nHeads * nPos);
        K.attentionBatch(o, qp, kp, vp, a, nHeads, nKv, hs, startPos, nTok, dtype);
        return K.f32(o, want.length).slice();
      });
      expectClose(got, want, (i) => 1e-5 * (1 + Math.abs(want[i]!)), `attentionBatch ${dtype}`);
      // causality: changing the last position's V must not change earlier tokens' outputs
      const vf2 = Float32Array.from(vf);
      for (let i = 0; i < kvDim; i++) vf2[(nPos - 1) * kvDim + i] = 100;
      const v2 = cacheFor(dtype, vf2);
      const got2 = scoped(() => {
        const qp = put(q), kp = put(k.bytes), vp = put(v2.bytes), o = K.alloc(4 * want.length), a = K.alloc(4 * nHeads * nPos);
        K.attentionBatch(o, qp, kp, vp, a, nHeads, nKv, hs, startPos, nTok, dtype);
        return K.f32(o, want.length).slice();
      });
      const perTok = nHeads * hs;
      expectBitwise(got2.subarray(0, (nTok - 1) * perTok), got.subarray(0, (nTok - 1) * perTok), "causal prefix");
      expect(Array.from(got2.subarray((nTok - 1) * perTok)).some((x, i) => x !== got[(nTok - 1) * perTok + i])).toBe(true);
    }
  });

  it("attentionBatch (query tokens in groups of 4) is bit-identical to per-token attention: f32 and f16, GQA, odd head sizes, any start", () => {
    const r = rng(45);
    for (const dtype of ["f32", "f16"] as const) {
      for (const [nHeads, nKv, hs] of [[4, 2, 16], [6, 3, 18], [2, 2, 5], [8, 8, 64]] as const) {
        for (const startPos of [0, 1, 3, 6]) {
          for (const nTok of [2, 4, 5, 8, 9]) {
            const nPos = startPos + nTok, kvDim = nKv * hs;
            const q = r.f32(nTok * nHeads * hs, 1.5), kf = r.f32(nPos * kvDim, 1.5), vf = r.f32(nPos * kvDim);
            const k = cacheFor(dtype, kf), v = cacheFor(dtype, vf);
            scoped(() => {
              const qp = put(q), kp = put(k.bytes), vp = put(v.bytes);
              const o = K.alloc(4 * nTok * nHeads * hs), a = K.alloc(4 * nHeads * nPos);
              K.attentionBatch(o, qp, kp, vp, a, nHeads, nKv, hs, startPos, nTok, dtype);
              const batch = K.f32(o, nTok * nHeads * hs).slice();
              for (let t = 0; t < nTok; t++) {
                K.attention(o, qp + 4 * t * nHeads * hs, kp, vp, a, nHeads, nKv, hs, startPos + t + 1, dtype);
                expectBitwise(batch.subarray(t * nHeads * hs, (t + 1) * nHeads * hs), K.f32(o, nHeads * hs).slice(), `${dtype} ${nHeads}/${nKv}x${hs} start ${startPos} nTok ${nTok} token ${t}`);
              }
            });
          }
        }
      }
    }
  });

  it("attentionBatch on an f16 cache is bit-identical to per-token attention, also when only a later position or token is special", () => {
    // the batch decides the fast path once for all its tokens; per token the decision can differ
    const r = rng(44);
    const nHeads = 4, nKv = 2, hs = 16, startPos = 3, kvDim = nKv * hs;
    for (const nTok of [1, 2, 5]) {
      const nPos = startPos + nTok;
      const q = r.f32(nTok * nHeads * hs), kf = r.f32(nPos * kvDim), vf = r.f32(nPos * kvDim);
      const infK = Float32Array.from(kf); infK[(nPos - 1) * kvDim + hs + 1] = Infinity; // last position, kv head 1
      const bigQ = Float32Array.from(q); bigQ[(nTok - 1) * nHeads * hs + 3] = 50000; // last token
      for (const [qq, kk, what] of [[q, kf, "finite"], [q, infK, "inf key"], [bigQ, kf, "large q"]] as const) {
        scoped(() => {
          const qp = put(qq), kp = put(Q.toF16(kk)), vp = put(Q.toF16(vf));
          const o = K.alloc(4 * nTok * nHeads * hs), a = K.alloc(4 * nHeads * nPos);
          K.attentionBatch(o, qp, kp, vp, a, nHeads, nKv, hs, startPos, nTok, "f16");
          const batch = K.f32(o, nTok * nHeads * hs).slice();
          for (let t = 0; t < nTok; t++) {
            K.attention(o, qp + 4 * t * nHeads * hs, kp, vp, a, nHeads, nKv, hs, startPos + t + 1, "f16");
            expectBitwise(batch.subarray(t * nHeads * hs, (t + 1) * nHeads * hs), K.f32(o, nHeads * hs).slice(), `${what} nTok=${nTok} token ${t}`);
          }
        });
      }
    }
  });
});
