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

import { Tokenizer as HfLibTokenizer, type AddedToken } from "@huggingface/tokenizers";
import { ChatContentError, type ChatPrompt } from "./chat-prompt";
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
  /** Added tokens and where they are split out of a text, for chat prompts (see encodeChat). */
  private readonly added: AddedTokenText;
  private readonly removeSpace: boolean;
  private readonly lowercaseAndRemoveAccents: boolean;
  /** Added tokens that are not special: they decode to their content as written. */
  private readonly addedText = new Map<number, string>();
  /** How a vocabulary entry turns into bytes (from the decoder tokenizer.json describes). */
  private readonly pieceBytes: (piece: string, id: number) => Uint8Array | null;

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
    for (const [id, t] of this.lib.get_added_tokens_decoder()) {
      if (t.special) special.add(id);
      else this.addedText.set(id, t.content);
    }
    this.specialIds = special;
    this.added = new AddedTokenText([...this.lib.get_added_tokens_decoder().values()], this.lib.normalizer, bundle.config);
    this.removeSpace = bundle.config.remove_space === true;
    this.lowercaseAndRemoveAccents = bundle.config.do_lowercase_and_remove_accent === true;
    this.pieceBytes = pieceDecoder(bundle.tokenizer, this);

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
   * A rendered chat to ids. Special tokens come only from the template's own markup: text from
   * the messages (prompt.messageSpans) is encoded as ordinary text, so "<|im_start|>" written in
   * a message becomes the ordinary tokens that spell it ("<|", "im", "_start", "|>"), as OpenAI's
   * servers do. A conversation whose messages spell no special token gets exactly encode(text)'s
   * ids, Hugging Face's apply_chat_template + encode. Non-special added tokens (Qwen's
   * <tool_call>, <think>) are the model's vocabulary for text it reads and writes, and stay as
   * Hugging Face encodes them. Throws ChatContentError when a string the spans do not cover
   * (prompt.unplaced) spells a special token.
   */
  encodeChat(prompt: ChatPrompt): number[] {
    for (const { where, text } of prompt.unplaced) {
      const token = this.added.specialTokenIn(text);
      if (token !== null) {
        throw new ChatContentError(
          `${where} holds the special token ${JSON.stringify(token)}; this model's chat template rewrites message text in a way that ` +
            "cannot be told apart from its own markup, so the request is refused rather than letting message text become a control token",
          where,
        );
      }
    }
    const { text, messageSpans: spans } = prompt;
    if (spans.length === 0 || !this.added.specialTokenInSpans(text, spans)) return this.encode(text, { bos: false });
    return this.encodeOutsideSpans(text, spans);
  }

  /**
   * @internal `text` encoded as the library's encode does it, except that a special token that
   * overlaps a span is not split out: special-token text there is ordinary text. With no
   * spans this is encode(text, { bos: false }), step for step: split out added tokens, apply
   * their lstrip/rstrip, normalize each ordinary section, split out normalized added tokens,
   * pre-tokenize (with the section's index, which Metaspace's "first" scheme reads) and run the
   * model. Ordinary text on both sides of a span is one section, as in the plain encode.
   */
  encodeOutsideSpans(text: string, spans: ReadonlyArray<readonly [number, number]>): number[] {
    if (this.lowercaseAndRemoveAccents) {
      throw new ChatContentError("messages spell special tokens, and this tokenizer lowercases text in a way this server does not mirror", "messages");
    }
    const sections = this.added.sections(text, spans);
    stripAround(sections);
    sections.forEach((section, i) => (sections[i] = this.added.asToken(section)));
    const ids: number[] = [];
    const lib = this.lib;
    sections.forEach((section, sectionIndex) => {
      if (section.text.length === 0) return;
      if (section.token) {
        ids.push(section.token.id);
        return;
      }
      let t = section.text;
      if (this.removeSpace) t = t.trim().split(/\s+/).join(" ");
      if (lib.normalizer) t = lib.normalizer(t);
      if (t.length === 0) return;
      const subsections = this.added.normalizedSections(t, section.fromMessages);
      stripAround(subsections);
      subsections.forEach((sub, i) => (subsections[i] = this.added.asToken(sub)));
      for (const sub of subsections) {
        if (sub.text.length === 0) continue;
        if (sub.token) {
          ids.push(sub.token.id);
          continue;
        }
        const pieces = lib.pre_tokenizer ? lib.pre_tokenizer(sub.text, { section_index: sectionIndex }) : [sub.text];
        for (const token of lib.model!(pieces)) {
          const id = this.added.byText.get(token)?.id ?? lib.token_to_id(token) ?? lib.model!.unk_token_id;
          if (id === undefined) throw new Error(`hf tokenizer has no id for token ${JSON.stringify(token)}`);
          // Message text must not become a special token some other way either (a merge that spells one).
          if (sub.fromMessages && this.added.specialIds.has(id)) {
            throw new ChatContentError("message text encodes to a special token of this model even as ordinary text; the request is refused", "messages");
          }
          ids.push(id);
        }
      }
    });
    return ids;
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

  tokenBytes(id: number): Uint8Array | null {
    const piece = this.tokenOf(id);
    if (piece === undefined || this.specialIds.has(id)) return null;
    const added = this.addedText.get(id);
    if (added !== undefined) return utf8Encoder.encode(added);
    return this.pieceBytes(piece, id);
  }

  tokenName(id: number): string {
    return this.tokenOf(id) ?? "";
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

/** A piece of text to encode: ordinary text, or an added token split out of it. */
interface Section {
  text: string;
  token: AddedToken | null;
  /** Ordinary text that holds text from the messages. */
  fromMessages: boolean;
}

/** An added token's lstrip / rstrip trims the ordinary text beside it, as the library does. */
function stripAround(sections: Section[]): void {
  sections.forEach((section, i) => {
    if (!section.token) return;
    if (section.token.lstrip && i > 0) sections[i - 1].text = sections[i - 1].text.trimEnd();
    if (section.token.rstrip && i < sections.length - 1) sections[i + 1].text = sections[i + 1].text.trimStart();
  });
}

/**
 * Finds added tokens in text exactly where @huggingface/tokenizers splits them out (its
 * DictionarySplitter: at each position the longest token starting there, left to right), with
 * their offsets, which the library does not give. Special tokens: added tokens marked special,
 * and those tokenizer_config.json names (bos/eos/unk/sep/pad/cls/mask_token,
 * additional_special_tokens), as Hugging Face's all_special_tokens.
 */
class AddedTokenText {
  /** Added tokens by content, and by normalized content for normalized ones (the library's added_tokens_map). */
  readonly byText = new Map<string, AddedToken>();
  readonly specialIds = new Set<number>();
  private readonly all: TokenTrie;
  private readonly allNormalized: TokenTrie;
  private readonly ordinaryNormalized: TokenTrie;
  private readonly special: TokenTrie;
  private readonly specialNormalized: TokenTrie;

  constructor(
    tokens: AddedToken[],
    private readonly normalizer: ((text: string) => string) | null,
    config: Record<string, unknown>,
  ) {
    const named = new Set<string>();
    for (const key of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
      const content = tokenContent(config[key]);
      if (content !== null) named.add(content);
    }
    if (Array.isArray(config.additional_special_tokens)) {
      for (const t of config.additional_special_tokens) {
        const content = tokenContent(t);
        if (content !== null) named.add(content);
      }
    }
    const lists = { all: [] as string[], allNormalized: [] as string[], special: [] as string[], specialNormalized: [] as string[] };
    const ordinaryNormalized: string[] = [];
    for (const token of tokens) {
      const isSpecial = token.special || named.has(token.content);
      if (isSpecial) this.specialIds.add(token.id);
      this.byText.set(token.content, token);
      // As the library: a normalized token is split out after normalization, under its normalized text.
      if (token.normalized && normalizer !== null) {
        const text = normalizer(token.content);
        this.byText.set(text, token);
        lists.allNormalized.push(text);
        (isSpecial ? lists.specialNormalized : ordinaryNormalized).push(text);
      } else {
        lists.all.push(token.content);
        if (isSpecial) lists.special.push(token.content);
      }
    }
    this.all = new TokenTrie(lists.all);
    this.allNormalized = new TokenTrie(lists.allNormalized);
    this.ordinaryNormalized = new TokenTrie(ordinaryNormalized);
    this.special = new TokenTrie(lists.special);
    this.specialNormalized = new TokenTrie(lists.specialNormalized);
  }

  /** The first special token `text` spells (as written, or once normalized), or null. */
  specialTokenIn(text: string): string | null {
    const found = this.special.matches(text)[0];
    if (found) return found[2];
    if (this.specialNormalized.empty || this.normalizer === null) return null;
    return this.specialNormalized.matches(this.normalizer(text))[0]?.[2] ?? null;
  }

  /**
   * Whether the plain encode of `text` would split out a special token that overlaps a span, or
   * normalize ordinary text overlapping a span into text that spells one.
   */
  specialTokenInSpans(text: string, spans: ReadonlyArray<readonly [number, number]>): boolean {
    let at = 0;
    const overlaps = (start: number, end: number) => overlapsAny(spans, start, end);
    for (const [start, end, word] of this.all.matches(text)) {
      if (this.specialIds.has(this.byText.get(word)!.id) && overlaps(start, end)) return true;
      if (start > at && overlaps(at, start) && this.normalizesToSpecial(text.slice(at, start))) return true;
      at = end;
    }
    return at < text.length && overlaps(at, text.length) && this.normalizesToSpecial(text.slice(at));
  }

  private normalizesToSpecial(text: string): boolean {
    return !this.specialNormalized.empty && this.normalizer !== null && this.specialNormalized.matches(this.normalizer(text)).length > 0;
  }

  /**
   * `text` as sections, split as the library splits it except that a special token overlapping
   * a span is not split out (it is ordinary text there); ordinary text is joined across span edges.
   */
  sections(text: string, spans: ReadonlyArray<readonly [number, number]>): Section[] {
    const out: Section[] = [];
    const inSpans = (start: number, end: number) => overlapsAny(spans, start, end);
    const allowed = (word: string, start: number) => !(this.specialIds.has(this.byText.get(word)!.id) && inSpans(start, start + word.length));
    let at = 0;
    for (const [start, end, word] of this.all.matches(text, allowed)) {
      if (start > at) out.push({ text: text.slice(at, start), token: null, fromMessages: inSpans(at, start) });
      out.push({ text: word, token: this.byText.get(word)!, fromMessages: false });
      at = end;
    }
    if (at < text.length) out.push({ text: text.slice(at), token: null, fromMessages: inSpans(at, text.length) });
    return out.map((s) => this.asToken(s));
  }

  /** As the library: ordinary text that is exactly an added token's text is that token (unless it is special text from the messages). */
  asToken(section: Section): Section {
    const token = section.token ? undefined : this.byText.get(section.text);
    if (!token || (section.fromMessages && this.specialIds.has(token.id))) return section;
    return { text: section.text, token, fromMessages: false };
  }

  /** Normalized ordinary text as sections: normalized added tokens split out (only non-special ones in text from the messages). */
  normalizedSections(text: string, fromMessages: boolean): Section[] {
    const out: Section[] = [];
    let at = 0;
    for (const [s, e, word] of (fromMessages ? this.ordinaryNormalized : this.allNormalized).matches(text)) {
      if (s > at) out.push({ text: text.slice(at, s), token: null, fromMessages });
      out.push({ text: word, token: this.byText.get(word)!, fromMessages: false });
      at = e;
    }
    if (at < text.length) out.push({ text: text.slice(at), token: null, fromMessages });
    return out.map((s) => this.asToken(s));
  }
}

/** Whether [start, end) overlaps one of `spans` (ascending, disjoint). */
function overlapsAny(spans: ReadonlyArray<readonly [number, number]>, start: number, end: number): boolean {
  // The first span that ends after `start`.
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid][1] <= start) lo = mid + 1;
    else hi = mid;
  }
  return lo < spans.length && spans[lo][0] < end && start < end;
}

