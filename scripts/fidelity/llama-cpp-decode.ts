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
async function ours(file: Uint8Array, n: number, follow?: number[]): Promise<{ tokens: number[]; gaps: number[]; first: Float32Array }> {
  const g = readGguf(file);
  const artifacts = await buildArtifacts({ id: "f", config: g.config, tensors: g.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } }, { quant: "keep" });
  const { model, caches } = await instantiateArtifacts(artifacts);
  const cache = caches[0]!;
  const out: number[] = [];
  const gaps: number[] = [];
  let logits = model.forward(PROMPT, 0, cache);
  const first = Float32Array.from(logits);
  for (let i = 0; i < n; i++) {
    let best = 0, lo = 0;
    for (let j = 1; j < logits.length; j++) {
      if (logits[j]! > logits[best]!) best = j;
      if (logits[j]! < logits[lo]!) lo = j;
    }
    out.push(best);
    const next = follow ? follow[i]! : best;
    gaps.push((logits[best]! - logits[next]!) / (logits[best]! - logits[lo]!));
    logits = model.forward([next], PROMPT.length + i, cache);
  }
  return { tokens: out, gaps, first };
}

// node-llama-cpp is not a dependency of the project: typed here as far as it is used
interface Llama {
  loadModel(o: { modelPath: string }): Promise<{
    createContext(o: { contextSize: number; threads: number }): Promise<{
      getSequence(): {
        evaluate(tokens: number[], o: { temperature: number }): AsyncGenerator<number>;
        evaluateWithMetadata(tokens: number[], m: { probabilities: true }, o: { temperature: number; topK: number; topP: number; minP: number }): AsyncGenerator<{ probabilities: Map<number, number> }>;
        clearHistory(): Promise<void>;
      };
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

/** One llama.cpp instance for every file (each getLlama adds process listeners). */
let llamaInstance: Promise<Llama> | undefined;

async function llamaCpp(path: string, n: number): Promise<{ tokens: number[]; first: Map<number, number> }> {
  const require = createRequire(join(ensureLlamaCpp(), "x.js"));
  const { getLlama } = (await import(require.resolve("node-llama-cpp"))) as { getLlama(o: { gpu: false; logLevel: string }): Promise<Llama> };
  llamaInstance ??= getLlama({ gpu: false, logLevel: "error" });
  const llama = await llamaInstance;
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 256, threads: 1 });
  const seq = context.getSequence();
  // the next-token distribution after the prompt (no sampling settings applied)
  let first = new Map<number, number>();
  for await (const item of seq.evaluateWithMetadata(PROMPT, { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 })) {
    first = item.probabilities;
    break;
  }
  await seq.clearHistory();
  const out: number[] = [];
  for await (const t of seq.evaluate(PROMPT, { temperature: 0 })) {
    out.push(t);
    if (out.length >= n) break;
  }
  await context.dispose();
  await model.dispose();
  return { tokens: out, first };
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

const { values } = parseArgs({ options: { shapes: { type: "string", default: "stories42M,stories110M,smollm2-135M" }, quants: { type: "string", default: "q4_k_m,q5_k_m,q6_k" }, tokens: { type: "string", default: "32" } } });
const n = Number(values.tokens);
const tokenizer = llama2cTokenizerToGguf(readFileSync(join(import.meta.dirname, "..", "..", "..", "shared", "models", "llama2-tokenizer.bin")), 32000);
const dir = mkdtempSync(join(tmpdir(), "edgeinfer-llama-cpp-"));
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
      const mine = await ours(file, n);
      const a = mine.tokens;
      const cpp = await llamaCpp(path, n);
      const b = cpp.tokens;
      let agree = 0;
      while (agree < n && a[agree] === b[agree]) agree++;
      if (agree < n) ok = false;
      console.log(`${shape.padEnd(13)} ${quant.padEnd(7)} ${agree === n ? "same" : "DIFF"}: ${agree}/${n} greedy tokens agree; KL(llama.cpp || ours) after the prompt ${klFrom(cpp.first, mine.first).toExponential(1)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      if (agree < n) {
        // fed llama.cpp's tokens: where does our top token differ, and by how much?
        const f = await ours(file, n, b);
        const differ = f.tokens.map((t, i) => (t === b[i] ? -1 : i)).filter((i) => i >= 0);
        const worst = Math.max(...differ.map((i) => f.gaps[i]!));
        console.log(`  fed llama.cpp's tokens: our top-1 agrees at ${n - differ.length}/${n} steps; where not, llama.cpp's token is ${(worst * 100).toFixed(2)}% of our logit range below our top at most`);
        console.log(`  ours      ${a.join(" ")}\n  llama.cpp ${b.join(" ")}`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
