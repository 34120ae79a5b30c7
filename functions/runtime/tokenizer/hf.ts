// Hugging Face tokenizers (tokenizer.json) for the runtime, on @huggingface/tokenizers (pure JS,
// no eval). Worker-safe: no Node APIs.
//
// The build stores one JSON object per model (see scripts/sources/hf-tokenizer.ts), as UTF-8:
//   { "format": "edgeinfer/hf-tokenizer", "version": 1,
//     "tokenizer": <tokenizer.json>, "config": <tokenizer_config.json or {}>,
//     "eosTokenIds": number[], "bosTokenId": number | null, "addBosToken": boolean,
//     "chatTemplate": string | null }
// The build decides which tokens stop a generation, which token is BOS and whether prompts
// start with it; the runtime only follows the bundle.

import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import type { TextStreamDecoder, Tokenizer } from "./index";

export const HF_TOKENIZER_FORMAT = "edgeinfer/hf-tokenizer";
export const HF_TOKENIZER_VERSION = 1;

export interface HfTokenizerBundle {
  format: typeof HF_TOKENIZER_FORMAT;
  version: typeof HF_TOKENIZER_VERSION;
  /** tokenizer.json as Hugging Face ships it. */
  tokenizer: Record<string, unknown>;
  /** tokenizer_config.json, or {}. */
  config: Record<string, unknown>;
  /** Tokens that end a generation: EOS ids and the chat template's end-of-turn tokens. */
  eosTokenIds: number[];
  /** The model's BOS token, if it has one (also the start token for an empty prompt). */
  bosTokenId: number | null;
  /** Whether `encode(text, { bos: true })` prepends `bosTokenId` (what the tokenizer itself does). */
  addBosToken: boolean;
  /** The Jinja chat template, if the model has one. */
  chatTemplate: string | null;
}

const REPLACEMENT = "\uFFFD";

/** A token written in tokenizer_config.json: a string, or an AddedToken object {content, ...}. */
export function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return null;
}

/** Parses and checks the bundle bytes; any problem is an Error naming it. */
export function parseHfTokenizerBundle(bytes: Uint8Array): HfTokenizerBundle {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (e) {
    throw new Error(`hf tokenizer bundle is not UTF-8 JSON: ${(e as Error).message}`);
  }
  const b = value as HfTokenizerBundle;
  const fail = (why: string): never => {
    throw new Error(`hf tokenizer bundle ${why}`);
  };
  if (typeof b !== "object" || b === null || Array.isArray(b)) fail("is not a JSON object");
  if (b.format !== HF_TOKENIZER_FORMAT) fail(`has format ${JSON.stringify(b.format)}, expected ${HF_TOKENIZER_FORMAT}`);
  if (b.version !== HF_TOKENIZER_VERSION) fail(`has version ${JSON.stringify(b.version)}, this runtime reads ${HF_TOKENIZER_VERSION}`);
  if (typeof b.tokenizer !== "object" || b.tokenizer === null) fail("has no tokenizer object");
  if (typeof b.config !== "object" || b.config === null || Array.isArray(b.config)) fail("has no config object");
  if (!Array.isArray(b.eosTokenIds) || !b.eosTokenIds.every(isTokenId)) fail("has no valid eosTokenIds");
  if (b.bosTokenId !== null && !isTokenId(b.bosTokenId)) fail("has an invalid bosTokenId");
  if (typeof b.addBosToken !== "boolean") fail("has no addBosToken flag");
  if (b.addBosToken && b.bosTokenId === null) fail("adds a BOS token but names none");
  if (b.chatTemplate !== null && typeof b.chatTemplate !== "string") fail("has an invalid chatTemplate");
  return b;
}

function isTokenId(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 0;
}

/** A tokenizer from the bytes the build stored for kind "hf". */
export function hfTokenizerFromBytes(bytes: Uint8Array): HfTokenizer {
  return new HfTokenizer(parseHfTokenizerBundle(bytes));
}

export class HfTokenizer implements Tokenizer {
  /** Size of the tokenizer's id space: vocabulary plus added tokens (max id + 1). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly stopIds: readonly number[];
  readonly chatTemplate: string | null;
  /** Whether encode(text, { bos: true }) prepends bosId. */
  readonly addBos: boolean;
  /** bos_token / eos_token as a chat template expects them (strings), when the model has them. */
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** Added tokens marked special: never part of decoded text. */
  readonly specialIds: ReadonlySet<number>;
  private readonly lib: HfLibTokenizer;
  /** id -> token string; holes are ids without a token. */
  private readonly vocab: readonly (string | undefined)[];

  /** Takes the bundle over: the parsed vocabulary and merges in it are released once loaded. */
  constructor(bundle: HfTokenizerBundle) {
    try {
      this.lib = new HfLibTokenizer(bundle.tokenizer, bundle.config);
    } catch (e) {
      throw new Error(`hf tokenizer cannot be loaded: ${(e as Error).message}`);
    }
    const vocab = this.lib.model?.vocab as (string | undefined)[] | undefined;
    if (!Array.isArray(vocab)) throw new Error("hf tokenizer has no vocabulary");
    releaseBpeSource(bundle, this.lib);
    this.vocab = vocab;
    this.vocabSize = vocab.length;
    const special = new Set<number>();
    for (const [id, t] of this.lib.get_added_tokens_decoder()) if (t.special) special.add(id);
    this.specialIds = special;

    for (const id of [...bundle.eosTokenIds, ...(bundle.bosTokenId === null ? [] : [bundle.bosTokenId])]) {
      if (this.tokenOf(id) === undefined) throw new Error(`hf tokenizer bundle names token ${id}, which the tokenizer does not have`);
    }
    this.bosId = bundle.bosTokenId;
    this.addBos = bundle.addBosToken;
    this.stopIds = [...new Set(bundle.eosTokenIds)];
    this.chatTemplate = bundle.chatTemplate;
    // As tokenizer_config.json has them; BOS falls back to the token prompts start with, if any.
    this.bosToken = tokenContent(bundle.config.bos_token) ?? (this.addBos && this.bosId !== null ? this.tokenOf(this.bosId) ?? null : null);
    this.eosToken =
      tokenContent(bundle.config.eos_token) ?? (this.stopIds.length > 0 ? this.tokenOf(this.stopIds[0]) ?? null : null);
  }

