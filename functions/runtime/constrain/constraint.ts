// Structured output for one model: a compiled schema's automaton against the model's
// vocabulary. For each automaton state, which tokens may come next is found by walking the
// sorted vocabulary once (see vocabulary.ts), and kept: states recur (inside a string, after a
// comma, ...), so most steps only apply a cached mask. Each request gets a JsonConstraint:
// mask(logits) before sampling, advance(token) after, canEnd().
//
// With a token budget (max_tokens), the mask also steers toward the end in time: once the
// tokens left would no longer fit the shortest completion after some token, that token is
// left out; when nothing fits, only the tokens that shorten the way to the end most remain.

import type { TokenConstraint } from "../sampler";
import type { Tokenizer } from "../tokenizer/index";
import { JsonAutomaton, type State } from "./automaton";
import type { CompiledSchema } from "./schema";
import { vocabularyOf, type TokenVocabulary } from "./vocabulary";

/**
 * What may follow one automaton state. Inside a string (`text`), `list` holds only the allowed
 * tokens that are not plain text (with `after`, their shortest completions); plain-text tokens
 * are decided when the mask is applied, by how many characters they are.
 */
interface MaskEntry {
  text: boolean;
  after: Int32Array | null;
  /** Allowed token ids, or (when most are allowed) the refused ones. */
  list: Int32Array;
  listIsAllowed: boolean;
  canEnd: boolean;
  /** The fewest bytes to complete from this state. */
  base: number;
  /** Allowed tokens whose completion after them is longer than `base` (id, bytes) ... */
  over: Int32Array;
  /** ... and shorter. The other allowed tokens need exactly `base`. */
  under: Int32Array;
  /** The fewest bytes to complete after any allowed token, and the most among `over`. */
  bestAfter: number;
  maxOver: number;
  bytes: number;
}

const EMPTY = new Int32Array(0);

/** Mask-cache memory per model (all its schemas together). */
export const MASK_CACHE_BYTES = 4 * 1024 * 1024;
/** Compiled schemas kept per model. */
export const GRAMMARS_PER_MODEL = 32;

/**
 * The JS memory structured output may hold for a model of `vocabSize` tokens, counted against
 * the memory budget the first time it is used: the vocabulary index (at most 32 bytes per token
 * plus the token's bytes, taken as 16 on average here; 4.8 MB for Qwen's 151,936 tokens), the
 * per-byte-pair table, the working arrays masks are computed in (9 bytes per token) and the mask
 * cache (MASK_CACHE_BYTES).
 */
export function structuredOutputBytes(vocabSize: number): number {
  return vocabSize * (32 + 16 + 9) + 65536 * 4 + MASK_CACHE_BYTES;
}

/** One schema against one model's vocabulary, with the masks found so far. */
export class Grammar {
  readonly automaton: JsonAutomaton;
  private readonly masks = new Map<string, MaskEntry>();

  constructor(
    schema: CompiledSchema,
    readonly vocab: TokenVocabulary,
    private readonly owner: ModelGrammars,
  ) {
    this.automaton = new JsonAutomaton(schema);
  }

  /** What may follow `state` (computed on first use, then cached). */
  entry(state: State, key: string): MaskEntry {
    const hit = this.masks.get(key);
    if (hit) {
      // most recently used last
      this.masks.delete(key);
      this.masks.set(key, hit);
      return hit;
    }
    const e = this.compute(state);
    this.masks.set(key, e);
    this.owner.account(this, e.bytes);
    return e;
  }

  /** Drops the least recently used masks until `bytes` are freed; returns what was freed. */
  evict(bytes: number): number {
    let freed = 0;
    for (const [k, e] of this.masks) {
      if (freed >= bytes) break;
      this.masks.delete(k);
      freed += e.bytes;
    }
    return freed;
  }

  get cachedStates(): number {
    return this.masks.size;
  }

