import { describe, expect, it } from "vitest";
import { BOS_ID, EOS_ID, Llama2cTokenizer, runcPrintedBytes, TokenTextDecoder } from "../../functions/runtime/tokenizer/llama2c";
import { AIDREAMS_TOKENIZER, LLAMA2_TOKENIZER, readSharedModel } from "../support/models";
import { baseEntries, buildTokenizerBin, naiveRuncEncode, parseTokenizerBin, type VocabEntry } from "../support/tokenizer-bin";

const utf8 = new TextEncoder();

const aidreamsBytes = readSharedModel(AIDREAMS_TOKENIZER);
const llamaBytes = readSharedModel(LLAMA2_TOKENIZER);
const tokenizers = {
  aidreams: { tok: Llama2cTokenizer.fromBytes(aidreamsBytes, 512), raw: parseTokenizerBin(aidreamsBytes, 512) },
  llama2: { tok: Llama2cTokenizer.fromBytes(llamaBytes, 32000), raw: parseTokenizerBin(llamaBytes, 32000) },
};

const samples: Record<string, string> = {
  ascii: "Once upon a time, there was a little robot named Bolt. It said: \"Hello, world!\" (42 + 1 = 43)",
  accents: "Café naïve résumé: Ångström, Øresund, façade, Über, señor",
  cjk: "你好，世界。日本語のテキスト、한국어 텍스트",
  emoji: "I 💙 llamas 🦙🦙! Family: 👨‍👩‍👧‍👦, flags 🇫🇷, skin tone 👋🏽",
  whitespace: "  leading, inner    runs\t\ttabs\n\nnew lines \r\n and trailing   ",
  empty: "",
  mixed: "Straße → 東京 ✓ 😀 e\u0301 (combining) \u00a0nbsp \ufeffbom",
};

describe("Llama2cTokenizer.fromBytes", () => {
  it("parses the aidreams tok512 tokenizer", () => {
    const { tok } = tokenizers.aidreams;
    expect(tok.vocabSize).toBe(512);
    expect(tok.maxTokenLength).toBe(10);
    expect(new TextDecoder().decode(tok.piece(1))).toBe("\n<s>\n");
    expect(new TextDecoder().decode(tok.piece(2))).toBe("\n</s>\n");
    expect(new TextDecoder().decode(tok.piece(3 + 0x41))).toBe("<0x41>");
    expect(tok.lookupPiece(" ")).toBeGreaterThan(258);
  });

  it("parses the Llama 2 tokenizer", () => {
    const { tok } = tokenizers.llama2;
    expect(tok.vocabSize).toBe(32000);
    expect(tok.maxTokenLength).toBe(27);
    expect(tok.lookupPiece(" ")).toBe(29871);
    expect(tok.score(tok.lookupPiece("  "))).toBe(-1e9);
  });

  it("reports a truncated file", () => {
    expect(() => Llama2cTokenizer.fromBytes(aidreamsBytes.subarray(0, aidreamsBytes.length - 1), 512)).toThrow(
      /tokenizer\.bin is truncated: token 511 of 512 needs bytes up to offset 6290, the file has 6289 bytes/,
    );
    expect(() => Llama2cTokenizer.fromBytes(aidreamsBytes, 513)).toThrow(/truncated: token 512 of 513/);
    expect(() => Llama2cTokenizer.fromBytes(new Uint8Array(2), 512)).toThrow(/max_token_length/);
  });
});

