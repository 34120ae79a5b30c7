// What the completion routes share: handing a generation (its n choices) to the model's engine,
// running it to its end, and server-sent events that end in `data: [DONE]`, report a failure as one error
// event, and cancel the generation when the client goes away. The model lease goes back when
// the generation ends, however it ends (the engine calls it, synchronously). Each fills in its
// request's log line (tokens, time to first token, how it ended); a stream writes that line
// itself when it ends or its client goes away, since that is after the handler has returned.

import { invalidRequest, toApiError } from "../api/errors";
import { GroupTooLargeError, type Engine, type GenerationStep, type GenerationSummary, type Sequence } from "../runtime/engine";
import type { TokenLogprob } from "../runtime/logprobs";
import { admitted, readGroup } from "../runtime/generate";
import type { PreparedCompletion } from "../runtime/completion";
import type { ModelLease } from "../runtime/registry";
import type { RequestLog } from "../log";
import type { MeteredRequest } from "../metering/middleware";
import type { RequestUsage } from "../metering/limits";

export interface Generation {
  engine: Engine;
  /** One sequence per choice (n); they share the prompt's prefill. */
  seqs: Sequence[];
  log: RequestLog;
  /** The customer's metered request: ended with the tokens used, before usage is sent. */
  metered?: MeteredRequest;
  usageOf: (completionTokens: number) => RequestUsage;
}

/**
 * Submits the generation's n choices and waits until they hold KV caches, so a model too busy
 * to take them is a 503 with Retry-After before any response starts.
 */
export async function startGeneration(log: RequestLog, lease: ModelLease, prepared: PreparedCompletion, n: number, metered?: MeteredRequest): Promise<Generation> {
  const engine = lease.model.engine;
  let seqs: Sequence[];
  try {
    seqs = engine.submitGroup(prepared.params, n, () => lease.release());
  } catch (e) {
    lease.release();
    if (e instanceof GroupTooLargeError) throw invalidRequest(`'n' is ${n}, but ${e.message}`, "n");
    throw e;
  }
  await admitted(engine, seqs[0]);
  metered?.claim();
  const model = lease.model.id;
  return { engine, seqs, log, metered, usageOf: (completionTokens) => ({ model, promptTokens: prepared.promptIds.length, completionTokens, embeddingInputs: 0 }) };
}

export interface RunResult {
  text: string;
  summary: GenerationSummary;
  /** The generated tokens' log-probabilities, when asked for. */
  logprobs: TokenLogprob[];
  /** The prompt's, when asked for. */
  promptLogprobs: (TokenLogprob | null)[] | null;
}

/** Runs every choice to its end; one result per choice, in order. */
export async function runToEnd({ engine, seqs, log, metered, usageOf }: Generation): Promise<RunResult[]> {
  const results: RunResult[] = seqs.map(() => ({ text: "", summary: { finishReason: "length", completionIds: [] }, logprobs: [], promptLogprobs: null }));
  const run = readGroup(engine, seqs);
  try {
    let next = await run.next();
    while (!next.done) {
      const { choice, step } = next.value;
      const r = results[choice];
      if (step) {
        if (step.tokenId >= 0) log.firstToken();
        r.text += step.text;
        if (step.logprob) r.logprobs.push(step.logprob);
        if (step.promptLogprobs) r.promptLogprobs = step.promptLogprobs;
      }
      next = await run.next();
    }
    next.value.forEach((summary, i) => (results[i].summary = summary));
    await metered?.finish(usageOf(completionTokens(seqs)));
    ended(log, seqs);
    return results;
  } catch (e) {
    // The tokens generated before the failure were spent: counted, and the ticket ends.
    await metered?.finish(usageOf(completionTokens(seqs))).catch(() => {});
    throw e;
  }
}

/** Tokens generated over all choices (what usage reports and metering counts; the prompt counts once). */
export function completionTokens(seqs: Sequence[]): number {
  let total = 0;
  for (const seq of seqs) total += seq.completionIds.length;
  return total;
}

function ended(log: RequestLog, seqs: Sequence[]): void {
  log.completionTokens = completionTokens(seqs);
  log.finishReason = seqs[0].summary?.finishReason ?? null;
}

export function usage(promptTokens: number, completionTokens: number) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

export type Emit = (payload: unknown) => void;

/**
 * Streams the generation as events: `start` first, `step` per generated piece of a choice,
 * `end` when a choice ends, `finish` once all have (each emits the payloads to send, or nothing).
 */
export function sseResponse(
  { engine, seqs, log, metered, usageOf }: Generation,
  events: {
    start(emit: Emit): void;
    step(emit: Emit, choice: number, step: GenerationStep): void;
    end(emit: Emit, choice: number, summary: GenerationSummary): void;
    finish(emit: Emit): void;
  },
): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
  log.stream = true;
  const body = new ReadableStream<Uint8Array>({
    async start(stream) {
      // After the client goes away the stream refuses writes.
      const emit: Emit = (payload) => {
        if (!abort.signal.aborted) stream.enqueue(encoder.encode(`data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`));
      };
      try {
        events.start(emit);
        const run = readGroup(engine, seqs, abort.signal, true);
        let next = await run.next();
        while (!next.done) {
          const { choice, step, summary } = next.value;
          if (step) {
            if (step.tokenId >= 0) log.firstToken();
            events.step(emit, choice, step);
          } else {
            events.end(emit, choice, summary);
          }
          next = await run.next();
        }
        await metered?.finish(usageOf(completionTokens(seqs)));
        if (!abort.signal.aborted) ended(log, seqs);
        events.finish(emit);
      } catch (e) {
        if (!abort.signal.aborted) await metered?.finish(usageOf(completionTokens(seqs))).catch(() => {});
        const error = toApiError(e);
        log.completionTokens = completionTokens(seqs);
        log.fail(error);
        emit(error.body);
      }
      if (!abort.signal.aborted) {
        emit("[DONE]");
        stream.close();
        log.write(200);
      }
    },
    // The client went away. This request's timers and continuations may never run again (workerd
    // stops them), so the choices are cancelled here, at once: their KV caches and the model
    // lease go back before this returns.
    cancel() {
      abort.abort();
      for (const seq of seqs) engine.cancel(seq);
      metered?.finishLater(usageOf(completionTokens(seqs)));
      log.completionTokens = completionTokens(seqs);
      log.write(200, true);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" },
  });
}
