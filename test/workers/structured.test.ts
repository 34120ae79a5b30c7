// Structured output (response_format) through both routes inside workerd: on the trained
// default model (f32 and q8_0) and on random-weight models with llama2.c's, Qwen's and Llama 3's
// tokenizers, across schemas, seeds and temperatures, streamed and not, every output parses and
// validates against its schema (ajv). Refused schemas and fields name what is wrong.

import { beforeAll, describe, expect, it } from "vitest";
import { SCHEMAS, validationError } from "../support/schemas";
import { createApp } from "../../functions/app";
import { kvKeys } from "../../functions/model/manifest";
import { structuredOutputBytes } from "../../functions/runtime/constrain/constraint";
import kernelsModule from "../../kernels/build/kernels.wasm";
import { call, seed, sseEvents, testEnv } from "./support";

beforeAll(async () => {
  await seed("aidreams");
  await seed("gqa");
  await seed("hf");
});

const schemaFormat = (name: string) => ({ type: "json_schema", json_schema: { name, schema: SCHEMAS[name], strict: true } });

async function post(path: string, body: Record<string, unknown>) {
  const res = await call(path, body);
  if (body.stream) {
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const choices = chunks.flatMap((c) => c.choices ?? []);
    const text = choices.map((c: any) => c.text ?? c.delta?.content ?? "").join("");
    return { status: res.status, text, finish: choices.at(-1)?.finish_reason, body: chunks };
  }
  const json = (await res.json()) as any;
  if (res.status !== 200) return { status: res.status, text: "", finish: null, body: json };
  const choice = json.choices[0];
  return { status: res.status, text: choice.text ?? choice.message.content, finish: choice.finish_reason, body: json };
}

const COMPLETION_MODELS = ["aidreams260K", "aidreams260K-q8_0", "gqa-untied"];
const CHAT_MODELS = ["tiny-qwen2", "tiny-llama3"];
const PICKED = ["extraction", "classification", "enumRoot", "tree", "records", "tagged", "unicode", "anyObject"];

describe("every output parses and validates", () => {
  for (const model of COMPLETION_MODELS) {
    it(`/v1/completions on ${model}`, async () => {
      let n = 0;
      for (const name of PICKED) {
        for (const [i, temperature] of [0, 0.8, 1.6].entries()) {
          const stream = (i + name.length) % 2 === 0;
          const r = await post("/v1/completions", { model, prompt: "Once upon a time", max_tokens: 80, temperature, seed: 17 + i, stream, response_format: schemaFormat(name) });
          const label = `${model} ${name} t=${temperature} stream=${stream}: ${JSON.stringify(r.text)}`;
          expect(r.status, label).toBe(200);
          expect(r.finish, label).toBe("stop");
          expect(validationError(SCHEMAS[name], r.text), label).toBeNull();
          n++;
        }
      }
      expect(n).toBe(PICKED.length * 3);
    });
  }

  for (const model of CHAT_MODELS) {
    it(`/v1/chat/completions on ${model}`, async () => {
      for (const name of PICKED) {
        for (const [i, temperature] of [0, 1].entries()) {
          const stream = i === 1;
          const messages = [{ role: "user", content: `Reply as JSON (${name}).` }];
          const r = await post("/v1/chat/completions", { model, messages, max_tokens: 120, temperature, seed: 5 + i, stream, response_format: schemaFormat(name) });
          const label = `${model} ${name} t=${temperature} stream=${stream}: ${JSON.stringify(r.text)}`;
          expect(r.status, label).toBe(200);
          expect(r.finish, label).toBe("stop");
          expect(validationError(SCHEMAS[name], r.text), label).toBeNull();
        }
      }
    });
  }

  it("json_object gives a JSON object; a schema directly under json_schema is taken as the schema", async () => {
    for (const seed of [1, 2, 3]) {
      const r = await post("/v1/completions", { model: "aidreams260K", prompt: "Data:", max_tokens: 100, temperature: 1, seed, response_format: { type: "json_object" } });
      expect(r.finish).toBe("stop");
      const value = JSON.parse(r.text);
      expect(typeof value === "object" && value !== null && !Array.isArray(value), r.text).toBe(true);
    }
    const bare = await post("/v1/completions", { model: "aidreams260K", prompt: "Label:", max_tokens: 40, temperature: 1, seed: 3, response_format: { type: "json_schema", json_schema: SCHEMAS.classification } });
    expect(validationError(SCHEMAS.classification, bare.text)).toBeNull();
  });

  it("classification by enum: the label is one of the values", async () => {
    const labels = new Set<string>();
    for (let seed = 0; seed < 12; seed++) {
      const r = await post("/v1/completions", { model: "aidreams260K", prompt: "The story was", max_tokens: 10, temperature: 1.5, seed, response_format: { type: "json_schema", json_schema: { name: "label", schema: { enum: ["happy", "sad", "scary"] } } } });
      expect(r.finish).toBe("stop");
      labels.add(JSON.parse(r.text));
    }
    expect([...labels].every((l) => ["happy", "sad", "scary"].includes(l))).toBe(true);
  });

  it("finish_reason is length when max_tokens cuts the value (and the text is a prefix of one)", async () => {
    const r = await post("/v1/completions", { model: "aidreams260K", prompt: "x", max_tokens: 3, temperature: 0, response_format: schemaFormat("extraction") });
    expect(r.finish).toBe("length");
    expect(validationError(SCHEMAS.extraction, r.text)).not.toBeNull();
    expect(r.text.trimStart().startsWith("{")).toBe(true);
  });

  it("logprobs and sampling controls work beside it", async () => {
    const r = await post("/v1/completions", { model: "aidreams260K", prompt: "Name:", max_tokens: 60, temperature: 1, seed: 4, logprobs: 2, frequency_penalty: 1, top_k: 20, response_format: schemaFormat("extraction") });
    expect(validationError(SCHEMAS.extraction, r.text)).toBeNull();
    expect(r.body.choices[0].logprobs.tokens.join("")).toBe(r.text);
  });
});

