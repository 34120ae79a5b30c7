// The Worker's API inside workerd, on models the real build script put into KV. Greedy f32
// output is held against the plain TypeScript forward pass (test/reference), which follows
// llama2.c's run.c.

import { beforeAll, describe, expect, it } from "vitest";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { generateGreedyReference } from "../reference/llama-forward";
import { artifactFile, call, completion, seed, sharedModelFile, sseEvents, unloadAll } from "./support";

let reference: (prompt: string, steps: number) => ReturnType<typeof generateGreedyReference>;

beforeAll(async () => {
  await seed("aidreams");
  const model = readLlama2cCheckpoint(await sharedModelFile("aidreams260K.bin"));
  const tokenizer = Llama2cTokenizer.fromBytes(await sharedModelFile("aidreams260K.tok512.bin"), model.config.vocabSize);
  reference = (prompt, steps) => generateGreedyReference(model, tokenizer, prompt, steps);
});

describe("GET routes", () => {
  it("answers /healthz", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok" });
  });

  it("lists the built models on /v1/models", async () => {
    const res = await call("/v1/models");
    const body = (await res.json()) as { object: string; data: Array<{ id: string; object: string }> };
    expect(body.object).toBe("list");
    expect(body.data.map((m) => m.id)).toEqual(["aidreams260K", "aidreams260K-q4_0", "aidreams260K-q8_0"]);
  });

  it("answers unknown routes with an OpenAI-shaped 404", async () => {
    const res = await call("/v1/nothing");
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).error.type).toBe("invalid_request_error");
  });
});

describe("POST /v1/completions, greedy f32 against the reference forward pass", () => {
  for (const prompt of ["", "Once upon a time", "The cat"]) {
    it(`matches token for token with prompt ${JSON.stringify(prompt)}`, async () => {
      const ref = reference(prompt, 0);
      const promptLen = ref.promptTokens.length;
      // run.c emits one token past the context (never fed back); the API stops at prompt + completion = context.
      // run.c stops only at BOS and prints EOS as text; the API ends a completion at EOS too.
      const fromRunc = ref.tokens.slice(promptLen - 1, 128 - 1);
      const eos = fromRunc.indexOf(2);
      const generated = eos >= 0 ? fromRunc.slice(0, eos) : fromRunc;
      const body = await completion({ model: "aidreams260K", prompt, max_tokens: 128 - promptLen, temperature: 0, return_token_ids: true });
      const choice = body.choices[0];
      expect(choice.prompt_token_ids).toEqual(ref.promptTokens);
      expect(choice.token_ids).toEqual(generated);
      expect(choice.finish_reason).toBe(generated.length < 128 - promptLen ? "stop" : "length");
      expect(body.usage).toEqual({ prompt_tokens: promptLen, completion_tokens: generated.length, total_tokens: promptLen + generated.length });
      // run.c's decoding of BOS + prompt + completion is the prompt followed by our text.
      expect(ref.text.startsWith(prompt + choice.text)).toBe(true);
      expect(choice.text.length).toBeGreaterThan(0);
    });
  }
});

describe("sampling", () => {
  it("gives the same output for the same seed and different output for another", async () => {
    const ask = (seed: number) => completion({ model: "aidreams260K", prompt: "Once", max_tokens: 40, temperature: 1, top_p: 0.9, seed, return_token_ids: true });
    const [a, b, c] = await Promise.all([ask(42), ask(42), ask(43)]);
    expect(a.choices[0].token_ids).toEqual(b.choices[0].token_ids);
    expect(a.choices[0].token_ids).not.toEqual(c.choices[0].token_ids);
  });

  it("accepts a prompt of token ids and echoes it back", async () => {
    const ref = reference("Once upon a time", 0);
    const body = await completion({ model: "aidreams260K", prompt: ref.promptTokens, max_tokens: 5, temperature: 0, echo: true, return_token_ids: true });
    expect(body.choices[0].prompt_token_ids).toEqual(ref.promptTokens);
    expect(body.choices[0].token_ids).toEqual(ref.tokens.slice(ref.promptTokens.length - 1, ref.promptTokens.length + 4));
    expect(body.choices[0].text.startsWith("Once upon a time")).toBe(true);
  });

  it("stops at a stop string, leaving it out", async () => {
    const full = (await completion({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 60, temperature: 0 })).choices[0].text as string;
    const word = full.trim().split(/\s+/)[3];
    const cut = full.indexOf(word);
    const body = await completion({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 60, temperature: 0, stop: [word, "zzzz"] });
    expect(body.choices[0].text).toBe(full.slice(0, cut));
    expect(body.choices[0].finish_reason).toBe("stop");
  });
});

describe("streaming", () => {
  it("streams the same tokens as a plain request, ending with [DONE]", async () => {
    const plain = await completion({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 30, temperature: 0, return_token_ids: true });
    const res = await call("/v1/completions", { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 30, temperature: 0, stream: true, return_token_ids: true, stream_options: { include_usage: true } });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const choices = chunks.flatMap((c) => c.choices);
    expect(choices.map((c) => c.text).join("")).toBe(plain.choices[0].text);
    expect(choices.flatMap((c) => c.token_ids ?? [])).toEqual(plain.choices[0].token_ids);
    expect(choices.find((c) => c.prompt_token_ids)?.prompt_token_ids).toEqual(plain.choices[0].prompt_token_ids);
    expect(choices.at(-1).finish_reason).toBe(plain.choices[0].finish_reason);
    expect(chunks.at(-1).usage).toEqual(plain.usage);
  });
});

describe("quantized builds serve the same API", () => {
  for (const model of ["aidreams260K-q8_0", "aidreams260K-q4_0"]) {
    it(`${model} completes and mostly agrees with f32`, async () => {
      const f32 = await completion({ model: "aidreams260K", prompt: "Once upon a time", max_tokens: 20, temperature: 0, return_token_ids: true });
      const q = await completion({ model, prompt: "Once upon a time", max_tokens: 20, temperature: 0, return_token_ids: true });
      expect(q.choices[0].token_ids.length).toBeGreaterThan(0);
      // The first token after the prompt is the most confident choice: quantization must not change it.
      expect(q.choices[0].token_ids[0]).toBe(f32.choices[0].token_ids[0]);
    });
  }
});

describe("grouped-query attention and a separate classifier", () => {
  beforeAll(async () => {
    await seed("gqa");
    unloadAll();
  });

  it("matches the reference forward pass token for token", async () => {
    const model = readLlama2cCheckpoint(await artifactFile("gqa-untied.bin"));
    const tokenizer = Llama2cTokenizer.fromBytes(await sharedModelFile("aidreams260K.tok512.bin"), model.config.vocabSize);
    expect(model.config.nKvHeads).toBeLessThan(model.config.nHeads);
    expect(model.config.tiedEmbeddings).toBe(false);
    const ref = generateGreedyReference(model, tokenizer, "Once upon a time", 40);
    const body = await completion({ model: "gqa-untied", prompt: "Once upon a time", max_tokens: 40 - ref.promptTokens.length + 1, temperature: 0, return_token_ids: true });
    expect(body.choices[0].token_ids).toEqual(ref.tokens.slice(ref.promptTokens.length - 1));
  });
});
