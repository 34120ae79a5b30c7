// The K-quant measurements of `npm run bench` (full run): on the stories110M shape, our q4_K
// decode against our q4_0 (the two loaded at once, decoded turn about), and a Q4_K_M GGUF file
// (our writer, llama.cpp's mix) decoded by our runtime and by llama.cpp turn about, and prefilled
// (node-llama-cpp, one CPU thread, installed on demand as for scripts/fidelity).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildArtifacts } from "../build/pipeline";
import { readGguf } from "../import/gguf";
import { llama2cTokenizerToGguf, writeGguf } from "../import/gguf-writer";
import { readLlama2cCheckpoint } from "../import/llama2c";
import { benchPrompt, decodeSession, ensureBuilt, pairedDecode, runInProcess, type BuiltModel, type PairedDecode, type RunOptions } from "./models";
import { llamaCppSession, loadLlamaCpp } from "./peer";
import { median } from "./timing";
import { BENCH_DIR } from "./roofline";

export interface KQuantResult {
  shape: "stories110M";
  /** q4_K (our build) against q4_0, decoded turn about. */
  pair: PairedDecode;
  q4kPrefillTokensPerSecond: number;
  q4_0PrefillTokensPerSecond: number;
  /** The same Q4_K_M GGUF file in our runtime and in llama.cpp. */
  q4km: {
    /** Decode: turn about with llama.cpp when it runs (else runInProcess's). */
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

/**
 * Decode of the same file by ours and by llama.cpp, turn about as scripts/bench/peer.ts does (a
 * shared machine drifts more between two separate measurements than the margin): `rounds`
 * turns each, o.decodeTokens tokens after the same prompt in each; medians of all per-token times. Prefill:
 * llama.cpp's median over o.prefillReps after one warm-up (ours comes from runInProcess).
 */
async function versusLlamaCpp(built: BuiltModel, path: string, o: RunOptions, rounds: number): Promise<{ ours: number; llamaCpp: { decodeTokensPerSecond: number; prefillTokensPerSecond: number } }> {
  const vocab = built.manifest.config.vocabSize;
  const llama = await loadLlamaCpp(() => {});
  const cpp = await llamaCppSession(llama, path, 1024);
  try {
    const long = benchPrompt(o.prefillTokens, vocab);
    const pre: number[] = [];
    for (let r = 0; r <= o.prefillReps; r++) {
      const ms = await cpp.prefill(long);
      if (r > 0) pre.push(ms);
    }
    const mine = await decodeSession(built, o);
    const prompt = benchPrompt(o.promptTokens, vocab);
    const oursDecode = (n: number) => Array.from({ length: n }, (_, i) => mine.step(i));
    // one warm-up turn each, then turns in alternating order
    oursDecode(o.decodeWarmup);
    await cpp.decode(prompt, o.decodeWarmup);
    const a: number[] = [], b: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        a.push(...oursDecode(o.decodeTokens));
        b.push(...(await cpp.decode(prompt, o.decodeTokens)));
      } else {
        b.push(...(await cpp.decode(prompt, o.decodeTokens)));
        a.push(...oursDecode(o.decodeTokens));
      }
    }
    return { ours: 1000 / median(a), llamaCpp: { decodeTokensPerSecond: 1000 / median(b), prefillTokensPerSecond: (1000 * long.length) / median(pre) } };
  } finally {
    await cpp.dispose();
    await llama.dispose();
  }
}

export async function benchKQuants(q4_0: BuiltModel, tokenizer: string, o: RunOptions, rounds: number, tokenizerFile: Uint8Array, log: (s: string) => void): Promise<KQuantResult> {
  log("stories110M q4_k: building (cached in .edgeinfer/bench; ggml's reference quantizer, slow the first time)");
  const q4k = await ensureBuilt("stories110M", "q4_k", tokenizer);
  log("stories110M q4_k and q4_0: decode turn about (paired ratio)");
  const pair = await pairedDecode(q4k, q4_0, o, rounds);
  const q4kRun = await runInProcess(q4k, o, false, tokenizerFile);
  const q4_0Run = await runInProcess(q4_0, o, false, tokenizerFile);
  log("stories110M Q4_K_M GGUF: ours and llama.cpp (node-llama-cpp, one thread), decode turn about");
  const path = q4kmFile(q4_0, tokenizer);
  const q4km = await builtFromGguf(path);
  const ours = await runInProcess(q4km, o, false, tokenizerFile);
  const result: KQuantResult = {
    shape: "stories110M",
    pair,
    q4kPrefillTokensPerSecond: q4kRun.prefillTokensPerSecond,
    q4_0PrefillTokensPerSecond: q4_0Run.prefillTokensPerSecond,
    q4km: { ours: { decodeTokensPerSecond: ours.decodeTokensPerSecond, prefillTokensPerSecond: ours.prefillTokensPerSecond }, llamaCpp: null },
  };
  try {
    const vs = await versusLlamaCpp(q4km, path, o, rounds);
    result.q4km.llamaCpp = vs.llamaCpp;
    result.q4km.ours.decodeTokensPerSecond = vs.ours;
  } catch (e) {
    result.q4km.llamaCppError = (e as Error).message.split("\n")[0];
  }
  return result;
}
