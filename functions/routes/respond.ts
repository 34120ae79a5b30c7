// What the completion routes share: handing a generation to the model's engine, running it to
// its end, and server-sent events that end in `data: [DONE]`, report a failure as one error
// event, and cancel the generation when the client goes away. The model lease goes back when
// the generation ends, however it ends (the engine calls it, synchronously).

import { toApiError } from "../api/errors";
import type { Engine, GenerationStep, GenerationSummary, Sequence } from "../runtime/engine";
import { admitted, readSequence } from "../runtime/generate";
import type { PreparedCompletion } from "../runtime/completion";
import type { ModelLease } from "../runtime/registry";

export interface Generation {
  engine: Engine;
  seq: Sequence;
}

/**
 * Submits the generation and waits until it holds a KV cache, so a model too busy to take it
 * is a 503 with Retry-After before any response starts.
 */
export async function startGeneration(lease: ModelLease, prepared: PreparedCompletion): Promise<Generation> {
  const engine = lease.model.engine;
  let seq: Sequence;
  try {
    seq = engine.submit(prepared.params, () => lease.release());
  } catch (e) {
    lease.release();
    throw e;
  }
  await admitted(engine, seq);
  return { engine, seq };
}

export async function runToEnd({ engine, seq }: Generation): Promise<{ text: string; summary: GenerationSummary }> {
  let text = "";
  const run = readSequence(engine, seq);
  let step = await run.next();
  while (!step.done) {
    text += step.value.text;
    step = await run.next();
  }
  return { text, summary: step.value };
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
  { engine, seq }: Generation,
  events: {
    start(emit: Emit): void;
    step(emit: Emit, step: GenerationStep): void;
    finish(emit: Emit, summary: GenerationSummary): void;
  },
): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
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
          events.step(emit, step.value);
          step = await run.next();
        }
        events.finish(emit, step.value);
      } catch (e) {
        emit(toApiError(e).body);
      }
      if (!abort.signal.aborted) {
        emit("[DONE]");
        stream.close();
      }
    },
    // The client went away. This request's timers and continuations may never run again (workerd
    // stops them), so the sequence is cancelled here, at once: its KV cache and the model lease
    // go back before this returns.
    cancel() {
      abort.abort();
      engine.cancel(seq);
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" },
  });
}
