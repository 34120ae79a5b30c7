// Model store (Workers KV) -> wasm memory. Reads a model's pointer and manifest, streams every shard straight into
// the weights region of a fresh kernel instance while hashing it, and only hands the model
// out once every byte is verified. A failure drops the whole instance: nothing half-loaded
// stays behind.

import { Kernels } from "../../kernels/index";
import { hex, sha256Hex } from "../model/hash";
import {
  kvKeys,
  ManifestError,
  parseManifest,
  parseModelPointer,
  type Manifest,
  type ModelPointer,
} from "../model/manifest";
import { MODEL_MEMORY_BUDGET_BYTES, PREFILL_CHUNK, formatBytes, perSequenceBytes } from "../model/memory";
import { Engine, type EngineOptions } from "./engine";
import { POINTER_CACHE_TTL_S, SETTLED_CONTENT_CACHE_TTL_S } from "./consistency";
import { getText, type ModelStore } from "../store/store";
import { MissingDataError, ModelError } from "./errors";
import { createModel } from "./models";
import type { CausalLm, KvCache } from "./weights";
import { tokenizerFromBytes, type Tokenizer } from "./tokenizer/index";

export interface LoadedModel {
  id: string;
  manifestSha256: string;
  manifest: Manifest;
  model: CausalLm;
  tokenizer: Tokenizer;
  /** Runs every generation on this model, batched (one KV cache per concurrent sequence). */
  engine: Engine;
  /** wasm memory plus the tokenizer's share of the JS heap (plus structured output's, once it is used). */
  memoryBytes: number;
  /** What the registry counts for structured output on this model (0 until its first use). */
  structuredOutputBytes: number;
}

export interface LoadOptions {
  kernelsModule: WebAssembly.Module;
  budgetBytes?: number;
  /** Give up on a KV read after this long. */
  readTimeoutMs?: number;
  /** Most KV caches (concurrent sequences) a model gets, memory permitting. */
  maxSequences?: number;
  /** Admission queue and timeouts of each model's engine. */
  engine?: EngineOptions;
  /** cacheTtl (seconds) of the content-addressed reads (see consistency.ts). */
  contentCacheTtl?: number;
}

const SHARD_READS_IN_FLIGHT = 4;

/** Which manifest a model id points at now, and the version before it. */
export async function resolveModelPointer(store: ModelStore, id: string, pointerKey = kvKeys.modelPointer(id)): Promise<ModelPointer> {
  const text = await kvRead(id, `pointer ${pointerKey}`, () => getText(store, pointerKey, { cacheTtl: POINTER_CACHE_TTL_S }), 10_000);
  if (text === null) throw new ModelError("unknown_model", id, `The model '${id}' does not exist`);
  try {
    return parseModelPointer(text);
  } catch (e) {
    throw new ModelError("load_failed", id, `model '${id}': ${(e as Error).message}`);
  }
}

export async function readManifest(store: ModelStore, id: string, manifestSha256: string, cacheTtl = SETTLED_CONTENT_CACHE_TTL_S): Promise<Manifest> {
  const key = kvKeys.manifest(manifestSha256);
  const text = await kvRead(id, `manifest ${key}`, () => getText(store, key, { cacheTtl }), 10_000);
  if (text === null) throw new MissingDataError(id, key, `model '${id}': manifest ${key} is missing from KV`);
  if ((await sha256Hex(text)) !== manifestSha256) throw new ModelError("load_failed", id, `model '${id}': manifest ${key} does not match its hash`);
  try {
    return parseManifest(text);
  } catch (e) {
    if (e instanceof ManifestError) throw new ModelError("load_failed", id, `model '${id}': ${e.message}`);
    throw e;
  }
}

