// Checks a /v1/completions body field by field. Every rejection names the field and why,
// and the limits here are the ones the README documents.

import type { SamplingControls } from "../runtime/sampler";
import { ApiError, invalidRequest } from "./errors";
import { parseResponseFormat, type ResponseFormat } from "./response-format";
import { parseSamplingControls, SAMPLING_FIELDS } from "./sampling-request";

export const LIMITS = {
  bodyBytes: 256 * 1024,
  promptChars: 32_768,
  promptTokenIds: 32_768,
  stopStrings: 16,
  stopStringChars: 256,
  maxTokens: 1 << 20,
  /** Arrays and objects inside one another in a request body. */
  jsonDepth: 32,
  /** A model id, in UTF-8 bytes (Workers KV keys hold at most 512). */
  modelIdBytes: 256,
} as const;

export interface CompletionRequest {
  model: string;
  prompt: string | number[];
  maxTokens: number | null;
  temperature: number;
  topP: number;
  seed: number | null;
  stop: string[];
  echo: boolean;
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
  /** presence/frequency/repetition penalties, logit_bias, top_k, min_p: only those set. */
  sampling: Partial<SamplingControls>;
  /** `response_format`: the compiled schema output must follow, or null for free text. */
  responseFormat: ResponseFormat | null;
  /** `logprobs`: how many alternatives per token (0..20), or null for none. */
  logprobs: number | null;
  /** `n`: choices to generate for the prompt (they share its prefill). */
  n: number;
}

export const MAX_TOP_LOGPROBS = 20;
/** The most choices (`n`) a request may ask for, as OpenAI allows; a model also caps it at its KV caches. */
export const MAX_CHOICES = 128;

const KNOWN_FIELDS = new Set([
  "model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "echo", "stream",
  "stream_options", "return_token_ids", "n", "user", "logprobs", "response_format", ...SAMPLING_FIELDS,
]);

type Body = Record<string, unknown>;

export function parseCompletionRequest(raw: unknown): CompletionRequest {
  const body = requireObject(raw);
  for (const key of Object.keys(body)) {
    if (!KNOWN_FIELDS.has(key)) throw invalidRequest(`Unrecognized request argument supplied: ${key}`, key, "unknown_field");
  }
  if (body.user !== undefined && typeof body.user !== "string") throw invalidRequest("'user' must be a string", "user");
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== "object" || Array.isArray(streamOptions))) {
    throw invalidRequest("'stream_options' must be an object", "stream_options");
  }
  return {
    model: requireModel(body),
    prompt: parsePrompt(body.prompt),
    maxTokens: optionalInteger(body, "max_tokens", 0, LIMITS.maxTokens),
    temperature: optionalNumber(body, "temperature", 0, 2) ?? 1,
    topP: optionalNumber(body, "top_p", 0, 1, true) ?? 1,
    seed: optionalInteger(body, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    stop: parseStop(body.stop),
    echo: optionalBoolean(body, "echo"),
    stream: optionalBoolean(body, "stream"),
    includeUsage: streamOptions ? optionalBoolean(streamOptions as Body, "include_usage", "stream_options.include_usage") : false,
    returnTokenIds: optionalBoolean(body, "return_token_ids"),
    sampling: parseSamplingControls(body),
    responseFormat: parseResponseFormat(body.response_format),
    logprobs: optionalInteger(body, "logprobs", 0, MAX_TOP_LOGPROBS),
    n: optionalInteger(body, "n", 1, MAX_CHOICES) ?? 1,
  };
}

export function requireObject(raw: unknown): Body {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalidRequest("The request body must be a JSON object");
  return raw as Body;
}

