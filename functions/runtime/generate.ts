// A generation as its reader sees it: the engine's output for one sequence, token by token.
// The reader drives the engine: with nothing to read it yields to the event loop (so other
// requests in the isolate get their turn) and then runs the next step itself. It waits on
// nothing another request would have to resolve.

import type { Engine, GenerationStep, GenerationSummary, Sequence } from "./engine";

export type { GenerationParams, GenerationStep, GenerationSummary } from "./engine";
export { StopMatcher } from "./engine";

/**
 * How often a streaming reader lets the response send what it has: the first token at once,
 * then at most this many ms apart, or this many steps (the Workers clock only moves at I/O).
 */
export const STREAM_FLUSH_MS = 25;
export const STREAM_FLUSH_TURNS = 32;

/** What a group's reader gets: a choice's next piece of output, or the choice's end. */
export type ChoiceEvent = { choice: number; step: GenerationStep; summary?: undefined } | { choice: number; step?: undefined; summary: GenerationSummary };

/**
 * Reads `seq` to its end. Stopping early (return/throw, or `signal`) cancels the sequence.
 * `streaming`: the reader sends each piece to a client as it comes, so now and then it takes
 * a full turn of the event loop, which lets workerd send the response's pending bytes.
 */
export async function* readSequence(engine: Engine, seq: Sequence, signal?: AbortSignal, streaming = false): AsyncGenerator<GenerationStep, GenerationSummary> {
  const run = readGroup(engine, [seq], signal, streaming);
  try {
    for (;;) {
      const next = await run.next();
      if (next.done) return next.value[0];
      if (next.value.step) yield next.value.step;
    }
  } finally {
    await run.return([]);
  }
}

/**
 * Reads the choices of one request (a group from Engine.submitGroup, or one sequence) to their
 * ends, interleaved as the steps produce them: each choice's pieces in order, then its end.
 * Returns every choice's summary. A failed choice throws; stopping early cancels them all.
 */
export async function* readGroup(engine: Engine, seqs: Sequence[], signal?: AbortSignal, streaming = false): AsyncGenerator<ChoiceEvent, GenerationSummary[]> {
  const yielder = new Yielder();
  const done = seqs.map(() => false);
  let unsent = false;
  let flushedOnce = false;
  let lastFlush = Date.now();
  let turns = 0;
  try {
    for (;;) {
      let open: Sequence | null = null;
      for (let i = 0; i < seqs.length; i++) {
        if (done[i]) continue;
        const seq = seqs[i];
        while (seq.outbox.length > 0) {
          unsent = true;
          yield { choice: i, step: seq.outbox.shift()! };
        }
        if (seq.state === "finished") {
          if (seq.error) throw seq.error;
          done[i] = true;
          yield { choice: i, summary: seq.summary! };
        } else {
          open ??= seq;
        }
      }
      if (open === null) return seqs.map((s) => s.summary!);
      if (signal?.aborted) {
        for (const seq of seqs) engine.cancel(seq);
        return seqs.map((s) => s.summary!);
      }
      if (streaming && unsent && (!flushedOnce || ++turns >= STREAM_FLUSH_TURNS || Date.now() - lastFlush >= STREAM_FLUSH_MS)) {
        await fullTurn();
        unsent = false;
        flushedOnce = true;
        lastFlush = Date.now();
        turns = 0;
      } else {
        await yielder.turn();
      }
      engine.pump(open);
    }
  } finally {
    for (const seq of seqs) engine.cancel(seq);
    yielder.close();
  }
}

/** A whole turn of the event loop (about 1.2 ms in workerd): the response's pending bytes go out. */
function fullTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Waits (driving the engine) until `seq` holds a KV cache; throws if it was refused. */
export async function admitted(engine: Engine, seq: Sequence): Promise<void> {
  if (seq.state !== "queued") return;
  const yielder = new Yielder();
  try {
    while (seq.state === "queued") {
      await yielder.turn();
      engine.pump(seq);
    }
  } finally {
    yielder.close();
  }
  if (seq.error) throw seq.error;
}

/**
 * Lets other requests in this isolate run (their I/O events are handled in between), then
 * comes back: a message to ourselves, which takes about 12 us in workerd where setTimeout(0)
 * takes 1.2 ms (a millisecond per token at every step).
 */
class Yielder {
  private readonly channel = new MessageChannel();
  private wake: (() => void) | null = null;

  constructor() {
    this.channel.port1.onmessage = () => {
      const wake = this.wake;
      this.wake = null;
      wake?.();
    };
  }

  turn(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.channel.port2.postMessage(null);
    });
  }

  close(): void {
    this.channel.port1.close();
    this.channel.port2.close();
  }
}
