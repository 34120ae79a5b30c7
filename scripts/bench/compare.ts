// One matrix-vector product (decode, M = 1) on one shape: our kernel (Kernels.matmul with
// nTok = 1, after quantizing the activations for q8_0 / q4_0) against onnxruntime-web's
// operators for the same weights. Both sides cycle through the same number of distinct weight
// copies so caches treat them alike, and both report the median time per product.

import { Kernels } from "../../kernels/index";
import { loadKernelsModuleForNode } from "../../kernels/node";
import { rowBytes } from "../../kernels/quant";
import { buildOrtGraph, createOrtSession, EXACT_VARIANTS, referenceProduct, relRms, VARIANTS, type OrtSession, type OrtVariant } from "./ort";
import { lcg, median } from "./timing";
import { randomMatrix, type BenchQuant } from "./weights";

export interface CompareOptions {
  warmup: number;
  reps: number;
  /** Distinct weight copies: enough to cover this many bytes (the model's weights per token), within [minCopies, maxCopies]. */
  workingSetBytes: number;
  minCopies: number;
  maxCopies: number;
  /** Check outputs against a float64 reference on the first copy. */
  check: boolean;
}

export interface VariantResult {
  variant: OrtVariant;
  /** ms per product, or null when the operator failed (error says why). */
  ms: number | null;
  error?: string;
  /** Relative RMS difference from the reference product (exact-value variants only). */
  relRms?: number;
  sessionMs?: number;
}

export interface ShapeComparison {
  quant: BenchQuant;
  rows: number;
  cols: number;
  weightBytes: number;
  copies: number;
  oursMs: number;
  oursRelRms?: number;
  ort: VariantResult[];
  /** Fastest ORT variant that ran. */
  ortBest: { variant: OrtVariant; ms: number } | null;
  /** ORT time / our time: how many times faster ours is. */
  speedup: number | null;
}

export function copiesFor(bytes: number, o: Pick<CompareOptions, "workingSetBytes" | "minCopies" | "maxCopies">): number {
  return Math.max(o.minCopies, Math.min(o.maxCopies, Math.ceil(o.workingSetBytes / bytes)));
}

export async function compareShape(quant: BenchQuant, rows: number, cols: number, o: CompareOptions): Promise<ShapeComparison> {
  const weightBytes = rows * rowBytes(quant, cols);
  const copies = copiesFor(weightBytes, o);
  const weights = Array.from({ length: copies }, (_, i) => randomMatrix(quant, rows, cols, 1000 + i));
  const rnd = lcg(rows * 31 + cols);
  const x = new Float32Array(cols).map(() => rnd());
  const reference = o.check ? referenceProduct(quant, weights[0], rows, cols, x) : null;

  // ours
  const xqBytes = rowBytes("q8_0", cols);
  const k = Kernels.create(loadKernelsModuleForNode(), copies * (weightBytes + 64) + 4 * cols + xqBytes + 4 * rows * copies + 4096);
  const wPtrs = weights.map((w) => {
    const p = k.alloc(w.byteLength, 64);
    k.u8(p, w.byteLength).set(w);
    return p;
  });
  const xPtr = k.alloc(4 * cols, 64);
  k.f32(xPtr, cols).set(x);
  const xqPtr = k.alloc(xqBytes, 64);
  const outPtr = k.alloc(4 * rows * copies, 64);
  const quantized = quant !== "f32";
  const pass = () => {
    for (let i = 0; i < copies; i++) {
      if (quantized) {
        k.quantizeRows(xqPtr, xPtr, cols, 1);
        k.matmul(quant, outPtr + 4 * rows * i, wPtrs[i], xqPtr, rows, cols, 1);
      } else {
        k.matmul(quant, outPtr + 4 * rows * i, wPtrs[i], xPtr, rows, cols, 1);
      }
    }
  };
  for (let i = 0; i < o.warmup; i++) pass();
  const oursRelRms = reference ? (pass(), relRms(k.f32(outPtr, rows), reference)) : undefined;

  // onnxruntime-web: every variant's session first, then rounds that time ours and each
  // variant in turn, so background load hits both sides alike
  const ort: VariantResult[] = [];
  const sessions: Array<{ result: VariantResult; session: OrtSession }> = [];
  for (const variant of VARIANTS[quant]) {
    let session: OrtSession | undefined;
    try {
      const t = performance.now();
      session = await createOrtSession(buildOrtGraph(variant, quant, weights, rows, cols));
      const sessionMs = performance.now() - t;
      const first = await session.run(x);
      for (let i = 1; i < o.warmup; i++) await session.run(x);
      const result: VariantResult = {
        variant,
        ms: null,
        sessionMs,
        relRms: reference && EXACT_VARIANTS.has(variant) ? relRms(first[0], reference) : undefined,
      };
      ort.push(result);
      sessions.push({ result, session });
    } catch (e) {
      await session?.release().catch(() => {});
      ort.push({ variant, ms: null, error: ((e as Error).message ?? String(e)).split("\n")[0].slice(0, 300) });
    }
  }
  const oursSamples: number[] = [];
  const ortSamples = sessions.map(() => [] as number[]);
  const start = performance.now();
  for (let round = 0; round < o.reps || (performance.now() - start < 300 && round < 4 * o.reps); round++) {
    let t = performance.now();
    pass();
    oursSamples.push(performance.now() - t);
    for (let v = 0; v < sessions.length; v++) {
      t = performance.now();
      await sessions[v].session.run(x);
      ortSamples[v].push(performance.now() - t);
    }
  }
  sessions.forEach((s, v) => (s.result.ms = median(ortSamples[v]) / copies));
  for (const s of sessions) await s.session.release().catch(() => {});
  const oursMs = median(oursSamples) / copies;
  const ran = ort.filter((v) => v.ms !== null) as Array<VariantResult & { ms: number }>;
  const best = ran.length ? ran.reduce((a, b) => (b.ms < a.ms ? b : a)) : null;
  return {
    quant,
    rows,
    cols,
    weightBytes,
    copies,
    oursMs,
    oursRelRms,
    ort,
    ortBest: best ? { variant: best.variant, ms: best.ms } : null,
    speedup: best ? best.ms / oursMs : null,
  };
}
