// Clients that go away mid-stream, as real ones do (a closed tab, a timeout, a cancelled fetch):
// requests go through the Worker's own fetch handler (SELF), each in its own request context,
// and the test cancels the response body after the first event. Far more of them than a model
// has KV caches: every cache must come back, and the model must keep serving.

import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { models } from "../../functions/index";
import { seed } from "./support";

beforeAll(async () => {
  await seed("aidreams");
  await seed("hf");
});

async function openAndDrop(path: string, body: Record<string, unknown>): Promise<void> {
  const res = await SELF.fetch(`http://edgeinfer${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  expect(first.done).toBe(false);
  await reader.cancel();
}

async function greedy(model: string): Promise<{ status: number; text: string }> {
  const res = await SELF.fetch("http://edgeinfer/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: 12, temperature: 0 }),
  });
  const json = (await res.json()) as { choices?: Array<{ text: string }> };
  return { status: res.status, text: json.choices?.[0]?.text ?? JSON.stringify(json) };
}

function engineOf(id: string) {
  const loaded = (models as unknown as { loaded: Map<string, { model: { id: string; engine: { stats: { running: number; queued: number; freeSlots: number }; slots: number } } }> }).loaded;
  for (const entry of loaded.values()) if (entry.model.id === id) return entry.model.engine;
  throw new Error(`${id} is not loaded`);
}

describe("a client that disconnects mid-stream", () => {
  it.each([
    ["/v1/completions", "aidreams260K", { prompt: "Hi", max_tokens: 120 }],
    ["/v1/completions", "aidreams260K-q4_0", { prompt: [1, 400, 300], max_tokens: 100 }],
    ["/v1/chat/completions", "tiny-qwen2", { messages: [{ role: "user", content: "Hi" }], max_tokens: 60 }],
  ] as const)("%s %s: gives its KV cache and model lease back, every time", async (path, model, body) => {
    const before = await greedy(model);
    expect(before.status).toBe(200);
    const slots = engineOf(model).slots;
    for (let i = 0; i < 3 * slots + 4; i++) await openAndDrop(path, { model, stream: true, ...body });
    // The model still answers, with the same greedy text as before.
    const after = await greedy(model);
    expect(after).toEqual(before);
    expect(engineOf(model).stats).toEqual({ running: 0, queued: 0, freeSlots: slots });
  });

  it("many at once, beside requests that finish: the others' outputs are unaffected", async () => {
    const want = await greedy("aidreams260K-q8_0");
    const slots = engineOf("aidreams260K-q8_0").slots;
    const results = await Promise.all(
      Array.from({ length: 2 * slots }, (_, i) =>
        i % 2 === 0 ? openAndDrop("/v1/completions", { model: "aidreams260K-q8_0", prompt: "Hi", max_tokens: 100, stream: true }).then(() => null) : greedy("aidreams260K-q8_0"),
      ),
    );
    for (const r of results) if (r) expect(r).toEqual(want);
    expect(engineOf("aidreams260K-q8_0").stats).toEqual({ running: 0, queued: 0, freeSlots: slots });
  });
});
