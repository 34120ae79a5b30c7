// The benchmark models: random-weight llama2.c checkpoints of the TinyStories shapes, built
// at each quant with the real build pipeline, cached under .edgeinfer/bench/, and measured in
// process (Node 22) on the real runtime: decode and prefill speed, memory plan, bytes and
// multiply-adds per token.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rowBytes } from "../../kernels/quant";
import { tensorNames, type LlamaConfig } from "../../functions/model/description";
import { MANIFEST_VERSION, type Manifest, type MemoryPlan } from "../../functions/model/manifest";
import { sha256Hex } from "../../functions/model/hash";
import { instantiateWeights } from "../build/instance";
import { tokenizerFromBytes } from "../../functions/runtime/tokenizer/index";
import { buildArtifacts, defaultCacheDtype } from "../build/pipeline";
import { checkFit, weightsBytes } from "../build/fit";
import { llama2cShapeConfig, randomLlamaModel, shapes, writeLlama2cCheckpoint } from "../import/llama2c-writer";
import { expectedLlamaTensors } from "../import/types";
import { loadLlama2cSource } from "../sources/load";
import { projectRoot } from "../paths";
import { BENCH_DIR } from "./roofline";
import { median } from "./timing";
import type { BenchQuant } from "./weights";

export type ShapeName = keyof typeof shapes;
export const SHAPE_NAMES = Object.keys(shapes) as ShapeName[];
export const SEED = 42;

export function shapeConfig(shape: ShapeName): LlamaConfig {
  return llama2cShapeConfig(shapes[shape], true);
}

export function modelId(shape: ShapeName, quant: BenchQuant | "q4_k"): string {
  return `bench-${shape}-${quant}`;
}

/** Sources whose change makes cached artifacts stale (formats, quantizers, layout, plan). */
const CACHE_INPUTS = [
  "kernels/quant.ts",
  "scripts/build/pipeline.ts",
  "scripts/build/quantize.ts",
  "functions/model/memory.ts",
  "functions/model/manifest.ts",
  "scripts/import/llama2c-writer.ts",
  "scripts/import/llama2c.ts",
];

function cacheKey(parts: unknown[]): string {
  const h = createHash("sha256");
  h.update(JSON.stringify(parts));
  for (const f of CACHE_INPUTS) h.update(readFileSync(join(projectRoot, f)));
  return h.digest("hex").slice(0, 16);
}

/**
 * Removes cache entries `<prefix>-<16 hex>[suffix]` in dir other than `keep` (stale after a
 * source or format change). Only names of exactly that form are touched.
 */
