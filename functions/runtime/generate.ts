// A generation as its reader sees it: the engine's output for one sequence, token by token.
// The reader drives the engine: with nothing to read it yields to the event loop (so other
// requests in the isolate get their turn) and then runs the next step itself. It waits on
// nothing another request would have to resolve.

import type { Engine, GenerationStep, GenerationSummary, Sequence } from "./engine";

export type { GenerationParams, GenerationStep, GenerationSummary } from "./engine";
export { StopMatcher } from "./engine";

/** Reads `seq` to its end. Stopping early (return/throw, or `signal`) cancels the sequence. */
export async function* readSequence(engine: Engine, seq: Sequence, signal?: AbortSignal): AsyncGenerator<GenerationStep, GenerationSummary> {
  try {
    for (;;) {
      while (seq.outbox.length > 0) yield seq.outbox.shift()!;
      if (seq.state === "finished") {
        if (seq.error) throw seq.error;
        return seq.summary!;
      }
      if (signal?.aborted) {
        engine.cancel(seq);
        return seq.summary!;
      }
      await turn();
      engine.pump(seq);
    }
  } finally {
    engine.cancel(seq);
  }
}

/** Waits (driving the engine) until `seq` holds a KV cache; throws if it was refused. */
export async function admitted(engine: Engine, seq: Sequence): Promise<void> {
  while (seq.state === "queued") {
    await turn();
    engine.pump(seq);
  }
  if (seq.error) throw seq.error;
}

/** Lets other requests in this isolate run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