/** Loads the model `manifest` (read by readManifest) describes; `budgetBytes` is what is free now. */
export async function loadModelFromStore(
  store: ModelStore,
  id: string,
  manifestSha256: string,
  manifest: Manifest,
  options: LoadOptions,
): Promise<LoadedModel> {
  const budget = options.budgetBytes ?? MODEL_MEMORY_BUDGET_BYTES;
  const plan = manifest.memory;
  if (plan.total > budget) {
    throw new ModelError("too_large", id, `model '${id}' needs ${formatBytes(plan.total)} loaded but the memory budget is ${formatBytes(budget)} (${formatBytes(plan.total - budget)} over)`);
  }
  // Extra sequences (a KV cache and a logits row each) come only from memory the plan leaves over.
  const spare = budget - plan.total;
  const extra = perSequenceBytes(manifest.config, manifest.kvCacheDtype);
  const sequences = Math.max(1, Math.min(options.maxSequences ?? 8, 1 + Math.floor(Math.min(spare, budget / 4) / extra)));
  const cacheTtl = options.contentCacheTtl ?? SETTLED_CONTENT_CACHE_TTL_S;
  const tokenizerPromise = loadTokenizer(store, id, manifest, options.readTimeoutMs ?? 30_000, cacheTtl);
  // Keep a tokenizer failure from surfacing as an unhandled rejection while shards load.
  tokenizerPromise.catch(() => {});
  const { model, caches, kernels } = await instantiateModel(manifest, options.kernelsModule, sequences, (k, ptr) =>
    copyShards(store, id, manifest, k, ptr, options.readTimeoutMs ?? 30_000, cacheTtl),
  ).catch((e) => {
    throw e instanceof ModelError ? e : new ModelError("load_failed", id, `model '${id}': ${(e as Error).message}`);
  });
  const tokenizer = await tokenizerPromise;
  return {
    id,
    manifestSha256,
    manifest,
    model,
    tokenizer,
    engine: new Engine(id, model, tokenizer, manifest, caches, options.engine),
    memoryBytes: kernels.capacityBytes + plan.tokenizer,
    structuredOutputBytes: 0,
  };
}

/**
 * A model in a fresh kernel instance sized to its plan: weights region filled by `fillWeights`
 * (KV shards in the Worker; a local file in the CLI and tests), scratch and `sequences` KV
 * caches allocated once. Each sequence past the first adds its cache and one logits row to the
 * plan (the engine computes the logits of a whole batch in one product).
 */
export async function instantiateModel(
  manifest: Manifest,
  kernelsModule: WebAssembly.Module,
  sequences: number,
  fillWeights: (kernels: Kernels, weightsPtr: number) => Promise<void>,
): Promise<{ model: CausalLm; caches: KvCache[]; kernels: Kernels }> {
  const plan = manifest.memory;
  const extra = (sequences - 1) * perSequenceBytes(manifest.config, manifest.kvCacheDtype);
  const kernels = Kernels.create(kernelsModule, plan.weights + plan.scratch + plan.kvCache + extra + 64 * 1024);
  const weightsPtr = kernels.alloc(manifest.weights.bytes, 64);
  await fillWeights(kernels, weightsPtr);
  const model = createModel(kernels, manifest, weightsPtr, Math.min(sequences, PREFILL_CHUNK));
  const caches: KvCache[] = [];
  for (let i = 0; i < sequences; i++) caches.push(model.allocateCache());
  return { model, caches, kernels };
}

async function loadTokenizer(store: ModelStore, id: string, manifest: Manifest, timeoutMs: number, cacheTtl: number): Promise<Tokenizer> {
  const entry = manifest.tokenizer;
  const key = kvKeys.tokenizer(entry.sha256);
  const bytes = await kvRead(id, `tokenizer ${key}`, () => store.get(key, { cacheTtl }), timeoutMs);
  if (bytes === null) throw new MissingDataError(id, key, `model '${id}': tokenizer ${key} is missing from KV`);
  if (bytes.byteLength !== entry.bytes || (await sha256Hex(bytes)) !== entry.sha256) {
    throw new ModelError("load_failed", id, `model '${id}': tokenizer ${key} does not match its hash`);
  }
  try {
    return tokenizerFromBytes(entry.kind, bytes, manifest.config.vocabSize);
  } catch (e) {
    throw new ModelError("load_failed", id, `model '${id}': tokenizer ${key}: ${(e as Error).message}`);
  }
}

