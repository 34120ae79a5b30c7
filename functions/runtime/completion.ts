// A completion request, model-side: prompt to token ids, the context check, and the
// parameters of the generation the engine runs. Shared by the plain and the streaming responses.

import type { GenerationParams } from "./engine";
import { ContextLengthError } from "./errors";
import { grammarsOf, JsonConstraint } from "./constrain/constraint";
import type { CompiledSchema } from "./constrain/schema";
import type { LoadedModel } from "./loader";
import type { LogprobsRequest } from "./logprobs";
import type { SamplingControls } from "./sampler";
import type { ChatPrompt } from "./tokenizer/chat-prompt";

export interface CompletionInput {
  /** Text (encoded as given, special tokens included), token ids, or a rendered chat. */
  prompt: string | number[] | ChatPrompt;
  /** The prompt is a rendered chat: its text already holds the special tokens it needs. */
  chat?: boolean;
  maxTokens: number | null;
  temperature: number;
  topP: number;
  seed: number | null;
  stop: string[];
  /** Penalties, logit bias, top_k, min_p beyond temperature and top_p. */
  sampling?: Partial<SamplingControls>;
  /** Log-probabilities to report, if any. */
  logprobs?: LogprobsRequest | null;
  /** Structured output: the schema the text must follow (`key` names it in caches). */
  responseFormat?: { key: string; schema: CompiledSchema } | null;
}

export const DEFAULT_MAX_TOKENS = 16;

export class PromptTokenError extends Error {}

/** A response format this model cannot follow. */
export class ResponseFormatError extends Error {}

export interface PreparedCompletion {
  promptIds: number[];
  maxTokens: number;
  params: GenerationParams;
}

export function prepareCompletion(loaded: LoadedModel, input: CompletionInput): PreparedCompletion {
  const { config, tokenizer: tok } = loaded.manifest;
  let promptIds: number[];
  if (typeof input.prompt === "string") {
    promptIds = loaded.tokenizer.encode(input.prompt, { bos: !input.chat });
  } else if (!Array.isArray(input.prompt)) {
    // Special tokens only from the template's markup, never from message text.
    promptIds = loaded.tokenizer.encodeChat(input.prompt);
  } else {
    promptIds = input.prompt;
    const bad = promptIds.find((id) => id >= config.vocabSize);
    if (bad !== undefined) throw new PromptTokenError(`token id ${bad} is outside the vocabulary (0..${config.vocabSize - 1})`);
  }
  if (promptIds.length === 0) {
    if (tok.bosId === null) throw new PromptTokenError("this model has no start token, so the prompt must not be empty");
    promptIds = [tok.bosId];
  }
  const room = config.seqLen - promptIds.length;
  if (input.maxTokens !== null && input.maxTokens > room) {
    throw new ContextLengthError(config.seqLen, promptIds.length, input.maxTokens);
  }
  if (room < 1) throw new ContextLengthError(config.seqLen, promptIds.length, 0);
  const maxTokens = input.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, room);
  const seed = input.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
  const stopIds = loaded.tokenizer.stopIds;
  let grammar = null;
  if (input.responseFormat) {
    if (stopIds.length === 0) throw new ResponseFormatError("this model has no end token, so it cannot end a structured output");
    grammar = grammarsOf(loaded.tokenizer, config.vocabSize).grammar(input.responseFormat.key, input.responseFormat.schema);
  }
  return {
    promptIds,
    maxTokens,
    // A chat reply is text on its own: decode it as the start of a text (no SentencePiece
    // leading space), as Hugging Face decodes replies.
    params: {
      promptIds,
      maxTokens,
      temperature: input.temperature,
      topP: input.topP,
      seed,
      stop: input.stop,
      decodeAfter: input.chat ? (loaded.tokenizer.bosId ?? undefined) : undefined,
      sampling: input.sampling,
      logprobs: input.logprobs,
      // one constraint per sequence (each choice of a request follows its own output)
      constraint: grammar ? () => new JsonConstraint(grammar, stopIds) : null,
    },
  };
}

/** The prompt as text, for `echo`. */
export function promptText(loaded: LoadedModel, prompt: string | number[], promptIds: number[]): string {
  if (typeof prompt === "string") return prompt;
  const bos = loaded.tokenizer.bosId;
  if (bos !== null && promptIds[0] === bos) return loaded.tokenizer.decode(promptIds.slice(1), bos);
  return loaded.tokenizer.decode(promptIds);
}
