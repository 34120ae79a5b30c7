// What the completion routes share: handing a generation to the model's engine, running it to
// its end, and server-sent events that end in `data: [DONE]`, report a failure as one error
// event, and cancel the generation when the client goes away. The model lease goes back when
// the generation ends, however it ends (the engine calls it, synchronously). Each fills in its
// request's log line (tokens, time to first token, how it ended); a stream writes that line
// itself when it ends or its client goes away, since that is after the handler has returned.

import { toApiError } from "../api/errors";
import type { Engine, GenerationStep, GenerationSummary, Sequence } from "../runtime/engine";
import type { TokenLogprob } from "../runtime/logprobs";
import { admitted, readSequence } from "../runtime/generate";
import type { PreparedCompletion } from "../runtime/completion";
import type { ModelLease } from "../runtime/registry";
import type { RequestLog } from "../log";
import type { MeteredRequest } from "../metering/middleware";
import type { RequestUsage } from "../metering/limits";

export interface Generation {
  engine: Engine;
  seq: Sequence;
  log: RequestLog;
  /** The customer's metered request: ended with the tokens used, before usage is sent. */
  metered?: MeteredRequest;
  usageOf: (completionTokens: number) => RequestUsage;
}

/**
 * Submits the generation and waits until it holds a KV cache, so a model too busy to take it
 * is a 503 with Retry-After before any response starts.
 */
export async function startGeneration(log: RequestLog, lease: ModelLease, prepared: PreparedCompletion, metered?: MeteredRequest): Promise<Generation> {
  const engine = lease.model.engine;
  let seq: Sequence;
  try {
    seq = engine.submit(prepared.params, () => lease.release());
  } catch (e) {
    lease.release();
    throw e;
  }
  await admitted(engine, seq);
  metered?.claim();
  const model = lease.model.id;
  return { engine, seq, log, metered, usageOf: (completionTokens) => ({ model, promptTokens: prepared.promptIds.length, completionTokens, embeddingInputs: 0 }) };
}

export interface RunResult {
  text: string;
  summary: GenerationSummary;
  /** The generated tokens' log-probabilities, when asked for. */
  logprobs: TokenLogprob[];
  /** The prompt's, when asked for. */
  promptLogprobs: (TokenLogprob | null)[] | null;
}

export async function runToEnd({ engine, seq, log, metered, usageOf }: Generation): Promise<RunResult> {
  let text = "";
  const logprobs: TokenLogprob[] = [];
  let promptLogprobs: (TokenLogprob | null)[] | null = null;
  const run = readSequence(engine, seq);
  try {
    let step = await run.next();
    while (!step.done) {
      if (step.value.tokenId >= 0) log.firstToken();
      text += step.value.text;
      if (step.value.logprob) logprobs.push(step.value.logprob);
      if (step.value.promptLogprobs) promptLogprobs = step.value.promptLogprobs;
      step = await run.next();
    }
    await metered?.finish(usageOf(step.value.completionIds.length));
    ended(log, step.value);
    return { text, summary: step.value, logprobs, promptLogprobs };
  } catch (e) {
    // The tokens generated before the failure were spent: counted, and the ticket ends.
    await metered?.finish(usageOf(seq.completionIds.length)).catch(() => {});
    throw e;
  }
}

function ended(log: RequestLog, summary: GenerationSummary): void {
  log.completionTokens = summary.completionIds.length;
  log.finishReason = summary.finishReason;
}

export function usage(promptTokens: number, completionTokens: number) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

export type Emit = (payload: unknown) => void;

/**
 * Streams the generation as events: `start` first, `step` per generated piece, `finish` at the
 * end (each emits the payloads to send, or nothing).
 */
export function sseResponse(
  { engine, seq, log, metered, usageOf }: Generation,
  events: {
    start(emit: Emit): void;
    step(emit: Emit, step: GenerationStep): void;
    finish(emit: Emit, summary: GenerationSummary): void;
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
        const run = readSequence(engine, seq, abort.signal, true);
        let step = await run.next();
        while (!step.done) {
          if (step.value.tokenId >= 0) log.firstToken();
          events.step(emit, step.value);
          step = await run.next();
        }
        await metered?.finish(usageOf(step.value.completionIds.length));
        if (!abort.signal.aborted) ended(log, step.value);
        events.finish(emit, step.value);
      } catch (e) {
        if (!abort.signal.aborted) await metered?.finish(usageOf(seq.completionIds.length)).catch(() => {});
        const error = toApiError(e);
        log.completionTokens = seq.completionIds.length;
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
    // stops them), so the sequence is cancelled here, at once: its KV cache and the model lease
    // go back before this returns.
    cancel() {
      abort.abort();
      engine.cancel(seq);
      metered?.finishLater(usageOf(seq.completionIds.length));
      log.completionTokens = seq.completionIds.length;
      log.write(200, true);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" },
  });
}
