// Live comparison with llama2.c's run.c. Runs only when LLAMA2C_RUN points at a compiled run
// binary (never committed), e.g.
//   gcc -O2 -o /tmp/llama2c/run /tmp/llama2c/run.c -lm
//   LLAMA2C_RUN=/tmp/llama2c/run npx vitest run --project node test/node/llama2c-runc.test.ts
// run.c prints text, so stdout is compared byte for byte with what our reference would print.
// If the binary was patched to also print "ID <n>" per generated token on stderr, the ids are
// compared too.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Sampler } from "../../functions/runtime/sampler";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { llama2cShapeConfig, randomLlamaModel, writeLlama2cCheckpoint } from "../../scripts/import/llama2c-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { generateReference } from "../reference/llama-forward";
import { AIDREAMS, AIDREAMS_TOKENIZER, LLAMA2_TOKENIZER, readSharedModel, sharedModelPath } from "../support/models";
import { buildTokenizerBin, syntheticVocab } from "../support/tokenizer-bin";

const runBinary = process.env.LLAMA2C_RUN;

interface Case {
  name: string;
  checkpoint: () => string;
  tokenizerPath: () => string;
  model: () => ImportedModel;
  tokenizer: () => Llama2cTokenizer;
  prompt: string;
  steps: number;
  temperature: number;
  topP: number;
  seed: number;
}

function runC(c: Case): { stdout: Buffer; ids: number[] | null } {
  const args = [c.checkpoint(), "-z", c.tokenizerPath(), "-t", String(c.temperature), "-p", String(c.topP), "-s", String(c.seed), "-n", String(c.steps)];
  if (c.prompt !== "") args.push("-i", c.prompt);
  const r = spawnSync(runBinary!, args, { maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`run.c exited with ${r.status}: ${r.stderr}`);
  const idLines = r.stderr.toString("latin1").split("\n").filter((l) => /^ID \d+$/.test(l));
  return { stdout: r.stdout, ids: idLines.length > 0 ? idLines.map((l) => Number(l.slice(3))) : null };
}

describe.skipIf(!runBinary)("reference vs llama2.c run.c (LLAMA2C_RUN)", () => {
  const dir = mkdtempSync(join(tmpdir(), "edgeinfer-runc-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const once = <T>(make: () => T) => {
    let v: T | undefined;
    return () => (v ??= make());
  };

  const aidreams = once(() => readLlama2cCheckpoint(readSharedModel(AIDREAMS)));
  const aidreamsTok = once(() => Llama2cTokenizer.fromBytes(readSharedModel(AIDREAMS_TOKENIZER), 512));
  const llamaTok = once(() => Llama2cTokenizer.fromBytes(readSharedModel(LLAMA2_TOKENIZER), 32000));

  // random GQA model with a separate classifier on the Llama 2 vocabulary
  const gqa = once(() => {
    const model = randomLlamaModel(
      llama2cShapeConfig({ dim: 96, hiddenDim: 250, nLayers: 3, nHeads: 6, nKvHeads: 2, vocabSize: 32000, seqLen: 64 }, false),
      1234,
    );
    writeFileSync(join(dir, "gqa-untied.bin"), writeLlama2cCheckpoint(model, 0));
    return readLlama2cCheckpoint(writeLlama2cCheckpoint(model, 0));
  });
  // random multi-query (1 kv head), tied, on a small synthetic tokenizer
  const mqa = once(() => {
    const model = randomLlamaModel(
      llama2cShapeConfig({ dim: 64, hiddenDim: 150, nLayers: 2, nHeads: 4, nKvHeads: 1, vocabSize: 512, seqLen: 48 }, true),
      77,
    );
    writeFileSync(join(dir, "mqa-tied.bin"), writeLlama2cCheckpoint(model, 0));
    return model;
  });
  const syntheticTok = once(() => {
    const bytes = buildTokenizerBin(syntheticVocab(512));
    writeFileSync(join(dir, "synthetic.tok.bin"), bytes);
    return Llama2cTokenizer.fromBytes(bytes, 512);
  });

  const base = { steps: 100, temperature: 0, topP: 0.9, seed: 1 };
  const aid = { checkpoint: () => sharedModelPath(AIDREAMS), tokenizerPath: () => sharedModelPath(AIDREAMS_TOKENIZER), model: aidreams, tokenizer: aidreamsTok };
  const g = {
    checkpoint: () => (gqa(), join(dir, "gqa-untied.bin")),
    tokenizerPath: () => sharedModelPath(LLAMA2_TOKENIZER),
    model: gqa,
    tokenizer: llamaTok,
    steps: 0,
  };
  const m = {
    checkpoint: () => (mqa(), join(dir, "mqa-tied.bin")),
    tokenizerPath: () => (syntheticTok(), join(dir, "synthetic.tok.bin")),
    model: mqa,
    tokenizer: syntheticTok,
    steps: 0,
  };
  const cases: Case[] = [
    { name: "aidreams260K greedy, no prompt", ...base, ...aid, prompt: "" },
    { name: "aidreams260K greedy, 'Once upon a time'", ...base, ...aid, prompt: "Once upon a time" },
    { name: "aidreams260K greedy, accents and emoji in the prompt", ...base, ...aid, prompt: "Café naïve 🦙 dreams" },
    { name: "aidreams260K sampled top-p 0.9 seed 42", ...base, ...aid, prompt: "Once upon a time", temperature: 1, topP: 0.9, seed: 42 },
    { name: "aidreams260K sampled multinomial T 0.8 seed 7", ...base, ...aid, prompt: "", temperature: 0.8, topP: 1, seed: 7 },
    { name: "random GQA 6/2 untied (vocab 32000) greedy, no prompt", ...base, ...g, prompt: "" },
    { name: "random GQA 6/2 untied (vocab 32000) greedy, 'Once upon a time'", ...base, ...g, prompt: "Once upon a time" },
    { name: "random MQA 4/1 tied, synthetic tokenizer, greedy, byte fallback prompt", ...base, ...m, prompt: "Once upon a time é 你好 🦙" },
  ];

  for (const c of cases) {
    it(c.name, { timeout: 120_000 }, () => {
      const sampler = new Sampler(c.model().config.vocabSize, c.temperature, c.topP, c.seed);
      const ours = generateReference(c.model(), c.tokenizer(), c.prompt, c.steps, sampler);
      const theirs = runC(c);
      if (theirs.ids) {
        // run.c prints ids for prompt tokens too; ours include them; both end with 1 if it stopped at BOS
        expect(theirs.ids).toEqual([...ours.tokens, ...(ours.stoppedAtBos ? [1] : [])]);
      }
      const want = Buffer.concat([Buffer.from(ours.printed), Buffer.from("\n")]);
      expect(theirs.stdout.toString("latin1")).toBe(want.toString("latin1"));
    });
  }
});
