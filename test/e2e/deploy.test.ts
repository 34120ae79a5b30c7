// One-command deploy end to end: `edgeinfer deploy` into wrangler dev's local KV, then the
// openai client with the printed key; no key or another key gets 401.

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
});
