// The contract every model-store backend (functions/store/store.ts) keeps, as one set of tests
// each backend's test file runs against its own store: the in-memory one and a folder in Node,
// Workers KV inside workerd.

import { beforeEach, describe, expect, it } from "vitest";
import { getText, type ModelStore } from "../../functions/store/store";

/** Reads a stream to its end, as one array. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<{ bytes: Uint8Array; chunks: number }> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value instanceof Uint8Array ? value : new Uint8Array(value as ArrayBuffer));
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    bytes.set(p, offset);
    offset += p.byteLength;
  }
  return { bytes, chunks: parts.length };
}

/** Whether two byte arrays are equal (toEqual walks a few MiB slowly). */
function same(a: Uint8Array | null, b: Uint8Array): boolean {
  if (a === null || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Deterministic bytes. */
function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/**
 * Defines the contract's tests for the stores `open` makes: a fresh one per test, with nothing
 * under `scope`, which every key the tests use starts with (a store other tests share).
 */
export function storeContract(name: string, open: () => Promise<ModelStore>, scope: () => string = () => ""): void {
  describe(`model store contract: ${name}`, () => {
    let p = "";
    beforeEach(() => {
      p = scope();
    });

    it("a key never written reads as null, whole, as a stream and as text", async () => {
      const store = await open();
      try {
        expect(await store.get(p + "shards/none")).toBeNull();
        expect(await store.getStream(p + "shards/none")).toBeNull();
        expect(await getText(store, p + "models/none")).toBeNull();
        expect(typeof store.description).toBe("string");
      } finally {
        await store.close();
      }
    });

    it("a value reads back byte for byte, whole and streamed (3 MiB), with a cacheTtl or without", async () => {
      const store = await open();
      try {
        const value = bytesOf(3 * 1024 * 1024 + 17, 1);
        await store.put(p + "shards/big", value);
        expect(same(await store.get(p + "shards/big"), value)).toBe(true);
        expect(same(await store.get(p + "shards/big", { cacheTtl: 60 }), value)).toBe(true);
        const streamed = await readAll((await store.getStream(p + "shards/big", { cacheTtl: 30 }))!);
        expect(same(streamed.bytes, value)).toBe(true);
        await store.put(p + "models/text", new TextEncoder().encode('{"manifest": "é"}'));
        expect(await getText(store, p + "models/text")).toBe('{"manifest": "é"}');
        // an empty value is a value, not an absence
        await store.put(p + "config/empty", new Uint8Array(0));
        expect(await store.get(p + "config/empty")).toEqual(new Uint8Array(0));
      } finally {
        await store.close();
      }
    });

    it("a put replaces the value; a reader's copy is its own", async () => {
      const store = await open();
      try {
        await store.put(p + "models/a", bytesOf(100, 2));
        const first = (await store.get(p + "models/a"))!;
        await store.put(p + "models/a", bytesOf(50, 3));
        expect(await store.get(p + "models/a")).toEqual(bytesOf(50, 3));
        expect(first).toEqual(bytesOf(100, 2));
        first.fill(0);
        expect(await store.get(p + "models/a")).toEqual(bytesOf(50, 3));
      } finally {
        await store.close();
      }
    });

    it("lists the keys under a prefix in key order, with when each was written", async () => {
      const store = await open();
      try {
        const before = Date.now();
        for (const key of ["shards/b", "shards/a", "manifests/x", "shards/c/d", "shardsx"]) await store.put(p + key, bytesOf(8, 4));
        const after = Date.now();
        expect(await store.list(p + "shards/")).toEqual(["shards/a", "shards/b", "shards/c/d"].map((k) => p + k));
        expect(await store.list(p + "nothing/")).toEqual([]);
        const timed = await store.listWithTimes(p + "shards/");
        expect(timed.map((k) => k.key)).toEqual(["shards/a", "shards/b", "shards/c/d"].map((k) => p + k));
        for (const k of timed) {
          // a file's mtime may be rounded down to the file system's resolution
          expect(k.writtenAt).not.toBeNull();
          expect(k.writtenAt!).toBeGreaterThanOrEqual(before - 1000);
          expect(k.writtenAt!).toBeLessThanOrEqual(after + 1000);
        }
        expect((await store.list(p + "")).length).toBe(5);
      } finally {
        await store.close();
      }
    });

    it("lists past a page of keys (KV pages at 1,000)", async () => {
      const store = await open();
      try {
        const keys = Array.from({ length: 1005 }, (_, i) => `${p}shards/${String(i).padStart(5, "0")}`);
        for (const key of keys) await store.put(key, new Uint8Array([1]));
        expect(await store.list(p + "shards/")).toEqual(keys);
      } finally {
        await store.close();
      }
    }, 120_000);

    it("a deleted key is gone from reads and lists; deleting a missing key is no error", async () => {
      const store = await open();
      try {
        await store.put(p + "publishes/p", bytesOf(10, 5));
        await store.put(p + "publishes/q", bytesOf(10, 6));
        await store.delete(p + "publishes/p");
        expect(await store.get(p + "publishes/p")).toBeNull();
        expect(await store.getStream(p + "publishes/p")).toBeNull();
        expect(await store.list(p + "publishes/")).toEqual([p + "publishes/q"]);
        await store.delete(p + "publishes/never");
      } finally {
        await store.close();
      }
    });
  });
}
