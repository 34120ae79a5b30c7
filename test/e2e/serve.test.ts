// npm start's path end to end: the default model built into wrangler dev's local KV,
// workerd serving it, and the official openai client talking to it over HTTP.

import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { CHAT_MODEL, edgeinfer, writeChatModelFolder } from "../setup/fixtures";
import { SCHEMAS, validationError } from "../support/schemas";
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

describe("clients that hang up mid-stream", () => {
  /** A streaming request over a raw socket, closed as soon as the first bytes of the answer arrive. */
  const hangUp = (path: string, body: Record<string, unknown>) =>
    new Promise<void>((resolve, reject) => {
      const { hostname, port } = new URL(server.url);
      const payload = JSON.stringify({ ...body, stream: true });
      const socket = connect(Number(port), hostname);
      socket.on("error", reject);
      socket.once("data", () => {
        socket.destroy();
        resolve();
      });
      socket.write(`POST ${path} HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
    });

  it.each([
    ["/v1/completions", "aidreams260K", { prompt: "Hi", max_tokens: 120 }],
    ["/v1/chat/completions", CHAT_MODEL.id, { messages: [{ role: "user", content: "Hi" }], max_tokens: 60 }],
  ])("%s %s: three times as many as there are KV caches, and the model still answers as before", async (path, model, body) => {
    const ask = () => client.completions.create({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
    const chat = () => client.chat.completions.create({ model: CHAT_MODEL.id, messages: [{ role: "user", content: "Hi" }], max_tokens: 8, temperature: 0 });
    const before = model === "aidreams260K" ? (await ask()).choices[0].text : (await chat()).choices[0].message.content;
    const health = async () => ((await (await fetch(`${server.url}/healthz`)).json()) as any).loaded.find((m: any) => m.id === model).sequences;
    const slots = (await health()).freeSlots;
    expect(slots).toBeGreaterThan(0);
    for (let i = 0; i < 3 * slots; i++) await hangUp(path, { model, ...body });
    const after = model === "aidreams260K" ? (await ask()).choices[0].text : (await chat()).choices[0].message.content;
    expect(after).toBe(before);
    // Every KV cache is free again once the server is idle.
    let seqs = await health();
    for (let i = 0; i < 20 && seqs.freeSlots !== slots; i++) {
      await new Promise((r) => setTimeout(r, 250));
      seqs = await health();
    }
    expect(seqs).toEqual({ running: 0, queued: 0, freeSlots: slots });
  });
});

describe("structured output, logprobs and sampling controls through the openai client", () => {
  it("a chat reply under a JSON schema parses and validates, streamed and not", async () => {
    const response_format = { type: "json_schema" as const, json_schema: { name: "person", schema: SCHEMAS.extraction, strict: true } };
    const messages = [{ role: "user" as const, content: "Extract: Ann is 41." }];
    for (const seed of [1, 2]) {
      const reply = await client.chat.completions.create({ model: CHAT_MODEL.id, messages, max_tokens: 120, temperature: 1, seed, response_format });
      expect(reply.choices[0].finish_reason).toBe("stop");
      expect(validationError(SCHEMAS.extraction, reply.choices[0].message.content!)).toBeNull();
      const stream = await client.chat.completions.create({ model: CHAT_MODEL.id, messages, max_tokens: 120, temperature: 1, seed, response_format, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      expect(text).toBe(reply.choices[0].message.content);
    }
  });

  it("logprobs of the prompt (echo, max_tokens 0) and of a completion", async () => {
    const echo = await client.completions.create({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 0, echo: true, logprobs: 3 });
    const lp = echo.choices[0].logprobs!;
    expect(echo.choices[0].text).toBe("Once upon a time");
    expect(lp.token_logprobs![0]).toBeNull();
    expect(lp.token_logprobs!.slice(1).every((v) => v! < 0)).toBe(true);
    const chat = await client.chat.completions.create({ model: CHAT_MODEL.id, messages: [{ role: "user", content: "Hi" }], max_tokens: 5, logprobs: true, top_logprobs: 2 });
    expect(chat.choices[0].logprobs!.content!.length).toBe(chat.usage!.completion_tokens);
    expect(chat.choices[0].logprobs!.content![0].top_logprobs).toHaveLength(2);
  });

  it("takes the sampling controls other servers take", async () => {
    const body = { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 20, temperature: 0.9, seed: 3, frequency_penalty: 0.5, presence_penalty: 0.5, logit_bias: { "50": -100 }, top_k: 40, min_p: 0.05, repetition_penalty: 1.1 };
    const a = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
    const b = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
    expect(a.choices[0].text).toBe(b.choices[0].text);
    await expect(client.completions.create({ ...body, top_k: 1.5 } as OpenAI.CompletionCreateParamsNonStreaming)).rejects.toMatchObject({ status: 400 });
  });
});

describe("tool calls and n choices through the openai client", () => {
  const tools: OpenAI.ChatCompletionFunctionTool[] = [
    {
      type: "function",
      function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string", maxLength: 20 } }, required: ["city"], additionalProperties: false } },
    },
  ];
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather in Paris?" }];
  const tool_choice = { type: "function" as const, function: { name: "get_weather" } };

  it("a forced call, streamed (the client's own accumulation) and not; its result goes back", async () => {
    const reply = await client.chat.completions.create({ model: CHAT_MODEL.id, messages, tools, tool_choice, max_tokens: 60, seed: 4 });
    const choice = reply.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    const call = choice.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(validationError(tools[0].function.parameters as Record<string, unknown>, call.function.arguments)).toBeNull();

    const stream = client.chat.completions.stream({ model: CHAT_MODEL.id, messages, tools, tool_choice, max_tokens: 60, seed: 4 });
    const final = await stream.finalChatCompletion();
    const streamedCall = final.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(streamedCall.function).toEqual({ name: call.function.name, arguments: call.function.arguments });
    expect(final.choices[0].finish_reason).toBe("tool_calls");

    const next = await client.chat.completions.create({
      model: CHAT_MODEL.id,
      messages: [...messages, choice.message, { role: "tool", tool_call_id: call.id, content: "18 C, sunny" }],
      tools,
      max_tokens: 8,
    });
    expect(next.choices[0].message.role).toBe("assistant");
  });

  it("n choices, streamed by index", async () => {
    const reply = await client.completions.create({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 12, n: 3, seed: 7, temperature: 1 });
    expect(reply.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const texts = ["", "", ""];
    const stream = await client.completions.create({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 12, n: 3, seed: 7, temperature: 1, stream: true });
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.text;
    expect(texts).toEqual(reply.choices.map((c) => c.text));
  });
});
