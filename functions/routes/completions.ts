// POST /v1/completions: validate, lease the model, hand the generation to its engine, answer as
// JSON or as server-sent events ending in `data: [DONE]`.

import type { Context } from "hono";
import { readJsonBody } from "../api/body";
import { parseCompletionRequest } from "../api/completion-request";
import { invalidRequest } from "../api/errors";
import { checkLogitBias } from "../api/sampling-request";
import { prepareCompletion, PromptTokenError, promptText, ResponseFormatError, type CompletionInput, type PreparedCompletion } from "../runtime/completion";
import type { LoadedModel } from "../runtime/loader";
import type { ModelLease } from "../runtime/registry";
import { workerStore } from "../store/worker";
import type { AppContext } from "../app";
import { CompletionLogprobsWriter } from "./logprobs";
import { completionTokens, runToEnd, sseResponse, startGeneration, usage } from "./respond";

export async function completions(c: Context<AppContext>): Promise<Response> {
  const request = parseCompletionRequest(await readJsonBody(c.req.raw));
  const logprobs = request.logprobs === null ? null : { top: request.logprobs, prompt: request.echo };
  const { lease, prepared } = await leaseAndPrepare(c, request.model, { ...request, logprobs });
  const meta = { id: `cmpl-${crypto.randomUUID().replaceAll("-", "")}`, object: "text_completion", created: Math.floor(Date.now() / 1000), model: request.model };
  const echo = request.echo ? promptText(lease.model, request.prompt, prepared.promptIds) : "";
  const ids = (tokenIds: number[], promptIds?: number[]) =>
    request.returnTokenIds ? { token_ids: tokenIds, ...(promptIds ? { prompt_token_ids: promptIds } : {}) } : {};
  // With echo, the prompt's tokens come first in the logprobs and text_offset counts from the echoed prompt.
  // One writer per choice: text offsets run on along each choice's own text.
  const writers = logprobs ? Array.from({ length: request.n }, () => new CompletionLogprobsWriter(lease.model.tokenizer)) : null;
  const generation = await startGeneration(c.var.log, lease, prepared, request.n, c.var.metering);

  if (request.stream) {
    const chunk = (index: number, choice: Record<string, unknown>) => ({ ...meta, choices: [{ index, logprobs: null, finish_reason: null, ...choice }] });
    return sseResponse(generation, {
      start(emit) {
        // with logprobs the echoed prompt waits for its log-probabilities (the first step)
        if ((request.echo && !writers) || request.returnTokenIds) {
          for (let i = 0; i < request.n; i++) emit(chunk(i, { text: writers ? "" : echo, ...ids([], prepared.promptIds) }));
        }
      },
      step(emit, index, step) {
        const writer = writers?.[index];
        if (step.promptLogprobs) {
          emit(chunk(index, { text: echo, logprobs: writer!.write(prepared.promptIds, step.promptLogprobs) }));
        } else if (step.text || request.returnTokenIds || step.logprob) {
          const stepIds = step.tokenId >= 0 ? [step.tokenId] : [];
          const lp = writer ? { logprobs: step.logprob ? writer.write(stepIds, [step.logprob]) : writer.write([], []) } : {};
          emit(chunk(index, { text: step.text, ...lp, ...ids(stepIds) }));
        }
      },
      end(emit, index, summary) {
        emit(chunk(index, { text: "", finish_reason: summary.finishReason, ...ids([]) }));
      },
      finish(emit) {
        if (request.includeUsage) emit({ ...meta, choices: [], usage: usage(prepared.promptIds.length, completionTokens(generation.seqs)) });
      },
    });
  }
  const results = await runToEnd(generation);
  const choices = results.map(({ text, summary, promptLogprobs, logprobs: generated }, index) => {
    let lp: unknown = null;
    const writer = writers?.[index];
    if (writer) {
      const promptPart = promptLogprobs ? writer.write(prepared.promptIds, promptLogprobs) : null;
      const genPart = writer.write(summary.completionIds.slice(0, generated.length), generated);
      lp = promptPart
        ? {
            tokens: [...promptPart.tokens, ...genPart.tokens],
            token_logprobs: [...promptPart.token_logprobs, ...genPart.token_logprobs],
            top_logprobs: [...promptPart.top_logprobs, ...genPart.top_logprobs],
            text_offset: [...promptPart.text_offset, ...genPart.text_offset],
          }
        : genPart;
    }
    return { index, text: echo + text, logprobs: lp, finish_reason: summary.finishReason, ...ids(summary.completionIds, prepared.promptIds) };
  });
  return c.json({ ...meta, choices, usage: usage(prepared.promptIds.length, completionTokens(generation.seqs)) });
}

/**
 * Leases the model and prepares the generation (tokenizing, the context check); `input`
 * may be built from the model once it is loaded (chat renders its template).
 */
export async function leaseAndPrepare(
  c: Context<AppContext>,
  modelId: string,
  input: CompletionInput | ((model: LoadedModel) => CompletionInput),
): Promise<{ lease: ModelLease; prepared: PreparedCompletion }> {
  const log = c.var.log;
  log.model = modelId;
  log.customer = c.var.customer ?? null;
  const lease = await c.var.models.acquire(workerStore(c.env), modelId, c.var.modelPointerKey?.(modelId));
  log.modelVersion = lease.model.manifestSha256;
  try {
    const resolved = typeof input === "function" ? input(lease.model) : input;
    checkLogitBias(resolved.sampling, lease.model.manifest.config.vocabSize);
    // structured output's vocabulary index and masks are counted before they are built
    if (resolved.responseFormat) c.var.models.reserveStructuredOutput(lease.model);
    const prepared = prepareCompletion(lease.model, resolved);
    log.promptTokens = prepared.promptIds.length;
    return { lease, prepared };
  } catch (e) {
    lease.release();
    if (e instanceof PromptTokenError) throw invalidRequest(e.message, "prompt", "invalid_token_id");
    if (e instanceof ResponseFormatError) throw invalidRequest(e.message, "response_format");
    throw e;
  }
}
