// Workers KV as a model store: the Worker's MODELS binding, and in the CLI the same namespace
// of local state through wrangler's platform proxy. Each put records its write time as KV
// metadata {writtenAt}; reads pass their cacheTtl to KV (consistency.ts decides it).

import { writtenAtOf, type EntryMetadata, type ModelStore, type ReadOptions, type StoreKeyInfo } from "./store";

/** `close` releases what opened the namespace (the CLI's proxy); the Worker's binding needs nothing. */
export function kvStore(kv: KVNamespace, description = "Workers KV", close: () => Promise<void> = async () => {}): ModelStore {
  // KV refuses a cacheTtl below 30; none at all is its default (60 s)
  const read = <T extends "arrayBuffer" | "stream">(type: T, options?: ReadOptions) => (options?.cacheTtl === undefined ? { type } : { type, cacheTtl: options.cacheTtl });
  const listWithTimes = async (prefix: string): Promise<StoreKeyInfo[]> => {
    const keys: StoreKeyInfo[] = [];
    let cursor: string | undefined;
    do {
      const page: KVNamespaceListResult<unknown> = await kv.list({ prefix, cursor });
      keys.push(...page.keys.map((k) => ({ key: k.name, writtenAt: writtenAtOf(k.metadata) })));
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    return keys;
  };
  return {
    description,
    async get(key, options) {
      const value = await kv.get(key, read("arrayBuffer", options));
      return value === null ? null : new Uint8Array(value);
    },
    async getStream(key, options) {
      return (await kv.get(key, read("stream", options))) as ReadableStream<Uint8Array> | null;
    },
    async put(key, value) {
      const metadata: EntryMetadata = { writtenAt: Date.now() };
      await kv.put(key, value, { metadata });
    },
    async delete(key) {
      await kv.delete(key);
    },
    async list(prefix) {
      return (await listWithTimes(prefix)).map((k) => k.key);
    },
    listWithTimes,
    close,
  };
}
