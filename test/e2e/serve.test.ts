// npm start's path end to end: the default model built into wrangler dev's local KV,
// workerd serving it, and the official openai client talking to it over HTTP.

import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHAT_MODEL, edgeinfer, writeChatModelFolder } from "../setup/fixtures";
import { startServer, type RunningServer } from "./server";

let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  // A Hugging Face-layout chat model built into the same local KV by the CLI, beside the default model.
  server = await startServer((persistTo) => {
    const folder = writeChatModelFolder(mkdtempSync(join(tmpdir(), "edgeinfer-chat-")));
    edgeinfer(["build", folder, "--id", CHAT_MODEL.id, "--quant", "q4_0", "--persist-to", persistTo]);
    rmSync(folder, { recursive: true, force: true });
  });
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

describe("chat through the openai client", () => {
  const messages = [{ role: "user" as const, content: "Bonjour ! Wie geht's? 你好" }];

  it("answers a chat, and streams the same answer", async () => {
    const reply = await client.chat.completions.create({ model: CHAT_MODEL.id, messages, max_tokens: 16, temperature: 0 });
    expect(reply.choices[0].message.role).toBe("assistant");
    expect(reply.usage?.completion_tokens).toBeGreaterThan(0);
    const stream = await client.chat.completions.create({ model: CHAT_MODEL.id, messages, max_tokens: 16, temperature: 0, stream: true });
    let content = "";
    for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? "";
    expect(content).toBe(reply.choices[0].message.content);
  });

  it("refuses chat for a model without a template, with a 400 the client raises", async () => {
    await expect(client.chat.completions.create({ model: "aidreams260K", messages })).rejects.toMatchObject({ status: 400 });
  });
});
