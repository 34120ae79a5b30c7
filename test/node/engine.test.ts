// The batched step engine: a step over several sequences gives each one exactly the logits it
// gets alone (every quant, GQA, GPT-2, mixed prompt chunks and decode tokens at different
// positions), and the engine's scheduling (joins and leaves mid-generation, cancellation, the
// admission queue and its limits, chunked prefill) keeps each sequence's output identical to
// its output alone; an encoding (hidden states of a prompt) runs in the same steps.

import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DType } from "../../kernels/quant";
import type { BuildQuant } from "../../scripts/build/quantize";
import { Engine, type GenerationParams, type GenerationSummary, type Sequence } from "../../functions/runtime/engine";
import { admitted, readSequence } from "../../functions/runtime/generate";
import { llama2cAsTokenizer } from "../../functions/runtime/tokenizer/index";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import type { CausalLm, KvCache, StepItem } from "../../functions/runtime/weights";
import { buildArtifacts, type BuildArtifacts } from "../../scripts/build/pipeline";
import { writeTinyHfCheckpoint } from "../../scripts/import/hf-writer";
import type { HfFamily } from "../../scripts/import/hf-writer";
import { loadSource } from "../../scripts/sources/load";
import { writeHfTokenizerDir, type HfFamily as TokenizerFamily } from "../support/hf-fixtures";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { randomLlamaModel } from "../../scripts/import/llama2c-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { aidreams } from "../setup/fixtures";
import { runtimeFor } from "../support/runtime";

const tokenizerBytes = new Uint8Array(readFileSync(aidreams.tokenizer));

async function build(model: ImportedModel, quant: BuildQuant): Promise<BuildArtifacts> {
  return buildArtifacts(
    { id: "m", config: model.config, tensors: model.tensors, tokenizer: { kind: "llama2c", bytes: tokenizerBytes, bosId: 1, eosId: 2 } },
    { quant, shardBytes: 64 * 1024 },
  );
}

const gqaModel = () =>
  randomLlamaModel({ architecture: "llama", dim: 96, hiddenDim: 200, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 512, seqLen: 96, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false }, 21);
const kquantModel = () =>
  randomLlamaModel({ architecture: "llama", dim: 256, hiddenDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 96, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false }, 22);
const aidreamsModel = () => readLlama2cCheckpoint(new Uint8Array(readFileSync(aidreams.checkpoint)));

/** A tiny random checkpoint of a Hugging Face family, loaded as the build loads a folder. */
function hfFamily(family: HfFamily, tokenizer: TokenizerFamily, vocabSize: number, specialIds: Record<string, number> = {}) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), `edgeinfer-engine-${family}-`));
    writeHfTokenizerDir(tokenizer, { dir });
    writeTinyHfCheckpoint(dir, { family, vocabSize, seed: 8, configOverrides: specialIds });
    return { input: await loadSource(dir, { id: `tiny-${family}`, json: true }) };
  };
}

/** Deterministic pseudo-random token ids. */
function tokens(n: number, seed: number, vocab: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return 3 + (s % (vocab - 3));
  });
}

/** Logits of each position of `ids` for one sequence alone, one token per step. */
function aloneLogits(model: CausalLm, cache: KvCache, ids: number[]): Float32Array[] {
  return ids.map((t, pos) => Float32Array.from(model.forward([t], pos, cache)));
}

