// The models loaded in this isolate. A model id resolves to its live manifest on every
// request (so a new version or a rollback is picked up at once); loaded models are keyed by
// manifest hash, loads in progress are shared, and the least recently used idle models are
// dropped to make room within the isolate's memory budget.
//
// KV is eventually consistent per key, so a location can read a new pointer before the data
// it names. A live version whose data is not readable here yet is not served half-done: the
// pointer's previous version serves instead, and the live one is tried again with backoff
// until its data arrives or the propagation bound passes (then it is an error). See
// consistency.ts.

import { MODEL_MEMORY_BUDGET_BYTES, formatBytes } from "../model/memory";
import { logModelEvent } from "../log";
import { contentCacheTtl, PROPAGATION_BOUND_MS, retryDelayMs } from "./consistency";
import { structuredOutputBytes } from "./constrain/constraint";
import type { ModelStore } from "../store/store";
import { MissingDataError, ModelError } from "./errors";
import { loadModelFromStore, readManifest, resolveModelPointer, type LoadedModel, type LoadOptions } from "./loader";

export interface ModelLease {
  model: LoadedModel;
  release(): void;
}

interface Entry {
  model: LoadedModel;
  lastUsed: number;
  active: number;
}

/** A version whose data this isolate could not read yet, and when to try it again. */
interface Arriving {
  firstMissingAt: number;
  attempts: number;
  retryAt: number;
  error: MissingDataError;
}

export interface RegistryOptions extends LoadOptions {
  /** The clock that ages pointers and schedules retries (tests run it virtually). */
  now?: () => number;
}

export class ModelRegistry {
  private readonly loaded = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  /** Memory promised to loads in progress, so two loads at once cannot both take the room. */
  private reserved = 0;
  /** Requests between resolving a model and pinning it, per manifest: such a model is never evicted. */
  private readonly wanted = new Map<string, number>();
  /** Live versions whose data was missing here, by manifest hash. */
  private readonly arriving = new Map<string, Arriving>();
  private clock = 0;
  private readonly now: () => number;
  /** Requests answered by a previous version because the live one's data had not arrived (tests, healthz). */
  servedPrevious = 0;

  constructor(
    private readonly options: RegistryOptions,
    private readonly budgetBytes = options.budgetBytes ?? MODEL_MEMORY_BUDGET_BYTES,
  ) {
    this.now = options.now ?? Date.now;
  }

  get memoryInUse(): number {
    let total = 0;
    for (const e of this.loaded.values()) total += e.model.memoryBytes;
    return total;
  }

  /** Each loaded model, with its engine's sequences: running, waiting for a KV cache, caches free. */
  get loadedModels(): Array<{ id: string; manifestSha256: string; memoryBytes: number; sequences: { running: number; queued: number; freeSlots: number } }> {
    return [...this.loaded.values()].map((e) => ({ id: e.model.id, manifestSha256: e.model.manifestSha256, memoryBytes: e.model.memoryBytes, sequences: e.model.engine.stats }));
  }

  /**
   * The live version of model `id`, loaded if needed. The model counts as in use (never
   * unloaded) until the lease is released, which the engine does when the generation ends.
   */
  async acquire(store: ModelStore, id: string, pointerKey?: string): Promise<ModelLease> {
    const pointer = await resolveModelPointer(store, id, pointerKey);
    const now = this.now();
    const ttl = contentCacheTtl(pointer.at, now);
    const live = pointer.manifest;
    const waiting = this.arriving.get(live);
    if (!pointer.previous || this.loaded.has(live) || !waiting || now >= waiting.retryAt) {
      try {
        const lease = await this.pin(store, id, live, ttl);
        this.arriving.delete(live);
        return lease;
      } catch (e) {
        if (!(e instanceof MissingDataError) || !pointer.previous) throw e;
        this.noteMissing(live, e);
      }
    }
    // The live version's data has not all reached this location. Past the bound that is a
    // fault; before it, the previous version (whole, long propagated) answers.
    const arriving = this.arriving.get(live)!;
    if (now >= (pointer.at ?? arriving.firstMissingAt) + PROPAGATION_BOUND_MS) throw arriving.error;
    const lease = await this.pin(store, id, pointer.previous, ttl);
    this.servedPrevious++;
    return lease;
  }

  /** One failed attempt (requests that shared the load count once), and when to try again. */
  private noteMissing(manifestSha: string, error: MissingDataError): void {
    const now = this.now();
    const before = this.arriving.get(manifestSha);
    if (before && before.retryAt > now) return;
    const attempts = (before?.attempts ?? 0) + 1;
    this.arriving.set(manifestSha, { firstMissingAt: before?.firstMissingAt ?? now, attempts, retryAt: now + retryDelayMs(attempts), error });
  }

