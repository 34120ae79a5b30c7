// Our block formats against ggml's own code (not part of `npm test`):
//   npx tsx scripts/fidelity/quants.ts
// Installs node-llama-cpp on demand (scripts/fidelity/llama-cpp.ts) for its libggml-base.so and
// runs scripts/fidelity/ggml_quants.py (Python with numpy and `gguf`: pip install gguf) on test
// rows: gaussian, heavy-tailed, all positive, all negative, constant, zero, tiny (f16
// subnormal scales) and large. Checks, per type, that our reference quantizer writes exactly
// ggml_quantize_chunk's bytes (q8_1 / q8_K activations: the type's from_float_ref), and that our
// dequantizer gives exactly the values of ggml's to_float and of gguf-py's dequantizer; and that
// our dot products, on ggml's quantized activations, are within f32 rounding (1e-5 of the sum of
// |w x|) of ggml's CPU vec_dot for this CPU and of its portable generic code.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as Q from "../../kernels/quant";
import { matmulQ4_0, matmulQ8_0, matmulQuant } from "../../kernels/reference/matmul";
import { ggmlBaseLibrary } from "./llama-cpp";
import { rng } from "../rng";

const ROWS = 48, COLS = 1024;


/** Test rows: 8 kinds, 6 rows each. */
export function testRows(): Float32Array {
  const r = rng(2026);
  const x = new Float32Array(ROWS * COLS);
  for (let row = 0; row < ROWS; row++) {
    const kind = row % 8;
    for (let c = 0; c < COLS; c++) {
      const g = r.normal();
      let v: number;
      switch (kind) {
        case 0: v = g * 0.02; break; // trained-weight-like
        case 1: v = g * 0.02 * (r.next() < 0.01 ? 30 : 1); break; // outliers
        case 2: v = Math.abs(g) * 0.05 + 0.01; break; // all positive: nonzero mins
        case 3: v = -Math.abs(g) * 0.05 - 0.01; break; // all negative
        case 4: v = c < 512 ? 0.125 : g; break; // constant half
        case 5: v = c % 256 < 128 ? 0 : g * 0.1; break; // zero sub-blocks
        case 6: v = g * 1e-6; break; // scales in f16's subnormal range
        default: v = g * 300; break; // large
      }
      x[row * COLS + c] = v;
    }
  }
  return x;
}

const TYPES: [string, Q.QuantDType][] = [["Q4_0", "q4_0"], ["Q4_1", "q4_1"], ["Q5_0", "q5_0"], ["Q5_1", "q5_1"], ["Q8_0", "q8_0"], ["Q4_K", "q4_k"], ["Q5_K", "q5_k"], ["Q6_K", "q6_k"]];

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

