// `n` > 1 through both routes inside workerd: n choices that share one prefill, choice i sampled
// with seed + i, so each equals the single-choice request with that seed; usage counts the
// prompt once; streams carry every choice by index, each with its own end; disconnecting a
// stream of n choices gives all n KV caches back.

import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { models } from "../../functions/index";
import { call, completion, seed, sseEvents } from "./support";

beforeAll(async () => {
  await seed("aidreams");
  await seed("hf");
});

const prompt = { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 24, temperature: 0.9, seed: 5, return_token_ids: true };
const chat = { model: "tiny-qwen2", messages: [{ role: "user", content: "Hi there" }], max_tokens: 12, temperature: 1, seed: 11, return_token_ids: true };

async function chatCompletion(body: Record<string, unknown>): Promise<any> {
  const res = await call("/v1/chat/completions", body);
  const json = await res.json();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

async function chunksOf(path: string, body: Record<string, unknown>): Promise<any[]> {
  const res = await call(path, { ...body, stream: true, stream_options: { include_usage: true } });
  expect(res.status).toBe(200);
  const events = await sseEvents(res);
  expect(events.at(-1)).toBe("[DONE]");
  return events.slice(0, -1).map((e) => JSON.parse(e));
}

function engineOf(id: string) {
  const loaded = (models as unknown as { loaded: Map<string, { model: { id: string; engine: { stats: { running: number; queued: number; freeSlots: number }; slots: number } } }> }).loaded;
  for (const entry of loaded.values()) if (entry.model.id === id) return entry.model.engine;
  throw new Error(`${id} is not loaded`);
}

describe("n choices on /v1/completions", () => {
  it("choice i is the single-choice output with seed + i; usage counts the prompt once", async () => {
    const many = await completion({ ...prompt, n: 3 });
    expect(many.choices.map((c: any) => c.index)).toEqual([0, 1, 2]);
    for (let i = 0; i < 3; i++) {
      const one = await completion({ ...prompt, seed: prompt.seed + i });
      expect(many.choices[i].text).toBe(one.choices[0].text);
      expect(many.choices[i].token_ids).toEqual(one.choices[0].token_ids);
      expect(many.choices[i].finish_reason).toBe(one.choices[0].finish_reason);
    }
    // different seeds: the choices differ (a sampled 24-token story at temperature 0.9)
    expect(new Set(many.choices.map((c: any) => c.text)).size).toBeGreaterThan(1);
    const generated = many.choices.reduce((n: number, c: any) => n + c.token_ids.length, 0);
    expect(many.usage).toEqual({ prompt_tokens: many.choices[0].prompt_token_ids.length, completion_tokens: generated, total_tokens: many.choices[0].prompt_token_ids.length + generated });
  });

  it("streams every choice by index, each with one finish chunk, the same texts as without streaming", async () => {
    const plain = await completion({ ...prompt, n: 4, echo: true, logprobs: 1 });
    const chunks = await chunksOf("/v1/completions", { ...prompt, n: 4, echo: true, logprobs: 1 });
    const usage = chunks.pop();
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual(plain.usage);
    for (let i = 0; i < 4; i++) {
      const mine = chunks.map((c) => c.choices[0]).filter((c) => c.index === i);
      expect(mine.map((c) => c.text).join("")).toBe(plain.choices[i].text);
      expect(mine.filter((c) => c.finish_reason !== null).map((c) => c.finish_reason)).toEqual([plain.choices[i].finish_reason]);
      expect(mine.at(-1).finish_reason).not.toBeNull();
      expect(mine.flatMap((c) => c.logprobs?.tokens ?? [])).toEqual(plain.choices[i].logprobs.tokens);
      expect(mine.flatMap((c) => c.logprobs?.text_offset ?? [])).toEqual(plain.choices[i].logprobs.text_offset);
    }
    // interleaved: the choices advance together, not one after another
    const order = chunks.map((c) => c.choices[0].index);
    expect(order.indexOf(1)).toBeLessThan(order.lastIndexOf(0));
  });

  it("greedy choices are all the greedy text", async () => {
    const many = await completion({ ...prompt, temperature: 0, n: 3 });
    const one = await completion({ ...prompt, temperature: 0 });
    for (const c of many.choices) expect(c.text).toBe(one.choices[0].text);
  });

  it("n is checked: an integer from 1 to 128, and at most the model's KV caches", async () => {
    for (const n of [0, -1, 1.5, "2", 129]) {
      const res = await call("/v1/completions", { ...prompt, n });
      expect(res.status, String(n)).toBe(400);
      expect(((await res.json()) as any).error.param).toBe("n");
    }
    const slots = engineOf("aidreams260K").slots;
    const res = await call("/v1/completions", { ...prompt, n: slots + 1 });
    expect(res.status).toBe(400);
    const error = ((await res.json()) as any).error;
    expect(error.param).toBe("n");
    expect(error.message).toContain(`at most ${slots}`);
    expect(engineOf("aidreams260K").stats).toEqual({ running: 0, queued: 0, freeSlots: slots });
  });
});

describe("n choices on /v1/chat/completions", () => {
  it("each choice is the single-choice reply with seed + i, logprobs per choice, streamed and not", async () => {
    const many = await chatCompletion({ ...chat, n: 2, logprobs: true, top_logprobs: 2 });
    expect(many.choices).toHaveLength(2);
    for (let i = 0; i < 2; i++) {
      const one = await chatCompletion({ ...chat, seed: chat.seed + i, logprobs: true, top_logprobs: 2 });
      expect(many.choices[i].message).toEqual(one.choices[0].message);
      expect(many.choices[i].logprobs).toEqual(one.choices[0].logprobs);
    }
    const chunks = await chunksOf("/v1/chat/completions", { ...chat, n: 2 });
    const usage = chunks.pop();
    expect(usage.usage).toEqual(many.usage);
    for (let i = 0; i < 2; i++) {
      const mine = chunks.map((c) => c.choices[0]).filter((c) => c.index === i);
      expect(mine[0].delta.role).toBe("assistant");
      expect(mine.map((c) => c.delta.content ?? "").join("")).toBe(many.choices[i].message.content);
      expect(mine.at(-1).finish_reason).toBe(many.choices[i].finish_reason);
    }
  });
});

describe("a client that disconnects from a stream of n choices", () => {
  it("gives every choice's KV cache back", async () => {
    const slots = engineOf("aidreams260K").slots;
    const n = Math.min(3, slots);
    for (let i = 0; i < 2 * slots; i++) {
      const res = await SELF.fetch("http://edgeinfer/v1/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...prompt, n, max_tokens: 100, stream: true }),
      });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      expect((await reader.read()).done).toBe(false);
      await reader.cancel();
    }
    const after = await completion({ ...prompt, n });
    expect(after.choices).toHaveLength(n);
    expect(engineOf("aidreams260K").stats).toEqual({ running: 0, queued: 0, freeSlots: slots });
  });
});
