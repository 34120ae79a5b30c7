// onnxruntime-web (wasm backend, one thread, SIMD) running the same matrix-vector products as
// our kernels, in ONNX graphs built in code with ./onnx.ts.
//
// Each graph holds `copies` independent products (one node per distinct weight copy, all on
// the same input) so one session.run amortizes ORT's per-run overhead over several products,
// as a whole model graph would; our side cycles through the same number of distinct copies.

import { join } from "node:path";
import { projectRoot } from "../paths";
import { bytesTensor, encodeModel, floatTensor, OnnxType, type OnnxNode, type OnnxTensor } from "./onnx";
import { dequantize, toBlockedDq, toInt8Columns, toMatMulNBits, transposeF32, type BenchQuant } from "./weights";

type Ort = typeof import("onnxruntime-web");

export const ORT_DIST = join(projectRoot, "node_modules", "onnxruntime-web", "dist");
/** The wasm file onnxruntime-web loads in Node (the SIMD build; threads stay off). */
export const ORT_WASM_FILE = join(ORT_DIST, "ort-wasm-simd-threaded.wasm");

let ortPromise: Promise<Ort> | undefined;

/** onnxruntime-web with its wasm backend configured: one thread, SIMD, wasm from node_modules. */
export function loadOrt(): Promise<Ort> {
  ortPromise ??= import("onnxruntime-web").then((mod) => {
    const ort = ((mod as unknown as { default?: Ort }).default ?? mod) as Ort;
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.simd = true;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = ORT_DIST + "/";
    ort.env.logLevel = "error";
    return ort;
  });
  return ortPromise;
}

/** The ORT operators compared against one of our weight formats. */
export type OrtVariant =
  | "MatMul"
  | "MatMulNBits8"
  | "MatMulNBits8-int8"
  | "DynamicQuantizeMatMul"
  | "MatMulInteger"
  | "MatMulNBits4"
  | "MatMulNBits4-int8"
  | "DQ8+MatMul"
  | "DQ4+MatMul";

export const VARIANTS: Record<BenchQuant, OrtVariant[]> = {
  f32: ["MatMul"],
  q8_0: ["MatMulNBits8", "MatMulNBits8-int8", "DQ8+MatMul", "DynamicQuantizeMatMul", "MatMulInteger"],
  q4_0: ["MatMulNBits4", "MatMulNBits4-int8", "DQ4+MatMul"],
};

export const VARIANT_NOTES: Record<OrtVariant, string> = {
  MatMul: "f32 MatMul (B = W^T as an initializer)",
  MatMulNBits8: "com.microsoft MatMulNBits bits=8 block 32, f32 activations (accuracy_level 0): q8_0's exact values",
  "MatMulNBits8-int8": "MatMulNBits bits=8 block 32, accuracy_level 4 (activations quantized to int8 inside)",
  DynamicQuantizeMatMul: "com.microsoft DynamicQuantizeMatMul: f32 in, activations quantized per run, int8 B with one scale per column (no block scales)",
  MatMulInteger: "MatMulInteger u8 x s8 -> i32 on activations quantized beforehand (quantization not timed, no scales)",
  MatMulNBits4: "MatMulNBits bits=4 block 32, f32 activations (accuracy_level 0): q4_0's exact values",
  "MatMulNBits4-int8": "MatMulNBits bits=4 block 32, accuracy_level 4 (activations quantized to int8 inside, the path closest to ours)",
  "DQ8+MatMul": "QDQ graph: DequantizeLinear (int8, blocked: axis 0, block 32) + MatMul, whatever ORT's optimizer makes of it",
  "DQ4+MatMul": "QDQ graph: DequantizeLinear (int4, blocked: axis 0, block 32) + MatMul, whatever ORT's optimizer makes of it",
};

/** Variants whose weights carry q8_0/q4_0's exact values, so their output can be checked against ours. */
export const EXACT_VARIANTS = new Set<OrtVariant>(["MatMul", "MatMulNBits8", "MatMulNBits8-int8", "MatMulNBits4", "MatMulNBits4-int8", "DQ8+MatMul", "DQ4+MatMul"]);

export interface OrtGraph {
  bytes: Uint8Array;
  /** Feeds for one run (the same input for every node). */
  feeds(ort: Ort, x: Float32Array): Record<string, unknown>;
  outputs: string[];
}

/**
 * An ONNX model computing y_i = W_i x for each weight copy W_i ([rows, cols] in our layout),
 * with the operator `variant`. x is [1, cols] f32 (MatMulInteger: u8 with zero point 128).
 */
