// Greedy decode of our runtime against llama.cpp on the same GGUF file (not part of `npm test`):
//   npx tsx scripts/fidelity/llama-cpp-decode.ts [--shapes stories42M,stories110M,smollm2-135M] [--quants q4_k_m,q5_k_m,q6_k] [--tokens 32]
// For each shape and type: a random-weight model (llama2.c's initialisation, seed 1) written as
// a GGUF file by our writer (ggml's reference quantizers, llama.cpp's Q4_K_M / Q5_K_M mix) with
// the Llama 2 vocabulary (../shared/models/llama2-tokenizer.bin); our build keeps its types and
// our runtime decodes greedily from a fixed prompt; node-llama-cpp (installed on demand, one
// CPU thread) decodes the same file from the same tokens. Prints how many of the first N tokens
// agree, and where they part: our top-1 fed llama.cpp's tokens, the gap to llama.cpp's token,
// and the KL divergence between the two next-token distributions after the prompt. Exits 1 if
// any run disagrees before N.
//
// Where a run parts, it also says why: at the first step that differs, the top-2 margin of
// llama.cpp's logits and the gap between the two top tokens in ours (both as logit differences:
// llama.cpp's log-probabilities differ from its logits by a constant), against how far the two
// log-softmax vectors lie apart over llama.cpp's 20 most likely tokens at the steps before
// (the float differences of two pipelines). With --teacher M, both are fed the same M tokens
// that llama.cpp samples itself (temperature 1, seeded): how often the top tokens agree, and the
// margins where they do not. --kv f32 builds our model with an f32 KV cache and gives llama.cpp
// f32 K and V; --flash-attention off|on|auto is llama.cpp's (node-llama-cpp's default: auto).
// --self compares llama.cpp with its defaults against llama.cpp with those settings instead of
// against ours: the same quantized pipeline with only the attention's float steps changed.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { LlamaConfig } from "../../functions/model/description";
import { instantiateArtifacts } from "../build/instance";
import { buildArtifacts } from "../build/pipeline";
import { readGguf } from "../import/gguf";
import { llama2cTokenizerToGguf, writeGguf, type GgufQuant } from "../import/gguf-writer";
import { llama2cShapeConfig, randomLlamaModel, shapes } from "../import/llama2c-writer";
import { ensureLlamaCpp } from "./llama-cpp";

const SHAPES: Record<string, LlamaConfig> = {
  stories15M: llama2cShapeConfig(shapes.stories15M),
  stories42M: llama2cShapeConfig(shapes.stories42M),
  stories110M: llama2cShapeConfig(shapes.stories110M),
  // SmolLM2-135M's shape (576-wide rows: K-quants fall back to Q5_0 / Q5_1 / Q8_0 there), with
  // the Llama 2 vocabulary instead of its own 49152 tokens
  "smollm2-135M": { ...llama2cShapeConfig({ dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, vocabSize: 32000, seqLen: 256 }), ropeTheta: 10000 },
};
const PROMPT = [1, 9038, 2501, 263, 931]; // "<s> Once upon a time"

/**
 * Our greedy tokens; with `follow` (llama.cpp's tokens), fed those instead, returning our
 * argmax at each step and, where it differs, how far llama.cpp's token is below our top logit
 * (relative to our logits' range).
 */
async function ours(file: Uint8Array, n: number, follow?: number[], kv?: "f32" | "f16"): Promise<{ tokens: number[]; gaps: number[]; first: Float32Array; logits: Float32Array[] }> {
  const g = readGguf(file);
  const artifacts = await buildArtifacts({ id: "f", config: g.config, tensors: g.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } }, { quant: "keep", kvCacheDtype: kv });
  const { model, caches } = await instantiateArtifacts(artifacts);
  const cache = caches[0]!;
  const out: number[] = [];
  const gaps: number[] = [];
  const all: Float32Array[] = [];
  let logits = model.forward(PROMPT, 0, cache);
  const first = Float32Array.from(logits);
  for (let i = 0; i < n; i++) {
    let best = 0, lo = 0;
    for (let j = 1; j < logits.length; j++) {
      if (logits[j]! > logits[best]!) best = j;
      if (logits[j]! < logits[lo]!) lo = j;
    }
    out.push(best);
    all.push(Float32Array.from(logits));
    const next = follow ? follow[i]! : best;
    gaps.push((logits[best]! - logits[next]!) / (logits[best]! - logits[lo]!));
    if (i + 1 < n) logits = model.forward([next], PROMPT.length + i, cache);
  }
  return { tokens: out, gaps, first, logits: all };
}

