// Sampling controls and log-probabilities through both routes inside workerd: every field
// checked (400 naming it), the controls' effect held against the reference forward pass with
// the same controls, and logprobs in OpenAI's shapes, streamed and not.

import { beforeAll, describe, expect, it } from "vitest";
import { Sampler, type SamplingControls } from "../../functions/runtime/sampler";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import type { ImportedModel } from "../../scripts/import/types";
import { generateReference } from "../reference/llama-forward";
import { call, completion, seed, sharedModelFile, sseEvents } from "./support";

let checkpoint: ImportedModel;
let tokenizer: Llama2cTokenizer;

beforeAll(async () => {
  await seed("aidreams");
  await seed("hf");
  checkpoint = readLlama2cCheckpoint(await sharedModelFile("aidreams260K.bin"));
  tokenizer = Llama2cTokenizer.fromBytes(await sharedModelFile("aidreams260K.tok512.bin"), checkpoint.config.vocabSize);
});

const ok = { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 4, temperature: 0 };
const chatOk = { model: "tiny-qwen2", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 };

async function errorOf(path: string, body: unknown) {
  const res = await call(path, body);
  const json = (await res.json()) as any;
  return { status: res.status, error: json.error };
}

describe("every sampling field is checked, 400 naming it", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["presence_penalty above 2", { presence_penalty: 2.5 }, "presence_penalty"],
    ["presence_penalty a string", { presence_penalty: "1" }, "presence_penalty"],
    ["frequency_penalty below -2", { frequency_penalty: -3 }, "frequency_penalty"],
    ["logit_bias an array", { logit_bias: [1, 2] }, "logit_bias"],
    ["logit_bias key not an id", { logit_bias: { abc: 1 } }, "logit_bias"],
    ["logit_bias value past 100", { logit_bias: { "5": 101 } }, "logit_bias"],
    ["logit_bias value a string", { logit_bias: { "5": "1" } }, "logit_bias"],
    ["logit_bias with 301 entries", { logit_bias: Object.fromEntries(Array.from({ length: 301 }, (_, i) => [`${i}`, 1])) }, "logit_bias"],
    ["logit_bias past the vocabulary", { logit_bias: { "512": 1 } }, "logit_bias"],
    ["top_k fractional", { top_k: 2.5 }, "top_k"],
    ["top_k below -1", { top_k: -2 }, "top_k"],
    ["min_p above 1", { min_p: 1.5 }, "min_p"],
    ["repetition_penalty 0", { repetition_penalty: 0 }, "repetition_penalty"],
    ["repetition_penalty above 2", { repetition_penalty: 3 }, "repetition_penalty"],
  ];
  for (const [name, extra, param] of cases) {
    it(`${name} (both routes)`, async () => {
      // tiny-qwen2's vocabulary is 151,936 tokens, aidreams260K's 512
      const chatExtra = name === "logit_bias past the vocabulary" ? { logit_bias: { "151936": 1 } } : extra;
      for (const [path, body] of [["/v1/completions", { ...ok, ...extra }], ["/v1/chat/completions", { ...chatOk, ...chatExtra }]] as const) {
        const { status, error } = await errorOf(path, body);
        expect(status, path).toBe(400);
        expect(error.type).toBe("invalid_request_error");
        expect(error.param, path).toBe(param);
      }
    });
  }

  it("logprobs: an integer 0..20 on /v1/completions, a boolean with top_logprobs 0..20 on chat", async () => {
    for (const logprobs of [21, -1, 1.5, true]) expect((await errorOf("/v1/completions", { ...ok, logprobs })).error.param).toBe("logprobs");
    expect((await errorOf("/v1/chat/completions", { ...chatOk, logprobs: 3 })).error.param).toBe("logprobs");
    expect((await errorOf("/v1/chat/completions", { ...chatOk, logprobs: true, top_logprobs: 21 })).error.param).toBe("top_logprobs");
    expect((await errorOf("/v1/chat/completions", { ...chatOk, top_logprobs: 2 })).error.param).toBe("top_logprobs");
  });
});

describe("the controls act as their definitions say (f32, against the reference forward pass)", () => {
  const cases: Array<[string, Partial<SamplingControls>, Record<string, unknown>]> = [
    ["frequency and presence penalties", { frequencyPenalty: 0.8, presencePenalty: 0.5 }, { frequency_penalty: 0.8, presence_penalty: 0.5 }],
    ["repetition_penalty", { repetitionPenalty: 1.6 }, { repetition_penalty: 1.6 }],
    ["logit_bias", { logitBias: new Map([[280, 6], [13, -100]]) }, { logit_bias: { "280": 6, "13": -100 } }],
  ];
  for (const [name, controls, fields] of cases) {
    it(`${name}: greedy output token for token`, async () => {
      const prompt = "Once upon a time";
      const promptIds = tokenizer.encode(prompt, { bos: true, eos: false });
      const generated: number[] = [];
      const sampler = new Sampler(512, 0, 1, 1, controls);
      const chooser = { sample: (logits: Float32Array) => { const t = sampler.sample(logits, { prompt: promptIds, generated }); generated.push(t); return t; } };
      const ref = generateReference(checkpoint, tokenizer, prompt, promptIds.length + 40, chooser);
      let want = ref.tokens.slice(promptIds.length - 1, promptIds.length - 1 + 40);
      if (want.includes(2)) want = want.slice(0, want.indexOf(2));
      const plain = await completion({ ...ok, max_tokens: 40, return_token_ids: true });
      const body = await completion({ ...ok, max_tokens: 40, return_token_ids: true, ...fields });
      expect(body.choices[0].token_ids).toEqual(want);
      expect(body.choices[0].token_ids).not.toEqual(plain.choices[0].token_ids);
    });
  }

  it("top_k 1 is greedy whatever the temperature; top_k, min_p sampling is reproducible by seed", async () => {
    const greedy = await completion({ ...ok, max_tokens: 30, return_token_ids: true });
    const k1 = await completion({ ...ok, max_tokens: 30, temperature: 1.5, top_k: 1, seed: 3, return_token_ids: true });
    expect(k1.choices[0].token_ids).toEqual(greedy.choices[0].token_ids);
    const ask = (s: number) => completion({ ...ok, max_tokens: 30, temperature: 1, top_k: 40, min_p: 0.05, seed: s, return_token_ids: true });
    const [a, b, c] = await Promise.all([ask(9), ask(9), ask(10)]);
    expect(a.choices[0].token_ids).toEqual(b.choices[0].token_ids);
    expect(a.choices[0].token_ids).not.toEqual(c.choices[0].token_ids);
  });
});