export function buildOrtGraph(variant: OrtVariant, quant: BenchQuant, copies: Uint8Array[], rows: number, cols: number): OrtGraph {
  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];
  const outputs: string[] = [];
  let inputType: typeof OnnxType.FLOAT | typeof OnnxType.UINT8 = OnnxType.FLOAT;
  let outputType: typeof OnnxType.FLOAT | typeof OnnxType.INT32 = OnnxType.FLOAT;
  const nbits = variant.startsWith("MatMulNBits") ? (variant.startsWith("MatMulNBits8") ? 8 : 4) : 0;
  copies.forEach((w, i) => {
    const y = `y${i}`;
    outputs.push(y);
    if (variant === "MatMul") {
      const f = new Float32Array(w.buffer, w.byteOffset, rows * cols);
      initializers.push(floatTensor(`w${i}`, [cols, rows], transposeF32(f, rows, cols)));
      nodes.push({ opType: "MatMul", inputs: ["x", `w${i}`], outputs: [y] });
    } else if (nbits) {
      const { b, scales, blob } = toMatMulNBits(quant as "q8_0" | "q4_0", w, rows, cols);
      initializers.push(bytesTensor(`w${i}`, OnnxType.UINT8, [rows, cols / 32, blob], b));
      initializers.push(floatTensor(`s${i}`, [rows, cols / 32], scales));
      nodes.push({
        opType: "MatMulNBits",
        domain: "com.microsoft",
        inputs: ["x", `w${i}`, `s${i}`],
        outputs: [y],
        attributes: [
          { name: "K", int: cols },
          { name: "N", int: rows },
          { name: "bits", int: nbits },
          { name: "block_size", int: 32 },
          { name: "accuracy_level", int: variant.endsWith("-int8") ? 4 : 0 },
        ],
      });
    } else if (variant === "DQ8+MatMul" || variant === "DQ4+MatMul") {
      const { b, scales } = toBlockedDq(quant as "q8_0" | "q4_0", w, rows, cols);
      initializers.push(bytesTensor(`w${i}`, variant === "DQ8+MatMul" ? OnnxType.INT8 : OnnxType.INT4, [cols, rows], b));
      initializers.push(floatTensor(`s${i}`, [cols / 32, rows], scales));
      nodes.push({ opType: "DequantizeLinear", inputs: [`w${i}`, `s${i}`], outputs: [`wf${i}`], attributes: [{ name: "axis", int: 0 }, { name: "block_size", int: 32 }] });
      nodes.push({ opType: "MatMul", inputs: ["x", `wf${i}`], outputs: [y] });
    } else if (variant === "DynamicQuantizeMatMul") {
      const { b, scales } = toInt8Columns(w, rows, cols);
      initializers.push(bytesTensor(`w${i}`, OnnxType.INT8, [cols, rows], b));
      initializers.push(floatTensor(`s${i}`, [rows], scales));
      nodes.push({ opType: "DynamicQuantizeMatMul", domain: "com.microsoft", inputs: ["x", `w${i}`, `s${i}`], outputs: [y] });
    } else if (variant === "MatMulInteger") {
      const { b } = toInt8Columns(w, rows, cols);
      initializers.push(bytesTensor(`w${i}`, OnnxType.INT8, [cols, rows], b));
      nodes.push({ opType: "MatMulInteger", inputs: ["x", `w${i}`, "xzp"], outputs: [y] });
      inputType = OnnxType.UINT8;
      outputType = OnnxType.INT32;
    }
  });
  if (variant === "MatMulInteger") initializers.push(bytesTensor("xzp", OnnxType.UINT8, [], new Uint8Array([128])));
  const bytes = encodeModel({
    opsets: [{ domain: "", version: 21 }, { domain: "com.microsoft", version: 1 }],
    graph: {
      name: `${variant}_${rows}x${cols}`,
      nodes,
      initializers,
      inputs: [{ name: "x", elemType: inputType, shape: [1, cols] }],
      outputs: outputs.map((name) => ({ name, elemType: outputType, shape: [1, rows] })),
    },
  });
  return {
    bytes,
    outputs,
    feeds(ort, x) {
      if (variant === "MatMulInteger") {
        // activations quantized once, outside the timed run: u8 = round(x / s) + 128
        let amax = 0;
        for (const v of x) amax = Math.max(amax, Math.abs(v));
        const s = amax / 127 || 1;
        const q = new Uint8Array(x.length);
        for (let i = 0; i < x.length; i++) q[i] = Math.round(x[i] / s) + 128;
        return { x: new ort.Tensor("uint8", q, [1, cols]) };
      }
      return { x: new ort.Tensor("float32", x, [1, cols]) };
    },
  };
}

export interface OrtSession {
  run(x: Float32Array): Promise<Array<Float32Array | Int32Array>>;
  release(): Promise<void>;
}

export async function createOrtSession(graph: OrtGraph): Promise<OrtSession> {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(graph.bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  return {
    async run(x) {
      const result = await session.run(graph.feeds(ort, x) as Record<string, import("onnxruntime-web").Tensor>);
      return graph.outputs.map((name) => result[name].data as Float32Array | Int32Array);
    },
    release: () => session.release(),
  };
}

/** y = W x with W's dequantized values in f64 accumulation: the reference for output checks. */
export function referenceProduct(quant: BenchQuant, w: Uint8Array, rows: number, cols: number, x: Float32Array): Float64Array {
  const wf = dequantize(quant, w, rows, cols);
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += wf[r * cols + c] * x[c];
    y[r] = s;
  }
  return y;
}

/** Relative RMS difference of a against the reference b. */
export function relRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}