  /** Every token against `state`: one pass over the sorted vocabulary. */
  private compute(state: State): MaskEntry {
    const { vocab, automaton } = this;
    const { order, bytes, offsets, lcp, nonPlainPos, nonPlainLcp, byteEnd, pairEnd } = vocab;
    const { allowed, after } = this.owner.scratch(vocab.size);
    let count = 0;
    const base = automaton.minRest(state);
    // Inside a string, tokens of plain text are decided when the mask is applied (by their
    // length): only the others are stepped through, from their own sorted list.
    const text = automaton.textMode(state);
    const m = text !== null ? nonPlainPos.length : order.length;
    const states: State[] = [state];
    let dead = Infinity; // the prefix of this length (of the last token stepped) is refused
    let shared = 0xffff; // common prefix with the last token stepped (through tokens skipped since)
    for (let j = 0; j < m; j++) {
      const k = text !== null ? nonPlainPos[j] : j;
      shared = Math.min(shared, text !== null ? nonPlainLcp[j] : lcp[k]);
      const l = shared;
      if (l > dead) continue;
      shared = 0xffff;
      dead = Infinity;
      const start = offsets[k];
      const len = offsets[k + 1] - start;
      let ok = true;
      for (let d = l; d < len; d++) {
        const next = automaton.step(states[d], bytes[start + d]);
        if (next.length === 0) {
          dead = d;
          ok = false;
          break;
        }
        states[d + 1] = next;
      }
      if (ok) {
        allowed[count] = order[k];
        after[count++] = automaton.minRest(states[len]);
      } else if (text === null && dead <= 1) {
        // no token that starts with this byte (or these two) can follow: skip them all
        j = (dead === 0 ? byteEnd[bytes[start]] : pairEnd[bytes[start] * 256 + bytes[start + 1]]) - 1;
      }
    }
    let bestAfter = Infinity;
    let maxOver = -Infinity;
    for (let i = 0; i < count; i++) {
      bestAfter = Math.min(bestAfter, after[i]);
      maxOver = Math.max(maxOver, after[i]);
    }
    if (text !== null) {
      const list = allowed.slice(0, count);
      const afterList = after.slice(0, count);
      return { text: true, after: afterList, list, listIsAllowed: true, canEnd: automaton.canEnd(state), base, over: EMPTY, under: EMPTY, bestAfter, maxOver, bytes: list.byteLength * 2 + 128 };
    }
    const over: number[] = [];
    const under: number[] = [];
    for (let i = 0; i < count; i++) {
      if (after[i] > base) over.push(allowed[i], after[i]);
      else if (after[i] < base) under.push(allowed[i], after[i]);
    }
    const listIsAllowed = count <= vocab.size / 2;
    let list: Int32Array;
    if (listIsAllowed) {
      list = allowed.slice(0, count);
    } else {
      const mark = this.owner.scratch(vocab.size).mark;
      mark.fill(0);
      for (let i = 0; i < count; i++) mark[allowed[i]] = 1;
      list = new Int32Array(vocab.size - count);
      let j = 0;
      for (let id = 0; id < vocab.size; id++) if (!mark[id]) list[j++] = id;
    }
    const overArr = Int32Array.from(over);
    const underArr = Int32Array.from(under);
    return {
      text: false,
      after: null,
      list,
      listIsAllowed,
      canEnd: automaton.canEnd(state),
      base,
      over: overArr,
      under: underArr,
      bestAfter,
      maxOver,
      bytes: list.byteLength + overArr.byteLength + underArr.byteLength + 128,
    };
  }
}

/** A model's compiled schemas, least recently used dropped first, masks within MASK_CACHE_BYTES. */
export class ModelGrammars {
  private readonly grammars = new Map<string, Grammar>();
  private bytes = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly vocabSize: number,
  ) {}

  private work: { allowed: Int32Array; after: Int32Array; mark: Uint8Array } | null = null;

  /** Working arrays for computing masks (one mask at a time per model). */
  scratch(size: number): { allowed: Int32Array; after: Int32Array; mark: Uint8Array } {
    if (!this.work || this.work.mark.length !== size) this.work = { allowed: new Int32Array(size), after: new Int32Array(size), mark: new Uint8Array(size) };
    return this.work;
  }

  grammar(key: string, schema: CompiledSchema): Grammar {
    let g = this.grammars.get(key);
    if (g) {
      this.grammars.delete(key);
      this.grammars.set(key, g);
      return g;
    }
    g = new Grammar(schema, vocabularyOf(this.tokenizer, this.vocabSize), this);
    this.grammars.set(key, g);
    if (this.grammars.size > GRAMMARS_PER_MODEL) {
      const [oldKey, old] = this.grammars.entries().next().value!;
      this.bytes -= old.evict(Infinity);
      this.grammars.delete(oldKey);
    }
    return g;
  }

  /** Called as a grammar caches a mask; evicts across grammars, oldest first, to stay in budget. */
  account(_g: Grammar, bytes: number): void {
    this.bytes += bytes;
    for (const g of this.grammars.values()) {
      if (this.bytes <= MASK_CACHE_BYTES) break;
      this.bytes -= g.evict(this.bytes - MASK_CACHE_BYTES);
    }
  }

  get cachedBytes(): number {
    return this.bytes;
  }
}

const perModel = new WeakMap<Tokenizer, ModelGrammars>();

/** The schema cache of the model that owns `tokenizer` (one per loaded model in this isolate). */
export function grammarsOf(tokenizer: Tokenizer, vocabSize: number): ModelGrammars {
  let m = perModel.get(tokenizer);
  if (!m) {
    m = new ModelGrammars(tokenizer, vocabSize);
    perModel.set(tokenizer, m);
  }
  return m;
}

/** One generation's constraint. */
export class JsonConstraint implements TokenConstraint {
  private state: State;
  private key: string;
  private ended = false;
  private readonly endIds: Int32Array;
  private readonly saved: Float32Array;

  constructor(
    private readonly grammar: Grammar,
    endIds: readonly number[],
  ) {
    this.state = grammar.automaton.initial();
    this.key = grammar.automaton.maskKey(this.state, grammar.vocab.maxTokenBytes);
    this.endIds = Int32Array.from(endIds.filter((id) => id >= 0 && id < grammar.vocab.size));
    this.saved = new Float32Array(Math.max(this.endIds.length, 1));
  }

