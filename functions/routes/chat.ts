// POST /v1/chat/completions: the conversation rendered with the model's own chat template,
// then generated like a completion until an end-of-turn or EOS token.

import type { Context } from "hono";
import { readJsonBody } from "../api/body";
import { parseChatRequest } from "../api/chat-request";
import { ApiError, invalidRequest } from "../api/errors";
import { ChatContentError, ChatMessageError, ChatTemplateError, renderChatPrompt } from "../runtime/chat-template";
import type { LoadedModel } from "../runtime/loader";
import type { AppContext } from "../app";
import { leaseAndPrepare } from "./completions";
import { chatLogprobs } from "./logprobs";
import { runToEnd, sseResponse, startGeneration, sumTokens, usage } from "./respond";

export async function chatCompletions(c: Context<AppContext>): Promise<Response> {
  const request = parseChatRequest(await readJsonBody(c.req.raw));
  const render = (model: LoadedModel) => {
    const template = model.tokenizer.chatTemplate;
    if (!template) {
      throw invalidRequest(`The model '${request.model}' has no chat template; use /v1/completions`, "model", "no_chat_template");
    }
    try {
      return renderChatPrompt(template, request.messages, { bosToken: model.tokenizer.bosToken ?? undefined, eosToken: model.tokenizer.eosToken ?? undefined, addGenerationPrompt: true });
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
    stop: request.stop,
    sampling: request.sampling,
    responseFormat: request.responseFormat,
    logprobs: request.logprobs === null ? null : { top: request.logprobs, prompt: false },
  })).catch((e) => {
    if (e instanceof ChatContentError) throw invalidRequest(e.message, e.where, "special_token_in_content");
    throw e;
  });
  const tokenizer = lease.model.tokenizer;
  const meta = { id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`, created: Math.floor(Date.now() / 1000), model: request.model };
  const ids = (tokenIds: number[]) => (request.returnTokenIds ? { token_ids: tokenIds } : {});
  const generation = await startGeneration(c.var.log, lease, prepared, request.n, c.var.metering);

  if (request.stream) {
    const chunk = (index: number, delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
      ...meta,
      object: "chat.completion.chunk",
      choices: [{ index, delta, logprobs: null, finish_reason: null, ...extra }],
    });
    return sseResponse(generation, {
      start(emit) {
        for (let i = 0; i < request.n; i++) {
          emit({ ...chunk(i, { role: "assistant", content: "" }, ids([])), ...(request.returnTokenIds ? { prompt_token_ids: prepared.promptIds } : {}) });
        }
      },
      step(emit, index, step) {
        const lp = step.logprob ? { logprobs: { content: chatLogprobs(tokenizer, [step.logprob]), refusal: null } } : {};
        if (step.text || request.returnTokenIds || step.logprob) emit(chunk(index, { content: step.text }, { ...ids(step.tokenId >= 0 ? [step.tokenId] : []), ...lp }));
      },
      end(emit, index, summary) {
        emit(chunk(index, {}, { finish_reason: summary.finishReason, ...ids([]) }));
      },
      finish(emit, summaries) {
        if (request.includeUsage) emit({ ...meta, object: "chat.completion.chunk", choices: [], usage: usage(prepared.promptIds.length, sumTokens(summaries)) });
      },
    });
  }
  const results = await runToEnd(generation);
  const choices = results.map(({ text, summary, logprobs }, index) => ({
    index,
    message: { role: "assistant", content: text },
    logprobs: request.logprobs === null ? null : { content: chatLogprobs(tokenizer, logprobs), refusal: null },
    finish_reason: summary.finishReason,
    ...ids(summary.completionIds),
  }));
  return c.json({
    ...meta,
    object: "chat.completion",
    choices,
    usage: usage(prepared.promptIds.length, sumTokens(results.map((r) => r.summary))),
    ...(request.returnTokenIds ? { prompt_token_ids: prepared.promptIds } : {}),
  });
}