describe.each([
  ["aidreams260K f32", aidreamsModel, "f32"],
  ["aidreams260K q8_0", aidreamsModel, "q8_0"],
  ["aidreams260K q4_0", aidreamsModel, "q4_0"],
  ["random GQA q8_0", gqaModel, "q8_0"],
  ["random GQA f16", gqaModel, "f16"],
  ["random, rows of 256s, q4_k_m (q4_k and q6_k)", kquantModel, "q4_k_m"],
  ["random, rows of 256s, q5_k", kquantModel, "q5_k"],
  ["random GQA q4_k_m (rows not of 256s: q5_0, q5_1, q8_0 fallbacks)", gqaModel, "q4_k_m"],
  ["random GQA q4_1", gqaModel, "q4_1"],
  ["Hugging Face GPT-2 f32", hfFamily("gpt2", "gpt2", 50257, { bos_token_id: 50256, eos_token_id: 50256 }), "f32"],
  ["Hugging Face GPT-2 q4_0", hfFamily("gpt2", "gpt2", 50257, { bos_token_id: 50256, eos_token_id: 50256 }), "q4_0"],
  ["Hugging Face Qwen2 (q/k/v biases) q8_0", hfFamily("qwen2", "qwen", 151936, { bos_token_id: 151643, eos_token_id: 151645 }), "q8_0"],
  ["Hugging Face Mistral (sliding window) f16", hfFamily("mistral", "tinyllama", 32000, { bos_token_id: 1, eos_token_id: 2 }), "f16"],
] as const)("batched step, %s", (_name, load, quant) => {
  it("gives every sequence bit for bit the logits it gets alone (decode tokens and prompt chunks mixed, different positions)", async () => {
    const source = await load();
    const artifacts = "tensors" in source ? await build(source, quant) : await buildArtifacts(source.input, { quant });
    const { model, caches } = await runtimeFor(artifacts, 4);
    const vocab = artifacts.manifest.config.vocabSize;
    const seqs = [tokens(9, 1, vocab), tokens(23, 2, vocab), tokens(5, 3, vocab), tokens(14, 4, vocab)];
    const want = seqs.map((ids) => aloneLogits(model, caches[0], ids));
    // Each sequence starts at its own step; later steps mix one-token decodes with chunks of 1..5.
    const fed = [0, 0, 0, 0];
    let step = 0;
    let compared = 0;
    while (fed.some((f, i) => f < seqs[i].length)) {
      const items: StepItem[] = [];
      const owners: number[] = [];
      let room = model.stepTokens;
      for (let i = 0; i < seqs.length && room > 0; i++) {
        if (step < i || fed[i] >= seqs[i].length) continue;
        const n = Math.min(room, seqs[i].length - fed[i], 1 + ((step + i) % 5));
        items.push({ cache: caches[i], pos: fed[i], tokens: seqs[i].slice(fed[i], fed[i] + n), wantLogits: true });
        owners.push(i);
        room -= n;
      }
      model.step(items, (j, logits) => {
        const i = owners[j];
        const last = fed[i] + items[j].tokens.length - 1;
        expect(Array.from(logits)).toEqual(Array.from(want[i][last]));
        compared++;
      });
      items.forEach((item, j) => (fed[owners[j]] += item.tokens.length));
      step++;
    }
    expect(compared).toBeGreaterThan(seqs.length);
  });
});

describe("batched step, argument checks", () => {
  it("refuses a step over its token budget or past the context", async () => {
    const { model, caches } = await runtimeFor(await build(gqaModel(), "q8_0"), 2);
    const tooMany = tokens(model.stepTokens + 1, 1, 512);
    expect(() => model.step([{ cache: caches[0], pos: 0, tokens: tooMany, wantLogits: true }], () => {})).toThrow(/carries/);
    expect(() => model.step([{ cache: caches[0], pos: 95, tokens: [5, 6], wantLogits: true }], () => {})).toThrow(/context/);
    expect(() => model.step([{ cache: caches[0], pos: 0, tokens: [], wantLogits: true }], () => {})).toThrow(/at least one/);
  });
});

interface Rig {
  engine: Engine;
  /** Greedy or seeded output of one request alone on a fresh engine. */
  alone(params: GenerationParams): Promise<{ ids: number[]; text: string; summary: GenerationSummary }>;
  clock: { now: number };
}

async function rig(quant: DType, sequences: number, options: { maxQueue?: number; maxWaitMs?: number; abandonAfterMs?: number } = {}): Promise<Rig> {
  const artifacts = await build(aidreamsModel(), quant);
  const tokenizer = llama2cAsTokenizer(Llama2cTokenizer.fromBytes(tokenizerBytes, 512));
  const clock = { now: 0 };
  const make = async (n: number, o = options) => {
    const { model, caches } = await runtimeFor(artifacts, n);
    return new Engine("m", model, tokenizer, artifacts.manifest, caches, { ...o, now: () => clock.now });
  };
  const solo = await make(1, {});
  return {
    engine: await make(sequences),
    clock,
    alone: async (params) => collect(solo, solo.submit(params)),
  };
}

async function collect(engine: Engine, seq: Sequence) {
  const ids: number[] = [];
  let text = "";
  const run = readSequence(engine, seq);
  let r = await run.next();
  while (!r.done) {
    if (r.value.tokenId >= 0) ids.push(r.value.tokenId);
    text += r.value.text;
    r = await run.next();
  }
  return { ids, text, summary: r.value };
}

const params = (promptIds: number[], maxTokens: number, temperature = 0, seed = 1, stop: string[] = []): GenerationParams => ({
  promptIds,
  maxTokens,
  temperature,
  topP: 0.9,
  seed,
  stop,
});