  /** Whether the output so far is a complete value. */
  canEnd(): boolean {
    return this.ended || this.grammar.automaton.canEnd(this.state);
  }

  /** Forbidden tokens' logits become -Infinity. `remaining`: tokens left, this one included. */
  mask(logits: Float32Array, remaining = Infinity): void {
    const e = this.grammar.entry(this.state, this.key);
    const ends = this.endIds;
    for (let i = 0; i < ends.length; i++) this.saved[i] = logits[ends[i]];
    if (e.text) this.maskText(logits, e, remaining);
    else {
      applyList(logits, e.list, e.listIsAllowed, this.grammar.vocab.size);
      this.steer(logits, e, remaining);
    }
    if (e.canEnd) for (let i = 0; i < ends.length; i++) logits[ends[i]] = this.saved[i];
  }

  /**
   * Inside a string: the tokens that are not plain text as the entry says; plain-text tokens by
   * their character count against the string's room (and, in undeclared keys, ASCII only).
   */
  private maskText(logits: Float32Array, e: MaskEntry, remaining: number): void {
    const vocab = this.grammar.vocab;
    const tm = this.grammar.automaton.textMode(this.state)!;
    const walked = e.list;
    const keep = this.keep.length >= walked.length ? this.keep : (this.keep = new Float32Array(walked.length));
    for (let i = 0; i < walked.length; i++) keep[i] = logits[walked[i]];
    const nonPlain = vocab.nonPlainIds;
    for (let i = 0; i < nonPlain.length; i++) logits[nonPlain[i]] = -Infinity;
    for (let i = 0; i < walked.length; i++) logits[walked[i]] = keep[i];
    if (tm.asciiOnly) for (const id of vocab.plainNonAscii) logits[id] = -Infinity;
    const byChars = vocab.plainByChars;
    if (tm.room < 255) for (let i = vocab.firstWithChars[tm.room + 1]; i < byChars.length; i++) logits[byChars[i]] = -Infinity;
    if (!Number.isFinite(remaining)) return;
    // steering, as for other states: plain text of c characters leaves base - min(c, short)
    const base = this.grammar.automaton.minRest(this.state);
    const most = tm.asciiOnly ? 0 : vocab.maxPlainChars(tm.room);
    const plainBest = most > 0 || tm.asciiOnly ? base - Math.min(most, tm.short) : Infinity;
    const limit = Math.max(remaining - 2, e.canEnd ? -1 : Math.min(e.bestAfter, plainBest));
    if (limit >= Math.max(e.maxOver, base)) return;
    const after = e.after!;
    for (let i = 0; i < walked.length; i++) if (after[i] > limit) logits[walked[i]] = -Infinity;
    const need = base - limit; // characters a plain token must add
    if (need <= 0) return;
    const end = tm.short < need || tm.asciiOnly ? byChars.length : vocab.firstWithChars[Math.min(need, 256)];
    for (let i = 0; i < end; i++) logits[byChars[i]] = -Infinity;
  }

  private keep = new Float32Array(64);

  /**
   * With `remaining` tokens left (this one included, and one kept for the end token), a token
   * after which the shortest completion no longer fits is refused; if none fits, only those
   * that come nearest remain.
   */
  private steer(logits: Float32Array, e: MaskEntry, remaining: number): void {
    if (!Number.isFinite(remaining)) return;
    // where the value may end, ending (the end token) is the best way there
    const limit = Math.max(remaining - 2, e.canEnd ? -1 : e.bestAfter);
    if (limit >= e.base) {
      if (limit >= e.maxOver) return;
      for (let i = 0; i < e.over.length; i += 2) if (e.over[i + 1] > limit) logits[e.over[i]] = -Infinity;
      return;
    }
    // only tokens that shorten the way to the end enough
    const keep: Array<[number, number]> = [];
    for (let i = 0; i < e.under.length; i += 2) if (e.under[i + 1] <= limit) keep.push([e.under[i], logits[e.under[i]]]);
    logits.fill(-Infinity);
    for (const [id, v] of keep) logits[id] = v; // (the end tokens are put back by mask)
  }

  advance(token: number): void {
    if (this.ended) return;
    if (this.endIds.includes(token)) {
      this.ended = true;
      return;
    }
    const bytes = this.grammar.vocab.tokenBytes(token);
    let s = this.state;
    for (let i = 0; i < bytes.length && s.length > 0; i++) s = this.grammar.automaton.step(s, bytes[i]);
    if (s.length === 0 || bytes.length === 0) throw new Error(`token ${token} does not continue the structured output`);
    this.state = s;
    this.key = this.grammar.automaton.maskKey(s, this.grammar.vocab.maxTokenBytes);
  }
}

function applyList(logits: Float32Array, list: Int32Array, isAllowed: boolean, size: number): void {
  if (!isAllowed) {
    for (let i = 0; i < list.length; i++) logits[list[i]] = -Infinity;
    return;
  }
  const keep = new Float32Array(list.length);
  for (let i = 0; i < list.length; i++) keep[i] = logits[list[i]];
  logits.fill(-Infinity, 0, size);
  for (let i = 0; i < list.length; i++) logits[list[i]] = keep[i];
}
