// One-command deploy end to end: `edgeinfer deploy` into wrangler dev's local KV, then the
// openai client with the printed key; no key or another key gets 401. Limits set and usage
// read with the CLI against the running server (its admin key found beside its state).

import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aidreams, edgeinfer } from "../setup/fixtures";
import { startServer, type RunningServer } from "./server";

let server: RunningServer;
let apiKey: string;

beforeAll(async () => {
  server = await startServer((persistTo) => {
    apiKey = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, "--tokenizer", aidreams.tokenizer, "--id", "story", "--quant", "q8_0", "--persist-to", persistTo]).apiKey;
  });
});

afterAll(async () => {
  await server?.stop();
});

describe("a deployed customer under wrangler dev", () => {
  it("streams a completion with the printed key", async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual(["story"]);
    const stream = await client.completions.create({ model: "story", prompt: "Once upon a time", max_tokens: 20, temperature: 0, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text.length).toBeGreaterThan(0);
  });

  it("refuses requests without the key", async () => {
    const stranger = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "ei_wrong", maxRetries: 0 });
    await expect(stranger.completions.create({ model: "story", prompt: "x" })).rejects.toMatchObject({ status: 401 });
    const anonymous = await fetch(`${server.url}/v1/models`);
    expect(anonymous.status).toBe(401);
  });

  it("meters usage and enforces limits set with the CLI", async () => {
    const cli = (args: string[]) => edgeinfer([...args, "--url", server.url, "--persist-to", server.persistTo]);
    const before = cli(["usage", "acme"]).totals;
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
    let prompt = 0;
    let completion = 0;
    for (let i = 0; i < 3; i++) {
      const res = await client.completions.create({ model: "story", prompt: "Once upon a time", max_tokens: 5 + i, temperature: 0 });
      prompt += res.usage!.prompt_tokens;
      completion += res.usage!.completion_tokens;
    }
    const after = cli(["usage", "acme"]);
    expect(after.totals.promptTokens - before.promptTokens).toBe(prompt);
    expect(after.totals.completionTokens - before.completionTokens).toBe(completion);
    expect(after.days.map((d: { model: string }) => d.model)).toContain("story");

    expect(cli(["customers", "limits", "acme", "--rpm", "2"]).limits).toEqual({ rpm: 2, concurrency: null, tokensPerDay: null });
    expect(cli(["customers"]).customers).toEqual([{ name: "acme", models: 1, limits: { rpm: 2, concurrency: null, tokensPerDay: null } }]);
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      statuses.push(await client.completions.create({ model: "story", prompt: "Hi", max_tokens: 1 }).withResponse().then(({ response }) => response.status, (e) => e));
    }
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    const refused = statuses[2] as { status: number; code: string; headers: Headers };
    expect(refused.status).toBe(429);
    expect(refused.code).toBe("rate_limit_exceeded");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(refused.headers.get("x-ratelimit-limit-requests")).toBe("2");
    cli(["customers", "limits", "acme", "--rpm", "none"]);
  });
});
