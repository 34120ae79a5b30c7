// Helpers for tests that run inside workerd: seed the isolated KV with what the real build
// wrote, call the Worker, read server-sent events.

import { env } from "cloudflare:test";
import app, { models } from "../../functions/index";
import type { Env } from "../../functions/env";

interface TestEnv extends Env {
  SEED: Fetcher;
}
export const testEnv = env as unknown as TestEnv;

/** Copies a fixture set (KV entries the CLI built into test/.artifacts/<set>) into KV. */
export async function seed(set: string, kv: KVNamespace = testEnv.MODELS): Promise<string[]> {
  const keys = (await (await testEnv.SEED.fetch(`http://seed/keys?set=${set}`)).json()) as string[];
  for (const key of keys) {
    const res = await testEnv.SEED.fetch(`http://seed/value?set=${set}&key=${encodeURIComponent(key)}`);
    await kv.put(key, await res.arrayBuffer());
  }
  return keys;
}

/** Bytes of a file of the shared test models (../shared/models), through the SEED service. */
export async function sharedModelFile(name: string): Promise<Uint8Array> {
  const res = await testEnv.SEED.fetch(`http://seed/shared?name=${encodeURIComponent(name)}`);
  if (!res.ok) throw new Error(await res.text());
  return new Uint8Array(await res.arrayBuffer());
}

/** A file the fixture build left in test/.artifacts (e.g. a generated checkpoint). */
export async function artifactFile(name: string): Promise<Uint8Array> {
  const res = await testEnv.SEED.fetch(`http://seed/artifact?name=${encodeURIComponent(name)}`);
  if (!res.ok) throw new Error(await res.text());
  return new Uint8Array(await res.arrayBuffer());
}

/** A fresh isolate as far as loaded models go. */
export function unloadAll(): void {
  models.clear();
}

export async function call(path: string, body?: unknown, options: { env?: Env; raw?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const init: RequestInit = body === undefined && options.raw === undefined
    ? { method: "GET", headers: options.headers }
    : { method: "POST", headers: { "content-type": "application/json", ...options.headers }, body: options.raw ?? JSON.stringify(body) };
  return app.request(path, init, options.env ?? testEnv);
}

export async function completion(body: Record<string, unknown>, env?: Env): Promise<any> {
  const res = await call("/v1/completions", body, { env });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

/** The `data:` payloads of a server-sent event stream, [DONE] included. */
export async function sseEvents(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length));
}

/** A KV namespace that fails on chosen keys: throws, hangs, or returns nothing. */
export function faultyKv(kv: KVNamespace, fault: { match: (key: string) => boolean; mode: "throw" | "hang" | "missing" }): KVNamespace {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "get") {
        return (key: string, type?: unknown) => {
          if (!fault.match(key)) return target.get(key, type as "text");
          if (fault.mode === "throw") return Promise.reject(new Error("KV GET failed: injected fault"));
          if (fault.mode === "missing") return Promise.resolve(null);
          return new Promise(() => {});
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
