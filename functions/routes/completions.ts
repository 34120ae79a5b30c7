// POST /v1/completions: validate, lease the model, run, answer as JSON or as server-sent
// events ending in `data: [DONE]`.

import type { Context } from "hono";
import { readJsonBody } from "../api/body";
import { parseCompletionRequest, type CompletionRequest } from "../api/completion-request";
import { invalidRequest, toApiError } from "../api/errors";
import { prepareCompletion, PromptTokenError, promptText, type PreparedCompletion } from "../runtime/completion";
import type { ModelLease } from "../runtime/registry";
import type { AppContext } from "../app";

export async function completions(c: Context<AppContext>): Promise<Response> {
  const request = parseCompletionRequest(await readJsonBody(c.req.raw));
  const lease = await c.var.models.acquire(c.env.MODELS, request.model, c.var.modelPointerKey?.(request.model));
  let prepared: PreparedCompletion;
  try {
    prepared = prepareCompletion(lease.model, request);
  } catch (e) {
    lease.release();
    if (e instanceof PromptTokenError) throw invalidRequest(e.message, "prompt", "invalid_token_id");
    throw e;
  }
  const meta = { id: `cmpl-${crypto.randomUUID().replaceAll("-", "")}`, created: Math.floor(Date.now() / 1000), model: request.model };
  if (request.stream) return streamCompletion(lease, request, prepared, meta);
  try {
    return c.json(await completeAll(lease, request, prepared, meta));
  } finally {
    lease.release();
  }
}

interface Meta {
  id: string;
  created: number;
  model: string;
}

async function completeAll(lease: ModelLease, request: CompletionRequest, prepared: PreparedCompletion, meta: Meta) {
  let text = request.echo ? promptText(lease.model, request.prompt, prepared.promptIds) : "";
  const run = prepared.run();
  let step = await run.next();
  while (!step.done) {
    text += step.value.text;
    step = await run.next();
  }
  const summary = step.value;
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        text,
        logprobs: null,
        finish_reason: summary.finishReason,
        ...(request.returnTokenIds ? { token_ids: summary.completionIds, prompt_token_ids: prepared.promptIds } : {}),
      },
    ],
    usage: usage(prepared.promptIds.length, summary.completionIds.length),
  };
}

function usage(promptTokens: number, completionTokens: number) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

function streamCompletion(lease: ModelLease, request: CompletionRequest, prepared: PreparedCompletion, meta: Meta): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
  const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    encoder.encode(`data: ${JSON.stringify({ id: meta.id, object: "text_completion", created: meta.created, model: meta.model, choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }], ...extra })}\n\n`);
  const body = new ReadableStream<Uint8Array>({
    async start(stream) {
      // After the client goes away the stream refuses writes; the generation stops at its next token.
      const controller = {
        enqueue(bytes: Uint8Array) {
          if (!abort.signal.aborted) stream.enqueue(bytes);
        },
      };
      try {
        if (request.echo || request.returnTokenIds) {
          controller.enqueue(chunk({
            text: request.echo ? promptText(lease.model, request.prompt, prepared.promptIds) : "",
            ...(request.returnTokenIds ? { token_ids: [], prompt_token_ids: prepared.promptIds } : {}),
          }));
        }
        const run = prepared.run(abort.signal);
        let step = await run.next();
        while (!step.done) {
          const ids = step.value.tokenId >= 0 ? [step.value.tokenId] : [];
          if (step.value.text || request.returnTokenIds) {
            controller.enqueue(chunk({ text: step.value.text, ...(request.returnTokenIds ? { token_ids: ids } : {}) }));
          }
          step = await run.next();
        }
        const summary = step.value;
        controller.enqueue(chunk({ text: "", finish_reason: summary.finishReason, ...(request.returnTokenIds ? { token_ids: [] } : {}) }));
        if (request.includeUsage) {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify({ id: meta.id, object: "text_completion", created: meta.created, model: meta.model, choices: [], usage: usage(prepared.promptIds.length, summary.completionIds.length) })}\n\n`));
        }
      } catch (e) {
        controller.enqueue(encoder.encode(`data: ${JSON.stringify(toApiError(e).body)}\n\n`));
      } finally {
        lease.release();
      }
      if (!abort.signal.aborted) {
        stream.enqueue(encoder.encode("data: [DONE]\n\n"));
        stream.close();
      }
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" },
  });
}