describe.each(Object.keys(tokenizers) as (keyof typeof tokenizers)[])("%s tokenizer", (name) => {
  const { tok, raw } = tokenizers[name];

  it.each(Object.keys(samples))("round-trips %s text", (kind) => {
    const text = samples[kind];
    const ids = tok.encode(text, { bos: true, eos: false });
    expect(ids[0]).toBe(BOS_ID);
    expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize)).toBe(true);
    // decoding after BOS drops the dummy-prefix space again
    expect(tok.decode(ids.slice(1), BOS_ID)).toBe(text);
  });

  it("encodes the empty string as nothing (no dummy prefix)", () => {
    expect(tok.encode("", { bos: false, eos: false })).toEqual([]);
    expect(tok.encode("", { bos: true, eos: false })).toEqual([BOS_ID]);
    expect(tok.encode("", { bos: true, eos: true })).toEqual([BOS_ID, EOS_ID]);
  });

  it("adds BOS / EOS only when asked", () => {
    const plain = tok.encode("hello there", { bos: false, eos: false });
    expect(tok.encode("hello there", { bos: true, eos: true })).toEqual([BOS_ID, ...plain, EOS_ID]);
    expect(plain[0]).not.toBe(BOS_ID);
  });

  it("stops at a NUL character like a C string", () => {
    expect(tok.encode("abc\u0000def", { bos: true, eos: false })).toEqual(tok.encode("abc", { bos: true, eos: false }));
  });

  it("agrees with a literal run.c-style encoder on the samples and random strings", () => {
    const texts = [...Object.values(samples)];
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const alphabet = [..."abcdefghij tTheIon ,.!\n\t", "é", "ß", "你", "好", "🦙", "😀", "  ", "the", " the", "ing"];
    for (let n = 0; n < 40; n++) {
      let s = "";
      const len = 1 + Math.floor(rnd() * 40);
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      texts.push(s);
    }
    for (const text of texts) {
      const want = naiveRuncEncode(raw.pieces, raw.scores, utf8.encode(text), true, true);
      expect(tok.encode(text, { bos: true, eos: true }), JSON.stringify(text)).toEqual(want);
    }
  });

  it("falls back to <0xNN> byte tokens (id = byte + 3) for code points not in the vocabulary", () => {
    // find a character missing from this vocabulary
    const missing = ["ꙮ", "𝔘", "㐀", "🜁"].find((c) => tok.lookupPiece(c) === -1)!;
    expect(missing).toBeDefined();
    const bytes = [...utf8.encode(missing)];
    const ids = tok.encode(missing, { bos: false, eos: false });
    expect(ids).toEqual([tok.lookupPiece(" "), ...bytes.map((b) => b + 3)]);
    // each byte token decodes to its raw byte
    expect(ids.slice(1).map((id) => tok.decodePiece(5, id)[0])).toEqual(bytes);
    expect(tok.decode(ids.slice(1), 5)).toBe(missing);
  });

  it("drops the leading space of a piece only right after BOS", () => {
    const id = tok.encode("a", { bos: false, eos: false }).find((t) => tok.piece(t)[0] === 0x20)!;
    const piece = tok.piece(id);
    expect([...tok.decodePiece(BOS_ID, id)]).toEqual([...piece.subarray(1)]);
    expect([...tok.decodePiece(EOS_ID, id)]).toEqual([...piece]);
  });

  it("encodes a long prompt quickly and exactly", () => {
    const text = (samples.ascii + " " + samples.accents + " " + samples.cjk + "\n").repeat(40); // ~8k bytes
    const t0 = performance.now();
    const ids = tok.encode(text, { bos: true, eos: false });
    const ms = performance.now() - t0;
    expect(tok.decode(ids.slice(1), BOS_ID)).toBe(text);
    expect(ms).toBeLessThan(500);
  });
});

describe("known encodings (checked against run.c)", () => {
  it("Llama 2: 'Once upon a time'", () => {
    expect(tokenizers.llama2.tok.encode("Once upon a time", { bos: true, eos: false })).toEqual([1, 9038, 2501, 263, 931]);
  });
  it("aidreams: 'Once upon a time'", () => {
    expect(tokenizers.aidreams.tok.encode("Once upon a time", { bos: true, eos: false })).toEqual([
      1, 429, 491, 433, 295, 429, 444, 445, 265, 262, 263, 342, 430,
    ]);
  });
});

describe("merge rule on a synthetic tokenizer.bin", () => {
  function make(extra: VocabEntry[]): Llama2cTokenizer {
    const entries = [...baseEntries(), { piece: " ", score: -100 }, { piece: "a", score: -100 }, { piece: "b", score: -100 }, { piece: "c", score: -100 }, ...extra];
    return Llama2cTokenizer.fromBytes(buildTokenizerBin(entries), entries.length);
  }
  const pieces = (tok: Llama2cTokenizer, ids: number[]) => ids.map((id) => new TextDecoder().decode(tok.piece(id)));

  it("merges the pair whose merged piece has the highest score first", () => {
    const tok = make([
      { piece: "ab", score: 1 },
      { piece: "bc", score: 2 },
    ]);
    expect(pieces(tok, tok.encode("abc", { bos: false, eos: false }))).toEqual([" ", "a", "bc"]);
    const tok2 = make([
      { piece: "bc", score: 1 }, // lower id, lower score: id order does not matter
      { piece: "ab", score: 2 },
    ]);
    expect(pieces(tok2, tok2.encode("abc", { bos: false, eos: false }))).toEqual([" ", "ab", "c"]);
  });

  it("takes the leftmost pair when scores tie", () => {
    const tok = make([
      { piece: "bc", score: 1 },
      { piece: "ab", score: 1 },
    ]);
    expect(pieces(tok, tok.encode("abc", { bos: false, eos: false }))).toEqual([" ", "ab", "c"]);
    expect(pieces(tok, tok.encode("abcabc", { bos: false, eos: false }))).toEqual([" ", "ab", "c", "ab", "c"]);
  });

  it("keeps merging merged pieces, including the dummy prefix", () => {
    const tok = make([
      { piece: "ab", score: 5 },
      { piece: "abc", score: 1 },
      { piece: " abc", score: 0 },
      { piece: "bc", score: 3 },
    ]);
    // ab (5) first, then abc (1), then " abc" (0); bc (3) is never reachable after ab
    expect(pieces(tok, tok.encode("abc", { bos: false, eos: false }))).toEqual([" abc"]);
  });

  it("never merges into a piece scoring -1e10 or less", () => {
    const tok = make([
      { piece: "ab", score: -1e10 },
      { piece: "bc", score: -2e10 },
      { piece: "ca", score: -9.9e9 },
    ]);
    expect(pieces(tok, tok.encode("abca", { bos: false, eos: false }))).toEqual([" ", "a", "b", "ca"]);
  });

  it("agrees with the literal run.c-style encoder on many tie-heavy random strings", () => {
    const extra: VocabEntry[] = [];
    const alphabet = ["a", "b", "c", " "];
    const seen = new Set([" ", "a", "b", "c"]);
    let seed = 99;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    while (extra.length < 60) {
      let p = "";
      const len = 2 + Math.floor(rnd() * 4);
      for (let i = 0; i < len; i++) p += alphabet[Math.floor(rnd() * 4)];
      if (seen.has(p)) continue;
      seen.add(p);
      extra.push({ piece: p, score: Math.floor(rnd() * 5) }); // few distinct scores: many ties
    }
    const tok = make(extra);
    const bytes = buildTokenizerBin([...baseEntries(), { piece: " ", score: -100 }, { piece: "a", score: -100 }, { piece: "b", score: -100 }, { piece: "c", score: -100 }, ...extra]);
    const raw = parseTokenizerBin(bytes, tok.vocabSize);
    for (let n = 0; n < 300; n++) {
      let s = "";
      const len = Math.floor(rnd() * 30);
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * 4)];
      expect(tok.encode(s, { bos: true, eos: false }), JSON.stringify(s)).toEqual(naiveRuncEncode(raw.pieces, raw.scores, utf8.encode(s), true, false));
    }
  });

  it("needs a ' ' piece for the dummy prefix", () => {
    const entries = [...baseEntries(), { piece: "a", score: 0 }];
    const tok = Llama2cTokenizer.fromBytes(buildTokenizerBin(entries), entries.length);
    expect(() => tok.encode("a", { bos: true, eos: false })).toThrow(/dummy prefix/);
    expect(tok.encode("", { bos: true, eos: false })).toEqual([BOS_ID]);
  });
});

