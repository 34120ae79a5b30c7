// What the runtime needs of a tokenizer, whatever its kind. Each kind (llama2.c's
// tokenizer.bin, Hugging Face's tokenizer.json) adapts to this; the manifest says which.

import type { TokenizerKind } from "../../model/manifest";
import type { ChatPrompt } from "./chat-prompt";
import { hfTokenizerFromBytes } from "./hf";
import { Llama2cTokenizer, TokenTextDecoder } from "./llama2c";

export interface TextStreamDecoder {
  /** Adds one token; returns the text it completed (possibly ""). */
  push(token: number): string;
  /** Whatever is still held back (an incomplete character becomes U+FFFD). */
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  /** Token the model expects first, if any. */
  readonly bosId: number | null;
  /** Tokens that end a generation: EOS, and end-of-turn tokens for chat models. */
  readonly stopIds: readonly number[];
  /**
   * Prompt text to ids; `bos` prepends the start token where the model uses one. Special tokens
   * written in the text become their ids (a caller's raw prompt may hold them on purpose).
   */
  encode(text: string, options: { bos: boolean }): number[];
  /**
   * A rendered chat to ids (no BOS added: the template writes it): special tokens only from the
   * template's markup, never from message text. Throws ChatContentError when it cannot tell them apart.
   */
  encodeChat(prompt: ChatPrompt): number[];
  /** Ids that follow `prev` (the token before them) to text. */
  decode(ids: number[], prev?: number): string;
  /** Incremental decoding for streaming, starting after token `prev`. */
  streamDecoder(prev: number): TextStreamDecoder;
  /**
   * The bytes token `id` adds to a text it continues (a SentencePiece word start keeps its
   * space; a byte token is its byte, possibly part of a character); null for tokens that are
   * not text (special and control tokens, ids without a token).
   */
  tokenBytes(id: number): Uint8Array | null;
  /** A token's spelling in the vocabulary, for showing tokens that are not text ("</s>", "<|im_end|>"). */
  tokenName(id: number): string;
  /** The model's Jinja chat template, when it has one. */
  readonly chatTemplate: string | null;
  /** bos_token / eos_token as chat templates see them. */
  readonly bosToken?: string | null;
  readonly eosToken?: string | null;
}

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export function llama2cAsTokenizer(t: Llama2cTokenizer): Tokenizer {
  return {
    vocabSize: t.vocabSize,
    bosId: t.bosId,
    // llama2.c models delimit texts with BOS; run.c stops there. EOS ends them too.
    stopIds: [t.bosId, t.eosId],
    encode: (text, { bos }) => t.encode(text, { bos, eos: false }),
    // llama2.c models have no chat template, so this is never asked; run.c's encoder would spell
    // "<s>" with ordinary pieces anyway (it only merges pieces, and the vocabularies we know have
    // no piece that merges into a control token).
    encodeChat: (prompt) => t.encode(prompt.text, { bos: false, eos: false }),
    decode: (ids, prev = t.bosId) => t.decode(ids, prev),
    streamDecoder: (prev) => new TokenTextDecoder(t, prev),
    // <unk>, <s> and </s> are control tokens; everything else decodes as run.c prints it mid-text.
    tokenBytes: (id) => (id === 0 || id === t.bosId || id === t.eosId || id >= t.vocabSize ? null : t.decodePiece(t.eosId, id)),
    tokenName: (id) => (id >= 0 && id < t.vocabSize ? utf8.decode(t.piece(id)) : ""),
    chatTemplate: null,
  };
}

/** A tokenizer from the bytes the build stored under its kind. */
export function tokenizerFromBytes(kind: TokenizerKind, bytes: Uint8Array, vocabSize: number): Tokenizer {
  switch (kind) {
    case "llama2c":
      return llama2cAsTokenizer(Llama2cTokenizer.fromBytes(bytes, vocabSize));
    case "hf":
      return hfTokenizerFromBytes(bytes);
    default:
      throw new Error(`unknown tokenizer kind ${JSON.stringify(kind)}`);
  }
}