describe("response_format is checked, 400 naming the field", () => {
  const ok = { model: "aidreams260K", prompt: "x", max_tokens: 5 };
  const cases: Array<[string, unknown, string, RegExp?]> = [
    ["a string", "json", "response_format"],
    ["an unknown type", { type: "yaml" }, "response_format.type"],
    ["json_schema not an object", { type: "json_schema", json_schema: 3 }, "response_format.json_schema"],
    ["a bad name", { type: "json_schema", json_schema: { name: "has space", schema: {} } }, "response_format.json_schema.name"],
    ["strict not a boolean", { type: "json_schema", json_schema: { name: "x", schema: {}, strict: "yes" } }, "response_format.json_schema.strict"],
    ["an unknown field", { type: "json_object", schema: {} }, "response_format.schema"],
    ["an unsupported keyword", { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a" } } }, "response_format.json_schema.schema", /pattern/],
    ["a nested unsupported keyword", { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { type: "string", format: "date" } } } } }, "response_format.json_schema.schema", /format.*\/properties\/a\/format/],
    ["an unresolved $ref", { type: "json_schema", json_schema: { name: "x", schema: { $ref: "#/$defs/nope" } } }, "response_format.json_schema.schema", /\$ref/],
  ];
  for (const [name, rf, param, message] of cases) {
    it(name, async () => {
      for (const [path, body] of [["/v1/completions", ok], ["/v1/chat/completions", { model: "tiny-qwen2", messages: [{ role: "user", content: "hi" }], max_tokens: 5 }]] as const) {
        const res = await call(path, { ...body, response_format: rf });
        const json = (await res.json()) as any;
        expect(res.status, path).toBe(400);
        expect(json.error.param, path).toBe(param);
        if (message) expect(json.error.message).toMatch(message);
      }
    });
  }
});

describe("structured output's memory is counted against the budget", () => {
  const manifestOf = async (id: string) => JSON.parse((await testEnv.MODELS.get(kvKeys.manifest(JSON.parse((await testEnv.MODELS.get(kvKeys.modelPointer(id)))!).manifest)))!);
  const body = { model: "aidreams260K", prompt: "Once", max_tokens: 8, response_format: { type: "json_object" } };

  it("once per model, the first time it is used: its vocabulary index and mask cache", async () => {
    const { app, models: registry } = createApp(kernelsModule);
    const post = (b: unknown) => app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(b) }, testEnv);
    expect((await post({ ...body, response_format: undefined })).status).toBe(200);
    const plain = registry.memoryInUse;
    expect((await post(body)).status).toBe(200);
    const vocab = (await manifestOf("aidreams260K")).config.vocabSize;
    expect(registry.memoryInUse).toBe(plain + structuredOutputBytes(vocab));
    expect((await post({ ...body, response_format: { type: "json_schema", json_schema: { schema: SCHEMAS.extraction } } })).status).toBe(200);
    expect(registry.memoryInUse).toBe(plain + structuredOutputBytes(vocab));
  });

  it("a model that fits, but not with structured output's memory: plain requests work, structured ones get 503 model_too_large", async () => {
    const manifest = await manifestOf("aidreams260K");
    const { app } = createApp(kernelsModule, { budgetBytes: manifest.memory.total + Math.floor(structuredOutputBytes(manifest.config.vocabSize) / 2) });
    const post = (b: unknown) => app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(b) }, testEnv);
    expect((await post({ ...body, response_format: undefined })).status).toBe(200);
    const res = await post(body);
    expect(res.status).toBe(503);
    const error = ((await res.json()) as any).error;
    expect(error.code).toBe("model_too_large");
    expect(error.message).toContain("structured output");
    expect((await post({ ...body, response_format: undefined })).status).toBe(200);
  });
});
