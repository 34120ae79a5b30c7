// One engine per loaded model: it owns the step loop. Each step gathers the work of every
// running sequence (one decode token each, then chunks of waiting prompts up to the step's
// token budget: chunked prefill) and runs it as one batched forward pass, so every weight
// matrix is read once per step for all of them. Sampling, stop strings and text decoding stay
// per sequence; their output waits in each sequence's outbox until its reader takes it.
//
// Nothing here waits on another request. Readers drive the engine: a reader with nothing to
// read runs the next step itself (see `pump`), after yielding to the event loop. A sequence's
// KV cache and the caller's model lease are released synchronously when it finishes, fails or
// is cancelled, by whichever request ran the step or cancelled it. That matters in workerd: once
// a client disconnects, its request's timers and continuations never run again, so nothing may
// depend on them to give resources back.

import { ModelError } from "./errors";
import type { Manifest } from "../model/manifest";
import { tokenLogprob, type LogprobsRequest, type TokenLogprob } from "./logprobs";
import { Sampler, type SamplingControls, type TokenConstraint } from "./sampler";
import type { TextStreamDecoder, Tokenizer } from "./tokenizer/index";
import type { CausalLm, KvCache, StepItem } from "./weights";

export interface GenerationParams {
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  /** The token the output text follows (default: the last prompt token). */
  decodeAfter?: number;
  /** Penalties, logit bias, top_k, min_p (neutral when absent). */
  sampling?: Partial<SamplingControls>;
  /** Report log-probabilities (of the generated tokens; of the prompt's too if asked). */
  logprobs?: LogprobsRequest | null;
  /** Makes the constraint (structured output) each sequence follows; one per sequence. */
  constraint?: (() => TokenConstraint) | null;
  /**
   * An encoding, not a generation: the sequence runs its prompt only and ends with every prompt
   * token's final hidden state (after the final norm) in its summary; nothing is sampled.
   */
  hidden?: boolean;
}

export interface GenerationStep {
  /** Text that became final with this token (may be empty). */
  text: string;
  tokenId: number;
  /** The generated token's log-probability, when asked for. */
  logprob?: TokenLogprob;
  /** Once, before any generated token, when the prompt's log-probabilities were asked for (the first is null). */
  promptLogprobs?: (TokenLogprob | null)[];
}

export interface GenerationSummary {
  finishReason: "stop" | "length";
  completionIds: number[];
  /** With `hidden`: the prompt's final hidden states, one row of `dim` values per token. */
  hidden?: Float32Array;
}

export interface EngineOptions {
  /** Sequences that may wait for a KV cache; one more is refused at once as busy. */
  maxQueue?: number;
  /** How long a sequence may wait for a KV cache before it is refused as busy. */
  maxWaitMs?: number;
  /** A sequence whose reader has not come back for this long is dropped (its client is gone). */
  abandonAfterMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** Seconds a client refused as busy is told to wait before retrying. */
export const RETRY_AFTER_SECONDS = 1;

export class BusyError extends ModelError {
  readonly retryAfterSeconds = RETRY_AFTER_SECONDS;
}

/** A request for more choices (n) than the model has KV caches. */
export class GroupTooLargeError extends Error {}

type State = "queued" | "running" | "finished";

/** One generation inside the engine. Its reader takes `outbox` entries and checks `state`. */
export class Sequence {
  readonly outbox: GenerationStep[] = [];
  state: State = "queued";
  summary: GenerationSummary | null = null;
  error: unknown = null;
  readonly queuedAt: number;
  lastRead: number;
  cache: KvCache | null = null;
  /** Prompt tokens already in the cache. */
  fed = 0;
  /** The sampled token still to be fed, at position promptIds.length + completionIds.length - 1. */
  pending = -1;
  readonly completionIds: number[] = [];
  /**
   * Choices of one request that share its prompt (n > 1): the first one feeds the prompt; the
   * others hold a KV cache from the start and get a copy of the prompt's keys and values, and
   * its logits, when it is done. Every member of a group is in `group` (itself included).
   */
  group: Sequence[] = [this];
  /** Members waiting for the first member's prompt (they take no part in steps until then). */
  awaitingPrompt = false;
  readonly sampler: Sampler;
  /** The prompt's log-probabilities as its chunks run (when asked for). */
  promptLogprobs: (TokenLogprob | null)[] | null;
  /** With params.hidden: the prompt tokens' hidden states as its chunks run. */
  hidden: Float32Array | null = null;
  readonly stops: StopMatcher;
  readonly decoder: TextStreamDecoder;

