// llama.cpp as a peer in `npm run bench`: each shape's random checkpoint written as q8_0 and
// q4_0 GGUF files by our own writer (cached in .edgeinfer/bench), decoded and prefilled by
// llama.cpp (node-llama-cpp 3.21.1, its prebuilt CPU binary, gpu off, one thread) and by our
// runtime on the bench's own build of the same checkpoint, in alternating turns, so each ratio
// is taken under the same machine conditions; each turn also runs wasm's exact dot sequence for
// the quant (the roofline probe's), so llama.cpp's rate can be set against what wasm SIMD can do
// at all at that moment. node-llama-cpp is installed on demand as for
// scripts/fidelity; when it cannot be, the peer is skipped with the reason.

import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, join } from "node:path";
import { ensureLlamaCpp, LLAMA_CPP_VERSION } from "../fidelity/llama-cpp";
import { llama2cTokenizerToGguf, writeGguf } from "../import/gguf-writer";
import { readLlama2cCheckpoint } from "../import/llama2c";
import { projectRoot } from "../paths";
import { benchPrompt, decodeSession, ensureBuilt, ensureCheckpoint, pruneStale, shapeConfig, tokenCost, type RunOptions, type ShapeName } from "./models";
import { BENCH_DIR, sequenceProbe } from "./roofline";
import { median } from "./timing";

export type PeerQuant = "q8_0" | "q4_0";
export const PEER_QUANTS: PeerQuant[] = ["q8_0", "q4_0"];

export interface PeerSpeed {
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
}

export interface PeerRow {
  shape: ShapeName;
  quant: PeerQuant;
  gguf: string;
  ours: PeerSpeed;
  llamaCpp: PeerSpeed;
  /** ours / llama.cpp. */
  decodeRatio: number;
  prefillRatio: number;
  /** Matrix multiply-adds per prompt token of a prefill (the classifier once per prompt). */
  prefillMacsPerToken: number;
  /** llama.cpp's prefill and ours in multiply-adds per second (matrix products only). */
  llamaCppPrefillMacsPerSecond: number;
  oursPrefillMacsPerSecond: number;
  /**
   * The quant's exact dot sequence in wasm registers (scripts/bench/probe.as), measured in every
   * turn beside the two sides' (best of the turns, as a ceiling): wasm's limit under the same
   * machine conditions as llama.cpp's figure.
   */
  wasmSequenceMacsPerSecond: number;
  /** Alternating turns each side took (each: one prefill and o.decodeTokens decode steps). */
  rounds: number;
}

export interface PeerResult {
  peer: string;
  /** llama.cpp's own line of what its CPU backend uses (AVX512_VNNI = 1, ...). */
  systemInfo: string;
  rows: PeerRow[];
  /** Why a shape / quant was not measured. */
  errors: string[];
}

/** A shape's random checkpoint as a GGUF file at `quant` with the Llama 2 vocabulary, written by our writer once (cached). */
export function peerGguf(shape: ShapeName, quant: PeerQuant, tokenizer: string, dir = BENCH_DIR): string {
  const checkpoint = ensureCheckpoint(shape, dir);
  const key = createHash("sha256")
    .update(JSON.stringify([basename(checkpoint), quant]))
    .update(readFileSync(tokenizer))
    .update(readFileSync(join(projectRoot, "scripts", "import", "gguf-writer.ts")))
    .update(readFileSync(join(projectRoot, "kernels", "quant.ts")))
    .digest("hex").slice(0, 16);
  const name = `${shape}-${quant}-gguf-${key}.gguf`;
  pruneStale(dir, `${shape}-${quant}-gguf`, ".gguf", name);
  const path = join(dir, name);
  if (!existsSync(path)) {
    const model = readLlama2cCheckpoint(new Uint8Array(readFileSync(checkpoint)));
    const vocab = llama2cTokenizerToGguf(new Uint8Array(readFileSync(tokenizer)), model.config.vocabSize);
    writeFileSync(`${path}.tmp`, writeGguf(model, { quant, tokenizer: vocab }));
    renameSync(`${path}.tmp`, path);
  }
  return path;
}

// node-llama-cpp is not a dependency of the project: typed here as far as it is used
type LlamaSequence = {
  evaluate(tokens: number[], o: { temperature: number }): AsyncGenerator<number>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  clearHistory(): Promise<void>;
};
type LlamaContext = { getSequence(): LlamaSequence; dispose(): Promise<void> };
type LlamaModel = { createContext(o: { contextSize: number; threads: number; batchSize: number }): Promise<LlamaContext>; dispose(): Promise<void> };
type Llama = { loadModel(o: { modelPath: string }): Promise<LlamaModel>; systemInfo: string; dispose(): Promise<void> };

/** llama.cpp's CPU backend (installing node-llama-cpp first if needed). */
export async function loadLlamaCpp(log: (s: string) => void): Promise<Llama> {
  const require = createRequire(join(ensureLlamaCpp(log), "x.js"));
  const { getLlama } = (await import(require.resolve("node-llama-cpp"))) as { getLlama(o: { gpu: false; logLevel: string }): Promise<Llama> };
  return getLlama({ gpu: false, logLevel: "error" });
}

