// Structured output at the token level, with every tokenizer family we load: llama2.c's
// (aidreams260K's 512 pieces and Llama 2's 32,000, SentencePiece with byte fallback), Hugging
// Face byte-level BPE (GPT-2, Llama 3, Qwen) and SentencePiece-style BPE (Llama 2 / Mistral,
// TinyLlama). Each token's bytes are checked against the tokenizer's own decoding; then random
// logits (no model would pick worse) are sampled under the constraint and a token budget, and
// every output must parse and validate against its schema (ajv).

import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { compileSchema } from "../../functions/runtime/constrain/schema";
import { grammarsOf, JsonConstraint, MASK_CACHE_BYTES, structuredOutputBytes } from "../../functions/runtime/constrain/constraint";
import { vocabularyOf } from "../../functions/runtime/constrain/vocabulary";
import { Sampler } from "../../functions/runtime/sampler";
import { hfTokenizerFromBytes } from "../../functions/runtime/tokenizer/hf";
import { llama2cAsTokenizer, type Tokenizer } from "../../functions/runtime/tokenizer/index";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { packHfTokenizerFromObjects } from "../../scripts/sources/hf-tokenizer";
import { aidreams } from "../setup/fixtures";
import { familyTokenizerObjects, type HfFamily } from "../support/hf-fixtures";
import { LLAMA2_TOKENIZER, readSharedModel } from "../support/models";
import { SCHEMAS, validationError } from "../support/schemas";

const LOAD_TIMEOUT = 180_000;

const FAMILIES = ["aidreams (llama2.c, 512)", "llama2.c (32000)", "gpt2", "llama3", "qwen", "llama2", "tinyllama"] as const;
type Family = (typeof FAMILIES)[number];

function load(family: Family): Tokenizer {
  if (family === "aidreams (llama2.c, 512)") return llama2cAsTokenizer(Llama2cTokenizer.fromBytes(new Uint8Array(readFileSync(aidreams.tokenizer)), 512));
  if (family === "llama2.c (32000)") return llama2cAsTokenizer(Llama2cTokenizer.fromBytes(readSharedModel(LLAMA2_TOKENIZER), 32000));
  const { tokenizer, tokenizerConfig } = familyTokenizerObjects(family as HfFamily);
  return hfTokenizerFromBytes(packHfTokenizerFromObjects({ tokenizer, tokenizerConfig }).bytes);
}

const TEXTS = ["Hello, world! {\"a\": [1, 2.5e-3]}", "café naïve 你好，世界 👍🏽 🎉", "  \t\n x\n\n", "Straße → 東京 ✓ 😀 👨‍👩‍👧‍👦"];

/** mulberry32: fast seeded uniform numbers for logits over large vocabularies. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const tokenizers = {} as Record<Family, Tokenizer>;
beforeAll(() => {
  for (const f of FAMILIES) tokenizers[f] = load(f);
}, LOAD_TIMEOUT);

describe.each(FAMILIES)("%s", (family) => {
  it("each token's bytes, end to end, are the tokenizer's own decoding", () => {
    const tok = tokenizers[family];
    const prev = tok.encode("x", { bos: false }).at(-1)!;
    for (const text of TEXTS) {
      const ids = tok.encode(text, { bos: false });
      const bytes = Buffer.concat(ids.map((id) => tok.tokenBytes(id)!));
      expect(new TextDecoder().decode(bytes)).toBe(tok.decode(ids, prev));
    }
    for (const id of tok.stopIds) expect(tok.tokenBytes(id)).toBeNull();
  });

  it("the vocabulary index: every text token's own bytes, sorted, shared prefixes right, within the memory counted for it", () => {
    const tok = tokenizers[family];
    const vocab = vocabularyOf(tok, tok.vocabSize);
    let texts = 0;
    for (let id = 0; id < tok.vocabSize; id++) {
      const own = tok.tokenBytes(id);
      if (own === null || own.length === 0) continue;
      texts++;
      expect(vocab.tokenBytes(id)).toEqual(own);
    }
    expect(vocab.order.length).toBe(texts);
    for (let k = 1; k < vocab.order.length; k++) {
      const a = vocab.bytes.subarray(vocab.offsets[k - 1], vocab.offsets[k]);
      const b = vocab.bytes.subarray(vocab.offsets[k], vocab.offsets[k + 1]);
      let l = 0;
      while (l < a.length && l < b.length && a[l] === b[l]) l++;
      expect(vocab.lcp[k]).toBe(l);
      // ascending bytes (a prefix first), ties by id
      const order = l < a.length && l < b.length ? a[l] - b[l] : a.length - b.length || vocab.order[k - 1] - vocab.order[k];
      if (order >= 0) throw new Error(`sorted tokens ${k - 1} and ${k} are out of order`);
    }
    expect(vocab.memoryBytes + 9 * tok.vocabSize + MASK_CACHE_BYTES).toBeLessThanOrEqual(structuredOutputBytes(tok.vocabSize));
  });

  it("random logits under each schema: every output ends with an end token, parses and validates", () => {
    const tok = tokenizers[family];
    const size = tok.vocabSize;
    const endIds = tok.stopIds.length > 0 ? tok.stopIds : [];
    expect(endIds.length).toBeGreaterThan(0);
    const vocab = vocabularyOf(tok, size);
    const grammars = grammarsOf(tok, size);
    const logits = new Float32Array(size);
    let outputs = 0;
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      const grammar = grammars.grammar(name, compileSchema(schema));
      for (let seed = 0; seed < 3; seed++) {
        const rnd = uniform(seed * 7919 + name.length);
        // room for the shortest value written a byte per token, and then some
        const maxTokens = grammar.automaton.minRest(grammar.automaton.initial()) + 1 + [0, 24, 72][seed];
        const constraint = new JsonConstraint(grammar, endIds);
        const sampler = new Sampler(size, 1, 1, seed + 1, {}, constraint);
        const generated: number[] = [];
        let ended = false;
        while (generated.length < maxTokens) {
          for (let i = 0; i < size; i++) logits[i] = 6 * rnd();
          const history = { prompt: [], generated, remaining: maxTokens - generated.length };
          const t = sampler.sample(logits, history);
          if (endIds.includes(t)) {
            ended = true;
            break;
          }
          generated.push(t);
        }
        const bytes = Buffer.concat(generated.map((id) => vocab.tokenBytes(id)));
        const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
        const label = `${name} seed ${seed}: ${JSON.stringify(text)}`;
        expect(ended, label).toBe(true);
        expect(validationError(schema, text), label).toBeNull();
        // the tokenizer decodes the ids to the same text (after a text token)
        const prev = tok.encode("x", { bos: false }).at(-1)!;
        expect(tok.decode(generated, prev), label).toBe(text);
        outputs++;
      }
    }
    expect(outputs).toBe(Object.keys(SCHEMAS).length * 3);
  }, LOAD_TIMEOUT);
});
