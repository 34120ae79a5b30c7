// A mixed-type GGUF file (llama.cpp's Q4_K_M mix: q4_K, q6_K, written by our GGUF writer) built
// by the CLI, which keeps every tensor's type, and served by the Worker from KV.

import { beforeAll, describe, expect, it } from "vitest";
import { parseManifest, parseModelPointer } from "../../functions/model/manifest";
import { artifactFile, call, completion, seed, sseEvents, testEnv, unloadAll } from "./support";

const ID = "tiny-q4_k_m";
const PROMPT = [1, 400, 300, 20];

let expected: number[];

beforeAll(async () => {
  await seed("kquants");
  unloadAll();
  expected = (JSON.parse(new TextDecoder().decode(await artifactFile("kquants.json"))) as { generated: number[] }).generated;
});

describe("a Q4_K_M GGUF model", () => {
  it("is stored with the file's own types: q4_K and q6_K matrices, a memory plan with the q8_K buffer", async () => {
    const pointer = parseModelPointer((await testEnv.MODELS.get(`models/${ID}`))!);
    const manifest = parseManifest((await testEnv.MODELS.get(`manifests/${pointer.manifest}`))!);
    expect(manifest.quant).toBe("mixed");
    const dtypes = new Set(manifest.tensors.filter((t) => t.shape.length === 2).map((t) => t.dtype));
    expect([...dtypes].sort()).toEqual(["q4_k", "q6_k"]);
    expect(manifest.tensors.find((t) => t.name === "output.weight")!.dtype).toBe("q6_k");
  });

  it("greedy completion equals the runtime's tokens for the file in Node (32 tokens)", async () => {
    const body = await completion({ model: ID, prompt: PROMPT, max_tokens: expected.length, temperature: 0, return_token_ids: true });
    expect(body.choices[0].prompt_token_ids).toEqual(PROMPT);
    expect(body.choices[0].token_ids).toEqual(expected.slice(0, body.choices[0].token_ids.length));
    // the random model may hit EOS early; it gets at least several tokens in
    expect(body.choices[0].token_ids.length).toBeGreaterThan(4);
  });

  it("streams the same tokens", async () => {
    const res = await call("/v1/completions", { model: ID, prompt: PROMPT, max_tokens: 12, temperature: 0, stream: true, return_token_ids: true });
    expect(res.status).toBe(200);
    const ids = (await sseEvents(res)).filter((e) => e !== "[DONE]").flatMap((e) => (JSON.parse(e) as { choices?: { token_ids?: number[] }[] }).choices?.[0]?.token_ids ?? []);
    expect(ids).toEqual(expected.slice(0, ids.length));
    expect(ids.length).toBeGreaterThan(4);
  });
});
