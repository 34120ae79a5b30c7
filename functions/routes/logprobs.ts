// Log-probabilities in OpenAI's response shapes: /v1/completions' parallel arrays (tokens,
// token_logprobs, top_logprobs as {token: logprob}, text_offset) and /v1/chat/completions'
// content list ({token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}).

import type { TokenLogprob } from "../runtime/logprobs";
import type { Tokenizer } from "../runtime/tokenizer/index";

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const encoder = new TextEncoder();

/** How a token is shown: its text (a partial character shows as U+FFFD), or its name if it is not text. */
export function tokenString(tokenizer: Tokenizer, id: number): { text: string; bytes: number[]; isText: boolean } {
  const bytes = tokenizer.tokenBytes(id);
  if (bytes === null) {
    const name = tokenizer.tokenName(id);
    return { text: name, bytes: [...encoder.encode(name)], isText: false };
  }
  return { text: utf8.decode(bytes), bytes: [...bytes], isText: true };
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * Builds /v1/completions logprobs piece by piece (streamed chunks each get the entries of their
 * tokens); text_offset counts characters of the returned text from `startOffset`.
 */
export class CompletionLogprobsWriter {
  constructor(
    private readonly tokenizer: Tokenizer,
    private offset = 0,
  ) {}

  /** Entries for `ids` with their log-probabilities (null: the first prompt token, which has none). */
  write(ids: number[], logprobs: (TokenLogprob | null)[]): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    ids.forEach((id, i) => {
      const shown = tokenString(this.tokenizer, id);
      const lp = logprobs[i];
      out.tokens.push(shown.text);
      out.token_logprobs.push(lp ? lp.logprob : null);
      if (lp) {
        // OpenAI's: the most likely tokens, and the chosen one always among them
        const top: Record<string, number> = {};
        for (const t of lp.top) top[tokenString(this.tokenizer, t.token).text] ??= t.logprob;
        top[shown.text] ??= lp.logprob;
        out.top_logprobs.push(top);
      } else {
        out.top_logprobs.push(null);
      }
      out.text_offset.push(this.offset);
      if (shown.isText) this.offset += shown.text.length;
    });
    return out;
  }
}

export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export function chatLogprobs(tokenizer: Tokenizer, logprobs: TokenLogprob[]): ChatLogprob[] {
  return logprobs.map((lp) => {
    const shown = tokenString(tokenizer, lp.token);
    return {
      token: shown.text,
      logprob: lp.logprob,
      bytes: shown.bytes,
      top_logprobs: lp.top.map((t) => {
        const s = tokenString(tokenizer, t.token);
        return { token: s.text, logprob: t.logprob, bytes: s.bytes };
      }),
    };
  });
}
