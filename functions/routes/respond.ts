// What the completion routes share: running a generation to its end, and server-sent events
// that end in `data: [DONE]`, report a failure as one error event, stop generating when the
// client goes away, and release the model lease whatever happens.

import { toApiError } from "../api/errors";
import type { GenerationStep, GenerationSummary } from "../runtime/generate";
import type { PreparedCompletion } from "../runtime/completion";
import type { ModelLease } from "../runtime/registry";

export async function runToEnd(prepared: PreparedCompletion): Promise<{ text: string; summary: GenerationSummary }> {
  let text = "";
  const run = prepared.run();
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
 * Streams `prepared` as events: `start` first, `step` per generated piece, `finish` at the end
 * (each returns the payloads to send, or nothing).
 */
export function sseResponse(
  lease: ModelLease,
  prepared: PreparedCompletion,
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
      // After the client goes away the stream refuses writes; the generation stops at its next token.
      const emit: Emit = (payload) => {
        if (!abort.signal.aborted) stream.enqueue(encoder.encode(`data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`));
      };
      try {
        events.start(emit);
        const run = prepared.run(abort.signal);
        let step = await run.next();
        while (!step.done) {
          events.step(emit, step.value);
          step = await run.next();
        }
        events.finish(emit, step.value);
      } catch (e) {
        emit(toApiError(e).body);
      } finally {
        lease.release();
      }
      if (!abort.signal.aborted) {
        emit("[DONE]");
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
