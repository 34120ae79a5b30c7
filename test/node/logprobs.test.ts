// Log-probabilities as the runtime reports them (the engine, on our kernels) against the
// log-softmax of the plain reference forward pass (f32 model), for generated tokens and for
// the prompt's own tokens (prefill steps handing over every position's logits).

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { GenerationParams, GenerationStep } from "../../functions/runtime/engine";
import { readSequence } from "../../functions/runtime/generate";
import type { LoadedModel } from "../../functions/runtime/loader";
import type { TokenLogprob } from "../../functions/runtime/logprobs";
import { buildArtifacts } from "../../scripts/build/pipeline";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { ReferenceLlama } from "../reference/llama-forward";
import { aidreams } from "../setup/fixtures";
import { loadedModelFor } from "../support/runtime";

function logSoftmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  const lse = max + Math.log(z);
  return Array.from(logits, (v) => v - lse);
}

async function aidreamsLoaded() {
  const imported = readLlama2cCheckpoint(new Uint8Array(readFileSync(aidreams.checkpoint)));
  const tokenizerBytes = new Uint8Array(readFileSync(aidreams.tokenizer));
  const artifacts = await buildArtifacts(
    { id: "aidreams260K", config: imported.config, tensors: imported.tensors, tokenizer: { kind: "llama2c", bytes: tokenizerBytes, bosId: 1, eosId: 2 } },
    { quant: "f32" },
  );
  return { imported, loaded: await loadedModelFor(artifacts) };
}

/** Every step of one generation on the model's engine. */
async function* generate(loaded: LoadedModel, params: GenerationParams) {
  return yield* readSequence(loaded.engine, loaded.engine.submit(params));
}

function expectMatches(lp: TokenLogprob, want: number[], top: number) {
  expect(Math.abs(lp.logprob - want[lp.token])).toBeLessThan(1e-4);
  const order = want.map((_, i) => i).sort((a, b) => want[b] - want[a] || a - b);
  expect(lp.top.map((t) => t.token)).toEqual(order.slice(0, top));
  lp.top.forEach((t) => expect(Math.abs(t.logprob - want[t.token])).toBeLessThan(1e-4));
}

describe("logprobs against the reference forward pass (aidreams260K, f32)", () => {
  it("of the prompt's tokens and of every sampled token, with the top alternatives", async () => {
    const { imported, loaded } = await aidreamsLoaded();
    const promptIds = loaded.tokenizer.encode("Once upon a time, there was a little fox", { bos: true });
    const steps: GenerationStep[] = [];
    const run = generate(loaded, { promptIds, maxTokens: 40, temperature: 0.9, topP: 0.95, seed: 11, stop: [], logprobs: { top: 5, prompt: true } });
    for (let s = await run.next(); !s.done; s = await run.next()) steps.push(s.value);

    const prompt = steps[0].promptLogprobs!;
    expect(prompt.length).toBe(promptIds.length);
    expect(prompt[0]).toBeNull();
    const generated = steps.filter((s) => s.logprob).map((s) => s.logprob!);
    expect(generated.length).toBeGreaterThan(10);

    const ref = new ReferenceLlama(imported);
    const all = [...promptIds, ...generated.map((g) => g.token)];
    for (let pos = 0; pos + 1 < all.length; pos++) {
      const want = logSoftmax(ref.forward(all[pos], pos));
      const lp = pos + 1 < promptIds.length ? prompt[pos + 1]! : generated[pos + 1 - promptIds.length];
      expect(lp.token).toBe(all[pos + 1]);
      expectMatches(lp, want, 5);
    }
  });

  it("are those of the raw logits, whatever the sampling controls do", async () => {
    const { imported, loaded } = await aidreamsLoaded();
    const promptIds = loaded.tokenizer.encode("The cat", { bos: true });
    const steps: GenerationStep[] = [];
    const params = {
      promptIds, maxTokens: 20, temperature: 1.3, topP: 1, seed: 5, stop: [],
      sampling: { frequencyPenalty: 1.5, repetitionPenalty: 1.4, topK: 3, logitBias: new Map([[300, 8]]) },
      logprobs: { top: 2, prompt: false },
    };
    const run = generate(loaded, params);
    for (let s = await run.next(); !s.done; s = await run.next()) if (s.value.logprob) steps.push(s.value);
    expect(steps.some((s) => s.tokenId === 300)).toBe(true); // the bias did act on the choice
    const ref = new ReferenceLlama(imported);
    const all = [...promptIds, ...steps.map((s) => s.tokenId)];
    let want: number[] = [];
    for (let pos = 0; pos + 1 < all.length; pos++) {
      want = logSoftmax(ref.forward(all[pos], pos));
      if (pos + 1 >= promptIds.length) expectMatches(steps[pos + 1 - promptIds.length].logprob!, want, 2);
    }
  });
});
