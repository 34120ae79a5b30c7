// npm start's path end to end: the default model built into wrangler dev's local KV,
// workerd serving it, and the official openai client talking to it over HTTP.

import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type RunningServer } from "./server";

let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startServer();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "not-needed-locally", maxRetries: 0 });
});

afterAll(async () => {
  await server?.stop();
});

describe("edgeinfer serve under wrangler dev", () => {
  it("lists the default model and its quantized builds", async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(expect.arrayContaining(["aidreams260K", "aidreams260K-q8_0", "aidreams260K-q4_0"]));
  });

  it("streams a completion through the openai client, matching the plain one", async () => {
    const plain = await client.completions.create({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
    const stream = await client.completions.create({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 40, temperature: 0, stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(text).toBe(plain.choices[0].text);
    expect(finish).toBe(plain.choices[0].finish_reason);
    expect(plain.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it("reports errors the openai client understands", async () => {
    await expect(client.completions.create({ model: "no-such-model", prompt: "x" })).rejects.toMatchObject({ status: 404 });
    await expect(client.completions.create({ model: "aidreams260K", prompt: "x", max_tokens: 100_000 })).rejects.toMatchObject({ status: 400 });
  });
});
