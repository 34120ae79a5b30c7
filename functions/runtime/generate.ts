// One completion: prefill the prompt, then sample token after token until a stop token, a
// stop string, the token limit or the context runs out. Text comes out as it becomes final
// (held back while it could still turn into a stop string). Between tokens the loop yields,
// so requests sharing the isolate take turns token by token.

import type { LoadedModel } from "./loader";
import { Sampler } from "./sampler";

export interface GenerationParams {
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  /** The token the output text follows (default: the last prompt token). */
  decodeAfter?: number;
}

export interface GenerationStep {
  /** Text that became final with this token (may be empty). */
  text: string;
  tokenId: number;
}

export interface GenerationSummary {
  finishReason: "stop" | "length";
  completionIds: number[];
}

export async function* generate(loaded: LoadedModel, params: GenerationParams, signal?: AbortSignal): AsyncGenerator<GenerationStep, GenerationSummary> {
  const { model, tokenizer, manifest } = loaded;
  const stopIds = new Set(tokenizer.stopIds);
  const sampler = new Sampler(manifest.config.vocabSize, params.temperature, params.topP, params.seed);
  const cache = await loaded.caches.acquire();
  const completionIds: number[] = [];
  try {
    const prompt = params.promptIds;
    // Logits live in the model's shared scratch: sample before yielding to another request.
    let next = sampler.sample(model.forward(prompt, 0, cache));
    let pos = prompt.length;
    const decoder = tokenizer.streamDecoder(params.decodeAfter ?? prompt[prompt.length - 1]);
    const stops = new StopMatcher(params.stop);
    let finishReason: GenerationSummary["finishReason"] = "length";
    while (completionIds.length < params.maxTokens && !signal?.aborted) {
      if (stopIds.has(next)) {
        finishReason = "stop";
        break;
      }
      completionIds.push(next);
      const { text, stopped } = stops.push(decoder.push(next));
      yield { text, tokenId: next };
      if (stopped) return { finishReason: "stop", completionIds };
      if (completionIds.length >= params.maxTokens || pos >= manifest.config.seqLen) break;
      await turn();
      next = sampler.sample(model.forward([next], pos, cache));
      pos++;
    }
    const rest = stops.flush(decoder.flush());
    if (rest) yield { text: rest, tokenId: -1 };
    return { finishReason, completionIds };
  } finally {
    loaded.caches.release(cache);
  }
}

/** Lets other requests in this isolate run a step. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
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
