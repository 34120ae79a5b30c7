// The whole benchmark: roofline probe, models in process (decode, prefill, memory), products
// against onnxruntime-web, cold start and memory under workerd, bundle size; then targets.

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { KERNELS_WASM_PATH } from "../../kernels/node";
import type { MemoryPlan } from "../../functions/model/manifest";
import { formatBytes } from "../../functions/model/memory";
import { projectRoot } from "../paths";
import { measureBundle, type BundleSizes } from "./bundle";
import { apiDecodeTokens, buildIntoLocalKv, measureColdStart, type ColdStartResult } from "./coldstart";
import { compareShape, type CompareOptions, type ShapeComparison } from "./compare";
import { concurrencyCurve, engineStream, type ConcurrencyOptions, type ConcurrencyPoint } from "./concurrency";
import { benchConstraint, qwenSession, storiesSession, type ConstraintBench, type ConstraintBenchOptions } from "./constrain";
import {
  benchPrompt,
  ensureBuilt,
  pairedDecode,
  type PairedDecode,
  type BuiltModel,
  ensureCheckpoint,
  kvStateDir,
  modelId,
  planFor,
  productShapes,
  runInProcess,
  shapeConfig,
  tokenCost,
  type InProcessResult,
  type RunOptions,
  type ShapeName,
  type TokenCost,
} from "./models";
import { runRoofline, type Roofline, type RooflineOptions } from "./roofline";
import { evaluateTargets, type Target } from "./targets";
import { benchKQuants, type KQuantResult } from "./kquants";
import { benchPeer, PEER_QUANTS, type PeerResult } from "./peer";
import type { BenchQuant } from "./weights";

export interface BenchOptions {
  quick: boolean;
  shapes: ShapeName[];
  quants: BenchQuant[];
  tokenizer: string;
  /** Which models get a cold start under workerd. */
  coldStart: (shape: ShapeName, quant: BenchQuant) => boolean;
  /** Which models get the full-context request under workerd. */
  coldStartFullContext: boolean;
  ort: boolean;
  bundle: boolean;
  roofline: RooflineOptions;
  run: RunOptions;
  fullContextInProcess: boolean;
  /** q4_K against q4_0 and a Q4_K_M file against llama.cpp, on stories110M (needs its q4_0 build). */
  kquants: boolean;
  /** llama.cpp beside ours on each shape at q8_0 and q4_0 (GGUF files of our writer). */
  peer: boolean;
  compare: CompareOptions;
  warmReps: number;
  /** Structured output's cost per decode step (null: not measured). */
  constraint: ConstraintBenchOptions | null;
  /** Fresh servers per cold start (median reported). */
  coldReps: number;
  /** The concurrency curve: which model, how many streams. */
  concurrency: ConcurrencyOptions & { shape: ShapeName; quant: BenchQuant };
  log: (line: string) => void;
}

export function defaultOptions(quick: boolean, tokenizer: string, log: (line: string) => void): BenchOptions {
  return {
    quick,
    shapes: quick ? ["stories15M"] : ["stories15M", "stories42M", "stories110M"],
    quants: quick ? ["q8_0", "q4_0"] : ["f32", "q8_0", "q4_0"],
    tokenizer,
    coldStart: quick ? (s, q) => s === "stories15M" && q === "q8_0" : () => true,
    coldStartFullContext: true,
    ort: true,
    bundle: true,
    // the same 256 MiB buffer in both modes so the bandwidth roof (and %roof) compare
    roofline: quick ? { bufferBytes: 256 << 20, passes: 3, computeMs: 40 } : { bufferBytes: 256 << 20, passes: 7, computeMs: 200 },
    run: quick
      ? { promptTokens: 32, decodeTokens: 16, decodeWarmup: 8, decodeReps: 2, prefillTokens: 128, prefillReps: 2 }
      : { promptTokens: 32, decodeTokens: 32, decodeWarmup: 16, decodeReps: 4, prefillTokens: 128, prefillReps: 5 },
    fullContextInProcess: true,
    kquants: !quick,
    peer: true,
    compare: quick
      ? { warmup: 2, reps: 3, workingSetBytes: 0, minCopies: 2, maxCopies: 8, check: true }
      : { warmup: 3, reps: 9, workingSetBytes: 0, minCopies: 2, maxCopies: 32, check: true },
    warmReps: quick ? 2 : 5,
    constraint: quick ? { generations: 4, tokens: 64 } : { generations: 12, tokens: 96 },
    coldReps: quick ? 2 : 3,
    concurrency: quick
      ? { shape: "stories15M", quant: "q8_0", streams: [1, 4, 8], promptTokens: 8, decodeTokens: 16 }
      : { shape: "stories42M", quant: "q8_0", streams: [1, 2, 4, 8, 16, 32], promptTokens: 16, decodeTokens: 48 },
    log,
  };
}