  /** Version `manifestSha` of model `id`, loaded if needed and pinned until the lease is released. */
  private async pin(store: ModelStore, id: string, manifestSha: string, cacheTtl: number): Promise<ModelLease> {
    // Wanted from here until pinned: a load finishing for this request must not be evicted by
    // another request's makeRoom in between (that would hand out a model the registry no longer
    // counts, and load it twice).
    this.wanted.set(manifestSha, (this.wanted.get(manifestSha) ?? 0) + 1);
    let entry: Entry | undefined;
    try {
      const model = await this.get(store, id, manifestSha, cacheTtl);
      entry = this.loaded.get(manifestSha);
      if (!entry || entry.model !== model) throw new Error(`model '${id}' was unloaded while it was wanted`);
      entry.active++;
      entry.lastUsed = ++this.clock;
    } finally {
      const left = this.wanted.get(manifestSha)! - 1;
      if (left === 0) this.wanted.delete(manifestSha);
      else this.wanted.set(manifestSha, left);
    }
    const pinned = entry;
    let released = false;
    return {
      model: pinned.model,
      release: () => {
        if (!released) pinned.active--;
        released = true;
      },
    };
  }

  private async get(store: ModelStore, id: string, manifestSha: string, cacheTtl: number): Promise<LoadedModel> {
    const hit = this.loaded.get(manifestSha);
    if (hit) return hit.model;
    let pending = this.loading.get(manifestSha);
    if (!pending) {
      pending = this.load(store, id, manifestSha, cacheTtl)
        .catch((e) => {
          // Logged here, once per failed load, however many requests were waiting on it.
          console.error(`edgeinfer: ${(e as Error).message}`);
          throw e;
        })
        .finally(() => this.loading.delete(manifestSha));
      this.loading.set(manifestSha, pending);
    }
    return pending;
  }

  private async load(store: ModelStore, id: string, manifestSha: string, cacheTtl: number): Promise<LoadedModel> {
    const manifest = await readManifest(store, id, manifestSha, cacheTtl);
    const needed = manifest.memory.total;
    if (needed > this.budgetBytes) {
      throw new ModelError("too_large", id, `model '${id}' needs ${formatBytes(needed)} loaded but the memory budget is ${formatBytes(this.budgetBytes)} (${formatBytes(needed - this.budgetBytes)} over); rebuild it with a smaller quant or context`);
    }
    this.makeRoom(needed, id);
    const free = this.budgetBytes - this.memoryInUse - this.reserved;
    this.reserved += needed;
    try {
      const model = await loadModelFromStore(store, id, manifestSha, manifest, { ...this.options, budgetBytes: free, contentCacheTtl: cacheTtl });
      this.loaded.set(manifestSha, { model, lastUsed: ++this.clock, active: 0 });
      logModelEvent("model_load", { model: id, version: manifestSha, memory_bytes: model.memoryBytes });
      return model;
    } finally {
      this.reserved -= needed;
    }
  }

  /** Unloads idle models, least recently used first, until `bytes` more fit. */
  private makeRoom(bytes: number, id: string): void {
    const idle = [...this.loaded.entries()].filter(([sha, e]) => e.active === 0 && !this.wanted.has(sha)).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    while (this.memoryInUse + this.reserved + bytes > this.budgetBytes) {
      const victim = idle.shift();
      if (!victim) {
        // Nothing about the other models (they may be other customers') goes into the message.
        throw new ModelError("busy", id, `model '${id}' cannot be loaded right now: the memory it needs is in use by requests in progress; retry shortly`);
      }
      this.loaded.delete(victim[0]);
      logModelEvent("model_evict", { model: victim[1].model.id, version: victim[0], memory_bytes: victim[1].model.memoryBytes, reason: `room for ${id}` });
    }
  }

  /**
   * Counts structured output's memory for `model` (its vocabulary index and mask cache, built on
   * first use and kept while it is loaded) before it is built: idle models make room for it.
   * Throws when the model and that memory cannot fit the budget at all (too_large), or not now
   * (busy: other models are in use).
   */
  reserveStructuredOutput(model: LoadedModel): void {
    if (model.structuredOutputBytes > 0) return;
    const bytes = structuredOutputBytes(model.manifest.config.vocabSize);
    if (model.memoryBytes + bytes > this.budgetBytes) {
      throw new ModelError(
        "too_large",
        model.id,
        `model '${model.id}' cannot use structured output: with its ${formatBytes(bytes)} vocabulary index and mask cache it would need ${formatBytes(model.memoryBytes + bytes)}, over the memory budget of ${formatBytes(this.budgetBytes)}`,
      );
    }
    this.makeRoom(bytes, model.id);
    model.structuredOutputBytes = bytes;
    model.memoryBytes += bytes;
  }

  /** Drops every loaded model (tests; a fresh isolate without a restart). */
  clear(): void {
    this.loaded.clear();
  }
}