describe("TokenTextDecoder", () => {
  const { tok } = tokenizers.aidreams;

  it("holds back partial UTF-8 characters split across byte tokens", () => {
    const text = "a🦙é你";
    const ids = tok.encode(text, { bos: true, eos: false });
    const dec = new TokenTextDecoder(tok);
    const outs = ids.slice(1).map((id) => dec.push(id));
    expect(outs.join("") + dec.flush()).toBe(text);
    // no output ever contains a replacement character: nothing was cut mid-character
    expect(outs.some((o) => o.includes("\ufffd"))).toBe(false);
    // the 4 byte tokens of the llama: three pushes return "", the fourth returns it whole
    const llamaStart = outs.findIndex((o, i) => o === "" && i > 0);
    expect(outs.slice(llamaStart, llamaStart + 4)).toEqual(["", "", "", "🦙"]);
  });

  it("strips the leading space after BOS, like run.c", () => {
    const ids = tok.encode("Once upon a time", { bos: true, eos: false });
    const dec = new TokenTextDecoder(tok);
    expect(ids.slice(1).map((id) => dec.push(id)).join("") + dec.flush()).toBe("Once upon a time");
    const dec2 = new TokenTextDecoder(tok, 0);
    expect(ids.slice(1).map((id) => dec2.push(id)).join("") + dec2.flush()).toBe(" Once upon a time");
  });

  it("turns invalid and unfinished byte sequences into U+FFFD as a one-shot decode would", () => {
    const b = (x: number) => x + 3;
    const seq = [b(0xff), b(0x41), b(0xe4), b(0xbd), b(0x42), b(0xf0), b(0x9f)];
    const dec = new TokenTextDecoder(tok, 0);
    const streamed = seq.map((id) => dec.push(id)).join("") + dec.flush();
    const oneShot = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(Uint8Array.from([0xff, 0x41, 0xe4, 0xbd, 0x42, 0xf0, 0x9f]));
    expect(streamed).toBe(oneShot);
    expect(streamed).toBe("\ufffdA\ufffdB\ufffd");
  });

  it("flush() empties the buffer", () => {
    const dec = new TokenTextDecoder(tok, 0);
    expect(dec.push(0xe4 + 3)).toBe("");
    expect(dec.flush()).toBe("\ufffd");
    expect(dec.flush()).toBe("");
  });
});

describe("runcPrintedBytes (run.c safe_printf)", () => {
  it("drops single non-printable bytes, keeps everything else", () => {
    expect([...runcPrintedBytes(Uint8Array.of(0x41))]).toEqual([0x41]);
    expect([...runcPrintedBytes(Uint8Array.of(0x0a))]).toEqual([0x0a]);
    expect([...runcPrintedBytes(Uint8Array.of(0x07))]).toEqual([]);
    expect([...runcPrintedBytes(Uint8Array.of(0xe4))]).toEqual([]);
    expect([...runcPrintedBytes(Uint8Array.of(0xe4, 0xbd))]).toEqual([0xe4, 0xbd]);
    expect([...runcPrintedBytes(new Uint8Array(0))]).toEqual([]);
  });
});
