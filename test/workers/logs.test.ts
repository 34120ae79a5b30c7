// The Worker's logs (functions/log.ts), captured from console inside workerd: one JSON
// `request` line per request with its id, customer, model and version, tokens, time to first
// token, duration and error code, for plain, streamed, failed and disconnected requests; the
// x-request-id header on every answer; model load and evict lines; and never a prompt, an
// output or a key.

import { SELF } from "cloudflare:test";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../functions/app";
import type { RequestLine } from "../../functions/log";
import kernelsModule from "../../kernels/build/kernels.wasm";
import { artifactFile, call, seed, sseEvents, testEnv, unloadAll } from "./support";

const SECRET_PROMPT = "Zanzibar quokka 7731 whispered";
const SECRET_KEY = "ei_this-key-must-never-be-logged-0123456789";

let lines: string[];

beforeAll(async () => {
  await seed("aidreams");
  await seed("hf");
});

beforeEach(() => {
  lines = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
  }
});

afterEach(() => {
  vi.restoreAllMocks();
  // Nothing any test logged holds the prompt, the output or a key.
  for (const line of lines) {
    expect(line).not.toContain("Zanzibar");
    expect(line).not.toContain("quokka");
    expect(line).not.toContain(SECRET_KEY);
  }
});

/** Every line must be one JSON object. */
function parsed(): Array<Record<string, unknown>> {
  return lines.map((l) => {
    expect(l.includes("\n")).toBe(false);
    return JSON.parse(l) as Record<string, unknown>;
  });
}

function requestLines(): RequestLine[] {
  return parsed().filter((l) => l.event === "request") as unknown as RequestLine[];
}

const FIELDS = ["event", "time", "request_id", "customer", "method", "route", "status", "model", "model_version", "stream", "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms", "finish_reason", "error_code", "disconnected"];

