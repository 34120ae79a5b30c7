// The K-quant measurements of `npm run bench` (full run): on the stories110M shape, our q4_K
// decode against our q4_0 (the two loaded at once, decoded turn about), and a Q4_K_M GGUF file
// (our writer, llama.cpp's mix) decoded and prefilled by our runtime and by llama.cpp
// (node-llama-cpp, one CPU thread, installed on demand as for scripts/fidelity).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { buildArtifacts } from "../build/pipeline";
import { ensureLlamaCpp } from "../fidelity/llama-cpp";
import { readGguf } from "../import/gguf";
import { llama2cTokenizerToGguf, writeGguf } from "../import/gguf-writer";
import { readLlama2cCheckpoint } from "../import/llama2c";
import { benchPrompt, ensureBuilt, pairedDecode, runInProcess, type BuiltModel, type PairedDecode, type RunOptions } from "./models";
import { BENCH_DIR } from "./roofline";

export interface KQuantResult {
  shape: "stories110M";
  /** q4_K (our build) against q4_0, decoded turn about. */
  pair: PairedDecode;
  q4kPrefillTokensPerSecond: number;
  q4_0PrefillTokensPerSecond: number;
  /** The same Q4_K_M GGUF file in our runtime and in llama.cpp. */
  q4km: {
    ours: { decodeTokensPerSecond: number; prefillTokensPerSecond: number };
    llamaCpp: { decodeTokensPerSecond: number; prefillTokensPerSecond: number } | null;
    llamaCppError?: string;
  };
}

/** stories110M's random checkpoint written as a Q4_K_M GGUF file with the Llama 2 vocabulary (cached). */
function q4kmFile(q4_0: BuiltModel, tokenizer: string): string {
  const path = join(BENCH_DIR, "stories110M-q4_k_m.gguf");
  if (!existsSync(path)) {
    const model = readLlama2cCheckpoint(new Uint8Array(readFileSync(q4_0.checkpoint)));
    writeFileSync(path, writeGguf(model, { quant: "q4_k_m", tokenizer: llama2cTokenizerToGguf(new Uint8Array(readFileSync(tokenizer)), model.config.vocabSize) }));
  }
  return path;
}

async function builtFromGguf(path: string): Promise<BuiltModel> {
  const g = readGguf(path);
  const artifacts = await buildArtifacts({ id: "bench-stories110M-q4_k_m", config: g.config, tensors: g.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } }, { quant: "keep" });
  const byKey = new Map(artifacts.entries.map((e) => [e.key, e.value]));
  const weights = new Uint8Array(artifacts.manifest.weights.bytes);
  let offset = 0;
  for (const s of artifacts.manifest.weights.shards) {
    weights.set(byKey.get(`shards/${s.sha256}`)!, offset);
    offset += s.bytes;
  }
  return { manifest: artifacts.manifest, weights, checkpoint: path };
}

/** llama.cpp on one thread: decode tokens/s (one token at a time after the prompt) and prefill tokens/s. */
async function llamaCppSpeed(path: string, o: RunOptions): Promise<{ decodeTokensPerSecond: number; prefillTokensPerSecond: number }> {
  const require = createRequire(join(ensureLlamaCpp(() => {}), "x.js"));
  // node-llama-cpp is not a dependency of the project: typed here as far as it is used
  type Seq = { evaluate(t: number[], o: { temperature: number }): AsyncGenerator<number>; evaluateWithoutGeneratingNewTokens(t: number[]): Promise<void>; clearHistory(): Promise<void> };
  const { getLlama } = (await import(require.resolve("node-llama-cpp"))) as {
    getLlama(o: { gpu: false; logLevel: string }): Promise<{ loadModel(o: { modelPath: string }): Promise<{ createContext(o: { contextSize: number; threads: number; batchSize: number }): Promise<{ getSequence(): Seq; dispose(): Promise<void> }>; dispose(): Promise<void> }> }>;
  };
  const llama = await getLlama({ gpu: false, logLevel: "error" });
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 1024, threads: 1, batchSize: 512 });
  const seq = context.getSequence();
  const vocab = 32000;
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  // prefill: the same prompt as ours, median of the repetitions after one warm-up
  const long = benchPrompt(o.prefillTokens, vocab);
  const pre: number[] = [];
  for (let r = 0; r <= o.prefillReps; r++) {
    await seq.clearHistory();
    const t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(long);
    if (r > 0) pre.push(performance.now() - t);
  }
  // decode: after a prompt of o.promptTokens, o.decodeTokens tokens one at a time
  await seq.clearHistory();
  const steps: number[] = [];
  let last = performance.now();
  let n = 0;
  for await (const _ of seq.evaluate(benchPrompt(o.promptTokens, vocab), { temperature: 0 })) {
    const now = performance.now();
    if (n > 0) steps.push(now - last); // the first one includes the prompt
    last = now;
    if (++n > o.decodeTokens) break;
  }
  await context.dispose();
  await model.dispose();
  return { decodeTokensPerSecond: 1000 / median(steps), prefillTokensPerSecond: (1000 * long.length) / median(pre) };
}

export async function benchKQuants(q4_0: BuiltModel, tokenizer: string, o: RunOptions, rounds: number, tokenizerFile: Uint8Array, log: (s: string) => void): Promise<KQuantResult> {
  log("stories110M q4_k: building (cached in .edgeinfer/bench; ggml's reference quantizer, slow the first time)");
  const q4k = await ensureBuilt("stories110M", "q4_k", tokenizer);
  log("stories110M q4_k and q4_0: decode turn about (paired ratio)");
  const pair = await pairedDecode(q4k, q4_0, o, rounds);
  const q4kRun = await runInProcess(q4k, o, false, tokenizerFile);
  const q4_0Run = await runInProcess(q4_0, o, false, tokenizerFile);
  log("stories110M Q4_K_M GGUF: ours, then llama.cpp (node-llama-cpp, one thread)");
  const path = q4kmFile(q4_0, tokenizer);
  const ours = await runInProcess(await builtFromGguf(path), o, false, tokenizerFile);
  const result: KQuantResult = {
    shape: "stories110M",
    pair,
    q4kPrefillTokensPerSecond: q4kRun.prefillTokensPerSecond,
    q4_0PrefillTokensPerSecond: q4_0Run.prefillTokensPerSecond,
    q4km: { ours: { decodeTokensPerSecond: ours.decodeTokensPerSecond, prefillTokensPerSecond: ours.prefillTokensPerSecond }, llamaCpp: null },
  };
  try {
    result.q4km.llamaCpp = await llamaCppSpeed(path, o);
  } catch (e) {
    result.q4km.llamaCppError = (e as Error).message.split("\n")[0];
  }
  return result;
}