/** One GGUF file in llama.cpp on one thread: a timed prefill, and a timed turn of decode steps. */
export async function llamaCppSession(llama: Llama, path: string, contextSize: number) {
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize, threads: 1, batchSize: 512 });
  const seq = context.getSequence();
  return {
    /** ms to evaluate `prompt` from an empty sequence (no token generated). */
    async prefill(prompt: number[]): Promise<number> {
      await seq.clearHistory();
      const t = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      return performance.now() - t;
    },
    /** After `prompt` (not timed), `n` greedy tokens one at a time: ms of each. */
    async decode(prompt: number[], n: number): Promise<number[]> {
      await seq.clearHistory();
      const steps: number[] = [];
      let last = 0;
      let i = 0;
      for await (const _ of seq.evaluate(prompt, { temperature: 0 })) {
        const now = performance.now();
        if (i > 0) steps.push(now - last); // the first one includes the prompt
        last = now;
        if (++i > n) break;
      }
      return steps;
    },
    async dispose(): Promise<void> {
      await context.dispose();
      await model.dispose();
    },
  };
}

/** Ours and llama.cpp on one shape and quant, turn about. */
async function measureRow(llama: Llama, shape: ShapeName, quant: PeerQuant, tokenizer: string, o: RunOptions, rounds: number, probe: (quant: PeerQuant) => number): Promise<PeerRow> {
  const gguf = peerGguf(shape, quant, tokenizer);
  const built = await ensureBuilt(shape, quant, tokenizer);
  const config = shapeConfig(shape);
  const ours = await decodeSession(built, o);
  const peer = await llamaCppSession(llama, gguf, config.seqLen);
  const long = benchPrompt(Math.min(o.prefillTokens, config.seqLen), config.vocabSize);
  const prompt = benchPrompt(o.promptTokens, config.vocabSize);
  const oursPrefill = () => {
    const t = performance.now();
    ours.model.forward(long, 0, ours.cache);
    return performance.now() - t;
  };
  const oursDecode = () => Array.from({ length: o.decodeTokens }, (_, i) => ours.step(i));
  const pre = { ours: [] as number[], peer: [] as number[] };
  const dec = { ours: [] as number[], peer: [] as number[] };
  let ceiling = 0;
  try {
    // one warm-up turn each, then turns in alternating order
    oursPrefill();
    oursDecode();
    await peer.prefill(long);
    await peer.decode(prompt, o.decodeTokens);
    for (let r = 0; r < rounds; r++) {
      const turnOurs = () => {
        pre.ours.push(oursPrefill());
        dec.ours.push(...oursDecode());
      };
      const turnPeer = async () => {
        pre.peer.push(await peer.prefill(long));
        dec.peer.push(...(await peer.decode(prompt, o.decodeTokens)));
      };
      if (r % 2 === 0) { turnOurs(); await turnPeer(); } else { await turnPeer(); turnOurs(); }
      ceiling = Math.max(ceiling, probe(quant));
    }
  } finally {
    await peer.dispose();
  }
  const speed = (p: number[], d: number[]): PeerSpeed => ({ prefillTokensPerSecond: (1000 * long.length) / median(p), decodeTokensPerSecond: 1000 / median(d) });
  const a = speed(pre.ours, dec.ours);
  const b = speed(pre.peer, dec.peer);
  const cost = tokenCost(built.manifest);
  const prefillMacsPerToken = cost.macs - cost.classifierMacs * (1 - 1 / long.length);
  return {
    shape, quant, gguf: basename(gguf), ours: a, llamaCpp: b,
    decodeRatio: a.decodeTokensPerSecond / b.decodeTokensPerSecond,
    prefillRatio: a.prefillTokensPerSecond / b.prefillTokensPerSecond,
    prefillMacsPerToken,
    llamaCppPrefillMacsPerSecond: b.prefillTokensPerSecond * prefillMacsPerToken,
    oursPrefillMacsPerSecond: a.prefillTokensPerSecond * prefillMacsPerToken,
    wasmSequenceMacsPerSecond: ceiling,
    rounds,
  };
}

/** Every shape at each quant against llama.cpp; `{ error }` when llama.cpp cannot be installed or loaded here. */
export async function benchPeer(shapes: ShapeName[], quants: PeerQuant[], tokenizer: string, o: RunOptions, rounds: number, log: (s: string) => void): Promise<PeerResult | { error: string }> {
  let llama: Llama;
  try {
    llama = await loadLlamaCpp(log);
  } catch (e) {
    return { error: `llama.cpp (node-llama-cpp@${LLAMA_CPP_VERSION}) could not be installed or loaded: ${(e as Error).message.split("\n")[0]}` };
  }
  const probe = sequenceProbe(20);
  const result: PeerResult = { peer: `llama.cpp (node-llama-cpp ${LLAMA_CPP_VERSION}, prebuilt CPU binary, 1 thread)`, systemInfo: llama.systemInfo.trim(), rows: [], errors: [] };
  try {
    for (const shape of shapes) {
      for (const quant of quants) {
        log(`${shape} ${quant}: ours and llama.cpp on a GGUF file of our writer, turn about`);
        try {
          result.rows.push(await measureRow(llama, shape, quant, tokenizer, o, rounds, probe));
        } catch (e) {
          result.errors.push(`${shape} ${quant}: ${(e as Error).message.split("\n")[0]}`);
        }
      }
    }
  } finally {
    await llama.dispose();
  }
  return result;
}