describe("engine", () => {
  it.each(["f32", "q8_0", "q4_0"] as const)("%s: many requests at once, joining and leaving mid-generation, each equal to its output alone", async (quant) => {
    const r = await rig(quant, 4);
    const requests = [
      params([1, ...tokens(3, 1, 512)], 40),
      params([1, ...tokens(60, 2, 512)], 20), // a prompt of several chunks arriving beside decodes
      params([1, ...tokens(7, 3, 512)], 12, 0.8, 42),
      params([1, ...tokens(30, 4, 512)], 50, 1.0, 7),
      params([1, ...tokens(2, 5, 512)], 5),
      params([1, ...tokens(17, 6, 512)], 33, 0.5, 99),
      params([1, ...tokens(1, 7, 512)], 0),
    ];
    const want: Array<Awaited<ReturnType<Rig["alone"]>>> = [];
    for (const p of requests) want.push(await r.alone(p));
    // Staggered arrivals: each request joins while others are mid-generation.
    const got = await Promise.all(
      requests.map(async (p, i) => {
        for (let k = 0; k < i * 3; k++) await new Promise((res) => setTimeout(res, 0));
        const seq = r.engine.submit(p);
        await admitted(r.engine, seq);
        return collect(r.engine, seq);
      }),
    );
    got.forEach((g, i) => expect(g).toEqual(want[i]));
    // The batches did share steps: fewer steps than the tokens they produced.
    expect(r.engine.stats).toEqual({ running: 0, queued: 0, freeSlots: 4 });
  });

  it("runs fewer steps than tokens when sequences decode together (weights read once per step)", async () => {
    const r = await rig("q8_0", 4);
    const seqs = [0, 1, 2, 3].map((i) => r.engine.submit(params([1, 5 + i], 30)));
    const outs = await Promise.all(seqs.map((s) => collect(r.engine, s)));
    const produced = outs.reduce((n, o) => n + o.ids.length, 0);
    expect(produced).toBe(120);
    expect(r.engine.steps).toBeLessThanOrEqual(35);
  });

  it("a cancelled sequence gives its slot back at once and the others are unaffected", async () => {
    const r = await rig("q8_0", 2);
    const want = await r.alone(params([1, 9, 10], 40));
    const a = r.engine.submit(params([1, 9, 10], 40));
    const b = r.engine.submit(params([1, 4], 100));
    const c = r.engine.submit(params([1, 9, 10], 40)); // waits for a slot
    expect(r.engine.stats).toEqual({ running: 2, queued: 1, freeSlots: 0 });
    const ended: string[] = [];
    const d = r.engine.submit(params([1, 3], 10), () => ended.push("d"));
    for (let i = 0; i < 5; i++) r.engine.step();
    r.engine.cancel(b);
    expect(b.state).toBe("finished");
    expect(c.state).toBe("running"); // took b's slot at once
    r.engine.cancel(d); // cancelled while still queued
    expect(ended).toEqual(["d"]);
    expect(r.engine.stats.queued).toBe(0);
    const [ga, gc] = await Promise.all([collect(r.engine, a), collect(r.engine, c)]);
    expect(ga).toEqual(want);
    expect(gc).toEqual(want);
    expect(r.engine.stats).toEqual({ running: 0, queued: 0, freeSlots: 2 });
  });

  it("a reader that stops early (return) cancels its sequence", async () => {
    const r = await rig("q8_0", 1);
    let released = 0;
    const seq = r.engine.submit(params([1, 9], 50), () => released++);
    const run = readSequence(r.engine, seq);
    await run.next();
    await run.return(undefined as never);
    expect(seq.state).toBe("finished");
    expect(released).toBe(1);
    expect(r.engine.stats.freeSlots).toBe(1);
  });

  it("refuses a request past the queue bound at once, and one that waited too long, as busy with a retry time", async () => {
    const r = await rig("q8_0", 1, { maxQueue: 2, maxWaitMs: 1000 });
    r.engine.submit(params([1, 9], 100));
    const q1 = r.engine.submit(params([1, 9], 5));
    r.engine.submit(params([1, 9], 5));
    expect(() => r.engine.submit(params([1, 9], 5))).toThrow(expect.objectContaining({ kind: "busy", retryAfterSeconds: 1 }));
    r.clock.now = 1001;
    await expect(admitted(r.engine, q1)).rejects.toMatchObject({ kind: "busy", message: expect.stringMatching(/retry/) });
    expect(r.engine.stats.queued).toBe(0);
  });

  it("drops a sequence nobody has read for the abandonment time, freeing its slot", async () => {
    const r = await rig("q8_0", 1, { abandonAfterMs: 5000 });
    let ended = false;
    const orphan = r.engine.submit(params([1, 9], 100), () => (ended = true));
    r.engine.step();
    r.clock.now = 6000;
    const next = r.engine.submit(params([1, 9], 3));
    r.engine.step();
    expect(orphan.state).toBe("finished");
    expect(ended).toBe(true);
    expect((await collect(r.engine, next)).ids).toHaveLength(3);
  });

  it("a long prompt is fed one chunk per step while other sequences keep decoding", async () => {
    const r = await rig("q8_0", 2);
    const decoding = r.engine.submit(params([1, 9], 60));
    for (let i = 0; i < 3; i++) r.engine.step();
    const before = decoding.completionIds.length;
    const long = r.engine.submit(params([1, ...tokens(100, 9, 512)], 4));
    let steps = 0;
    while (long.fed < 101) {
      r.engine.step();
      steps++;
      // every step also gave the decoding sequence one token
      expect(decoding.completionIds.length).toBe(before + steps);
    }
    expect(steps).toBeGreaterThanOrEqual(Math.ceil(101 / 16));
  });
});

