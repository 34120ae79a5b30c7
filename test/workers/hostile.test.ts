// What a hostile probe found, each as it was reproduced: bodies without Content-Length read
// past the limit, deeply nested JSON, model ids no KV key can hold, NUL in prompts, /healthz
// telling strangers what is loaded, and a busy 503 telling one customer about another's models.

import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../functions/app";
import { kvKeys } from "../../functions/model/manifest";
import { workerStore } from "../../functions/store/worker";
import kernelsModule from "../../kernels/build/kernels.wasm";
import { call, seed, testEnv } from "./support";

beforeAll(async () => {
  await seed("aidreams");
  await seed("hf");
});

const errorOf = async (res: Response) => ({ status: res.status, headers: res.headers, error: ((await res.json()) as any).error });

/** A body sent in chunks with no Content-Length, counting how much of it the Worker pulled. */
function chunkedBody(totalBytes: number, chunk = 64 * 1024): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let sent = 0;
  const prefix = new TextEncoder().encode('{"model":"aidreams260K","prompt":"');
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= totalBytes) return controller.close();
      const bytes = sent === 0 ? prefix : new Uint8Array(chunk).fill(0x61);
      sent += bytes.byteLength;
      controller.enqueue(bytes);
    },
  });
  return { stream, pulled: () => sent };
}

describe("request bodies", () => {
  it("a chunked body without Content-Length is refused with 413 as soon as it passes 256 KiB, not read whole", async () => {
    const body = chunkedBody(64 * 1024 * 1024);
    const res = await SELF.fetch("http://edgeinfer/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: body.stream, duplex: "half" } as RequestInit);
    const { status, error } = await errorOf(res);
    expect(status).toBe(413);
    expect(error.code).toBe("body_too_large");
    // It stopped reading at the limit (plus what was in flight), far short of 64 MiB.
    expect(body.pulled()).toBeLessThan(2 * 1024 * 1024);
  });

  it("deeply nested JSON (2,000 levels of tool_calls) is 400, never 500", async () => {
    const deep = "[".repeat(2000) + "]".repeat(2000);
    const raw = `{"model":"tiny-qwen2","messages":[{"role":"assistant","content":null,"tool_calls":${deep}},{"role":"user","content":"hi"}]}`;
    const { status, error } = await errorOf(await call("/v1/chat/completions", undefined, { raw }));
    expect(status).toBe(400);
    expect(error.message).toMatch(/nests .* 32 levels/);
  });
});

describe("model ids", () => {
  it.each([
    ["256 euro signs (768 bytes, past KV's key limit)", "€".repeat(256)],
    ["a lone surrogate", "model\uD800x"],
    ["a control character", "a\u0001b"],
  ])("%s is 404 model_not_found, as a missing model is", async (_name, model) => {
    const { status, error } = await errorOf(await call("/v1/completions", { model, prompt: "x" }));
    expect(status).toBe(404);
    expect(error.code).toBe("model_not_found");
  });
});

describe("NUL in text", () => {
  it("a prompt or message with NUL is 400 naming the field (it would cut the prompt that echo returns whole)", async () => {
    const a = await errorOf(await call("/v1/completions", { model: "aidreams260K", prompt: "Once\u0000upon", echo: true }));
    expect(a.status).toBe(400);
    expect(a.error.param).toBe("prompt");
    const b = await errorOf(await call("/v1/chat/completions", { model: "tiny-qwen2", messages: [{ role: "user", content: "a\u0000b" }] }));
    expect(b.status).toBe(400);
    expect(b.error.param).toBe("messages[0].content");
  });
});

describe("what strangers and other customers learn", () => {
  it("/healthz says only ok once customers exist, and what is loaded while none do", async () => {
    const open = (await (await call("/healthz")).json()) as any;
    expect(open.status).toBe("ok");
    expect(open).toHaveProperty("loaded");
    await testEnv.MODELS.put(kvKeys.authRequired, "1");
    try {
      expect(await (await call("/healthz")).json()).toEqual({ status: "ok" });
    } finally {
      await testEnv.MODELS.delete(kvKeys.authRequired);
    }
  });

  it("a model that cannot get memory because others are in use is 503 model_busy with Retry-After, and no figures about the others", async () => {
    const q8 = JSON.parse((await testEnv.MODELS.get(kvKeys.manifest(JSON.parse((await testEnv.MODELS.get(kvKeys.modelPointer("aidreams260K-q8_0")))!).manifest)))!);
    // Room for one model at a time; the first stays in use (a stream being read slowly).
    const { app } = createApp(kernelsModule, { budgetBytes: Math.ceil(q8.memory.total * 1.5) });
    const post = (body: unknown) => app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }, testEnv);
    const held = await post({ model: "aidreams260K-q8_0", prompt: "Once", max_tokens: 100, stream: true });
    const reader = held.body!.getReader();
    await reader.read();
    const { status, headers, error } = await errorOf(await post({ model: "aidreams260K-q4_0", prompt: "Once", max_tokens: 2 }));
    expect(status).toBe(503);
    expect(error.code).toBe("model_busy");
    expect(headers.get("retry-after")).toBe("1");
    expect(error.message).not.toMatch(/\d+(\.\d+)? (MiB|KiB|B)\b/);
    expect(error.message).not.toContain("aidreams260K-q8_0");
    await reader.cancel();
  });
});

describe("a model with every KV cache busy", () => {
  it("with its queue full, answers 503 model_busy with Retry-After at once, and serves again once a cache frees", async () => {
    const { app, models: registry } = createApp(kernelsModule, { maxSequences: 1, engine: { maxQueue: 0 } });
    const post = (body: unknown) => app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }, testEnv);
    const ok = { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 5, temperature: 0 };
    expect((await post(ok)).status).toBe(200);
    // The model's only KV cache taken by a sequence nobody reads (as a request mid-generation holds it).
    const lease = await registry.acquire(workerStore(testEnv), "aidreams260K");
    const holder = lease.model.engine.submit({ promptIds: [1, 400], maxTokens: 100, temperature: 0, topP: 1, seed: 1, stop: [] }, () => lease.release());
    const { status, headers, error } = await errorOf(await post(ok));
    expect(status).toBe(503);
    expect(error.code).toBe("model_busy");
    expect(headers.get("retry-after")).toBe("1");
    lease.model.engine.cancel(holder);
    expect((await post(ok)).status).toBe(200);
  });
});
