// A model store in memory: for tests of the loader and the CLI's store code without KV, and as
// the smallest example of a backend. Streams hand a value out in 64 KiB chunks, as KV does in
// pieces.

import type { ModelStore, StoreKeyInfo } from "./store";

const STREAM_CHUNK = 64 * 1024;

export class MemoryStore implements ModelStore {
  readonly description = "memory";
  private readonly entries = new Map<string, { value: Uint8Array; writtenAt: number }>();

  async get(key: string): Promise<Uint8Array | null> {
    const entry = this.entries.get(key);
    return entry ? entry.value.slice() : null;
  }

  async getStream(key: string): Promise<ReadableStream<Uint8Array> | null> {
    const entry = this.entries.get(key);
    if (!entry) return null;
    const value = entry.value.slice();
    let offset = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= value.byteLength) return controller.close();
        controller.enqueue(value.subarray(offset, offset + STREAM_CHUNK));
        offset += STREAM_CHUNK;
      },
    });
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    this.entries.set(key, { value: value.slice(), writtenAt: Date.now() });
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.listWithTimes(prefix)).map((k) => k.key);
  }

  async listWithTimes(prefix: string): Promise<StoreKeyInfo[]> {
    return [...this.entries.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, e]) => ({ key, writtenAt: e.writtenAt }));
  }

  async close(): Promise<void> {}
}