describe("engine, n choices of one prompt", () => {
  it("feeds the prompt once; choice i equals the same request alone with seed + i; the group's caches come back", async () => {
    const r = await rig("q8_0", 4);
    const prompt = [1, ...tokens(40, 11, 512)];
    const base = params(prompt, 24, 0.9, 1234);
    const want: Array<Awaited<ReturnType<Rig["alone"]>>> = [];
    for (let i = 0; i < 3; i++) want.push(await r.alone({ ...base, seed: 1234 + i }));
    let ended = 0;
    const group = r.engine.submitGroup(base, 3, () => ended++);
    const stepsBefore = r.engine.steps;
    const got = await Promise.all(group.map((s) => collect(r.engine, s)));
    got.forEach((g, i) => expect(g).toEqual(want[i]));
    // the prompt went through once: 41 tokens in 3 chunks, then 23 decode steps for all three
    expect(r.engine.steps - stepsBefore).toBe(3 + 23);
    expect(ended).toBe(1);
    expect(r.engine.stats).toEqual({ running: 0, queued: 0, freeSlots: 4 });
  });

  it("waits for n free caches at once, refuses n above the model's caches, and cancelling the first choice before its prompt ends the group", async () => {
    const r = await rig("q8_0", 3);
    expect(() => r.engine.submitGroup(params([1, 5], 4), 4)).toThrow(/at most 3/);
    const busy = r.engine.submit(params([1, 9], 30));
    const group = r.engine.submitGroup(params([1, 5, 6], 5), 3);
    expect(group.map((s) => s.state)).toEqual(["queued", "queued", "queued"]);
    r.engine.cancel(busy);
    expect(group.map((s) => s.state)).toEqual(["running", "running", "running"]);
    expect(group[1].awaitingPrompt).toBe(true);
    r.engine.cancel(group[0]);
    expect(group.map((s) => s.state)).toEqual(["finished", "finished", "finished"]);
    expect(r.engine.stats).toEqual({ running: 0, queued: 0, freeSlots: 3 });
  });
});

describe("engine, encodings (a prompt's hidden states, nothing sampled)", () => {
  it("each prompt token's final hidden state, bit for bit as alone, beside decoding sequences; its cache comes back", async () => {
    const r = await rig("q8_0", 3);
    const prompt = [1, ...tokens(40, 12, 512)];
    const encode: GenerationParams = { ...params(prompt, 0), hidden: true };
    // the rows as the model's own step gives them, one chunk after another
    const built = await build(aidreamsModel(), "q8_0");
    const { model, caches } = await runtimeFor(built, 1);
    const dim = built.manifest.config.dim;
    const direct = new Float32Array(prompt.length * dim);
    for (let pos = 0; pos < prompt.length; pos += 16) {
      const chunk = prompt.slice(pos, pos + 16);
      model.step([{ cache: caches[0], pos, tokens: chunk, wantLogits: false, wantHidden: true }], () => {}, (_, h, index) => direct.set(h, (pos + index) * h.length));
    }
    const alone = await r.alone(encode);
    expect(alone.summary.hidden).toEqual(direct);
    expect(alone.ids).toEqual([]);

    const decodeWant = await r.alone(params([1, 9, 10], 30));
    const decoding = r.engine.submit(params([1, 9, 10], 30));
    for (let i = 0; i < 4; i++) r.engine.step();
    const enc = r.engine.submit(encode);
    const [d, e] = await Promise.all([collect(r.engine, decoding), collect(r.engine, enc)]);
    expect(e.summary.hidden).toEqual(direct);
    expect(e.summary.finishReason).toBe("stop");
    expect(d).toEqual(decodeWant);
    expect(r.engine.stats).toEqual({ running: 0, queued: 0, freeSlots: 3 });
    expect(() => r.engine.submitGroup(encode, 2)).toThrow(/one choice/);
  });
});