describe("logprobs on /v1/completions", () => {
  it("one entry per generated token: its text, log-probability, the top k (chosen one included) and text offsets", async () => {
    const body = await completion({ ...ok, max_tokens: 20, temperature: 0.8, seed: 4, logprobs: 3, return_token_ids: true });
    const choice = body.choices[0];
    const lp = choice.logprobs;
    const n = choice.token_ids.length;
    expect(lp.tokens).toHaveLength(n);
    expect(lp.tokens.join("")).toBe(choice.text);
    lp.token_logprobs.forEach((v: number, i: number) => {
      expect(v).toBeLessThanOrEqual(0);
      const top = lp.top_logprobs[i];
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(3);
      expect(Object.keys(top).length).toBeLessThanOrEqual(4);
      expect(top[lp.tokens[i]]).toBe(v);
      expect(Math.max(...(Object.values(top) as number[]))).toBeGreaterThanOrEqual(v);
    });
    let offset = 0;
    lp.tokens.forEach((t: string, i: number) => {
      expect(lp.text_offset[i]).toBe(offset);
      offset += t.length;
    });
  });

  it("echo with max_tokens 0 gives the prompt's own log-probabilities (the first is null)", async () => {
    const body = await completion({ ...ok, max_tokens: 0, echo: true, logprobs: 1, return_token_ids: true });
    const choice = body.choices[0];
    expect(choice.text).toBe("Once upon a time");
    const lp = choice.logprobs;
    expect(lp.tokens).toHaveLength(choice.prompt_token_ids.length);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    expect(lp.token_logprobs.slice(1).every((v: number) => v < 0)).toBe(true);
    // the prompt given as ids gets the same numbers
    const byIds = await completion({ ...ok, prompt: choice.prompt_token_ids, max_tokens: 0, echo: true, logprobs: 1 });
    expect(byIds.choices[0].logprobs.token_logprobs).toEqual(lp.token_logprobs);
    // and a generated token's log-probability is the one the prompt's next position would give it
    const gen = await completion({ ...ok, prompt: choice.prompt_token_ids.slice(0, -1), max_tokens: 1, logprobs: 0, logit_bias: { [choice.prompt_token_ids.at(-1)]: 100 } });
    expect(gen.choices[0].logprobs.token_logprobs[0]).toBeCloseTo(lp.token_logprobs.at(-1), 5);
  });

  it("streams the same entries, chunk by chunk, echo included", async () => {
    const req = { ...ok, max_tokens: 15, temperature: 0.7, seed: 8, logprobs: 2, echo: true };
    const plain = (await completion(req)).choices[0].logprobs;
    const chunks = (await sseEvents(await call("/v1/completions", { ...req, stream: true }))).slice(0, -1).map((e) => JSON.parse(e));
    const parts = chunks.map((c) => c.choices[0]?.logprobs).filter(Boolean);
    const joined = { tokens: parts.flatMap((p) => p.tokens), token_logprobs: parts.flatMap((p) => p.token_logprobs), top_logprobs: parts.flatMap((p) => p.top_logprobs), text_offset: parts.flatMap((p) => p.text_offset) };
    expect(joined).toEqual(plain);
  });
});

describe("logprobs on /v1/chat/completions", () => {
  it("content entries with bytes and top_logprobs, streamed and not", async () => {
    const req = { ...chatOk, max_tokens: 10, temperature: 0.9, seed: 2, logprobs: true, top_logprobs: 4, return_token_ids: true };
    const res = await call("/v1/chat/completions", req);
    const reply = (await res.json()) as any;
    const content = reply.choices[0].logprobs.content;
    expect(content).toHaveLength(reply.choices[0].token_ids.length);
    const bytes = content.flatMap((c: any) => c.bytes);
    expect(new TextDecoder().decode(Uint8Array.from(bytes))).toBe(reply.choices[0].message.content);
    for (const c of content) {
      expect(c.top_logprobs).toHaveLength(4);
      expect(c.logprob).toBeLessThanOrEqual(0);
      expect(c.top_logprobs[0].logprob).toBeGreaterThanOrEqual(c.logprob);
      expect(c.top_logprobs.map((t: any) => t.logprob)).toEqual([...c.top_logprobs.map((t: any) => t.logprob)].sort((a, b) => b - a));
    }
    const chunks = (await sseEvents(await call("/v1/chat/completions", { ...req, stream: true }))).slice(0, -1).map((e) => JSON.parse(e));
    const streamed = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    expect(streamed).toEqual(content);
    const without = (await (await call("/v1/chat/completions", { ...req, logprobs: false, top_logprobs: undefined })).json()) as any;
    expect(without.choices[0].logprobs).toBeNull();
  });
});