export interface ModelResult {
  shape: ShapeName;
  quant: BenchQuant;
  id: string;
  fits: boolean;
  plan: MemoryPlan;
  /** Why it was not run (does not fit). */
  skipped?: string;
  tokenCost?: TokenCost;
  inProcess?: InProcessResult;
  roofline?: {
    bandwidthBound: number;
    computeBound: number;
    bound: number;
    fraction: number;
    /**
     * Tokens/s if every multiply-add ran at the quant's shortest exact dot sequence (registers
     * only, nothing else counted): decode (all matrices), and prefill (the classifier only once
     * per prompt, so per token the other matrices). Ceilings, not estimates.
     */
    sequenceDecodeBound: number;
    sequencePrefillBound: number;
  };
  /** Tokens/s the matrix products alone would allow: ours and onnxruntime-web's (sum of per-shape medians). */
  matmulOnly?: { oursTokensPerSecond: number; ortTokensPerSecond: number | null; ortMissing: string[] };
  coldStart?: ColdStartResult & { buildMs: number; buildCached: boolean; coldSamplesMs: number[]; serverStartSamplesMs: number[] };
  coldStartError?: string;
}

export interface BenchResult {
  ok: true;
  mode: "quick" | "full";
  startedAt: string;
  durationMs: number;
  env: Record<string, unknown>;
  roofline: Roofline;
  models: ModelResult[];
  /** Decode ratios measured turn about (the q4_0 / q8_0 target on stories110M). */
  pairs: PairedDecode[];
  /** Aggregate decode of N streams through the batched step engine. */
  concurrency?: { model: string; points: ConcurrencyPoint[] };
  /** One stream in process through the engine, on the workload the API decode measurement runs (stories15M q8_0), turn about with it. */
  apiReference?: { model: string; tokensPerSecond: number };
  kquants?: KQuantResult;
  kquantsError?: string;
  /** llama.cpp beside ours, turn about, per shape at q8_0 and q4_0. */
  peer?: PeerResult;
  /** Why llama.cpp was not measured (it could not be installed or loaded). */
  peerError?: string;
  /** Structured output against free decoding, per model. */
  constraint: ConstraintBench[];
  constraintError?: string;
  products: Array<ShapeComparison & { shape: ShapeName; label: string; count: number }>;
  bundle?: BundleSizes;
  bundleError?: string;
  targets: Target[];
}

