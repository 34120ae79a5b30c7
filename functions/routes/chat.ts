// POST /v1/chat/completions: the conversation rendered with the model's own chat template,
// then generated like a completion until an end-of-turn or EOS token. With `tools`, the
// template is given them, and what the model writes is split into content and tool calls
// (functions/runtime/tools.ts); a forced call (tool_choice "required" or a named function) is
// opened in the prompt and its JSON constrained to the functions' parameter schemas.

import type { Context } from "hono";
import { readJsonBody } from "../api/body";
import { parseChatRequest } from "../api/chat-request";
import { ApiError, invalidRequest } from "../api/errors";
import { compileFormat } from "../api/response-format";
import type { ToolsRequest } from "../api/tools-request";
import { ChatContentError, ChatMessageError, ChatTemplateError, renderChatPrompt } from "../runtime/chat-template";
import type { GenerationSummary } from "../runtime/engine";
import type { LoadedModel } from "../runtime/loader";
import { afterFirstCall, callSchema, forcedOpening, templateTakesTools, toolCallFormat, toolCallParser, type OutputPiece, type ReplyParser, type ToolCallFormat } from "../runtime/tools";
import type { AppContext } from "../app";
import { leaseAndPrepare } from "./completions";
import { chatLogprobs } from "./logprobs";
import { completionTokens, runToEnd, sseResponse, startGeneration, usage } from "./respond";