export function requireModel(body: Body): string {
  const model = body.model;
  if (model === undefined || model === null) throw invalidRequest("'model' is required", "model");
  if (typeof model !== "string" || model.length === 0) throw invalidRequest("'model' must be a non-empty string", "model");
  // No model can have such an id (the build refuses it), so it is a missing model, not a KV error.
  if (hasLoneSurrogate(model) || /[\u0000-\u001f\u007f]/.test(model) || new TextEncoder().encode(model).byteLength > LIMITS.modelIdBytes) {
    throw new ApiError(404, `The model '${printable(model)}' does not exist`, "invalid_request_error", "model", "model_not_found");
  }
  return model;
}

function hasLoneSurrogate(text: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/** An id as an error message may quote it: control characters and lone surrogates escaped, cut at 64 characters. */
function printable(text: string): string {
  const cut = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return cut.replace(/[\u0000-\u001f\u007f]|[\uD800-\uDFFF]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function parsePrompt(prompt: unknown): string | number[] {
  if (prompt === undefined || prompt === null) throw invalidRequest("'prompt' is required", "prompt");
  if (typeof prompt === "string") return checkPromptText(prompt);
  if (Array.isArray(prompt)) {
    if (prompt.length === 1 && typeof prompt[0] === "string") return checkPromptText(prompt[0]);
    if (prompt.length === 0) throw invalidRequest("'prompt' must not be an empty array", "prompt");
    if (prompt.length > LIMITS.promptTokenIds) throw invalidRequest(`'prompt' has ${prompt.length} token ids; the limit is ${LIMITS.promptTokenIds}`, "prompt");
    for (const id of prompt) {
      if (!Number.isInteger(id) || (id as number) < 0) throw invalidRequest("'prompt' must be a string or an array of non-negative integer token ids", "prompt");
    }
    return prompt as number[];
  }
  throw invalidRequest("'prompt' must be a string or an array of token ids", "prompt");
}

function checkPromptText(text: string): string {
  if (text.length > LIMITS.promptChars) throw invalidRequest(`'prompt' has ${text.length} characters; the limit is ${LIMITS.promptChars}`, "prompt");
  checkText(text, "prompt");
  return text;
}

/**
 * Text the model will read must be valid Unicode without NUL (tokenizers that follow C
 * strings would cut the text there while `echo` returned all of it).
 */
export function checkText(text: string, param: string): void {
  if (hasLoneSurrogate(text)) throw invalidRequest(`'${param}' contains an unpaired surrogate (invalid Unicode)`, param);
  if (text.includes("\u0000")) throw invalidRequest(`'${param}' contains a NUL character`, param);
}

export function parseStop(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === "string" ? [stop] : stop;
  if (!Array.isArray(list)) throw invalidRequest("'stop' must be a string or an array of strings", "stop");
  if (list.length > LIMITS.stopStrings) throw invalidRequest(`'stop' has ${list.length} strings; the limit is ${LIMITS.stopStrings}`, "stop");
  for (const s of list) {
    if (typeof s !== "string" || s.length === 0) throw invalidRequest("'stop' must contain only non-empty strings", "stop");
    if (s.length > LIMITS.stopStringChars) throw invalidRequest(`each 'stop' string must be at most ${LIMITS.stopStringChars} characters`, "stop");
  }
  return list as string[];
}

export function optionalNumber(body: Body, field: string, min: number, max: number, exclusiveMin = false): number | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) throw invalidRequest(`'${field}' must be a finite number`, field);
  if (v < min || v > max || (exclusiveMin && v === min)) {
    throw invalidRequest(`'${field}' must be ${exclusiveMin ? "greater than" : "at least"} ${min} and at most ${max}, got ${v}`, field);
  }
  return v;
}

export function optionalInteger(body: Body, field: string, min: number, max: number): number | null {
  const v = body[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v)) throw invalidRequest(`'${field}' must be an integer`, field);
  if (v < min || v > max) throw invalidRequest(`'${field}' must be between ${min} and ${max}, got ${v}`, field);
  return v;
}

export function optionalBoolean(body: Body, field: string, name = field): boolean {
  const v = body[field];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw invalidRequest(`'${name}' must be a boolean`, name);
  return v;
}
