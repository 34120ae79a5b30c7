// Hidden-state outputs of the batched step (StepItem.wantHidden), for embeddings: every token's
// final hidden state (after the final norm) equals the plain reference forward pass's, in every
// architecture, and batching a sequence with others does not change a bit of it.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { DType } from "../../kernels/quant";
import type { CausalLm, KvCache, StepItem } from "../../functions/runtime/weights";
import { buildArtifacts, type BuildInput } from "../../scripts/build/pipeline";
import { readHfModel } from "../../scripts/import/hf";
import { writeTinyHfCheckpoint, type HfFamily } from "../../scripts/import/hf-writer";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import type { ModelConfig, ImportedTensor } from "../../functions/model/description";
import { hfHidden } from "../reference/hf-forward";
import { aidreams } from "../setup/fixtures";
import { maxRelError, runtimeFor } from "../support/runtime";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function hfModel(family: HfFamily, vocabSize: number) {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), `edgeinfer-hidden-${family}-`));
    dirs.push(dir);
    writeTinyHfCheckpoint(dir, { family, vocabSize, seed: 9 });
    return readHfModel(dir);
  };
}

const MODELS: Array<[string, () => { config: ModelConfig; tensors: ImportedTensor[] }]> = [
  ["aidreams260K (llama, interleaved RoPE)", () => readLlama2cCheckpoint(new Uint8Array(readFileSync(aidreams.checkpoint)))],
  ["llama (Hugging Face, GQA)", hfModel("llama", 1000)],
  ["qwen2 (q/k/v biases)", hfModel("qwen2", 1000)],
  ["mistral (sliding window)", hfModel("mistral", 1000)],
  ["gpt2", hfModel("gpt2", 1000)],
];

function input(model: { config: ModelConfig; tensors: ImportedTensor[] }): BuildInput {
  return { id: "m", config: model.config, tensors: model.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(16), bosId: 1, eosId: 2 } };
}

/** Deterministic pseudo-random token ids. */
function tokens(n: number, seed: number, vocab: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return 3 + (s % (vocab - 3));
  });
}

/** Runs the steps and collects hidden[item][index] (copies) and the logits of each item (last one). */
function run(model: CausalLm, steps: StepItem[][], onItem: (step: number, item: number) => number) {
  const hidden = new Map<number, Float32Array[]>();
  const logits = new Map<number, Float32Array>();
  steps.forEach((items, s) => {
    model.step(
      items,
      (i, l) => logits.set(onItem(s, i), Float32Array.from(l)),
      (i, h, index) => {
        const seq = onItem(s, i);
        const list = hidden.get(seq) ?? [];
        list[items[i].pos + index] = Float32Array.from(h);
        hidden.set(seq, list);
      },
    );
  });
  return { hidden, logits };
}

describe.each(MODELS)("%s", (_name, load) => {
  const imported = load();
  const vocab = imported.config.vocabSize;

  it("f32: every token's hidden state equals the reference's, prompt in one step and token by token", async () => {
    const { model, caches } = await runtimeFor(await buildArtifacts(input(imported), { quant: "f32" }), 2);
    const ids = tokens(12, 5, vocab);
    const expected = hfHidden(imported, ids);
    const whole = run(model, [[{ cache: caches[0], pos: 0, tokens: ids, wantLogits: false, wantHidden: true }]], () => 0).hidden.get(0)!;
    const single = run(model, ids.map((t, pos) => [{ cache: caches[1], pos, tokens: [t], wantLogits: false, wantHidden: true }]), () => 0).hidden.get(0)!;
    expect(whole).toHaveLength(ids.length);
    expect(single).toHaveLength(ids.length);
    let worst = 0;
    ids.forEach((_, pos) => {
      expect(whole[pos]).toHaveLength(imported.config.dim);
      worst = Math.max(worst, maxRelError(whole[pos], expected[pos]), maxRelError(single[pos], expected[pos]));
    });
    expect(worst).toBeLessThan(1e-4);
  });

  for (const quant of ["f32", "q8_0", "q4_0"] as DType[]) {
    it(`${quant}: batched with other sequences (prompt chunks, decode tokens, logits), hidden states are bit for bit those alone`, async () => {
      const artifacts = await buildArtifacts(input(imported), { quant });
      const a = tokens(9, 7, vocab), b = tokens(6, 8, vocab), c = tokens(4, 9, vocab);
      // alone: each sequence in its own instance, one token per step
      const alone = async (ids: number[]) => {
        const { model, cache } = await runtimeFor(artifacts);
        return run(model, ids.map((t, pos) => [{ cache, pos, tokens: [t], wantLogits: false, wantHidden: true }]), () => 0).hidden.get(0)!;
      };
      const aloneA = await alone(a), aloneB = await alone(b);
      // together: a's prompt in two chunks, b's whole, c wanting logits beside them, then a decode token of each
      const { model, caches } = await runtimeFor(artifacts, 3);
      const [ca, cb, cc] = caches as KvCache[];
      const steps: StepItem[][] = [
        [
          { cache: ca, pos: 0, tokens: a.slice(0, 5), wantLogits: false, wantHidden: true },
          { cache: cc, pos: 0, tokens: c.slice(0, 3), wantLogits: true },
          { cache: cb, pos: 0, tokens: b.slice(0, 5), wantLogits: false, wantHidden: true },
        ],
        [
          { cache: cb, pos: 5, tokens: b.slice(5), wantLogits: false, wantHidden: true },
          { cache: ca, pos: 5, tokens: a.slice(5, 8), wantLogits: false, wantHidden: true },
          { cache: cc, pos: 3, tokens: c.slice(3), wantLogits: true },
        ],
        [{ cache: ca, pos: 8, tokens: a.slice(8), wantLogits: false, wantHidden: true }],
      ];
      const seqOf = new Map<KvCache, number>([[ca, 0], [cb, 1], [cc, 2]]);
      const together = run(model, steps, (s, i) => seqOf.get(steps[s][i].cache)!);
      expect(together.hidden.get(0)).toEqual(aloneA);
      expect(together.hidden.get(1)).toEqual(aloneB);
      expect(together.hidden.has(2)).toBe(false);
      expect(together.logits.get(2)).toHaveLength(vocab);
      expect(together.logits.has(0) || together.logits.has(1)).toBe(false);
    });
  }

  it("an item asking for hidden states and logits, or hidden states without onHidden, is refused", async () => {
    const { model, cache } = await runtimeFor(await buildArtifacts(input(imported), { quant: "f32" }));
    expect(() => model.step([{ cache, pos: 0, tokens: [3], wantLogits: true, wantHidden: true }], () => {}, () => {})).toThrow(/hidden states or logits, not both/);
    expect(() => model.step([{ cache, pos: 0, tokens: [3], wantLogits: false, wantHidden: true }], () => {})).toThrow(/no onHidden/);
  });
});