  constructor(
    readonly params: GenerationParams,
    tokenizer: Tokenizer,
    vocabSize: number,
    now: number,
    /** Called once, when the sequence ends in any way (gives back the caller's model lease). */
    readonly onEnd: () => void,
  ) {
    this.queuedAt = this.lastRead = now;
    this.sampler = new Sampler(vocabSize, params.temperature, params.topP, params.seed, params.sampling, params.constraint?.() ?? null);
    this.promptLogprobs = params.logprobs?.prompt ? [null] : null;
    this.stops = new StopMatcher(params.stop);
    this.decoder = tokenizer.streamDecoder(params.decodeAfter ?? params.promptIds[params.promptIds.length - 1]);
  }

  get prefilling(): boolean {
    return this.fed < this.params.promptIds.length;
  }
}

export class Engine {
  private readonly queue: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly free: KvCache[];
  private readonly totalSlots: number;
  private readonly stopIds: Set<number>;
  private readonly maxQueue: number;
  private readonly maxWaitMs: number;
  private readonly abandonAfterMs: number;
  private readonly now: () => number;
  /** Where the next step starts looking for decode tokens and prompt chunks (sequences take turns when they outnumber the budget). */
  private decodeTurn = 0;
  private promptTurn = 0;
  /** Steps run so far (tests and the bench read it). */
  steps = 0;

