// Many requests at once, hostile input and storage that hangs, inside workerd: every
// concurrent request gets exactly what it gets alone, bad input is a 400 naming the field,
// a generated-request fuzz never causes a 5xx, and a hung KV read fails one request cleanly.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../functions/app";
import app from "../../functions/index";
import kernelsModule from "../../kernels/build/kernels.wasm";
import { call, faultyKv, seed, sseEvents, testEnv } from "./support";

beforeAll(async () => {
  await seed("aidreams");
  await seed("gqa");
});

interface Req {
  body: Record<string, unknown>;
}
async function tokensOf(body: Record<string, unknown>): Promise<number[]> {
  const res = await call("/v1/completions", { ...body, return_token_ids: true });
  expect(res.status).toBe(200);
  if (!body.stream) return ((await res.json()) as any).choices[0].token_ids;
  const events = await sseEvents(res);
  expect(events.at(-1)).toBe("[DONE]");
  return events.slice(0, -1).flatMap((e) => JSON.parse(e).choices.flatMap((c: any) => c.token_ids ?? []));
}

describe("concurrency without cross-talk", () => {
  it("36 concurrent requests (4 models, streaming and not, greedy and sampled) each match their solo result", async () => {
    const models = ["aidreams260K", "aidreams260K-q8_0", "aidreams260K-q4_0", "gqa-untied"];
    const prompts = ["Once upon a time", "The little robot", "In a quiet village", ""];
    const requests: Req[] = [];
    for (let i = 0; i < 36; i++) {
      requests.push({
        body: {
          model: models[i % 4],
          prompt: prompts[(i >> 2) % 4] || "Hello",
          max_tokens: 8 + ((i * 7) % 30),
          temperature: i % 3 === 0 ? 0 : 0.7 + (i % 5) * 0.1,
          top_p: i % 2 ? 0.9 : 1,
          seed: 1000 + i,
          stream: i % 2 === 0,
        },
      });
    }
    const solo: number[][] = [];
    for (const r of requests) solo.push(await tokensOf(r.body));
    const together = await Promise.all(requests.map((r) => tokensOf(r.body)));
    together.forEach((tokens, i) => expect(tokens, `request ${i}`).toEqual(solo[i]));
    // Sanity: the workload really differs between requests.
    expect(new Set(solo.map((t) => t.join(","))).size).toBeGreaterThan(20);
  });
});

describe("hostile input", () => {
  const ok = { model: "aidreams260K", prompt: "Once", max_tokens: 2 };

  it("invalid UTF-8 in the body is a 400", async () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('{"model":"aidreams260K","prompt":"'), 0xff, 0xfe, ...new TextEncoder().encode('"}')]);
    const res = await app.request("/v1/completions", { method: "POST", body: bytes, headers: { "content-type": "application/json" } }, testEnv);
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.message).toMatch(/UTF-8/);
  });

  it("NaN, Infinity and huge numbers are 400 naming the field", async () => {
    for (const [raw, param] of [
      ['{"model":"aidreams260K","prompt":"x","temperature":NaN}', null],
      ['{"model":"aidreams260K","prompt":"x","max_tokens":1e308}', "max_tokens"],
      ['{"model":"aidreams260K","prompt":"x","top_p":-1}', "top_p"],
      ['{"model":"aidreams260K","prompt":"x","seed":1e300}', "seed"],
      ['{"model":"aidreams260K","prompt":[1, 99999999999]}', "prompt"],
      ['{"model":"aidreams260K","prompt":"x","stop":["a",7]}', "stop"],
    ] as const) {
      const res = await call("/v1/completions", undefined, { raw });
      expect(res.status, raw).toBe(400);
      expect(((await res.json()) as any).error.param, raw).toBe(param);
    }
  });

  it("an unpaired surrogate in the prompt is a 400", async () => {
    const res = await call("/v1/completions", undefined, { raw: '{"model":"aidreams260K","prompt":"a\\ud800b"}' });
    expect(res.status).toBe(400);
  });

  it("a fuzz of generated requests never gets a 5xx, and every error is OpenAI-shaped", async () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer({ min: -5, max: 600 }), { maxLength: 8 }), fc.array(fc.string(), { maxLength: 5 }), fc.object({ maxDepth: 1 }));
    const body = fc.record(
      {
        model: fc.oneof(fc.constantFrom("aidreams260K", "aidreams260K-q4_0", "nope"), value),
        prompt: fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.integer({ min: 0, max: 511 }), { minLength: 1, maxLength: 10 }), value),
        max_tokens: fc.oneof(fc.integer({ min: -3, max: 200 }), value),
        temperature: fc.oneof(fc.double({ min: -1, max: 3, noNaN: true }), value),
        top_p: fc.oneof(fc.double({ min: -0.5, max: 1.5, noNaN: true }), value),
        seed: fc.oneof(fc.integer(), value),
        stop: fc.oneof(fc.string({ maxLength: 4 }), fc.array(fc.string({ maxLength: 4 }), { maxLength: 20 }), value),
        echo: fc.oneof(fc.boolean(), value),
        stream: fc.oneof(fc.boolean(), value),
        return_token_ids: fc.oneof(fc.boolean(), value),
      },
      { requiredKeys: [] },
    );
    const route = fc.constantFrom("/v1/completions", "/v1/chat/completions");
    await fc.assert(
      fc.asyncProperty(route, fc.oneof(body, value), async (path, payload) => {
        const res = await call(path, payload);
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        if (res.status >= 400) expect(Object.keys(JSON.parse(text).error).sort()).toEqual(["code", "message", "param", "type"]);
      }),
      { numRuns: 150, seed: 20261128 },
    );
    // And the isolate still serves.
    expect((await call("/v1/completions", ok)).status).toBe(200);
  });
});

describe("storage that hangs", () => {
  it("a KV read that never answers fails that request with 503 after the timeout, and nothing stays half-loaded", async () => {
    const { app, models } = createApp(kernelsModule, { readTimeoutMs: 300 });
    const env = { ...testEnv, MODELS: faultyKv(testEnv.MODELS, { match: (k) => k.startsWith("shards/"), mode: "hang" }) };
    const res = await app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "aidreams260K-q8_0", prompt: "Once", max_tokens: 2 }) }, env);
    expect(res.status).toBe(503);
    expect(((await res.json()) as any).error.message).toMatch(/timed out/);
    expect(models.loadedModels).toEqual([]);
    const again = await app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "aidreams260K-q8_0", prompt: "Once", max_tokens: 2 }) }, testEnv);
    expect(again.status).toBe(200);
  });
});

describe("logging", () => {
  it("logs a failed load once, however many requests were waiting on it", async () => {
    const { app } = createApp(kernelsModule);
    const env = { ...testEnv, MODELS: faultyKv(testEnv.MODELS, { match: (k) => k.startsWith("shards/"), mode: "throw" }) };
    const logged: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void logged.push(args);
    try {
      const ask = () => app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "aidreams260K", prompt: "Once", max_tokens: 2 }) }, env);
      const statuses = (await Promise.all([ask(), ask(), ask(), ask()])).map((r) => r.status);
      expect(statuses).toEqual([503, 503, 503, 503]);
    } finally {
      console.error = original;
    }
    expect(logged).toHaveLength(1);
    expect(String((logged[0] as unknown[])[0])).toContain("aidreams260K");
  });
});