export async function checkQuants(log = console.log): Promise<boolean> {
  const lib = await ggmlBaseLibrary(log);
  const dir = mkdtempSync(join(tmpdir(), "edgeinfer-quants-"));
  try {
    const x = testRows();
    writeFileSync(join(dir, "input.f32"), new Uint8Array(x.buffer));
    const py = join(dirname(fileURLToPath(import.meta.url)), "ggml_quants.py");
    const res = spawnSync("python3", [py, lib, join(dir, "input.f32"), String(ROWS), String(COLS), dir], { encoding: "utf8" });
    if (res.status !== 0) throw new Error(`ggml_quants.py failed: ${res.stderr || res.stdout}`);
    const read = (f: string) => new Uint8Array(readFileSync(join(dir, f)));
    const readF = (f: string) => new Float32Array(read(f).buffer);
    let ok = true;
    const report = (what: string, diff: number) => {
      log(`${diff < 0 ? "same " : "DIFF "} ${what}${diff < 0 ? "" : ` (first difference at ${diff})`}`);
      if (diff >= 0) ok = false;
    };
    for (const [name, dtype] of TYPES) {
      const ggml = read(`${name}.bin`);
      report(`${name} quantize: ours vs ggml_quantize_chunk (${ggml.length} bytes)`, firstDiff(Q.quantize(dtype, x, ROWS, COLS), ggml));
      const ours = Q.dequantize(dtype, ggml, ROWS, COLS);
      report(`${name} dequantize: ours vs ggml to_float`, firstDiff(ours, readF(`${name}.ggml.f32`)));
      report(`${name} dequantize: ours vs gguf-py`, firstDiff(ours, readF(`${name}.gguf.f32`)));
    }
    // dot products: ours (the reference kernels, which the wasm kernels equal bit for bit) on
    // ggml's own quantized activations, against ggml's CPU vec_dot (this CPU's build and the
    // portable generic code). Integer parts are exact in all three; the f32 sums differ in order.
    for (const [name, dtype] of TYPES) {
      const act = read(`${name}.act.bin`);
      const w = read(`${name}.bin`);
      const format = Q.activationFormat(dtype)!;
      const arow = Q.activationRowBytes(format, COLS), wrow = Q.rowBytes(dtype, COLS);
      if (name === "Q8_0" || name === "Q4_1" || name === "Q4_K") {
        // information, not a failure: ggml's CPU quantizes activations with its own SIMD code,
        // which on x86 rounds q8_0 / q8_1 codes half to even where the reference (and we) round
        // halves away from zero
        const ourAct = Q.quantizeActivations(format, x, ROWS, COLS);
        const d = firstDiff(ourAct, act);
        let codes = 0;
        for (let i = 0; i < act.length; i++) if (ourAct[i] !== act[i]) codes++;
        log(`info  ${format} activations: ours vs ggml's CPU from_float: ${d < 0 ? "same bytes" : `${codes} of ${act.length} bytes differ`}`);
      }
      const ours = new Float32Array(ROWS);
      const one = new Float32Array(1);
      for (let r = 0; r < ROWS; r++) {
        const a = (r + 1) % ROWS;
        const wr = w.subarray(r * wrow, (r + 1) * wrow), xr = act.subarray(a * arow, (a + 1) * arow);
        if (dtype === "q8_0") matmulQ8_0(one, wr, xr, 1, COLS, 1);
        else if (dtype === "q4_0") matmulQ4_0(one, wr, xr, 1, COLS, 1);
        else matmulQuant(dtype, one, wr, xr, 1, COLS, 1);
        ours[r] = one[0]!;
      }
      // |dot| bound for the relative error: sum of |w| |x| over the row
      const wf = Q.dequantize(dtype, w, ROWS, COLS);
      for (const suffix of ["dot", "dot_generic"]) {
        const theirs = readF(`${name}.${suffix}.f32`);
        let worst = 0;
        for (let r = 0; r < ROWS; r++) {
          let mag = 0;
          for (let c = 0; c < COLS; c++) mag += Math.abs(wf[r * COLS + c]! * x[((r + 1) % ROWS) * COLS + c]!);
          worst = Math.max(worst, Math.abs(ours[r]! - theirs[r]!) / (mag || 1));
        }
        const good = worst < 1e-5;
        if (!good) ok = false;
        log(`${good ? "close" : "FAR  "} ${name} dot vs ggml ${suffix === "dot" ? "vec_dot (this CPU)" : "vec_dot generic"}: worst |difference| ${worst.toExponential(1)} of sum |w x|`);
      }
    }
    report("Q8_1 activations: ours vs quantize_row_q8_1_ref", firstDiff(Q.quantizeActivations("q8_1", x, ROWS, COLS), read("Q8_1.bin")));
    report("Q8_K activations: ours vs quantize_row_q8_K_ref", firstDiff(Q.quantizeActivations("q8_k", x, ROWS, COLS), read("Q8_K.bin")));
    return ok;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ok = await checkQuants();
  console.log(ok ? "all formats equal ggml's" : "some formats differ from ggml's");
  process.exit(ok ? 0 : 1);
}