async function copyShards(store: ModelStore, id: string, manifest: Manifest, kernels: Kernels, weightsPtr: number, timeoutMs: number, cacheTtl: number): Promise<void> {
  const shards = manifest.weights.shards;
  let next = 0;
  const worker = async () => {
    while (next < shards.length) {
      const index = next++;
      const shard = shards[index];
      await copyShard(store, id, shard.sha256, shard.bytes, kernels, weightsPtr + index * manifest.weights.shardBytes, timeoutMs, cacheTtl);
    }
  };
  const workers = Array.from({ length: Math.min(SHARD_READS_IN_FLIGHT, shards.length) }, worker);
  const results = await Promise.allSettled(workers);
  const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
}

async function copyShard(store: ModelStore, id: string, sha256: string, expectedBytes: number, kernels: Kernels, dest: number, timeoutMs: number, cacheTtl: number): Promise<void> {
  const key = kvKeys.shard(sha256);
  const stream = await kvRead(id, `shard ${key}`, () => store.getStream(key, { cacheTtl }), timeoutMs);
  if (stream === null) throw new MissingDataError(id, key, `model '${id}': shard ${key} is missing from KV`);
  const hasher = new DigestSink();
  let written = 0;
  const reader = stream.getReader();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const { done, value } = await withTimeout(reader.read(), deadline - Date.now(), () => `model '${id}': reading shard ${key} timed out`, id);
      if (done) break;
      const chunk = value instanceof Uint8Array ? value : new Uint8Array(value as ArrayBuffer);
      if (written + chunk.byteLength > expectedBytes) {
        throw new ModelError("load_failed", id, `model '${id}': shard ${key} is longer than the ${expectedBytes} bytes the manifest lists`);
      }
      kernels.u8(dest + written, chunk.byteLength).set(chunk);
      hasher.update(chunk);
      written += chunk.byteLength;
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    if (e instanceof ModelError) throw e;
    throw new ModelError("load_failed", id, `model '${id}': reading shard ${key} failed: ${(e as Error).message}`);
  }
  if (written !== expectedBytes) {
    throw new ModelError("load_failed", id, `model '${id}': shard ${key} is truncated (${written} of ${expectedBytes} bytes)`);
  }
  const actual = await hasher.digest(() => kernels.u8(dest, expectedBytes));
  if (actual !== sha256) throw new ModelError("load_failed", id, `model '${id}': shard ${key} is corrupt (its sha256 is ${actual})`);
}

/**
 * Incremental sha256: the Workers runtime's DigestStream where there is one, so no second
 * copy of a shard is ever held; elsewhere (Node) a digest of the bytes already in memory.
 */
class DigestSink {
  private readonly stream: { getWriter(): WritableStreamDefaultWriter; digest: Promise<ArrayBuffer> } | null;
  private readonly writer: WritableStreamDefaultWriter | null;
  private pending: Promise<void> = Promise.resolve();

  constructor() {
    const DigestStream = (crypto as unknown as { DigestStream?: new (alg: string) => { getWriter(): WritableStreamDefaultWriter; digest: Promise<ArrayBuffer> } }).DigestStream;
    this.stream = DigestStream ? new DigestStream("SHA-256") : null;
    this.writer = this.stream ? this.stream.getWriter() : null;
  }

  update(chunk: Uint8Array): void {
    if (this.writer) {
      this.pending = this.pending.then(() => this.writer!.write(chunk));
    }
  }

  async digest(written: () => Uint8Array): Promise<string> {
    if (!this.stream || !this.writer) return sha256Hex(written());
    await this.pending;
    await this.writer.close();
    return hex(new Uint8Array(await this.stream.digest));
  }
}

async function kvRead<T>(id: string, what: string, read: () => Promise<T>, timeoutMs: number): Promise<T> {
  try {
    return await withTimeout(read(), timeoutMs, () => `model '${id}': reading ${what} from KV timed out after ${timeoutMs} ms`, id);
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError("load_failed", id, `model '${id}': reading ${what} from KV failed: ${(e as Error).message}`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string, id: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ModelError("load_failed", id, message())), Math.max(ms, 0));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
