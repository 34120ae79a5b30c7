// Bad input and broken storage: each gets a clear OpenAI-shaped error with the right status,
// and the isolate keeps serving.

import { beforeEach, describe, expect, it } from "vitest";
import { canonicalJson, kvKeys, type Manifest } from "../../functions/model/manifest";
import { sha256Hex } from "../../functions/model/hash";
import { call, completion, faultyKv, seed, testEnv, unloadAll } from "./support";

async function errorOf(res: Response): Promise<{ status: number; error: { message: string; type: string; param: string | null; code: string | null } }> {
  const body = (await res.json()) as any;
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  return { status: res.status, error: body.error };
}

async function livePointer(id: string) {
  return JSON.parse((await testEnv.MODELS.get(kvKeys.modelPointer(id)))!) as { manifest: string; previous: string | null };
}

async function liveManifest(id: string): Promise<Manifest> {
  return JSON.parse((await testEnv.MODELS.get(kvKeys.manifest((await livePointer(id)).manifest)))!);
}

/** Publishes an altered copy of a model's manifest under a new id, as a build would. */
async function publishVariant(id: string, newId: string, change: (m: Manifest) => void): Promise<void> {
  const manifest = await liveManifest(id);
  manifest.id = newId;
  change(manifest);
  const text = canonicalJson(manifest);
  const sha = await sha256Hex(text);
  await testEnv.MODELS.put(kvKeys.manifest(sha), text);
  await testEnv.MODELS.put(kvKeys.modelPointer(newId), JSON.stringify({ manifest: sha, previous: null }));
}

const ok = { model: "aidreams260K", prompt: "Once upon a time", max_tokens: 4, temperature: 0 };

beforeEach(async () => {
  await seed("aidreams");
  unloadAll();
});

describe("bad requests get 400 naming the field", () => {
  const cases: Array<[string, Record<string, unknown>, string | null]> = [
    ["no model", { prompt: "x" }, "model"],
    ["model not a string", { model: 3, prompt: "x" }, "model"],
    ["no prompt", { model: "aidreams260K" }, "prompt"],
    ["prompt a number", { model: "aidreams260K", prompt: 5 }, "prompt"],
    ["negative token id", { model: "aidreams260K", prompt: [1, -3] }, "prompt"],
    ["max_tokens a string", { ...ok, max_tokens: "4" }, "max_tokens"],
    ["negative max_tokens", { ...ok, max_tokens: -1 }, "max_tokens"],
    ["fractional max_tokens", { ...ok, max_tokens: 1.5 }, "max_tokens"],
    ["temperature too high", { ...ok, temperature: 7 }, "temperature"],
    ["top_p zero", { ...ok, top_p: 0 }, "top_p"],
    ["seed a string", { ...ok, seed: "1" }, "seed"],
    ["stop a number", { ...ok, stop: 3 }, "stop"],
    ["thousands of stop strings", { ...ok, stop: Array.from({ length: 5000 }, (_, i) => `s${i}`) }, "stop"],
    ["stream not boolean", { ...ok, stream: "yes" }, "stream"],
    ["unknown field", { ...ok, frobnicate: true }, "frobnicate"],
    ["n of 0", { ...ok, n: 0 }, "n"],
    ["n past 128", { ...ok, n: 129 }, "n"],
    ["prompt of 100k characters", { ...ok, prompt: "a".repeat(100_000) }, "prompt"],
  ];
  for (const [name, body, param] of cases) {
    it(name, async () => {
      const { status, error } = await errorOf(await call("/v1/completions", body));
      expect(status).toBe(400);
      expect(error.type).toBe("invalid_request_error");
      expect(error.param).toBe(param);
    });
  }

  it("a body that is not JSON", async () => {
    const { status, error } = await errorOf(await call("/v1/completions", undefined, { raw: "{not json" }));
    expect(status).toBe(400);
    expect(error.message).toMatch(/not valid JSON/);
  });

  it("a JSON body that is not an object", async () => {
    const { status } = await errorOf(await call("/v1/completions", [1, 2, 3]));
    expect(status).toBe(400);
  });

  it("a huge body gets 413", async () => {
    const { status } = await errorOf(await call("/v1/completions", undefined, { raw: JSON.stringify({ ...ok, prompt: "a".repeat(400_000) }) }));
    expect(status).toBe(413);
  });

  it("a token id past the vocabulary", async () => {
    const { status, error } = await errorOf(await call("/v1/completions", { ...ok, prompt: [1, 512] }));
    expect(status).toBe(400);
    expect(error.message).toContain("512");
  });

  it("a prompt longer than the context, with both numbers", async () => {
    const { status, error } = await errorOf(await call("/v1/completions", { ...ok, prompt: Array.from({ length: 200 }, () => 65), max_tokens: 1 }));
    expect(status).toBe(400);
    expect(error.code).toBe("context_length_exceeded");
    expect(error.message).toContain("128");
    expect(error.message).toContain("200");
  });

  it("max_tokens past the context", async () => {
    const { status, error } = await errorOf(await call("/v1/completions", { ...ok, max_tokens: 1000 }));
    expect(status).toBe(400);
    expect(error.code).toBe("context_length_exceeded");
  });
});