// node-llama-cpp is not a dependency of the project: typed here as far as it is used
interface Llama {
  loadModel(o: { modelPath: string }): Promise<{
    createContext(o: { contextSize: number; threads: number; flashAttention?: boolean | "auto"; experimentalKvCacheKeyType?: string; experimentalKvCacheValueType?: string }): Promise<{
      getSequence(): {
        evaluate(tokens: number[], o: { temperature: number }): AsyncGenerator<number>;
        evaluateWithMetadata(tokens: number[], m: { probabilities: true }, o: { temperature: number; topK: number; topP: number; minP: number; seed?: number }): AsyncGenerator<{ token: number; probabilities: Map<number, number> }>;
        clearHistory(): Promise<void>;
      };
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

/** One llama.cpp instance for every file (each getLlama adds process listeners). */
let llamaInstance: Promise<Llama> | undefined;

interface CppOptions {
  kv?: "f32" | "f16";
  flashAttention?: boolean | "auto";
}

/** llama.cpp's log-probabilities as a dense array (tokens it leaves out of the map get -Infinity). */
function logProbs(p: Map<number, number>, vocab: number): Float64Array {
  const out = new Float64Array(vocab).fill(-Infinity);
  for (const [t, v] of p) out[t] = Math.log(v);
  return out;
}

async function llamaCpp(path: string, n: number, o: CppOptions = {}, teacher = 0): Promise<{ tokens: number[]; first: Map<number, number>; sampled: number[]; steps: Map<number, number>[]; at: (prefix: number[]) => Promise<Map<number, number>>; close: () => Promise<void> }> {
  const require = createRequire(join(ensureLlamaCpp(), "x.js"));
  const { getLlama } = (await import(require.resolve("node-llama-cpp"))) as { getLlama(o: { gpu: false; logLevel: string }): Promise<Llama> };
  llamaInstance ??= getLlama({ gpu: false, logLevel: "error" });
  const llama = await llamaInstance;
  const model = await llama.loadModel({ modelPath: path });
  const kvType = o.kv === "f32" ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" } : {};
  const context = await model.createContext({ contextSize: 256, threads: 1, ...(o.flashAttention === undefined ? {} : { flashAttention: o.flashAttention }), ...kvType });
  const seq = context.getSequence();
  const raw = { temperature: 1, topK: 0, topP: 1, minP: 0 };
  // the next-token distribution after a prefix (no sampling settings applied)
  const at = async (prefix: number[]): Promise<Map<number, number>> => {
    await seq.clearHistory();
    let p = new Map<number, number>();
    for await (const item of seq.evaluateWithMetadata(prefix, { probabilities: true }, raw)) {
      p = item.probabilities;
      break;
    }
    return p;
  };
  const first = await at(PROMPT);
  await seq.clearHistory();
  const out: number[] = [];
  for await (const t of seq.evaluate(PROMPT, { temperature: 0 })) {
    out.push(t);
    if (out.length >= n) break;
  }
  // a path llama.cpp samples itself, with its distribution at every step
  const sampled: number[] = [];
  const steps: Map<number, number>[] = [];
  if (teacher > 0) {
    await seq.clearHistory();
    for await (const item of seq.evaluateWithMetadata(PROMPT, { probabilities: true }, { ...raw, seed: 7 })) {
      steps.push(item.probabilities);
      sampled.push(item.token);
      if (sampled.length >= teacher) break;
    }
  }
  const close = async () => {
    await context.dispose();
    await model.dispose();
  };
  return { tokens: out, first, sampled, steps, at, close };
}

/** The best and second-best entries of a score array. */
function top2(a: ArrayLike<number>): [number, number] {
  let b = 0, c = -1;
  for (let i = 1; i < a.length; i++) {
    if (a[i]! > a[b]!) { c = b; b = i; } else if (c < 0 || a[i]! > a[c]!) c = i;
  }
  return [b, c];
}

/** Log-softmax in double. */
function logSoftmax(l: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of l) max = Math.max(max, v);
  let sum = 0;
  for (const v of l) sum += Math.exp(v - max);
  const z = max + Math.log(sum);
  return Float64Array.from(l, (v) => v - z);
}

/** Largest |ours - llama.cpp| of the log-probabilities of llama.cpp's k most likely tokens. */
function maxDiff(cpp: Float64Array, mine: Float64Array, k = 20): number {
  const idx = Array.from(cpp.keys()).sort((x, y) => cpp[y]! - cpp[x]!).slice(0, k);
  return Math.max(...idx.map((i) => Math.abs(cpp[i]! - mine[i]!)));
}

/** KL(llama.cpp || ours) of the next-token distributions. */
function klFrom(theirs: Map<number, number>, logits: Float32Array): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  let kl = 0;
  for (const [t, p] of theirs) if (p > 0) kl += p * Math.log(p / (Math.exp(logits[t]! - max) / sum));
  return kl;
}

const { values } = parseArgs({
  options: {
    shapes: { type: "string", default: "stories42M,stories110M,smollm2-135M" },
    quants: { type: "string", default: "q4_k_m,q5_k_m,q6_k" },
    tokens: { type: "string", default: "32" },
    teacher: { type: "string", default: "0" },
    kv: { type: "string" },
    "flash-attention": { type: "string" },
    self: { type: "boolean", default: false },
  },
});
const n = Number(values.tokens);
const teacher = Number(values.teacher);
const kv = values.kv as "f32" | "f16" | undefined;
const fa = values["flash-attention"];
const cppOptions: CppOptions = { kv, flashAttention: fa === undefined ? undefined : fa === "auto" ? "auto" : fa === "on" };
const tokenizer = llama2cTokenizerToGguf(readFileSync(join(import.meta.dirname, "..", "..", "..", "shared", "models", "llama2-tokenizer.bin")), 32000);
const dir = mkdtempSync(join(tmpdir(), "edgeinfer-llama-cpp-"));
const fmt = (x: number) => x.toFixed(4);
let ok = true;
try {
  for (const shape of values.shapes.split(",")) {
    const config = SHAPES[shape];
    if (!config) throw new Error(`unknown shape ${shape}; known: ${Object.keys(SHAPES).join(", ")}`);
    const source = randomLlamaModel(config, 1);
    for (const quant of values.quants.split(",") as GgufQuant[]) {
      const t0 = performance.now();
      const file = writeGguf(source, { quant, tokenizer, name: `${shape}-random` });
      const path = join(dir, `${shape}-${quant}.gguf`);
      writeFileSync(path, file);
      if (values.self) {
        // llama.cpp (defaults) against llama.cpp (the settings given)
        const base = await llamaCpp(path, n, {}, teacher);
        const other = await llamaCpp(path, n, cppOptions, 0);
        let same = 0;
        while (same < n && base.tokens[same] === other.tokens[same]) same++;
        const diffs: number[] = [];
        let top = 0;
        for (let i = 0; i < base.steps.length; i++) {
          const lp = logProbs(base.steps[i]!, 32000), lq = logProbs(await other.at([...PROMPT, ...base.sampled.slice(0, i)]), 32000);
          diffs.push(maxDiff(lp, lq));
          if (top2(lp)[0] === top2(lq)[0]) top++;
        }
        const sorted = [...diffs].sort((x, y) => x - y);
        console.log(`${shape.padEnd(13)} ${quant.padEnd(7)} llama.cpp vs llama.cpp (${JSON.stringify(cppOptions)}): ${same}/${n} greedy tokens agree` +
          (teacher > 0 ? `; teacher-forced top-1 ${top}/${base.steps.length}, |log-prob difference| over the top 20: median ${fmt(sorted[sorted.length >> 1]!)}, max ${fmt(sorted[sorted.length - 1]!)}` : ""));
        if (same < n) ok = false;
        await base.close();
        await other.close();
        continue;
      }
      const mine = await ours(file, n, undefined, kv);
      const a = mine.tokens;
      const cpp = await llamaCpp(path, n, cppOptions, teacher);
      const b = cpp.tokens;
      let agree = 0;
      while (agree < n && a[agree] === b[agree]) agree++;
      if (agree < n) ok = false;
      console.log(`${shape.padEnd(13)} ${quant.padEnd(7)} ${agree === n ? "same" : "DIFF"}: ${agree}/${n} greedy tokens agree; KL(llama.cpp || ours) after the prompt ${klFrom(cpp.first, mine.first).toExponential(1)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      if (agree < n) {
        // fed llama.cpp's tokens: where does our top token differ, and by how much?
        const f = await ours(file, n, b, kv);
        const differ = f.tokens.map((t, i) => (t === b[i] ? -1 : i)).filter((i) => i >= 0);
        const worst = Math.max(...differ.map((i) => f.gaps[i]!));
        console.log(`  fed llama.cpp's tokens: our top-1 agrees at ${n - differ.length}/${n} steps; where not, llama.cpp's token is ${(worst * 100).toFixed(2)}% of our logit range below our top at most`);
        console.log(`  ours      ${a.join(" ")}\n  llama.cpp ${b.join(" ")}`);
        // the first step that differs: both sides' margins against the float differences before it
        const diffs: number[] = [];
        for (let i = 0; i <= agree; i++) {
          const lp = logProbs(await cpp.at([...PROMPT, ...b.slice(0, i)]), 32000);
          diffs.push(maxDiff(lp, logSoftmax(mine.logits[i]!)));
          if (i === agree) {
            const [c1, c2] = top2(lp);
            const m = mine.logits[i]!;
            const [o1, o2] = top2(m);
            console.log(`  at step ${agree}: llama.cpp's top-2 margin ${fmt(lp[c1]! - lp[c2]!)} (token ${c1} over ${c2}); ours ${fmt(m[o1]! - m[o2]!)} (token ${o1} over ${o2}), llama.cpp's token ${fmt(m[o1]! - m[c1]!)} below our top; |log-prob ours - llama.cpp| over llama.cpp's top 20: ${fmt(diffs[i]!)} here, up to ${fmt(Math.max(...diffs.slice(0, i), 0))} at the steps before`);
          }
        }
      }
      if (teacher > 0) {
        // both fed the tokens llama.cpp sampled: top-1 agreement, margins where they part
        const f = await ours(file, teacher, cpp.sampled, kv);
        let same = 0;
        const parted: Array<{ cpp: number; ours: number; diff: number }> = [];
        const allDiffs: number[] = [];
        cpp.steps.forEach((p, i) => {
          const lp = logProbs(p, 32000);
          const m = f.logits[i]!;
          const d = maxDiff(lp, logSoftmax(m));
          allDiffs.push(d);
          const [c1, c2] = top2(lp);
          const [o1, o2] = top2(m);
          if (c1 === o1) same++;
          else parted.push({ cpp: lp[c1]! - lp[c2]!, ours: m[o1]! - m[o2]!, diff: d });
        });
        const sorted = [...allDiffs].sort((x, y) => x - y);
        console.log(`  teacher-forced on ${cpp.steps.length} tokens llama.cpp sampled: top-1 agrees at ${same}/${cpp.steps.length}; |log-prob ours - llama.cpp| over its top 20: median ${fmt(sorted[sorted.length >> 1]!)}, max ${fmt(sorted[sorted.length - 1]!)}` +
          (parted.length ? `; where they part, top-2 margins llama.cpp ${parted.map((x) => fmt(x.cpp)).join(", ")}, ours ${parted.map((x) => fmt(x.ours)).join(", ")}` : ""));
      }
      await cpp.close();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
