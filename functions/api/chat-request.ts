// Checks a /v1/chat/completions body. Messages are checked for shape here; what roles and
// orders a model accepts is its chat template's business.

import type { SamplingControls } from "../runtime/sampler";
import { invalidRequest } from "./errors";
import { parseResponseFormat, type ResponseFormat } from "./response-format";
import { parseSamplingControls, SAMPLING_FIELDS } from "./sampling-request";
import { parseMessageToolCalls, parseTools, type ToolsRequest } from "./tools-request";
import {
  checkText,
  MAX_CHOICES,
  MAX_TOP_LOGPROBS,
  optionalBoolean,
  optionalInteger,
  optionalNumber,
  parseStop,
  requireModel,
  requireObject,
  LIMITS,
} from "./completion-request";

export interface ChatMessage {
  role: string;
  content: string | Array<{ type: string; text?: string }> | null;
  [key: string]: unknown;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  maxTokens: number | null;
  temperature: number;
  topP: number;
  seed: number | null;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  returnTokenIds: boolean;
  /** presence/frequency/repetition penalties, logit_bias, top_k, min_p: only those set. */
  sampling: Partial<SamplingControls>;
  /** `response_format`: the compiled schema output must follow, or null for free text. */
  responseFormat: ResponseFormat | null;
  /** `logprobs: true`: the alternatives per token wanted (`top_logprobs`, 0..20); null for none. */
  logprobs: number | null;
  /** `n`: choices to generate (they share the prompt's prefill). */
  n: number;
  /** `tools`, `tool_choice`, `parallel_tool_calls`; null when no tools are offered. */
  tools: ToolsRequest | null;
}

const KNOWN_FIELDS = new Set([
  "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop", "stream",
  "stream_options", "return_token_ids", "n", "user", "logprobs", "top_logprobs", "response_format",
  "tools", "tool_choice", "parallel_tool_calls", ...SAMPLING_FIELDS,
]);

const MAX_MESSAGES = 256;

export function parseChatRequest(raw: unknown): ChatRequest {
  const body = requireObject(raw);
  for (const key of Object.keys(body)) {
    if (!KNOWN_FIELDS.has(key)) throw invalidRequest(`Unrecognized request argument supplied: ${key}`, key, "unknown_field");
  }
  if (body.user !== undefined && typeof body.user !== "string") throw invalidRequest("'user' must be a string", "user");
  const logprobs = optionalBoolean(body, "logprobs");
  const topLogprobs = optionalInteger(body, "top_logprobs", 0, MAX_TOP_LOGPROBS);
  if (topLogprobs !== null && !logprobs) throw invalidRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== "object" || Array.isArray(streamOptions))) {
    throw invalidRequest("'stream_options' must be an object", "stream_options");
  }
  const maxTokens = optionalInteger(body, "max_completion_tokens", 0, LIMITS.maxTokens) ?? optionalInteger(body, "max_tokens", 0, LIMITS.maxTokens);
  return {
    model: requireModel(body),
    messages: parseMessages(body.messages),
    maxTokens,
    temperature: optionalNumber(body, "temperature", 0, 2) ?? 1,
    topP: optionalNumber(body, "top_p", 0, 1, true) ?? 1,
    seed: optionalInteger(body, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    stop: parseStop(body.stop),
    stream: optionalBoolean(body, "stream"),
    includeUsage: streamOptions ? optionalBoolean(streamOptions as Record<string, unknown>, "include_usage", "stream_options.include_usage") : false,
    returnTokenIds: optionalBoolean(body, "return_token_ids"),
    sampling: parseSamplingControls(body),
    responseFormat: parseResponseFormat(body.response_format),
    logprobs: logprobs ? (topLogprobs ?? 0) : null,
    n: optionalInteger(body, "n", 1, MAX_CHOICES) ?? 1,
    tools: parseTools(body),
  };
}

function parseMessages(messages: unknown): ChatMessage[] {
  if (messages === undefined || messages === null) throw invalidRequest("'messages' is required", "messages");
  if (!Array.isArray(messages) || messages.length === 0) throw invalidRequest("'messages' must be a non-empty array of messages", "messages");
  if (messages.length > MAX_MESSAGES) throw invalidRequest(`'messages' has ${messages.length} messages; the limit is ${MAX_MESSAGES}`, "messages");
  let chars = 0;
  const calls = new Map<number, unknown[]>();
  messages.forEach((m, i) => {
    const param = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) throw invalidRequest(`'${param}' must be an object`, param);
    const { role, content } = m as ChatMessage;
    if (typeof role !== "string" || !["system", "developer", "user", "assistant", "tool"].includes(role)) {
      throw invalidRequest(`'${param}.role' must be one of system, developer, user, assistant, tool`, `${param}.role`);
    }
    if (typeof content === "string") {
      checkText(content, `${param}.content`);
      chars += content.length;
    } else if (Array.isArray(content)) {
      for (const part of content) {
        if (typeof part !== "object" || part === null || part.type !== "text" || typeof part.text !== "string") {
          throw invalidRequest(`'${param}.content' parts must be {"type": "text", "text": string}`, `${param}.content`);
        }
        checkText(part.text, `${param}.content`);
        chars += part.text.length;
      }
    } else if (!(content === null && role === "assistant")) {
      throw invalidRequest(`'${param}.content' must be a string or an array of text parts`, `${param}.content`);
    }
    const { tool_calls: toolCalls, tool_call_id: toolCallId } = m as ChatMessage;
    if (toolCalls !== undefined && toolCalls !== null) {
      if (role !== "assistant") throw invalidRequest(`'${param}.tool_calls' is for assistant messages`, `${param}.tool_calls`);
      calls.set(i, parseMessageToolCalls(toolCalls, `${param}.tool_calls`));
    } else if (content === null) {
      throw invalidRequest(`'${param}.content' may be null only beside 'tool_calls'`, `${param}.content`);
    }
    if (role === "tool" && typeof toolCallId !== "string") throw invalidRequest(`'${param}.tool_call_id' must be a string: the id of the call this answers`, `${param}.tool_call_id`);
  });
  if (chars > LIMITS.promptChars) throw invalidRequest(`'messages' hold ${chars} characters; the limit is ${LIMITS.promptChars}`, "messages");
  return (messages as ChatMessage[]).map((m, i) => {
    const out: ChatMessage = m.role === "developer" ? { ...m, role: "system" } : { ...m };
    if (calls.has(i)) out.tool_calls = calls.get(i);
    else delete out.tool_calls;
    return out;
  });
}