  constructor(
    private readonly modelId: string,
    private readonly model: CausalLm,
    private readonly tokenizer: Tokenizer,
    private readonly manifest: Manifest,
    caches: KvCache[],
    options: EngineOptions = {},
  ) {
    if (caches.length === 0) throw new Error("an engine needs at least one KV cache");
    this.free = [...caches];
    this.totalSlots = caches.length;
    this.stopIds = new Set(tokenizer.stopIds);
    this.maxQueue = options.maxQueue ?? 64;
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
    this.abandonAfterMs = options.abandonAfterMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /** KV caches in all (running sequences, and choices waiting for their group's prompt, hold some; the rest are free). */
  get slots(): number {
    return this.totalSlots;
  }

  get stats(): { running: number; queued: number; freeSlots: number } {
    return { running: this.running.length, queued: this.queue.length, freeSlots: this.free.length };
  }

  /**
   * Adds a generation. It waits for a KV cache behind those already waiting; with the queue
   * full it is refused at once (BusyError) and `onEnd` is not called.
   */
  submit(params: GenerationParams, onEnd: () => void = () => {}): Sequence {
    return this.submitGroup(params, 1, onEnd)[0];
  }

  /**
   * `n` choices of one prompt: one prompt pass, then n sequences sampling on their own (choice
   * i with seed + i). The group is admitted when n KV caches are free at once; `onEnd` is called
   * once, when the last of them ends.
   */
  submitGroup(params: GenerationParams, n: number, onEnd: () => void = () => {}): Sequence[] {
    if (params.hidden && n > 1) throw new GroupTooLargeError("an encoding has one choice");
    if (n > this.slots) throw new GroupTooLargeError(`model '${this.modelId}' runs at most ${this.slots} sequences at once, so n must be at most ${this.slots}`);
    if (this.queue.length >= this.maxQueue && this.free.length < n) {
      throw new BusyError("busy", this.modelId, `model '${this.modelId}' is serving ${this.running.length} requests and ${this.queue.length} more are waiting; retry shortly`);
    }
    let left = n;
    const ended = () => {
      if (--left === 0) onEnd();
    };
    const now = this.now();
    const vocab = this.manifest.config.vocabSize;
    const group = Array.from({ length: n }, (_, i) => new Sequence({ ...params, seed: params.seed + i }, this.tokenizer, vocab, now, ended));
    for (const seq of group) seq.group = group;
    this.queue.push(group[0]);
    this.admit();
    return group;
  }

  /** Ends a sequence now (its client went away): frees its cache and calls its onEnd. */
  cancel(seq: Sequence): void {
    if (seq.state === "finished") return;
    this.end(seq, { finishReason: "length", completionIds: seq.completionIds }, null);
  }

  /**
   * What a reader calls when it has nothing to read: runs one step unless `seq` already has
   * output waiting or has ended.
   */
  pump(seq: Sequence): void {
    const now = this.now();
    for (const member of seq.group) member.lastRead = now;
    if (seq.outbox.length === 0 && seq.state !== "finished") this.step();
  }

  /** One batched step over every running sequence. Returns false when there was nothing to do. */
  step(): boolean {
    this.expire();
    this.admit();
    const budget = this.model.stepTokens;
    const items: StepItem[] = [];
    const owners: Sequence[] = [];
    let tokens = 0;
    // Decode tokens first, one per sequence; with more sequences than the budget they take turns,
    // and a quarter of the budget stays for waiting prompts so they are never starved.
    const decoding = this.running.filter((s) => !s.prefilling);
    const prompts = this.running.filter((s) => s.prefilling);
    const decodeBudget = prompts.length > 0 ? budget - Math.max(1, budget >> 2) : budget;
    for (let i = 0; i < decoding.length && tokens < decodeBudget; i++) {
      const seq = decoding[(this.decodeTurn + i) % decoding.length];
      items.push({ cache: seq.cache!, pos: seq.params.promptIds.length + seq.completionIds.length - 1, tokens: [seq.pending], wantLogits: true });
      owners.push(seq);
      tokens++;
    }
    this.decodeTurn += tokens;
    for (let i = 0; i < prompts.length && tokens < budget; i++) {
      const seq = prompts[(this.promptTurn + i) % prompts.length];
      const prompt = seq.params.promptIds;
      const chunk = prompt.slice(seq.fed, seq.fed + budget - tokens);
      if (seq.params.hidden) {
        seq.hidden ??= new Float32Array(prompt.length * this.manifest.config.dim);
        items.push({ cache: seq.cache!, pos: seq.fed, tokens: chunk, wantLogits: false, wantHidden: true });
      } else {
        items.push({ cache: seq.cache!, pos: seq.fed, tokens: chunk, wantLogits: seq.fed + chunk.length === prompt.length, allLogits: seq.promptLogprobs !== null });
      }
      owners.push(seq);
      tokens += chunk.length;
    }
    this.promptTurn++;
    if (items.length === 0) return false;
    this.steps++;
    try {
      this.model.step(
        items,
        (i, logits, index) => this.accept(owners[i], logits, items[i], index),
        (i, hidden, index) => owners[i].hidden!.set(hidden, (items[i].pos + index) * hidden.length),
      );
    } catch (e) {
      for (const seq of owners) if (seq.state !== "finished") this.end(seq, null, e);
      return true;
    }
    // Prompt chunks that produced no logits (not the prompt's last) advance here.
    items.forEach((item, i) => {
      const seq = owners[i];
      if (!seq.prefilling) return;
      seq.fed += item.tokens.length;
      // an encoding is done once its prompt is
      if (seq.params.hidden && !seq.prefilling) this.end(seq, { finishReason: "stop", completionIds: [], hidden: seq.hidden! }, null);
    });
    return true;
  }

  /** Samples a sequence's next token from its logits and turns it into output. */
  private accept(seq: Sequence, logits: Float32Array, item: StepItem, index: number): void {
    if (seq.state === "finished") return;
    if (seq.prefilling && seq.promptLogprobs) {
      // the prompt's own log-probabilities: the logits after token pos + index score the next one
      const prompt = seq.params.promptIds;
      const next = item.pos + index + 1;
      if (next < prompt.length) seq.promptLogprobs.push(tokenLogprob(logits, this.manifest.config.vocabSize, prompt[next], seq.params.logprobs!.top));
      if (index < item.tokens.length - 1 || !item.wantLogits) return;
    }
    if (seq.prefilling) {
      seq.fed = seq.params.promptIds.length;
      if (seq.promptLogprobs) {
        const step = { text: "", tokenId: -1, promptLogprobs: seq.promptLogprobs };
        for (const member of seq.group) if (member.state === "running") member.outbox.push(step);
      }
      // The prompt is done: the group's other members get its keys and values and its logits.
      for (const other of seq.group) {
        if (other === seq || !other.awaitingPrompt || other.state !== "running") continue;
        this.model.copyCache(seq.cache!, other.cache!, seq.fed);
        other.fed = seq.fed;
        other.awaitingPrompt = false;
        this.running.push(other);
        this.sampleNext(other, logits);
      }
    }
    this.sampleNext(seq, logits);
  }

  private sampleNext(seq: Sequence, logits: Float32Array): void {
    // max_tokens 0 (with the prompt's log-probabilities asked for): the prompt was all
    if (seq.params.maxTokens === 0) return this.finish(seq, "length");
    const { completionIds, params } = seq;
    const history = { prompt: params.promptIds, generated: completionIds, remaining: params.maxTokens - completionIds.length };
    const next = seq.sampler.sample(logits, history);
    const lp = params.logprobs;
    const logprob = lp ? tokenLogprob(logits, this.manifest.config.vocabSize, next, lp.top) : undefined;
    if (this.stopIds.has(next)) return this.finish(seq, "stop");
    seq.completionIds.push(next);
    const { text, stopped } = seq.stops.push(seq.decoder.push(next));
    seq.outbox.push(logprob ? { text, tokenId: next, logprob } : { text, tokenId: next });
    if (stopped) return this.end(seq, { finishReason: "stop", completionIds: seq.completionIds }, null);
    const nextPos = seq.params.promptIds.length + seq.completionIds.length - 1;
    if (seq.completionIds.length >= seq.params.maxTokens || nextPos >= this.manifest.config.seqLen) return this.finish(seq, "length");
    seq.pending = next;
  }

  /** Ends with whatever text is still held back. */
  private finish(seq: Sequence, reason: GenerationSummary["finishReason"]): void {
    if (seq.state === "finished") return;
    const rest = seq.stops.flush(seq.decoder.flush());
    if (rest) seq.outbox.push({ text: rest, tokenId: -1 });
    this.end(seq, { finishReason: reason, completionIds: seq.completionIds }, null);
  }

  private end(seq: Sequence, summary: GenerationSummary | null, error: unknown): void {
    if (seq.state === "finished") return;
    const wasQueued = seq.state === "queued";
    seq.state = "finished";
    seq.summary = summary;
    seq.error = error;
    if (wasQueued) {
      const at = this.queue.indexOf(seq);
      if (at >= 0) this.queue.splice(at, 1);
    } else {
      const at = this.running.indexOf(seq);
      if (at >= 0) this.running.splice(at, 1);
      this.free.push(seq.cache!);
      seq.cache = null;
    }
    seq.awaitingPrompt = false;
    // The first member gone before its prompt was done: the others cannot be served.
    if (seq === seq.group[0] && seq.fed < seq.params.promptIds.length) {
      for (const other of seq.group) this.end(other, summary && { finishReason: summary.finishReason, completionIds: other.completionIds }, error);
    }
    this.admit();
    seq.onEnd();
  }

  /** Gives free KV caches to waiting sequences (a group all at once), oldest first. */
  private admit(): void {
    while (this.queue.length > 0) {
      const first = this.queue[0];
      const members = first.group.filter((m) => m.state === "queued");
      if (this.free.length < members.length) return;
      this.queue.shift();
      for (const seq of members) {
        seq.cache = this.free.pop()!;
        seq.state = "running";
        seq.awaitingPrompt = seq !== first;
        if (seq === first) this.running.push(seq);
      }
      // Nothing to generate: done before any work (unless the prompt's log-probabilities are wanted).
      if (first.params.maxTokens === 0 && !first.params.logprobs?.prompt && !first.params.hidden) for (const seq of members) this.finish(seq, "length");
    }
  }

  /** Drops sequences nobody reads any more and refuses those that waited too long. */
  private expire(): void {
    const now = this.now();
    for (const seq of [...this.running, ...this.queue]) {
      if (now - seq.lastRead > this.abandonAfterMs) this.cancel(seq);
    }
    for (const seq of [...this.queue]) {
      if (now - seq.queuedAt > this.maxWaitMs) {
        this.end(seq, null, new BusyError("busy", this.modelId, `model '${this.modelId}' had no free sequence slot for ${Math.round(this.maxWaitMs / 1000)} s; retry shortly`));
      }
    }
  }
}

/**
 * Finds the first stop string in the generated text. Text is released only once no stop
 * string could still begin inside it.
 */
export class StopMatcher {
  private held = "";
  private done = false;

  constructor(private readonly stops: string[]) {}

  push(text: string): { text: string; stopped: boolean } {
    if (this.done) return { text: "", stopped: true };
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.held.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.done = true;
      const out = this.held.slice(0, cut);
      this.held = "";
      return { text: out, stopped: true };
    }
    const keep = this.longestStopPrefixSuffix();
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { text: out, stopped: false };
  }

  flush(text: string): string {
    const { text: out, stopped } = this.push(text);
    if (stopped) return out;
    const rest = this.held;
    this.held = "";
    return out + rest;
  }

  private longestStopPrefixSuffix(): number {
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.held.length); n > keep; n--) {
        if (this.held.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    return keep;
  }
}