interface TrieNode {
  next: Map<string, TrieNode>;
  word?: string;
}

/** The library's DictionarySplitter, with offsets: [start, end, word] of each match, in order. */
class TokenTrie {
  private readonly root: TrieNode = { next: new Map() };
  readonly empty: boolean;

  constructor(words: string[]) {
    this.empty = words.length === 0;
    for (const word of words) {
      let node = this.root;
      for (let k = 0; k < word.length; k++) {
        let child = node.next.get(word[k]);
        if (!child) node.next.set(word[k], (child = { next: new Map() }));
        node = child;
      }
      node.word = word;
    }
  }

  /** `allowed(word, start)` may turn a match down: the longest allowed one at a position is taken. */
  matches(text: string, allowed?: (word: string, start: number) => boolean): Array<[number, number, string]> {
    const out: Array<[number, number, string]> = [];
    if (this.empty) return out;
    let i = 0;
    while (i < text.length) {
      let node: TrieNode | undefined = this.root;
      let match: string | undefined;
      for (let j = i; j < text.length && (node = node.next.get(text[j])); j++) {
        if (node.word !== undefined && (!allowed || allowed(node.word, i))) match = node.word;
      }
      if (match !== undefined && match.length > 0) {
        out.push([i, i + match.length, match]);
        i += match.length;
      } else {
        i++;
      }
    }
    return out;
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

const utf8Encoder = new TextEncoder();

/** GPT-2's byte-level alphabet, backwards: the character that stands for each byte -> the byte. */
function byteLevelTable(): Map<string, number> {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Map<string, number>();
  let next = 0;
  for (let b = 0; b < 256; b++) table.set(String.fromCharCode(printable(b) ? b : 256 + next++), b);
  return table;
}

/**
 * How vocabulary entries become bytes, read off the decoder in tokenizer.json: byte-level BPE
 * (GPT-2, Llama 3, Qwen) maps each character back to its byte; SentencePiece-style BPE (Llama 2,
 * TinyLlama) writes "▁" as a space (the Replace / Metaspace decoders) and "<0xNN>" as byte NN
 * (ByteFallback). Any other decoder: the token decoded on its own, unless that is not whole
 * characters (then null).
 */
function pieceDecoder(tokenizer: Record<string, unknown>, self: HfTokenizer): (piece: string, id: number) => Uint8Array | null {
  const steps: Array<Record<string, unknown>> = [];
  const walk = (d: unknown) => {
    if (!d || typeof d !== "object") return;
    const o = d as Record<string, unknown>;
    if (o.type === "Sequence" && Array.isArray(o.decoders)) o.decoders.forEach(walk);
    else steps.push(o);
  };
  walk(tokenizer.decoder);
  const types = new Set(steps.map((s) => s.type));
  if (types.has("ByteLevel")) {
    const table = byteLevelTable();
    return (piece) => {
      const out = new Uint8Array(piece.length);
      for (let i = 0; i < piece.length; i++) {
        const b = table.get(piece[i]);
        if (b === undefined) return utf8Encoder.encode(piece); // not byte-level spelled
        out[i] = b;
      }
      return out;
    };
  }
  const known = new Set(["Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"]);
  if (steps.length > 0 && steps.every((s) => known.has(s.type as string))) {
    const replaces: Array<[string, string]> = [];
    for (const s of steps) {
      if (s.type === "Replace") {
        const pattern = (s.pattern as { String?: unknown } | undefined)?.String;
        if (typeof pattern === "string" && typeof s.content === "string") replaces.push([pattern, s.content]);
      } else if (s.type === "Metaspace") {
        replaces.push([typeof s.replacement === "string" ? s.replacement : "▁", " "]);
      }
    }
    const byteFallback = types.has("ByteFallback");
    return (piece) => {
      if (byteFallback) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (m) return Uint8Array.of(parseInt(m[1], 16));
      }
      let text = piece;
      for (const [from, to] of replaces) text = text.replaceAll(from, to);
      return utf8Encoder.encode(text);
    };
  }
  return (_piece, id) => {
    const text = self.rawDecode([id]);
    return text.includes(REPLACEMENT) ? null : utf8Encoder.encode(text);
  };
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
