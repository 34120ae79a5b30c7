// The model store: where built models (shards, tokenizers, manifests, pointers) and customer
// records live, as both the Worker (loader, registry) and the CLI (build, deploy, gc) see it. The
// keys are manifest.ts's kvKeys. Workers KV is the backend today (kv.ts); another backend is one
// new file implementing ModelStore (memory.ts holds one in memory; the CLI's folder and wrangler
// backends are in scripts/kv/targets.ts).

export interface ReadOptions {
  /**
   * How long (seconds) a location may answer this read, a value or its absence, from its cache:
   * Workers KV's cacheTtl (at least 30), which consistency.ts chooses. Backends without a cache
   * ignore it.
   */
  cacheTtl?: number;
}

export interface StoreKeyInfo {
  key: string;
  /** When the entry was last written, ms since the epoch; null for one written without a time (before times were kept). */
  writtenAt: number | null;
}

export interface ModelStore {
  /** What it is, for messages ("local KV (.wrangler/state)", "folder out/"). */
  readonly description: string;
  /** The value, or null when there is no such key. */
  get(key: string, options?: ReadOptions): Promise<Uint8Array | null>;
  /** The value as a stream of chunks (a shard goes straight into wasm memory), or null when there is no such key. */
  getStream(key: string, options?: ReadOptions): Promise<ReadableStream<Uint8Array> | null>;
  /** Writes the entry (a reader sees all of it or none) and records when (see listWithTimes). */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Removes the entry; nothing happens when there is none. */
  delete(key: string): Promise<void>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<string[]>;
  /** As list, with when each entry was last written. */
  listWithTimes(prefix: string): Promise<StoreKeyInfo[]>;
  /** Lets go of what the backend holds (a local KV proxy, scratch files). */
  close(): Promise<void>;
}

/** The metadata every put attaches in KV (local and remote): when it was written. */
export interface EntryMetadata {
  writtenAt: number;
}

export function writtenAtOf(metadata: unknown): number | null {
  const t = (metadata as Partial<EntryMetadata> | null | undefined)?.writtenAt;
  return typeof t === "number" && Number.isFinite(t) ? t : null;
}

/** A value as JSON (pointers, records), or null when there is no such key. */
export async function getJson<T>(store: ModelStore, key: string, options?: ReadOptions): Promise<T | null> {
  const text = await getText(store, key, options);
  return text === null ? null : (JSON.parse(text) as T);
}

/** A value as UTF-8 text (pointers, manifests, records), or null when there is no such key. */
export async function getText(store: ModelStore, key: string, options?: ReadOptions): Promise<string | null> {
  const bytes = await store.get(key, options);
  return bytes === null ? null : new TextDecoder().decode(bytes);
}