export async function chatCompletions(c: Context<AppContext>): Promise<Response> {
  const request = parseChatRequest(await readJsonBody(c.req.raw));
  // tool_choice "none": the tools are not shown to the model and the reply is text
  const tools = request.tools && request.tools.choice !== "none" ? request.tools : null;
  const forced = tools ? forcedTools(tools) : null;
  if (forced && request.responseFormat) {
    throw invalidRequest("'response_format' cannot be combined with a forced tool call (tool_choice \"required\" or a named function)", "response_format");
  }
  let format: ToolCallFormat | null = null;
  const render = (model: LoadedModel) => {
    const template = model.tokenizer.chatTemplate;
    if (!template) {
      throw invalidRequest(`The model '${request.model}' has no chat template; use /v1/completions`, "model", "no_chat_template");
    }
    if (tools) {
      if (!templateTakesTools(template)) throw invalidRequest(`The model '${request.model}' cannot call tools: its chat template has no tool support`, "tools", "tools_not_supported");
      format = toolCallFormat(template);
      if (!format) {
        throw invalidRequest(
          `The model '${request.model}' writes tool calls in a format this server does not parse (it reads <tool_call> blocks, as Qwen2.5 and Qwen3 write them, and Llama 3.1's JSON calls)`,
          "tools",
          "tools_not_supported",
        );
      }
    }
    try {
      const prompt = renderChatPrompt(template, request.messages, {
        bosToken: model.tokenizer.bosToken ?? undefined,
        eosToken: model.tokenizer.eosToken ?? undefined,
        addGenerationPrompt: true,
        variables: tools ? { tools: tools.tools.map((f) => ({ type: "function", function: f })) } : undefined,
      });
      // A forced call: the reply starts inside the call, as the model itself would open it.
      return forced ? { ...prompt, text: `${prompt.text}${forcedOpening(format!)}` } : prompt;
    } catch (e) {
      if (e instanceof ChatMessageError || (e instanceof ChatTemplateError && e.fromTemplate)) throw invalidRequest(e.message, "messages");
      if (e instanceof ChatTemplateError) throw new ApiError(500, `The model's chat template failed: ${e.message}`, "server_error", null, "chat_template_error");
      throw e;
    }
  };
  const { lease, prepared } = await leaseAndPrepare(c, request.model, (model) => ({
    prompt: render(model),
    chat: true,
    maxTokens: request.maxTokens,
    temperature: request.temperature,
    topP: request.topP,
    seed: request.seed,
    // one call at most: the reply ends where the first call's block closes (the parser reads it unclosed)
    stop: tools && !forced && !tools.parallel && afterFirstCall(format!) ? [...request.stop, afterFirstCall(format!)!] : request.stop,
    sampling: request.sampling,
    responseFormat: forced ? compileFormat(callSchema(forced, format!.argumentsKey), "tools") : request.responseFormat,
    logprobs: request.logprobs === null ? null : { top: request.logprobs, prompt: false },
  })).catch((e) => {
    if (e instanceof ChatContentError) throw invalidRequest(e.message, e.where, "special_token_in_content");
    throw e;
  });
  const tokenizer = lease.model.tokenizer;
  const meta = { id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`, created: Math.floor(Date.now() / 1000), model: request.model };
  const ids = (tokenIds: number[]) => (request.returnTokenIds ? { token_ids: tokenIds } : {});
  const replies = Array.from({ length: request.n }, () => (tools ? new ToolReply(format!, tools, forced !== null) : null));
  const generation = await startGeneration(c.var.log, lease, prepared, request.n, c.var.metering);

  if (request.stream) {
    const chunk = (index: number, delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      ...meta,
      object: "chat.completion.chunk",
      choices: [{ index, delta, logprobs: null, finish_reason: null, ...extra }],
    });
    const emitPieces = (emit: (p: unknown) => void, index: number, pieces: OutputPiece[]) => {
      for (const piece of pieces) {
        const delta = replies[index]!.delta(piece);
        if (delta) emit(chunk(index, delta));
      }
    };
    return sseResponse(generation, {
      start(emit) {
        for (let i = 0; i < request.n; i++) {
          emit({ ...chunk(i, { role: "assistant", content: "" }, ids([])), ...(request.returnTokenIds ? { prompt_token_ids: prepared.promptIds } : {}) });
        }
      },
      step(emit, index, step) {
        const lp = step.logprob ? { logprobs: { content: chatLogprobs(tokenizer, [step.logprob]), refusal: null } } : {};
        const reply = replies[index];
        if (reply) {
          emitPieces(emit, index, reply.parser.push(step.text));
          if (request.returnTokenIds || step.logprob) emit(chunk(index, {}, { ...ids(step.tokenId >= 0 ? [step.tokenId] : []), ...lp }));
        } else if (step.text || request.returnTokenIds || step.logprob) {
          emit(chunk(index, { content: step.text }, { ...ids(step.tokenId >= 0 ? [step.tokenId] : []), ...lp }));
        }
      },
      end(emit, index, summary) {
        const reply = replies[index];
        if (reply) emitPieces(emit, index, reply.parser.finish());
        emit(chunk(index, {}, { finish_reason: reply ? reply.finishReason(summary) : summary.finishReason, ...ids([]) }));
      },
      finish(emit) {
        if (request.includeUsage) emit({ ...meta, object: "chat.completion.chunk", choices: [], usage: usage(prepared.promptIds.length, completionTokens(generation.seqs)) });
      },
    });
  }
  const results = await runToEnd(generation);
  const choices = results.map(({ text, summary, logprobs }, index) => {
    const reply = replies[index];
    return {
      index,
      message: reply ? reply.message(text) : { role: "assistant", content: text },
      logprobs: request.logprobs === null ? null : { content: chatLogprobs(tokenizer, logprobs), refusal: null },
      finish_reason: reply ? reply.finishReason(summary) : summary.finishReason,
      ...ids(summary.completionIds),
    };
  });
  return c.json({
    ...meta,
    object: "chat.completion",
    choices,
    usage: usage(prepared.promptIds.length, completionTokens(generation.seqs)),
    ...(request.returnTokenIds ? { prompt_token_ids: prepared.promptIds } : {}),
  });
}

/** The functions a forced call may name, or null when the model chooses. */
function forcedTools(tools: ToolsRequest) {
  if (tools.choice === "required") return tools.tools;
  if (typeof tools.choice === "object") {
    const name = tools.choice.name;
    return tools.tools.filter((t) => t.name === name);
  }
  return null;
}

/** One choice's reply when tools are offered: content and calls, in OpenAI's shapes. */
class ToolReply {
  readonly parser: ReplyParser;
  private calls = 0;

  constructor(
    format: ToolCallFormat,
    private readonly tools: ToolsRequest,
    private readonly forced: boolean,
  ) {
    this.parser = toolCallParser(format, new Set(tools.tools.map((t) => t.name)), forced);
  }

  /** A streamed piece as a chunk's delta (null: dropped, a second call when parallel calls are off). */
  delta(piece: OutputPiece): Record<string, unknown> | null {
    if (piece.content !== undefined) return { content: piece.content };
    if (this.calls > 0 && !this.tools.parallel) return null;
    return { tool_calls: [{ index: this.calls++, id: callId(), type: "function", function: piece.call }] };
  }

  /** The whole reply as a message. */
  message(text: string): Record<string, unknown> {
    const pieces = [...this.parser.push(text), ...this.parser.finish()];
    const content = pieces.map((p) => p.content ?? "").join("");
    const calls = pieces.flatMap((p) => (p.call && (this.tools.parallel || this.calls === 0) ? [{ id: callId(), type: "function", function: p.call, index: this.calls++ }] : []));
    if (calls.length === 0) return { role: "assistant", content };
    return { role: "assistant", content: content === "" ? null : content, tool_calls: calls.map(({ index: _, ...call }) => call) };
  }

  /** "tool_calls" once a call was made and the reply ended on its own (or a forced call is complete). */
  finishReason(summary: GenerationSummary): string {
    return this.calls > 0 && (summary.finishReason === "stop" || this.forced) ? "tool_calls" : summary.finishReason;
  }
}

function callId(): string {
  return `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}
