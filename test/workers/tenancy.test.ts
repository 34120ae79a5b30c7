// Customers inside workerd, on KV the real CLI wrote (deploy, rollback, remove, gc, key
// rotation: see test/setup/fixtures.ts buildTenants): each key sees and runs only its own
// models, an old key stops working, rollback serves the previous version, and several
// customers' models share one isolate's memory budget.

import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../functions/app";
import { kvKeys } from "../../functions/model/manifest";
import { workerStore } from "../../functions/store/worker";
import { models } from "../../functions/index";
import kernelsModule from "../../kernels/build/kernels.wasm";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { generateGreedyReference } from "../reference/llama-forward";
import { artifactFile, call, seed, sharedModelFile, testEnv } from "./support";

let tenants: { keys: { acme: { old: string; current: string }; globex: string }; story: { v1: string; v2: string; live: string }; gcRemoved: string[] };
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  await seed("tenants");
  tenants = JSON.parse(new TextDecoder().decode(await artifactFile("tenants.json")));
});

async function get(path: string, key?: string) {
  const res = await call(path, undefined, { headers: key ? auth(key) : {} });
  return { status: res.status, body: (await res.json()) as any };
}

async function complete(key: string | undefined, body: Record<string, unknown>) {
  const res = await call("/v1/completions", body, { headers: key ? auth(key) : {} });
  return { status: res.status, body: (await res.json()) as any };
}

describe("API keys", () => {
  it("needs a key once customers exist, and says so with 401", async () => {
    const models = await get("/v1/models");
    expect(models.status).toBe(401);
    expect(models.body.error.type).toBe("authentication_error");
    expect((await complete(undefined, { model: "story", prompt: "x" })).status).toBe(401);
  });

  it("refuses a wrong key without echoing it", async () => {
    const res = await get("/v1/models", "ei_not-a-real-key-0123456789");
    expect(res.status).toBe(401);
    expect(JSON.stringify(res.body)).not.toContain("ei_not-a-real-key");
  });

  it("refuses the key that was rotated away, accepts the new one", async () => {
    expect((await get("/v1/models", tenants.keys.acme.old)).status).toBe(401);
    expect((await get("/v1/models", tenants.keys.acme.current)).status).toBe(200);
  });
});

describe("isolation", () => {
  it("lists only the caller's models", async () => {
    const acme = await get("/v1/models", tenants.keys.acme.current);
    const globex = await get("/v1/models", tenants.keys.globex);
    expect(acme.body.data.map((m: { id: string }) => m.id)).toEqual(["story"]);
    expect(globex.body.data.map((m: { id: string }) => m.id)).toEqual(["helper"]);
  });

  it("answers another customer's model exactly as a model that does not exist", async () => {
    const theirs = await complete(tenants.keys.acme.current, { model: "helper", prompt: "x", max_tokens: 1 });
    const nobody = await complete(tenants.keys.acme.current, { model: "nothing", prompt: "x", max_tokens: 1 });
    expect(theirs.status).toBe(404);
    expect(theirs.body.error.message.replace("helper", "M")).toBe(nobody.body.error.message.replace("nothing", "M"));
    expect({ ...theirs.body.error, message: "" }).toEqual({ ...nobody.body.error, message: "" });
    expect((await complete(tenants.keys.globex, { model: "story", prompt: "x", max_tokens: 1 })).status).toBe(404);
  });

  it("runs each customer's own model", async () => {
    const helper = await complete(tenants.keys.globex, { model: "helper", prompt: "Once", max_tokens: 5, temperature: 0 });
    expect(helper.status).toBe(200);
    expect(helper.body.usage.completion_tokens).toBeGreaterThan(0);
  });
});

