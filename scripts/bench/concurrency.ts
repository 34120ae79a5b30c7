// The concurrency curve: N greedy streams decoding at once through the batched step engine (in
// process, the Worker's runtime on Node), aggregate decode tokens/s beside one stream's, and the
// memory each N needs (weights + N KV caches + scratch and logits rows). Every stream's tokens
// are checked against the same stream decoded alone.

import { Engine, type GenerationParams } from "../../functions/runtime/engine";
import { instantiateWeights } from "../build/instance";
import { tokenizerFromBytes } from "../../functions/runtime/tokenizer/index";
import type { BuiltModel } from "./models";

export interface ConcurrencyPoint {
  streams: number;
  /** Decode tokens per second summed over the streams (prompts already in the caches). */
  tokensPerSecond: number;
  /** tokensPerSecond / one stream's. */
  speedup: number;
  steps: number;
  /** wasm memory of an instance with `streams` KV caches. */
  memoryBytes: number;
  /** Whether that memory fits one isolate's model budget. */
  fitsBudget: boolean;
  /** Streams whose tokens differed from the same stream alone (must be 0). */
  mismatches: number;
}

export interface ConcurrencyOptions {
  streams: number[];
  promptTokens: number;
  decodeTokens: number;
}

export async function concurrencyCurve(built: BuiltModel, tokenizerBytes: Uint8Array, o: ConcurrencyOptions): Promise<ConcurrencyPoint[]> {
  const { manifest, weights } = built;
  const tokenizer = tokenizerFromBytes(manifest.tokenizer.kind, tokenizerBytes, manifest.config.vocabSize);
  const vocab = manifest.config.vocabSize;
  const params = (i: number): GenerationParams => ({
    // distinct prompts so the streams really differ
    promptIds: [1, ...Array.from({ length: o.promptTokens - 1 }, (_, t) => 3 + ((i * 7919 + t * 104729) % (vocab - 3)))],
    maxTokens: o.decodeTokens,
    temperature: 0,
    topP: 1,
    seed: i,
    stop: [],
  });
  const run = async (n: number) => {
    const { model, caches, kernels } = await instantiateWeights(manifest, weights, n);
    // Identity is checked by the tests; here a model without stop tokens keeps every stream at full length.
    const engine = new Engine(manifest.id, model, Object.create(tokenizer, { stopIds: { value: [] } }), manifest, caches, { maxQueue: n });
    const seqs = Array.from({ length: n }, (_, i) => engine.submit(params(i)));
    // prompts first (not timed), then decode steps until every stream is done
    while (seqs.some((s) => s.prefilling || s.state === "queued")) engine.step();
    const startTokens = seqs.reduce((t, s) => t + s.completionIds.length, 0);
    const stepsBefore = engine.steps;
    const t0 = performance.now();
    while (engine.step());
    const ms = performance.now() - t0;
    const tokens = seqs.reduce((t, s) => t + s.completionIds.length, 0) - startTokens;
    return { tokensPerSecond: (1000 * tokens) / ms, steps: engine.steps - stepsBefore, memoryBytes: kernels.capacityBytes, ids: seqs.map((s) => s.completionIds) };
  };
  await run(Math.max(...o.streams)); // warm-up: the JIT has seen every path before anything is timed
  const alone = await run(1);
  const points: ConcurrencyPoint[] = [];
  for (const n of o.streams) {
    const r = n === 1 ? alone : await run(n);
    // stream 0 has the same prompt at every N: its tokens must not depend on the company it keeps
    const mismatches = r.ids[0].join() === alone.ids[0].join() ? 0 : 1;
    points.push({
      streams: n,
      tokensPerSecond: r.tokensPerSecond,
      speedup: r.tokensPerSecond / alone.tokensPerSecond,
      steps: r.steps,
      memoryBytes: r.memoryBytes,
      fitsBudget: r.memoryBytes <= manifest.memory.budget,
      mismatches,
    });
  }
  return points;
}

/**
 * One greedy stream through the engine in process, measured as the API measurement measures a
 * stream under wrangler dev (scripts/bench/coldstart.ts): the same prompt ids and max_tokens, and
 * tokens/s from the first generated token to the last. The model stays loaded between runs, as
 * it does in a Worker; each call returns one run's rate.
 */
export async function engineStream(built: BuiltModel, tokenizerBytes: Uint8Array, promptIds: number[], maxTokens: number): Promise<() => number> {
  const { manifest, weights } = built;
  const tokenizer = tokenizerFromBytes(manifest.tokenizer.kind, tokenizerBytes, manifest.config.vocabSize);
  const { model, caches } = await instantiateWeights(manifest, weights, 1);
  // as in concurrencyCurve: no stop tokens, so the stream always runs to max_tokens
  const engine = new Engine(manifest.id, model, Object.create(tokenizer, { stopIds: { value: [] } }), manifest, caches, { maxQueue: 1 });
  return () => {
    const seq = engine.submit({ promptIds, maxTokens, temperature: 0, topP: 1, seed: 0, stop: [] });
    while (seq.completionIds.length === 0 && engine.step());
    const first = performance.now();
    const firstTokens = seq.completionIds.length;
    while (engine.step());
    return (1000 * (seq.completionIds.length - firstTokens)) / (performance.now() - first);
  };
}