describe("one request line per request", () => {
  it("a plain completion: the caller's request id, the model's version, token counts and times", async () => {
    const res = await call("/v1/completions", { model: "aidreams260K-q8_0", prompt: SECRET_PROMPT, max_tokens: 12, temperature: 0 }, { headers: { "x-request-id": "trace-abc.123", authorization: `Bearer ${SECRET_KEY}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("trace-abc.123");
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number }; choices: Array<{ text: string }> };
    const [line, ...rest] = requestLines();
    expect(rest).toEqual([]);
    expect(Object.keys(line).sort()).toEqual([...FIELDS].sort());
    const pointer = JSON.parse((await testEnv.MODELS.get("models/aidreams260K-q8_0"))!) as { manifest: string };
    expect(line).toMatchObject({
      event: "request",
      request_id: "trace-abc.123",
      customer: null,
      method: "POST",
      route: "/v1/completions",
      status: 200,
      model: "aidreams260K-q8_0",
      model_version: pointer.manifest,
      stream: false,
      prompt_tokens: body.usage.prompt_tokens,
      completion_tokens: body.usage.completion_tokens,
      finish_reason: "length",
      error_code: null,
      disconnected: false,
    });
    expect(line.completion_tokens).toBe(12);
    expect(line.ttft_ms).toBeGreaterThanOrEqual(0);
    expect(line.duration_ms).toBeGreaterThanOrEqual(line.ttft_ms!);
    expect(new Date(line.time).toISOString()).toBe(line.time);
    // The output text is not logged either.
    const text = body.choices[0].text.trim();
    if (text.length >= 8) for (const l of lines) expect(l).not.toContain(text);
  });

  it("a streamed chat: written when the stream ends, with the tokens the stream reported", async () => {
    const res = await call("/v1/chat/completions", { model: "tiny-qwen2", messages: [{ role: "user", content: SECRET_PROMPT }], max_tokens: 9, temperature: 0, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const id = res.headers.get("x-request-id")!;
    expect(id).toMatch(/^req_[0-9a-f]{32}$/);
    const events = await sseEvents(res);
    const usage = JSON.parse(events[events.length - 2]).usage as { prompt_tokens: number; completion_tokens: number };
    const [line, ...rest] = requestLines();
    expect(rest).toEqual([]);
    expect(line).toMatchObject({
      request_id: id,
      route: "/v1/chat/completions",
      status: 200,
      model: "tiny-qwen2",
      stream: true,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      error_code: null,
      disconnected: false,
    });
    expect(line.model_version).toMatch(/^[0-9a-f]{64}$/);
    expect(line.finish_reason).not.toBeNull();
    expect(line.ttft_ms).toBeGreaterThanOrEqual(0);
  });

  it("failed requests: the status and error code, whatever failed", async () => {
    const cases: Array<[string, () => Promise<Response>, number, string, string | null]> = [
      ["unknown model", () => call("/v1/completions", { model: "no-such-model", prompt: SECRET_PROMPT }), 404, "model_not_found", "no-such-model"],
      ["bad JSON", () => call("/v1/completions", undefined, { raw: `{"prompt": "${SECRET_PROMPT}"` }), 400, "invalid_request_error", null],
      ["context exceeded", () => call("/v1/completions", { model: "aidreams260K", prompt: SECRET_PROMPT, max_tokens: 100_000 }), 400, "context_length_exceeded", "aidreams260K"],
      ["no route", () => call("/v1/nothing-here"), 404, "not_found", null],
      ["no chat template", () => call("/v1/chat/completions", { model: "aidreams260K", messages: [{ role: "user", content: SECRET_PROMPT }] }), 400, "no_chat_template", "aidreams260K"],
    ];
    for (const [name, send, status, code, model] of cases) {
      lines = [];
      const res = await send();
      expect(res.status, name).toBe(status);
      expect(res.headers.get("x-request-id"), name).toMatch(/^req_[0-9a-f]{32}$/);
      const all = requestLines();
      expect(all, name).toHaveLength(1);
      expect(all[0], name).toMatchObject({ status, error_code: code, model, request_id: res.headers.get("x-request-id"), completion_tokens: null, ttft_ms: null });
      await res.body?.cancel();
    }
  });

  it("a caller's request id that is not a plain token is replaced by one of ours", async () => {
    for (const bad of ["has space", "x".repeat(200), '"quoted"']) {
      lines = [];
      const res = await call("/healthz", undefined, { headers: { "x-request-id": bad } });
      expect(res.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
      expect(requestLines()[0].request_id).toBe(res.headers.get("x-request-id"));
    }
  });

  it("a stream whose client goes away: one line, marked disconnected, with the tokens sent so far", async () => {
    const res = await SELF.fetch("http://edgeinfer/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "gone-1" },
      body: JSON.stringify({ model: "aidreams260K", prompt: SECRET_PROMPT, max_tokens: 100, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("gone-1");
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    await vi.waitFor(() => expect(requestLines().filter((l) => l.request_id === "gone-1")).toHaveLength(1));
    const line = requestLines().find((l) => l.request_id === "gone-1")!;
    expect(line).toMatchObject({ status: 200, stream: true, disconnected: true, finish_reason: null, model: "aidreams260K" });
    expect(line.completion_tokens).toBeGreaterThanOrEqual(1);
    expect(line.completion_tokens).toBeLessThan(100);
    expect(line.ttft_ms).toBeGreaterThanOrEqual(0);
    // Still exactly one line for it after the generation has wound down.
    await call("/healthz");
    expect(requestLines().filter((l) => l.request_id === "gone-1")).toHaveLength(1);
  });

  it("the playground page and /healthz are logged too", async () => {
    const res = await call("/");
    expect(res.status).toBe(200);
    await res.text();
    expect(requestLines()).toMatchObject([{ route: "/", status: 200, model: null, error_code: null }]);
  });
});

describe("model load and evict lines", () => {
  it("a load names the model, its version and its memory; an eviction names the model it made room for", async () => {
    unloadAll();
    const res = await call("/v1/completions", { model: "aidreams260K-q4_0", prompt: SECRET_PROMPT, max_tokens: 2 });
    expect(res.status).toBe(200);
    await res.json();
    const loads = parsed().filter((l) => l.event === "model_load");
    const pointer = JSON.parse((await testEnv.MODELS.get("models/aidreams260K-q4_0"))!) as { manifest: string };
    expect(loads).toMatchObject([{ model: "aidreams260K-q4_0", version: pointer.manifest }]);
    expect(loads[0].memory_bytes).toBeGreaterThan(0);

    // A budget that holds one of the two at a time: the second load evicts the first.
    const f32 = JSON.parse((await testEnv.MODELS.get(`manifests/${JSON.parse((await testEnv.MODELS.get("models/aidreams260K"))!).manifest}`))!).memory.total as number;
    const { app } = createApp(kernelsModule, { budgetBytes: Math.ceil(f32 * 1.2) });
    lines = [];
    const ask = (model: string) => app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, prompt: "Once", max_tokens: 2 }) }, testEnv);
    expect((await ask("aidreams260K")).status).toBe(200);
    expect((await ask("aidreams260K-q8_0")).status).toBe(200);
    const events = parsed().filter((l) => l.event !== "request").map((l) => [l.event, l.model]);
    expect(events).toEqual([["model_load", "aidreams260K"], ["model_evict", "aidreams260K"], ["model_load", "aidreams260K-q8_0"]]);
    expect(parsed().find((l) => l.event === "model_evict")).toMatchObject({ reason: "room for aidreams260K-q8_0" });
  });
});

describe("with customers", () => {
  it("names the customer, never its key", async () => {
    await seed("tenants");
    const tenants = JSON.parse(new TextDecoder().decode(await artifactFile("tenants.json"))) as { keys: { acme: { current: string; old: string } } };
    lines = [];
    const key = tenants.keys.acme.current;
    const ok = await call("/v1/completions", { model: "story", prompt: SECRET_PROMPT, max_tokens: 3 }, { headers: { authorization: `Bearer ${key}` } });
    expect(ok.status).toBe(200);
    await ok.json();
    const refused = await call("/v1/completions", { model: "story", prompt: SECRET_PROMPT, max_tokens: 3 }, { headers: { authorization: `Bearer ${tenants.keys.acme.old}` } });
    expect(refused.status).toBe(401);
    await refused.json();
    expect(requestLines()).toMatchObject([
      { customer: "acme", model: "story", status: 200, error_code: null },
      { customer: null, model: null, status: 401, error_code: "invalid_api_key" },
    ]);
    for (const l of lines) {
      expect(l).not.toContain(key);
      expect(l).not.toContain(tenants.keys.acme.old);
    }
  });
});