describe("versions", () => {
  it("serves the version rollback returned to, with its outputs", async () => {
    expect(tenants.story.live).toBe(tenants.story.v1);
    const model = readLlama2cCheckpoint(await sharedModelFile("aidreams260K.bin"));
    const tokenizer = Llama2cTokenizer.fromBytes(await sharedModelFile("aidreams260K.tok512.bin"), model.config.vocabSize);
    const ref = generateGreedyReference(model, tokenizer, "Once upon a time", 60);
    const res = await complete(tenants.keys.acme.current, { model: "story", prompt: "Once upon a time", max_tokens: 60 - ref.promptTokens.length + 1, temperature: 0, return_token_ids: true });
    expect(res.body.choices[0].token_ids).toEqual(ref.tokens.slice(ref.promptTokens.length - 1));
    expect(models.loadedModels.map((m) => m.manifestSha256)).toContain(tenants.story.v1);
    // Once customers exist, /healthz tells an unauthenticated caller only that it is up.
    expect((await get("/healthz")).body).toEqual({ status: "ok" });
  });

  it("gc removed data no version references, and what is referenced is all there", async () => {
    expect(tenants.gcRemoved.length).toBeGreaterThan(0);
    for (const key of tenants.gcRemoved) expect(await testEnv.MODELS.get(key)).toBeNull();
    for (const sha of [tenants.story.v1, tenants.story.v2]) {
      const manifest = JSON.parse((await testEnv.MODELS.get(`manifests/${sha}`))!);
      for (const s of manifest.weights.shards) expect(await testEnv.MODELS.get(`shards/${s.sha256}`)).not.toBeNull();
    }
  });
});

describe("one isolate, several customers' models", () => {
  it("unloads the least recently used model to make room, and refuses one that can never fit", async () => {
    const story = JSON.parse((await testEnv.MODELS.get(`manifests/${tenants.story.v1}`))!).memory.total as number;
    // A budget that holds one of the two models at a time.
    const { app, models: registry } = createApp(kernelsModule, { budgetBytes: Math.ceil(story * 1.5) });
    const ask = (key: string, model: string) =>
      app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json", ...auth(key) }, body: JSON.stringify({ model, prompt: "Once", max_tokens: 2 }) }, testEnv);
    expect((await ask(tenants.keys.acme.current, "story")).status).toBe(200);
    expect(registry.loadedModels.map((m) => m.id)).toEqual(["story"]);
    expect((await ask(tenants.keys.globex, "helper")).status).toBe(200);
    expect(registry.loadedModels.map((m) => m.id)).toEqual(["helper"]);
    expect(registry.memoryInUse).toBeLessThanOrEqual(Math.ceil(story * 1.5));

    const tiny = createApp(kernelsModule, { budgetBytes: 1024 }).app;
    const res = await tiny.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json", ...auth(tenants.keys.acme.current) }, body: JSON.stringify({ model: "story", prompt: "Once", max_tokens: 2 }) }, testEnv);
    expect(res.status).toBe(503);
    expect(((await res.json()) as any).error.code).toBe("model_too_large");
  });
});

describe("the registry's lease", () => {
  it("a model another request's load would evict between its lookup and its pin stays loaded and counted", async () => {
    const story = JSON.parse((await testEnv.MODELS.get(`manifests/${tenants.story.v1}`))!).memory.total as number;
    const { models: registry } = createApp(kernelsModule, { budgetBytes: Math.ceil(story * 1.5) });
    const pointer = kvKeys.customerModelPointer("acme", "story");
    // Loaded once and idle: the only candidate for eviction.
    (await registry.acquire(workerStore(testEnv), "story", pointer)).release();
    // The window: the model is found, and before this request pins it another request's load
    // makes room (what a load finishing in the same turn of the event loop does).
    const r = registry as unknown as { get: (...a: unknown[]) => Promise<unknown>; makeRoom: (bytes: number, id: string) => void };
    const get = r.get.bind(registry);
    let evictions = 0;
    r.get = async (...args) => {
      const model = await get(...args);
      try {
        r.makeRoom(story, "other");
      } catch {
        evictions--; // nothing could be evicted: the wanted model was protected
      }
      evictions++;
      return model;
    };
    const lease = await registry.acquire(workerStore(testEnv), "story", pointer);
    expect(evictions).toBe(0);
    expect(registry.loadedModels.map((m) => m.id)).toEqual(["story"]);
    expect(registry.memoryInUse).toBe(lease.model.memoryBytes);
    lease.release();
  });
});