export function pruneStale(dir: string, prefix: string, suffix: string, keep: string): void {
  if (!existsSync(dir)) return;
  const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-[0-9a-f]{16}${suffix.replace(".", "\\.")}$`);
  for (const name of readdirSync(dir)) {
    if (name !== keep && re.test(name)) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/** The local KV state folder the cold starts build into (one per checkpoint generation). */
export function kvStateDir(tokenizer: string, dir = BENCH_DIR): string {
  const tokHash = createHash("sha256").update(readFileSync(tokenizer)).digest("hex").slice(0, 16);
  const name = `kv-${cacheKey(["kv", SEED, tokHash, shapes])}`;
  pruneStale(dir, "kv", "", name);
  return join(dir, name);
}

/** The random-weight checkpoint of a shape (llama2.c version 1), written once. */
export function ensureCheckpoint(shape: ShapeName, dir = BENCH_DIR): string {
  mkdirSync(dir, { recursive: true });
  const key = cacheKey([shape, SEED, shapes[shape]]);
  const path = join(dir, `${shape}-${key}.bin`);
  pruneStale(dir, shape, ".bin", `${shape}-${key}.bin`);
  if (!existsSync(path)) {
    const bytes = writeLlama2cCheckpoint(randomLlamaModel(shapeConfig(shape), SEED), 1);
    writeFileSync(`${path}.tmp`, bytes);
    renameSync(`${path}.tmp`, path);
  }
  return path;
}

export interface BuiltModel {
  manifest: Manifest;
  /** The weights blob, as the shards concatenated. */
  weights: Uint8Array;
  checkpoint: string;
}

/** Build (or read from the cache) one model at one quant through the real build pipeline. */
export async function ensureBuilt(shape: ShapeName, quant: BenchQuant | "q4_k", tokenizer: string, dir = BENCH_DIR): Promise<BuiltModel> {
  const checkpoint = ensureCheckpoint(shape, dir);
  const tokHash = createHash("sha256").update(readFileSync(tokenizer)).digest("hex").slice(0, 16);
  const key = cacheKey([shape, SEED, quant, tokHash, MANIFEST_VERSION]);
  const out = join(dir, `${shape}-${quant}-${key}`);
  const manifestPath = join(out, "manifest.json");
  const weightsPath = join(out, "weights.bin");
  pruneStale(dir, `${shape}-${quant}`, "", `${shape}-${quant}-${key}`);
  if (existsSync(manifestPath) && existsSync(weightsPath)) {
    return { manifest: JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest, weights: new Uint8Array(readFileSync(weightsPath)), checkpoint };
  }
  const input = loadLlama2cSource(checkpoint, tokenizer, modelId(shape, quant));
  const artifacts = await buildArtifacts(input, { quant, kvCacheDtype: defaultCacheDtype(quant) });
  const byKey = new Map(artifacts.entries.map((e) => [e.key, e.value]));
  const weights = new Uint8Array(artifacts.manifest.weights.bytes);
  let offset = 0;
  for (const s of artifacts.manifest.weights.shards) {
    const v = byKey.get(`shards/${s.sha256}`)!;
    weights.set(v, offset);
    offset += v.byteLength;
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(weightsPath, weights);
  writeFileSync(manifestPath, JSON.stringify(artifacts.manifest));
  return { manifest: artifacts.manifest, weights, checkpoint };
}

/** The memory plan of a shape at a quant, from shapes alone (no build), and whether it fits. */
export function planFor(shape: ShapeName, quant: BenchQuant, tokenizerBytes: number): { plan: MemoryPlan; fits: boolean; advice: string } {
  const config = shapeConfig(shape);
  return checkFit(config, expectedLlamaTensors(config), quant, defaultCacheDtype(quant), tokenizerBytes, defaultCacheDtype);
}

export function plannedWeightsBytes(shape: ShapeName, quant: BenchQuant): number {
  const config = shapeConfig(shape);
  return weightsBytes(expectedLlamaTensors(config), quant);
}

export interface TokenCost {
  /** Bytes of weights read per decode step: every matrix (incl. the classifier) and norm vector once, one embedding row. */
  bytes: number;
  matrices: number;
  vectors: number;
  classifier: number;
  embeddingRow: number;
  /** Multiply-adds of the matrix products per decode step. */
  macs: number;
  /** Of which the classifier's (a prefill runs it for the last prompt token only). */
  classifierMacs: number;
}

/**
 * What one decode step reads from the weights: each tensor once, except the token embedding,
 * of which one row is read (a tied classifier reads the embedding matrix in full, as the
 * classifier, and its one row besides).
 */
export function tokenCost(manifest: Manifest): TokenCost {
  const { config } = manifest;
  const tied = config.tiedEmbeddings === true;
  let matrices = 0;
  let vectors = 0;
  let classifier = 0;
  let macs = 0;
  let classifierMacs = 0;
  let embeddingRow = 0;
  for (const t of manifest.tensors) {
    if (t.name === tensorNames.tokenEmbedding) {
      embeddingRow = rowBytes(t.dtype, t.shape[1]);
      if (tied) {
        classifier = t.bytes;
        classifierMacs = t.shape[0] * t.shape[1];
        macs += classifierMacs;
      }
      continue;
    }
    if (t.name === tensorNames.output) {
      classifier = t.bytes;
      classifierMacs = t.shape[0] * t.shape[1];
      macs += classifierMacs;
      continue;
    }
    if (t.shape.length === 2) {
      matrices += t.bytes;
      macs += t.shape[0] * t.shape[1];
    } else {
      vectors += t.bytes;
    }
  }
  return { bytes: matrices + vectors + classifier + embeddingRow, matrices, vectors, classifier, embeddingRow, macs, classifierMacs };
}

/** The distinct matrix shapes of a model and how many of each one decode step multiplies by. */
export function productShapes(config: LlamaConfig): Array<{ label: string; rows: number; cols: number; count: number }> {
  const kv = (config.dim / config.nHeads) * config.nKvHeads;
  const list = [
    { names: ["wq", "wo"], rows: config.dim, cols: config.dim, count: 2 * config.nLayers },
    { names: ["wk", "wv"], rows: kv, cols: config.dim, count: 2 * config.nLayers },
    { names: ["w1", "w3"], rows: config.hiddenDim, cols: config.dim, count: 2 * config.nLayers },
    { names: ["w2"], rows: config.dim, cols: config.hiddenDim, count: config.nLayers },
    { names: ["classifier"], rows: config.vocabSize, cols: config.dim, count: 1 },
  ];
  // equal shapes merge (kvDim == dim without grouped-query attention)
  const merged: typeof list = [];
  for (const s of list) {
    const same = merged.find((m) => m.rows === s.rows && m.cols === s.cols);
    if (same) {
      same.names.push(...s.names);
      same.count += s.count;
    } else merged.push({ ...s, names: [...s.names] });
  }
  return merged.map((m) => ({ label: `${m.rows}x${m.cols} (${m.names.join(",")})`, rows: m.rows, cols: m.cols, count: m.count }));
}

export interface RunOptions {
  promptTokens: number;
  decodeTokens: number;
  decodeWarmup: number;
  decodeReps: number;
  prefillTokens: number;
  prefillReps: number;
}

export interface InProcessResult {
  decodeMsPerToken: number;
  decodeTokensPerSecond: number;
  decodeSamples: number;
  decodeSpread: number;
  prefillMs: number;
  prefillTokensPerSecond: number;
  prefillTokens: number;
  /** wasm memory of the instance (heap base + plan, one sequence) + the plan's tokenizer share. */
  wasmMemoryBytes: number;
  peakBytes: number;
  /** JS heap growth over a generation to the full context (should be ~0: everything is preallocated). */
  fullContextHeapGrowthBytes: number;
  fullContextTokens: number;
  /**
   * What a Worker's model load does besides reading KV, timed in process (ms): parsing the
   * tokenizer, sha256 of every shard, a fresh instance with the weights copied in (and the
   * model's tables built).
   */
  load: { tokenizerMs: number; sha256Ms: number; instantiateMs: number };
}

/** A prompt of n token ids: BOS then ids spread over the vocabulary. */
export function benchPrompt(n: number, vocab: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + ((i * 7919) % (vocab - 3))));
}

/**
 * A model instance with one sequence after a o.promptTokens-token prompt, and its decode step:
 * step(i) decodes at position o.promptTokens + i (greedy) and returns the milliseconds it took.
 */
export async function decodeSession(built: BuiltModel, o: RunOptions) {
  const { manifest, weights } = built;
  const { model, caches, kernels } = await instantiateWeights(manifest, weights);
  const cache = caches[0];
  const argmax = (logits: Float32Array) => kernels.argmax(logits.byteOffset, logits.length);
  let next = argmax(model.forward(benchPrompt(o.promptTokens, manifest.config.vocabSize), 0, cache));
  const step = (i: number): number => {
    const t = performance.now();
    next = argmax(model.forward([next], o.promptTokens + i, cache));
    return performance.now() - t;
  };
  return { model, cache, kernels, argmax, step };
}

export async function runInProcess(built: BuiltModel, o: RunOptions, fullContext: boolean, tokenizerBytes: Uint8Array): Promise<InProcessResult> {
  const { manifest } = built;
  const load = await timeLoad(built, tokenizerBytes);
  const { model, cache, kernels, argmax, step } = await decodeSession(built, o);
  const vocab = manifest.config.vocabSize;

  // decode: one token at a time after a prompt; every repetition restarts at the same position
  for (let i = 0; i < o.decodeWarmup; i++) step(i % o.decodeTokens);
  const steps: number[] = [];
  for (let r = 0; r < o.decodeReps; r++) {
    for (let i = 0; i < o.decodeTokens; i++) steps.push(step(i));
  }
  const decodeMs = median(steps);
  const sorted = [...steps].sort((a, b) => a - b);
  const spread = (sorted[Math.floor(0.75 * (sorted.length - 1))] - sorted[Math.floor(0.25 * (sorted.length - 1))]) / decodeMs;

  // prefill: the whole prompt through forward() at once (chunked matrix-matrix kernels)
  const long = benchPrompt(Math.min(o.prefillTokens, manifest.config.seqLen), vocab);
  model.forward(long, 0, cache); // warm-up
  const pre: number[] = [];
  for (let r = 0; r < o.prefillReps; r++) {
    const t = performance.now();
    model.forward(long, 0, cache);
    pre.push(performance.now() - t);
  }
  const prefillMs = median(pre);

  // a generation to the full context: nothing may be allocated along the way
  let heapGrowth = 0;
  let fullTokens = 0;
  if (fullContext) {
    const seqLen = manifest.config.seqLen;
    const before = process.memoryUsage().heapUsed;
    let pos = 0;
    // the context filled by a prompt (chunked prefill), then the last few tokens decoded
    const first = benchPrompt(Math.max(1, seqLen - 8), vocab);
    let next = argmax(model.forward(first, 0, cache));
    pos = first.length;
    let peak = 0;
    while (pos < seqLen) {
      next = argmax(model.forward([next], pos++, cache));
      if ((pos & 63) === 0) peak = Math.max(peak, process.memoryUsage().heapUsed - before);
    }
    heapGrowth = Math.max(peak, process.memoryUsage().heapUsed - before);
    fullTokens = pos;
  }
  const wasmMemoryBytes = kernels.memory.buffer.byteLength;
  return {
    decodeMsPerToken: decodeMs,
    decodeTokensPerSecond: 1000 / decodeMs,
    decodeSamples: steps.length,
    decodeSpread: spread,
    prefillMs,
    prefillTokensPerSecond: (1000 * long.length) / prefillMs,
    prefillTokens: long.length,
    wasmMemoryBytes,
    peakBytes: wasmMemoryBytes + manifest.memory.tokenizer,
    fullContextHeapGrowthBytes: Math.max(0, heapGrowth),
    fullContextTokens: fullTokens,
    load,
  };
}

/** Decode tokens/s of two models measured turn about, and their ratio (a / b). */
export interface PairedDecode {
  a: string;
  b: string;
  aTokensPerSecond: number;
  bTokensPerSecond: number;
  ratio: number;
  /** Turns each model took; each turn decodes `decodeTokens` steps. */
  rounds: number;
}

/**
 * Both models loaded at once and decoded in alternating turns of o.decodeTokens steps (after a
 * warm-up turn each), so a ratio between them is taken under the same machine conditions: a
 * shared machine's speed drifts by more than the margins the targets care about between two
 * measurements made one after the other. Medians of every step of every turn.
 */
export async function pairedDecode(a: BuiltModel, b: BuiltModel, o: RunOptions, rounds: number): Promise<PairedDecode> {
  const load = async (built: BuiltModel) => {
    const { step } = await decodeSession(built, o);
    const steps: number[] = [];
    const turn = (record: boolean) => {
      for (let i = 0; i < o.decodeTokens; i++) {
        const ms = step(i);
        if (record) steps.push(ms);
      }
    };
    return { turn, steps };
  };
  const ma = await load(a);
  const mb = await load(b);
  ma.turn(false);
  mb.turn(false);
  for (let r = 0; r < rounds; r++) {
    // alternate which goes first, so neither always follows the other
    if (r % 2 === 0) { ma.turn(true); mb.turn(true); } else { mb.turn(true); ma.turn(true); }
  }
  const aTps = 1000 / median(ma.steps), bTps = 1000 / median(mb.steps);
  return { a: a.manifest.id, b: b.manifest.id, aTokensPerSecond: aTps, bTokensPerSecond: bTps, ratio: aTps / bTps, rounds };
}

/** The load's CPU work in process, median of 3 (the Worker adds KV reads and streaming). */
async function timeLoad(built: BuiltModel, tokenizerBytes: Uint8Array): Promise<InProcessResult["load"]> {
  const { manifest, weights } = built;
  const tok: number[] = [];
  const sha: number[] = [];
  const inst: number[] = [];
  for (let i = 0; i < 3; i++) {
    let t = performance.now();
    tokenizerFromBytes(manifest.tokenizer.kind, tokenizerBytes, manifest.config.vocabSize);
    tok.push(performance.now() - t);
    t = performance.now();
    let offset = 0;
    for (const s of manifest.weights.shards) {
      await sha256Hex(weights.subarray(offset, offset + s.bytes));
      offset += s.bytes;
    }
    sha.push(performance.now() - t);
    t = performance.now();
    await instantiateWeights(manifest, weights);
    inst.push(performance.now() - t);
  }
  return { tokenizerMs: median(tok), sha256Ms: median(sha), instantiateMs: median(inst) };
}