  /** The token string of an id (the vocabulary's spelling, e.g. "Ġthe"), or undefined. */
  tokenOf(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.vocab[id] : undefined;
  }

  /** The id of a token string (vocabulary entry or added token), or undefined. */
  idOf(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  /**
   * Text to ids. Special tokens written in the text ("<|im_start|>") become their ids, as in
   * Hugging Face's tokenizers. `bos` prepends BOS only where the tokenizer itself would (Llama
   * yes, Qwen and GPT-2 no); no other special token (no EOS) is ever added.
   */
  encode(text: string, options: { bos: boolean }): number[] {
    const ids = text.length === 0 ? [] : this.lib.encode(text, { add_special_tokens: false }).ids;
    return options.bos && this.addBos && this.bosId !== null ? [this.bosId, ...ids] : ids;
  }

  /**
   * Text of `ids` as it continues after token `prev` (none: the start of a text). Special tokens
   * are skipped; ids without a token (padding rows of the embedding) decode to nothing, as in
   * Hugging Face's tokenizers; no clean-up of spaces. Decoders that treat the first token
   * specially (SentencePiece's leading space) see `prev` first, so " world" after "Hello" keeps
   * its space.
   */
  decode(ids: number[], prev?: number): string {
    for (const id of ids) this.checkId(id);
    const context = prev !== undefined && this.tokenOf(prev) !== undefined ? [prev] : [];
    if (context.length === 0) return this.rawDecode(ids);
    return textAfter(this.rawDecode([...context, ...ids]), this.rawDecode(context));
  }

  streamDecoder(prev: number): TextStreamDecoder {
    return new HfStreamDecoder(this, this.tokenOf(prev) !== undefined ? [prev] : []);
  }

  /** @internal Decodes ids as one text (ids are checked by the caller). */
  rawDecode(ids: readonly number[]): string {
    const kept = ids.filter((id) => !this.specialIds.has(id) && this.vocab[id] !== undefined);
    if (kept.length === 0) return "";
    return this.lib.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** @internal */
  checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`token id ${id} is not a token id`);
  }
}

/**
 * @huggingface/tokenizers builds its own maps from a BPE model's vocab and merges but keeps the
 * parsed tokenizer.json (and its merge list) alive, roughly doubling the heap: ~82 MB -> ~36 MB
 * for Llama 3's 128k vocabulary, ~52 -> ~28 MB for Qwen's. After construction those are read by
 * nothing, so drop them. (Checked against @huggingface/tokenizers 0.2.0: BPE reads config.vocab,
 * config.merges and this.merges only in its constructor.)
 */
function releaseBpeSource(bundle: HfTokenizerBundle, lib: HfLibTokenizer): void {
  const source = bundle.tokenizer.model as { type?: unknown; vocab?: unknown; merges?: unknown } | undefined;
  const model = lib.model as unknown as { merges?: unknown; bpe_ranks?: unknown } | null;
  if (source?.type !== "BPE" || !model || !(model.bpe_ranks instanceof Map)) return;
  source.vocab = undefined;
  source.merges = undefined;
  model.merges = undefined;
}

/** The part of `full` after `before`; if `full` does not start with it, after their common prefix. */
function textAfter(full: string, before: string): string {
  if (full.startsWith(before)) return full.slice(before.length);
  let i = 0;
  while (i < full.length && i < before.length && full.charCodeAt(i) === before.charCodeAt(i)) i++;
  return full.slice(i);
}

/**
 * Streaming decode: re-decodes a short window of ids, context tokens (already printed) plus the
 * pending ones, and releases the new text once it does not end in U+FFFD (a character whose
 * bytes are split across tokens is held back until it is complete). Then the pending tokens
 * become the context. Decoders are local except at the start of a text, and the context makes
 * both decodes start the same way, so the pieces add up to exactly what decoding all ids at once
 * gives. Each push decodes only the window: O(1) per token while text keeps completing.
 */
class HfStreamDecoder implements TextStreamDecoder {
  private window: number[];
  private contextLength: number;
  private contextText: string;

  constructor(
    private readonly tokenizer: HfTokenizer,
    context: number[],
  ) {
    this.window = context;
    this.contextLength = context.length;
    this.contextText = tokenizer.rawDecode(context);
  }

  push(token: number): string {
    this.tokenizer.checkId(token);
    this.window.push(token);
    const text = this.tokenizer.rawDecode(this.window);
    if (text.length <= this.contextText.length || text.endsWith(REPLACEMENT)) return "";
    return this.release(text);
  }

  flush(): string {
    if (this.window.length === this.contextLength) return "";
    return this.release(this.tokenizer.rawDecode(this.window));
  }

  private release(text: string): string {
    const out = textAfter(text, this.contextText);
    this.window = this.window.slice(this.contextLength);
    this.contextLength = this.window.length;
    this.contextText = this.tokenizer.rawDecode(this.window);
    return out;
  }
}