function environment(): Record<string, unknown> {
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, { cwd: projectRoot, encoding: "utf8" }).trim();
    } catch {
      return null;
    }
  };
  const kernels = existsSync(KERNELS_WASM_PATH) ? createHash("sha256").update(readFileSync(KERNELS_WASM_PATH)).digest("hex").slice(0, 16) : null;
  return {
    node: process.version,
    v8: process.versions.v8,
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    commit: git(["rev-parse", "--short", "HEAD"]),
    /** Uncommitted changes under kernels/ when the bench ran (the kernels measured are the working tree's). */
    kernelsDirty: (git(["status", "--porcelain", "--", "kernels"]) ?? "").split("\n").filter(Boolean),
    kernelsWasmSha256: kernels,
  };
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const started = Date.now();
  const env = environment();
  o.log(`roofline probe (${o.roofline.bufferBytes >> 20} MiB buffer)`);
  const roofline = runRoofline(o.roofline);
  const tokenizerFile = new Uint8Array(readFileSync(o.tokenizer));
  const tokenizerBytes = tokenizerFile.byteLength;

  const models: ModelResult[] = [];
  // the builds a paired measurement needs afterwards (the q4_0 / q8_0 decode ratio)
  const keep = new Map<string, BuiltModel>();
  for (const shape of o.shapes) {
    for (const quant of o.quants) {
      const { plan, fits, advice } = planFor(shape, quant, tokenizerBytes);
      const m: ModelResult = { shape, quant, id: modelId(shape, quant), fits, plan };
      models.push(m);
      if (!fits) {
        m.skipped = `does not fit: needs ${formatBytes(plan.total)}, budget ${formatBytes(plan.budget)}. ${advice}`;
        // A quantized model over the budget cannot be served, but its speed still says
        // something (and a target compares q4_0 with q8_0 on stories110M): measure it in
        // process only. f32 models over the budget are only reported.
        if (quant === "f32") {
          o.log(`${shape} ${quant}: does not fit`);
          continue;
        }
        o.log(`${shape} ${quant}: over the budget, measured in process only`);
      }
      o.log(`${shape} ${quant}: building (cached in .edgeinfer/bench)`);
      const built = await ensureBuilt(shape, quant, o.tokenizer);
      if (shape === "stories110M" && quant !== "f32") keep.set(quant, built);
      if (shape === "stories15M" && quant === "q8_0") keep.set("constraint", built);
      o.log(`${shape} ${quant}: decode and prefill in process`);
      m.inProcess = await runInProcess(built, o.run, o.fullContextInProcess, tokenizerFile);
      m.tokenCost = tokenCost(built.manifest);
      const bandwidthBound = roofline.bandwidth / m.tokenCost.bytes;
      const computeBound = (quant === "f32" ? roofline.f32MacsPerSecond : roofline.intMacsPerSecond) / m.tokenCost.macs;
      const bound = Math.min(bandwidthBound, computeBound);
      const seq = quant === "f32" ? roofline.f32MacsPerSecond : roofline.sequenceMacsPerSecond[quant];
      const prefillMacs = m.tokenCost.macs - m.tokenCost.classifierMacs * (1 - 1 / o.run.prefillTokens);
      m.roofline = {
        bandwidthBound, computeBound, bound, fraction: m.inProcess.decodeTokensPerSecond / bound,
        sequenceDecodeBound: seq / m.tokenCost.macs,
        sequencePrefillBound: seq / prefillMacs,
      };
    }
  }

  // structured output against free decoding on stories15M q8_0 and on Qwen's vocabulary
  const constraint: ConstraintBench[] = [];
  let constraintError: string | undefined;
  if (o.constraint) {
    try {
      const stories = keep.get("constraint");
      if (stories) {
        o.log("constraint: stories15M q8_0, constrained and free decoding turn about");
        constraint.push(benchConstraint(await storiesSession(stories.manifest, stories.weights, tokenizerFile), o.constraint));
      }
      const qwen = await qwenSession(o.log);
      o.log("constraint: Qwen2-layout q8_0, constrained and free decoding turn about");
      constraint.push(benchConstraint(qwen, o.constraint));
    } catch (e) {
      constraintError = (e as Error).message;
      o.log(`constraint: failed: ${constraintError}`);
    }
  }
  keep.delete("constraint");

  // the ratio target's two models decoded turn about, under the same machine conditions
  const pairs: PairedDecode[] = [];
  if (keep.has("q4_0") && keep.has("q8_0")) {
    o.log("stories110M q4_0 and q8_0: decode turn about (paired ratio)");
    pairs.push(await pairedDecode(keep.get("q4_0")!, keep.get("q8_0")!, o.run, o.quick ? 2 : 8));
  }
  let kquants: KQuantResult | undefined;
  let kquantsError: string | undefined;
  if (o.kquants && keep.has("q4_0")) {
    try {
      kquants = await benchKQuants(keep.get("q4_0")!, o.tokenizer, o.run, o.quick ? 2 : 8, tokenizerFile, o.log);
    } catch (e) {
      kquantsError = (e as Error).message.split("\n")[0];
      o.log(`K-quants: ${kquantsError}`);
    }
  }
  keep.clear();

  let peer: PeerResult | undefined;
  let peerError: string | undefined;
  const peerQuants = PEER_QUANTS.filter((q) => o.quants.includes(q));
  if (o.peer && peerQuants.length) {
    const r = await benchPeer(o.shapes, peerQuants, o.tokenizer, o.run, o.quick ? 2 : o.run.prefillReps, o.log);
    if ("error" in r) {
      peerError = r.error;
      o.log(`llama.cpp skipped: ${peerError}`);
    } else peer = r;
  }

  let concurrency: BenchResult["concurrency"];
  {
    const { shape, quant } = o.concurrency;
    o.log(`${shape} ${quant}: ${o.concurrency.streams.join(", ")} streams at once through the batched step engine`);
    const built = await ensureBuilt(shape, quant, o.tokenizer);
    concurrency = { model: modelId(shape, quant), points: await concurrencyCurve(built, tokenizerFile, o.concurrency) };
  }
  let apiReference: BenchResult["apiReference"];
  // one stream through the engine in process, the API decode measurement's workload: run turn
  // about with the API's streams under wrangler dev (stories15M q8_0's first cold start)
  let apiStream: (() => number) | undefined;
  if (o.coldStart("stories15M", "q8_0")) {
    const built = await ensureBuilt("stories15M", "q8_0", o.tokenizer);
    const config = shapeConfig("stories15M");
    apiStream = await engineStream(built, tokenizerFile, benchPrompt(32, config.vocabSize), apiDecodeTokens(config.seqLen));
  }

  const products: BenchResult["products"] = [];
  if (o.ort) {
    for (const shape of o.shapes) {
      for (const quant of o.quants) {
        const m = models.find((x) => x.shape === shape && x.quant === quant)!;
        if (!m.inProcess) continue;
        for (const s of productShapes(shapeConfig(shape))) {
          o.log(`onnxruntime-web vs ours: ${shape} ${s.label} ${quant}`);
          // as many distinct copies as make up this model's weights per token, so caches see
          // the working set a decode step of this model has (L3-resident for the small ones)
          const c = await compareShape(quant, s.rows, s.cols, { ...o.compare, workingSetBytes: m.tokenCost!.bytes });
          products.push({ ...c, shape, label: s.label, count: s.count });
        }
        const mine = products.filter((p) => p.shape === shape && p.quant === quant);
        const ours = mine.reduce((t, p) => t + p.count * p.oursMs, 0);
        const missing = mine.filter((p) => !p.ortBest).map((p) => p.label);
        const ort = missing.length ? null : mine.reduce((t, p) => t + p.count * p.ortBest!.ms, 0);
        m.matmulOnly = { oursTokensPerSecond: 1000 / ours, ortTokensPerSecond: ort === null ? null : 1000 / ort, ortMissing: missing };
      }
    }
  }

  const kvDir = kvStateDir(o.tokenizer);
  for (const m of models) {
    if (!m.fits || !o.coldStart(m.shape, m.quant)) continue;
    try {
      o.log(`${m.shape} ${m.quant}: edgeinfer build into local KV`);
      const build = await buildIntoLocalKv(ensureCheckpoint(m.shape), o.tokenizer, m.id, m.quant, kvDir);
      o.log(`${m.shape} ${m.quant}: cold start under wrangler dev`);
      const config = shapeConfig(m.shape);
      // every repetition is a new wrangler dev (a fresh isolate); the median one is reported
      const runs: ColdStartResult[] = [];
      for (let i = 0; i < o.coldReps; i++) {
        const api = i === 0 && m.shape === "stories15M" && m.quant === "q8_0";
        runs.push(await measureColdStart(m.id, config.seqLen, config.vocabSize, { persistTo: kvDir, fullContext: o.coldStartFullContext && i === 0, warmReps: o.warmReps, startTimeoutMs: 120_000, api, apiReference: api ? apiStream : undefined }));
      }
      const byCold = [...runs].sort((a, b) => a.coldMs - b.coldMs);
      const mid = byCold[(byCold.length - 1) >> 1];
      const full = runs[0];
      m.coldStart = {
        ...mid,
        // the full-context request ran in the first repetition only
        rssGrowthFullContextBytes: full.rssGrowthFullContextBytes,
        rssGrowthGenerationBytes: full.rssGrowthGenerationBytes,
        fullContextTokens: full.fullContextTokens,
        fullContextMs: full.fullContextMs,
        apiDecodeTokensPerSecond: full.apiDecodeTokensPerSecond,
        apiReferenceTokensPerSecond: full.apiReferenceTokensPerSecond,
        apiSamples: full.apiSamples,
        ttft: full.ttft,
        hwmGrowthBytes: full.hwmGrowthBytes,
        coldSamplesMs: runs.map((r) => r.coldMs),
        serverStartSamplesMs: runs.map((r) => r.serverStartMs),
        buildMs: build.buildMs,
        buildCached: build.cached,
      };
      if (full.apiReferenceTokensPerSecond) apiReference = { model: m.id, tokensPerSecond: full.apiReferenceTokensPerSecond };
    } catch (e) {
      m.coldStartError = (e as Error).message;
      o.log(`${m.shape} ${m.quant}: cold start failed: ${m.coldStartError.split("\n")[0]}`);
    }
  }

  let bundle: BundleSizes | undefined;
  let bundleError: string | undefined;
  if (o.bundle) {
    o.log("bundle size (wrangler deploy --dry-run)");
    try {
      bundle = await measureBundle();
    } catch (e) {
      bundleError = (e as Error).message;
    }
  }

  const result: BenchResult = {
    ok: true,
    mode: o.quick ? "quick" : "full",
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    env: { ...env, loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
    roofline,
    models,
    pairs,
    concurrency,
    apiReference,
    ...(kquants ? { kquants } : {}),
    ...(kquantsError ? { kquantsError } : {}),
    ...(peer ? { peer } : {}),
    ...(peerError ? { peerError } : {}),
    constraint,
    constraintError,
    products,
    bundle,
    bundleError,
    targets: [],
  };
  result.targets = evaluateTargets(result);
  result.durationMs = Date.now() - started;
  return result;
}