describe("models that cannot be served", () => {
  it("an unknown model is 404", async () => {
    const { status, error } = await errorOf(await call("/v1/completions", { ...ok, model: "no-such-model" }));
    expect(status).toBe(404);
    expect(error.code).toBe("model_not_found");
  });

  it("a missing shard is 503 naming the shard, and the isolate keeps serving", async () => {
    const manifest = await liveManifest("aidreams260K-q8_0");
    const shardKey = kvKeys.shard(manifest.weights.shards[0].sha256);
    const saved = await testEnv.MODELS.get(shardKey, "arrayBuffer");
    await testEnv.MODELS.delete(shardKey);
    const { status, error } = await errorOf(await call("/v1/completions", { ...ok, model: "aidreams260K-q8_0" }));
    expect(status).toBe(503);
    expect(error.message).toContain(shardKey);
    expect(error.message).toContain("missing");
    // Other models still answer, and once the shard is back the model loads.
    expect((await completion(ok)).choices[0].text.length).toBeGreaterThan(0);
    await testEnv.MODELS.put(shardKey, saved!);
    expect((await completion({ ...ok, model: "aidreams260K-q8_0" })).choices[0].finish_reason).toBeDefined();
  });

  it("a corrupt shard is 503 and never served", async () => {
    const manifest = await liveManifest("aidreams260K");
    const shardKey = kvKeys.shard(manifest.weights.shards[0].sha256);
    const bytes = new Uint8Array((await testEnv.MODELS.get(shardKey, "arrayBuffer"))!);
    bytes[1000] ^= 0xff;
    await testEnv.MODELS.put(shardKey, bytes);
    const { status, error } = await errorOf(await call("/v1/completions", ok));
    expect(status).toBe(503);
    expect(error.message).toMatch(/corrupt/);
    expect(((await (await call("/healthz")).json()) as any).loaded).toEqual([]);
  });

  it("a truncated shard is 503", async () => {
    const manifest = await liveManifest("aidreams260K");
    const shardKey = kvKeys.shard(manifest.weights.shards[0].sha256);
    const bytes = new Uint8Array((await testEnv.MODELS.get(shardKey, "arrayBuffer"))!);
    await testEnv.MODELS.put(shardKey, bytes.slice(0, bytes.length - 10));
    const { status, error } = await errorOf(await call("/v1/completions", ok));
    expect(status).toBe(503);
    expect(error.message).toMatch(/truncated/);
  });

  it("a manifest that does not parse is 503", async () => {
    const pointer = await livePointer("aidreams260K");
    await testEnv.MODELS.put(kvKeys.manifest(pointer.manifest), "{oops");
    const { status, error } = await errorOf(await call("/v1/completions", ok));
    expect(status).toBe(503);
    expect(error.message).toContain("aidreams260K");
  });

  it("a manifest naming an unknown architecture or quant is 503", async () => {
    await publishVariant("aidreams260K", "weird-arch", (m) => ((m as any).architecture = "mamba"));
    await publishVariant("aidreams260K", "weird-quant", (m) => ((m as any).quant = "q3_k"));
    for (const [model, word] of [["weird-arch", "architecture"], ["weird-quant", "quant"]]) {
      const { status, error } = await errorOf(await call("/v1/completions", { ...ok, model }));
      expect(status).toBe(503);
      expect(error.message).toContain(word);
    }
  });

  it("a model too large for the memory budget is 503 model_too_large, with the numbers", async () => {
    await publishVariant("aidreams260K", "too-big", (m) => (m.memory.total = 300 * 1024 * 1024));
    const { status, error } = await errorOf(await call("/v1/completions", { ...ok, model: "too-big" }));
    expect(status).toBe(503);
    expect(error.code).toBe("model_too_large");
    expect(error.message).toMatch(/300\.0 MiB/);
  });

  for (const mode of ["throw", "missing"] as const) {
    it(`a KV read that ${mode === "throw" ? "throws" : "returns nothing"} is 503, and a later request succeeds`, async () => {
      const env = { ...testEnv, MODELS: faultyKv(testEnv.MODELS, { match: (k) => k.startsWith("shards/"), mode }) };
      const { status, error } = await errorOf(await call("/v1/completions", ok, { env }));
      expect(status).toBe(503);
      expect(error.message).toContain("shards/");
      expect((await completion(ok)).choices[0].text.length).toBeGreaterThan(0);
    });
  }
});
