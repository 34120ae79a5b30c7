// A byte-level pushdown automaton over a compiled schema: which bytes may come next so the
// output stays a prefix of a JSON value the schema accepts. A state is a set of stacks (anyOf
// and type lists make more than one reading possible); stacks and frames are immutable, so a
// state can be stepped along many candidate tokens without copying.
//
// Every reachable state can still be completed (each step checks what it leads to), and
// minRest() gives the fewest bytes that complete it, so a caller with a token budget can steer
// toward the end in time.

import { MAX_DEPTH, type Alt, type ArrayAlt, type CompiledSchema, type LiteralAlt, type NumberAlt, type ObjectAlt, type StringAlt } from "./schema";

/** Digits of an integer part and of a fraction (so every number is exact in a double). */
const MAX_DIGITS = 15;

const enum F {
  Value,
  Literal,
  String,
  Key,
  Number,
  Object,
  Array,
}

const enum Phase {
  Open,
  AfterItem,
  NeedItem,
  AfterKey,
  InItem,
}

interface ValueFrame {
  f: F.Value;
  node: number;
}
interface LiteralFrame {
  f: F.Literal;
  alt: LiteralAlt;
  values: Uint8Array[];
  pos: number;
}
interface StringFrame {
  f: F.String;
  alt: StringAlt;
  /** Characters so far (capped where the count no longer matters). */
  len: number;
  /** 0: plain; 1: after a backslash; 2..5: after "\u" and (esc - 2) hex digits. */
  esc: number;
  /** Continuation bytes the current UTF-8 character still needs, and the next one's range. */
  need: number;
  lo: number;
  hi: number;
}
interface KeyFrame {
  f: F.Key;
  /** The key's bytes after its opening quote (a latin1 string); "" once `free`. */
  prefix: string;
  /**
   * An undeclared key that no declared or written key starts like, so whatever follows it is a
   * new key: its text no longer matters (and is not kept).
   */
  free: boolean;
}
interface NumberFrame {
  f: F.Number;
  alt: NumberAlt;
  neg: boolean;
  intDigits: number;
  intVal: number;
  /** -1: no '.'; else digits after it. */
  fracDigits: number;
  fracVal: number;
  /** -1: no exponent; 0: after 'e'; 1: after its sign; 2: in its digits. */
  exp: number;
  expDigits: number;
}
interface ObjectFrame {
  f: F.Object;
  alt: ObjectAlt;
  phase: Phase;
  /** Place (in the schema's order) from which declared keys may still come. */
  next: number;
  /** After a key: its value's node. */
  valueNode: number;
}
interface ArrayFrame {
  f: F.Array;
  alt: ArrayAlt;
  phase: Phase;
  count: number;
}
type Frame = ValueFrame | LiteralFrame | StringFrame | KeyFrame | NumberFrame | ObjectFrame | ArrayFrame;

export interface Stack {
  readonly frame: Frame | null;
  readonly below: Stack | null;
  /** Containers (objects, arrays) on the stack. */
  readonly depth: number;
  key?: string;
  /** maskKey of this stack, once computed. */
  maskKey?: string;
  /** minRest of this stack, once computed. */
  rest?: number;
}

/** A state: the stacks still possible. */
export type State = readonly Stack[];

/** The value is complete: nothing may follow. */
const DONE: Stack = { frame: null, below: null, depth: 0, key: ".", rest: 0 };

const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export class JsonAutomaton {
  private readonly altIds = new Map<Alt, number>();
  private readonly minBytesMemo = new Map<number, number>();

  constructor(readonly schema: CompiledSchema) {
    for (const node of schema.nodes) for (const a of node.alts) if (!this.altIds.has(a)) this.altIds.set(a, this.altIds.size);
  }

  initial(): State {
    return [push(null, { f: F.Value, node: this.schema.root }, 0)];
  }

  /** The state after byte `b` (empty: `b` cannot come next). */
  step(state: State, b: number): State {
    if (state.length === 1) {
      const next = this.stepStack(state[0], b);
      if (next.length !== 1) return this.step(next, -1);
      // progress inside one frame (text, digits, whitespace) cannot lead to a dead end
      const n = next[0];
      if (n.below === state[0].below && n.frame !== null && n.frame.f === state[0].frame!.f && n.frame.f !== F.Key) return next;
      return this.stackRest(n) < Infinity ? next : [];
    }
    const out: Stack[] = [];
    const keys = new Set<string>();
    for (const s of state) {
      // b < 0: only dedupe and drop dead ends (the stacks are already stepped)
      for (const n of b < 0 ? [s] : this.stepStack(s, b)) {
        if (this.stackRest(n) === Infinity) continue;
        const k = this.keyOf(n);
        if (!keys.has(k)) {
          keys.add(k);
          out.push(n);
        }
      }
    }
    return out;
  }

  /** Whether the output may end here (the value is complete). */
  canEnd(state: State): boolean {
    return state.some((s) => s === DONE || (s.below === null && s.frame !== null && this.finishable(s.frame)));
  }

  /** The fewest bytes that complete a value from here. */
  minRest(state: State): number {
    let best = Infinity;
    for (const s of state) best = Math.min(best, this.stackRest(s));
    return best;
  }

  /**
   * When the state is inside a string (or an undeclared key) and nothing is pending, what plain
   * text does there: a token of `n` plain characters is allowed iff n <= room (keys: ASCII
   * only), and shortens the completion by min(n, short). Null otherwise.
   */
  textMode(state: State): { room: number; short: number; asciiOnly: boolean } | null {
    if (state.length !== 1) return null;
    const fr = state[0].frame;
    if (fr === null) return null;
    if (fr.f === F.Key) return fr.free ? { room: Infinity, short: 0, asciiOnly: true } : null;
    if (fr.f !== F.String || fr.esc !== 0 || fr.need !== 0) return null;
    return { room: fr.alt.maxLength - fr.len, short: Math.max(0, fr.alt.minLength - fr.len), asciiOnly: false };
  }

  /** A string naming the state exactly (equal keys: equal futures). */
  stateKey(state: State): string {
    if (state.length === 1) return this.keyOf(state[0]);
    return state.map((s) => this.keyOf(s)).sort().join("\n");
  }

  /**
   * Like stateKey, but states that no token can tell apart share it: a string's length or an
   * array's count stops mattering once its minimum is met and its maximum is further away than
   * the longest token (`horizon` bytes) could reach. What may follow, and the shortest
   * completions after each token, are then the same.
   */
  maskKey(state: State, horizon: number): string {
    if (state.length === 1) return this.maskKeyOf(state[0], horizon);
    return state.map((s) => this.maskKeyOf(s, horizon)).sort().join("\n");
  }

  private maskKeyOf(s: Stack, horizon: number): string {
    if (s.maskKey !== undefined) return s.maskKey;
    const fr = s.frame;
    let k: string;
    if (fr === null) k = ".";
    else {
      let own = this.frameKey(fr);
      if (fr.f === F.String && fr.len >= fr.alt.minLength && fr.alt.maxLength - fr.len > horizon) own = `S${this.altIds.get(fr.alt)},far,${fr.esc},${fr.need},${fr.lo},${fr.hi}`;
      if (fr.f === F.Array && fr.count >= Math.max(fr.alt.minItems, fr.alt.prefix.length) && fr.alt.maxItems - fr.count > horizon) own = `A${this.altIds.get(fr.alt)},${fr.phase},far`;
      k = `${own};${s.below ? this.maskKeyOf(s.below, horizon) : ""}`;
    }
    s.maskKey = k;
    return k;
  }

  keyOf(s: Stack): string {
    if (s.key !== undefined) return s.key;
    const k = `${this.frameKey(s.frame!)};${s.below ? this.keyOf(s.below) : ""}`;
    s.key = k;
    return k;
  }

  private frameKey(fr: Frame): string {
    switch (fr.f) {
      case F.Value:
        return `V${fr.node}`;
      case F.Literal:
        return `L${this.altIds.get(fr.alt)},${fr.pos},${fr.values.length},${fr.values.length ? fr.values[0].subarray(0, fr.pos).join(".") : ""}`;
      case F.String:
        return `S${this.altIds.get(fr.alt)},${fr.len},${fr.esc},${fr.need},${fr.lo},${fr.hi}`;
      case F.Key:
        return fr.free ? "K*" : `K${fr.prefix}`;
      case F.Number:
        return `N${this.altIds.get(fr.alt)},${+fr.neg},${fr.intDigits},${fr.intVal},${fr.fracDigits},${fr.fracVal},${fr.exp},${fr.expDigits}`;
      case F.Object:
        return `O${this.altIds.get(fr.alt)},${fr.phase},${fr.valueNode},${fr.next}`;
      case F.Array:
        return `A${this.altIds.get(fr.alt)},${fr.phase},${fr.count}`;
    }
  }

  private stepStack(s: Stack, b: number): Stack[] {
    const fr = s.frame;
    if (fr === null) return []; // DONE: nothing may follow
    switch (fr.f) {
      case F.Value:
        return this.stepValue(s, fr, b);
      case F.Literal: {
        const out: Stack[] = [];
        const values = fr.values.filter((v) => v.length > fr.pos && v[fr.pos] === b);
        if (values.length > 0) out.push(replace(s, { ...fr, values, pos: fr.pos + 1 }));
        if (fr.values.some((v) => v.length === fr.pos)) out.push(...this.afterChild(s, b));
        return out;
      }
      case F.String:
        return this.stepString(s, fr, b);
      case F.Key:
        return this.stepKey(s, fr, b);
      case F.Number:
        return this.stepNumber(s, fr, b);
      case F.Object:
        return this.stepObject(s, fr, b);
      case F.Array:
        return this.stepArray(s, fr, b);
    }
  }

  private stepValue(s: Stack, fr: ValueFrame, b: number): Stack[] {
    if (isWs(b)) return [s]; // whitespace is free (max_tokens bounds it, see JsonConstraint)
    const out: Stack[] = [];
    for (const alt of this.schema.nodes[fr.node].alts) {
      switch (alt.kind) {
        case "object":
          if (b === 0x7b && s.depth < MAX_DEPTH) out.push(replace(s, { f: F.Object, alt, phase: Phase.Open, next: 0, valueNode: -1 }, 1));
          break;
        case "array":
          if (b === 0x5b && s.depth < MAX_DEPTH) out.push(replace(s, { f: F.Array, alt, phase: Phase.Open, count: 0 }, 1));
          break;
        case "string":
          if (b === QUOTE) out.push(replace(s, { f: F.String, alt, len: 0, esc: 0, need: 0, lo: 0, hi: 0 }));
          break;
        case "number":
          if (b === 0x2d || isDigit(b)) {
            const start: NumberFrame = { f: F.Number, alt, neg: false, intDigits: 0, intVal: 0, fracDigits: -1, fracVal: 0, exp: -1, expDigits: 0 };
            out.push(...this.stepNumber(replace(s, start), start, b, true));
          }
          break;
        case "literal":
          out.push(...this.stepStack(replace(s, { f: F.Literal, alt, values: alt.values, pos: 0 }), b));
          break;
      }
    }
    return out;
  }

  /** The top frame finished (its last byte consumed); the frame below takes over. */
  private finished(s: Stack): Stack {
    const below = s.below;
    if (below === null) return DONE;
    const fr = below.frame!;
    if (fr.f === F.Object) return replace(below, { ...fr, phase: Phase.AfterItem });
    if (fr.f === F.Array) return replace(below, { ...fr, phase: Phase.AfterItem, count: this.capCount(fr.alt, fr.count + 1) });
    throw new Error("a value finished inside a frame that holds no values");
  }

  /** The top frame finished just before `b` (a number or literal ends where a delimiter begins). */
  private afterChild(s: Stack, b: number): Stack[] {
    const up = this.finished(s);
    return this.stepStack(up, b);
  }

  private stepString(s: Stack, fr: StringFrame, b: number): Stack[] {
    const { alt } = fr;
    if (fr.need > 0) {
      if (b < fr.lo || b > fr.hi) return [];
      return [replace(s, { ...fr, need: fr.need - 1, lo: 0x80, hi: 0xbf })];
    }
    if (fr.esc === 1) {
      if (b === 0x75) return [replace(s, { ...fr, esc: 2 })];
      if (b === QUOTE || b === BACKSLASH || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74) return [replace(s, { ...fr, esc: 0, len: this.capLen(alt, fr.len + 1) })];
      return [];
    }
    if (fr.esc >= 2) {
      if (!isHex(b)) return [];
      const v = isDigit(b) ? b - 0x30 : (b | 0x20) - 0x61 + 10;
      // no surrogates (\uD800-\uDFFF): a lone one is not a character (lo: the first digit was D)
      if (fr.esc === 3 && fr.lo === 1 && v >= 8) return [];
      if (fr.esc === 5) return [replace(s, { ...fr, esc: 0, lo: 0, len: this.capLen(alt, fr.len + 1) })];
      return [replace(s, { ...fr, esc: fr.esc + 1, lo: fr.esc === 2 && v === 13 ? 1 : 0 })];
    }
    if (b === QUOTE) return fr.len >= alt.minLength ? [this.finished(s)] : [];
    if (fr.len >= alt.maxLength) return [];
    if (b === BACKSLASH) return [replace(s, { ...fr, esc: 1 })];
    if (b < 0x20) return [];
    const len = this.capLen(alt, fr.len + 1);
    if (b < 0x80) return [replace(s, { ...fr, len })];
    const lead = utf8Lead(b);
    if (!lead) return [];
    return [replace(s, { ...fr, len, need: lead[0], lo: lead[1], hi: lead[2] })];
  }

  private capLen(alt: StringAlt, len: number): number {
    return alt.maxLength === Infinity ? Math.min(len, alt.minLength) : len;
  }

  private capCount(alt: ArrayAlt, count: number): number {
    return alt.maxItems === Infinity ? Math.min(count, Math.max(alt.minItems, alt.prefix.length)) : count;
  }

  private stepObject(s: Stack, fr: ObjectFrame, b: number): Stack[] {
    switch (fr.phase) {
      case Phase.Open:
      case Phase.NeedItem:
        if (isWs(b)) return [s];
        if (b === QUOTE && this.keyPossible(fr)) return [push(replace(s, { ...fr }), { f: F.Key, prefix: "", free: false }, 0)];
        if (b === 0x7d && fr.phase === Phase.Open && fr.alt.lastRequired < 0) return [this.finished(s)];
        return [];
      case Phase.AfterItem:
        if (isWs(b)) return [s];
        if (b === 0x2c && this.keyPossible(fr)) return [replace(s, { ...fr, phase: Phase.NeedItem })];
        if (b === 0x7d && fr.next > fr.alt.lastRequired) return [this.finished(s)];
        return [];
      case Phase.AfterKey:
        if (isWs(b)) return [s];
        if (b === 0x3a) return [push(replace(s, { ...fr, phase: Phase.InItem }), { f: F.Value, node: fr.valueNode }, 0)];
        return [];
      default:
        return [];
    }
  }

  /** Whether another key can still be written in this object. */
  private keyPossible(fr: ObjectFrame): boolean {
    return fr.alt.additional >= 0 || fr.next < fr.alt.order.length;
  }

  private stepKey(s: Stack, fr: KeyFrame, b: number): Stack[] {
    const obj = s.below!.frame as ObjectFrame;
    const { alt } = obj;
    if (fr.free) {
      if (b === QUOTE) return [replace(s.below!, { ...obj, phase: Phase.AfterKey, valueNode: alt.additional })];
      return isFreeKeyByte(b) ? [s] : [];
    }
    const prefix = fr.prefix;
    if (b === QUOTE && !endsInEscape(prefix)) {
      // the key is complete: a declared one that may come here, or (where allowed) an undeclared one
      const name = latin1ToText(prefix);
      if (name === null) return [];
      const at = alt.index.get(name);
      if (at === undefined) {
        if (alt.additional < 0 || !isFreeKey(prefix) || prefix.length === 0) return [];
        return [replace(s.below!, { ...obj, phase: Phase.AfterKey, valueNode: alt.additional })];
      }
      if (at < obj.next || at > alt.reach[obj.next] || !this.declaredSpelling(alt, name, prefix)) return [];
      return [replace(s.below!, { ...obj, phase: Phase.AfterKey, next: at + 1, valueNode: alt.props.get(name)! })];
    }
    const next = prefix + String.fromCharCode(b);
    // a declared key that may come here still matches, or an undeclared key is being written
    for (let i = obj.next; i <= alt.reach[obj.next] && i < alt.order.length; i++) {
      const bytes = alt.keyBytes.get(alt.order[i])!;
      if (bytes.length - 1 <= next.length) continue;
      if (startsWithLatin1(bytes, 1, next)) return [replace(s, { f: F.Key, prefix: next, free: false })];
    }
    if (alt.additional < 0 || !isFreeKeyByte(b) || !isFreeKey(prefix)) return [];
    // (next is printable ASCII here, so it reads the same as text and as bytes)
    let shadowed = false;
    for (const bytes of alt.keyBytes.values()) if (startsWithLatin1(bytes, 1, next)) shadowed = true;
    return [replace(s, { f: F.Key, prefix: shadowed ? next : "", free: !shadowed })];
  }

  private declaredSpelling(alt: ObjectAlt, name: string, prefix: string): boolean {
    const bytes = alt.keyBytes.get(name)!;
    return bytes.length - 2 === prefix.length && startsWithLatin1(bytes, 1, prefix);
  }

  private stepNumber(s: Stack, fr: NumberFrame, b: number, first = false): Stack[] {
    const { alt } = fr;
    const bounded = alt.minimum > -Infinity || alt.maximum < Infinity;
    let n: NumberFrame | null = null;
    if (b === 0x2d && fr.intDigits === 0 && !fr.neg) n = { ...fr, neg: true };
    else if (isDigit(b) && fr.exp < 0 && fr.fracDigits < 0) {
      const d = b - 0x30;
      if (!(fr.intDigits === 1 && fr.intVal === 0) && fr.intDigits < MAX_DIGITS) n = { ...fr, intDigits: fr.intDigits + 1, intVal: bounded ? fr.intVal * 10 + d : fr.intDigits === 0 ? Math.min(d, 1) : 1 };
    } else if (isDigit(b) && fr.exp < 0 && fr.fracDigits >= 0) {
      if (fr.fracDigits < MAX_DIGITS) n = { ...fr, fracDigits: fr.fracDigits + 1, fracVal: bounded ? fr.fracVal + (b - 0x30) * 10 ** -(fr.fracDigits + 1) : 0 };
    } else if (b === 0x2e && !alt.integer && fr.intDigits > 0 && fr.fracDigits < 0 && fr.exp < 0) n = { ...fr, fracDigits: 0 };
    else if ((b === 0x65 || b === 0x45) && !alt.integer && !bounded && fr.intDigits > 0 && fr.fracDigits !== 0 && fr.exp < 0) n = { ...fr, exp: 0 };
    else if ((b === 0x2b || b === 0x2d) && fr.exp === 0) n = { ...fr, exp: 1 };
    else if (isDigit(b) && fr.exp >= 0 && fr.expDigits < 2) n = { ...fr, exp: 2, expDigits: fr.expDigits + 1 };
    if (n !== null) return this.numberReachable(n) ? [replace(s, n)] : [];
    if (first) return [];
    return this.finishable(fr) ? this.afterChild(s, b) : [];
  }

  /** Whether the frame's top can end here without another byte. */
  private finishable(fr: Frame): boolean {
    if (fr.f === F.Literal) return fr.values.some((v) => v.length === fr.pos);
    if (fr.f !== F.Number) return false;
    if (fr.intDigits === 0 || fr.fracDigits === 0 || fr.exp === 0 || fr.exp === 1) return false;
    const v = (fr.intVal + fr.fracVal) * (fr.neg ? -1 : 1);
    return v >= fr.alt.minimum && v <= fr.alt.maximum;
  }

  /** Whether some number that starts like `fr` lies within its bounds. */
  private numberReachable(fr: NumberFrame): boolean {
    const { minimum, maximum, integer } = fr.alt;
    if (minimum === -Infinity && maximum === Infinity) return true;
    // magnitudes reachable, against the bounds seen as magnitudes of this sign
    const lo = fr.neg ? -maximum : minimum;
    const hi = fr.neg ? -minimum : maximum;
    const meets = (a: number, b: number) => a <= hi && b >= lo;
    if (fr.intDigits === 0) return fr.neg ? minimum <= 0 : maximum >= 0;
    if (fr.fracDigits >= 0) {
      const v = fr.intVal + fr.fracVal;
      return meets(v, v + 10 ** -fr.fracDigits);
    }
    if (fr.intDigits === 1 && fr.intVal === 0) return meets(0, integer ? 0 : 1);
    for (let j = 0; fr.intDigits + j <= MAX_DIGITS; j++) {
      const a = fr.intVal * 10 ** j;
      if (a > hi) return false;
      if (meets(a, integer ? (fr.intVal + 1) * 10 ** j - 1 : (fr.intVal + 1) * 10 ** j)) return true;
    }
    return false;
  }

  private stepArray(s: Stack, fr: ArrayFrame, b: number): Stack[] {
    const { alt } = fr;
    switch (fr.phase) {
      case Phase.Open:
        if (isWs(b)) return [s];
        if (b === 0x5d) return alt.minItems === 0 ? [this.finished(s)] : [];
        return alt.maxItems > 0 ? this.stepStack(push(replace(s, { ...fr, phase: Phase.InItem }), { f: F.Value, node: itemNode(alt, fr.count) }, 0), b) : [];
      case Phase.AfterItem:
        if (isWs(b)) return [s];
        if (b === 0x2c && fr.count < alt.maxItems) return [replace(s, { ...fr, phase: Phase.NeedItem })];
        if (b === 0x5d && fr.count >= alt.minItems) return [this.finished(s)];
        return [];
      case Phase.NeedItem:
        if (isWs(b)) return [s];
        return this.stepStack(push(replace(s, { ...fr, phase: Phase.InItem }), { f: F.Value, node: itemNode(alt, fr.count) }, 0), b);
      default:
        return [];
    }
  }

  // ---- the fewest bytes to complete ----

  private stackRest(s: Stack | null): number {
    if (s === null) return 0;
    if (s.rest !== undefined) return s.rest;
    let rest: number;
    if (s.frame === null) rest = 0;
    else if (s.frame.f === F.Key) rest = this.keyRest(s) + this.stackRest(s.below!.below); // a key and its object together
    else rest = this.frameRest(s) + this.stackRest(s.below);
    s.rest = rest;
    return rest;
  }

  /** Bytes the required keys from place `from` on need (each `"key":value`) and how many there are. */
  private missingFrom(alt: ObjectAlt, from: number, depth: number): [number, number] {
    let bytes = 0;
    let count = 0;
    for (let i = Math.max(0, from); i <= alt.lastRequired; i++) {
      const k = alt.order[i];
      if (!alt.required.includes(k)) continue;
      bytes += alt.keyBytes.get(k)!.length + 1 + this.minBytes(alt.props.get(k)!, depth);
      count++;
    }
    return [bytes, count];
  }

  /** The key being written, its value and what its object still needs after them. */
  private keyRest(s: Stack): number {
    const fr = s.frame as KeyFrame;
    const objStack = s.below!;
    const obj = objStack.frame as ObjectFrame;
    const { alt } = obj;
    let best = Infinity;
    if (!fr.free) {
      for (let i = obj.next; i <= alt.reach[obj.next] && i < alt.order.length; i++) {
        const bytes = alt.keyBytes.get(alt.order[i])!;
        if (bytes.length - 2 < fr.prefix.length || !startsWithLatin1(bytes, 1, fr.prefix)) continue;
        const value = this.minBytes(alt.props.get(alt.order[i])!, objStack.depth);
        const [rest, count] = this.missingFrom(alt, i + 1, objStack.depth);
        best = Math.min(best, bytes.length - 1 - fr.prefix.length + 1 + value + rest + count + 1);
      }
    }
    if (alt.additional >= 0 && (fr.free || isFreeKey(fr.prefix))) {
      const [rest, count] = this.missingFrom(alt, obj.next, objStack.depth);
      best = Math.min(best, (fr.free || fr.prefix.length > 0 ? 2 : 3) + this.minBytes(alt.additional, objStack.depth) + rest + count + 1);
    }
    return best;
  }

  /** Bytes the frame needs to finish, once the frames above it have (a key is counted with its object). */
  private frameRest(s: Stack): number {
    const fr = s.frame!;
    switch (fr.f) {
      case F.Value:
        return this.minBytes(fr.node, s.depth);
      case F.Literal: {
        let m = Infinity;
        for (const v of fr.values) m = Math.min(m, v.length - fr.pos);
        return m;
      }
      case F.String: {
        const pending = fr.need + (fr.esc === 1 ? 1 : fr.esc >= 2 ? 6 - fr.esc : 0);
        return pending + Math.max(0, fr.alt.minLength - fr.len - (fr.esc > 0 ? 1 : 0)) + 1;
      }
      case F.Number:
        return this.finishable(fr) ? 0 : 1;
      case F.Key:
        return Infinity; // counted with its object (keyRest)
      case F.Object: {
        const { alt } = fr;
        const [missing, count] = this.missingFrom(alt, fr.next, s.depth);
        if (missing === Infinity) return Infinity;
        const commas = fr.phase === Phase.Open || fr.phase === Phase.NeedItem ? Math.max(0, count - 1) : count;
        let extra = 0;
        if (fr.phase === Phase.AfterKey) extra = 1 + this.minBytes(fr.valueNode, s.depth);
        else if (fr.phase === Phase.NeedItem && count === 0) extra = this.smallestMember(fr, s.depth);
        return missing + commas + extra + 1;
      }
      case F.Array: {
        const { alt } = fr;
        const inItem = fr.phase === Phase.InItem ? 1 : 0;
        let total = 1;
        const have = fr.count + inItem;
        for (let i = have; i < alt.minItems; i++) total += this.minBytes(itemNode(alt, i), s.depth) + 1;
        if (fr.phase === Phase.NeedItem && have >= alt.minItems) total += this.minBytes(itemNode(alt, fr.count), s.depth);
        if (fr.phase === Phase.Open && alt.minItems > 0) total -= 1; // no comma before the first
        if (fr.phase === Phase.NeedItem && have < alt.minItems) total -= 1; // its comma is written
        return total;
      }
    }
  }

  /** The smallest "key": value an object can still take. */
  private smallestMember(fr: ObjectFrame, depth: number): number {
    let m = Infinity;
    const { alt } = fr;
    for (let i = fr.next; i <= alt.reach[fr.next] && i < alt.order.length; i++) m = Math.min(m, alt.keyBytes.get(alt.order[i])!.length + 1 + this.minBytes(alt.props.get(alt.order[i])!, depth));
    if (fr.alt.additional >= 0) m = Math.min(m, 4 + this.minBytes(fr.alt.additional, depth));
    return m;
  }

  /** The shortest value of `node` written at container depth `depth`. */
  minBytes(node: number, depth: number): number {
    const key = node * (MAX_DEPTH + 2) + depth;
    const memo = this.minBytesMemo.get(key);
    if (memo !== undefined) return memo;
    this.minBytesMemo.set(key, Infinity); // a value that needs itself has no finite form this way
    let best = Infinity;
    for (const alt of this.schema.nodes[node].alts) best = Math.min(best, this.altMinBytes(alt, depth));
    this.minBytesMemo.set(key, best);
    return best;
  }

  private altMinBytes(alt: Alt, depth: number): number {
    switch (alt.kind) {
      case "object": {
        if (depth >= MAX_DEPTH) return Infinity;
        let total = 2 + Math.max(0, alt.required.length - 1);
        for (const r of alt.required) total += alt.keyBytes.get(r)!.length + 1 + this.minBytes(alt.props.get(r)!, depth + 1);
        return total;
      }
      case "array": {
        if (depth >= MAX_DEPTH) return Infinity;
        let total = 2 + Math.max(0, alt.minItems - 1);
        for (let i = 0; i < alt.minItems; i++) total += this.minBytes(itemNode(alt, i), depth + 1);
        return total;
      }
      case "string":
        return 2 + alt.minLength;
      case "number":
        return shortestNumber(alt);
      case "literal": {
        let m = Infinity;
        for (const v of alt.values) m = Math.min(m, v.length);
        return m;
      }
      default:
        return Infinity;
    }
  }
}

function push(below: Stack | null, frame: Frame, addDepth: number): Stack {
  return { frame, below, depth: (below?.depth ?? 0) + addDepth };
}

/** The same stack with its top frame replaced (`addDepth`: the new frame is a container). */
function replace(s: Stack, frame: Frame, addDepth = 0): Stack {
  return { frame, below: s.below, depth: s.depth + addDepth };
}

function itemNode(alt: ArrayAlt, i: number): number {
  return i < alt.prefix.length ? alt.prefix[i] : alt.items;
}

/** A UTF-8 lead byte: continuation bytes it needs and the range of the first (no overlongs, no surrogates). */
function utf8Lead(b: number): [number, number, number] | null {
  if (b >= 0xc2 && b <= 0xdf) return [1, 0x80, 0xbf];
  if (b === 0xe0) return [2, 0xa0, 0xbf];
  if (b === 0xed) return [2, 0x80, 0x9f];
  if (b >= 0xe1 && b <= 0xef) return [2, 0x80, 0xbf];
  if (b === 0xf0) return [3, 0x90, 0xbf];
  if (b >= 0xf1 && b <= 0xf3) return [3, 0x80, 0xbf];
  if (b === 0xf4) return [3, 0x80, 0x8f];
  return null;
}

function shortestNumber(alt: NumberAlt): number {
  const { minimum, maximum } = alt;
  if (minimum <= 0 && maximum >= 0) return 1;
  const i = minimum > 0 ? Math.ceil(minimum) : Math.floor(maximum);
  if (i >= minimum && i <= maximum) return String(i).length;
  return String(minimum > 0 ? minimum : maximum).length;
}

function startsWithLatin1(bytes: Uint8Array, from: number, prefix: string): boolean {
  if (bytes.length - from < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[from + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

/** Whether the key so far ends inside an escape (an odd run of backslashes). */
function endsInEscape(prefix: string): boolean {
  let n = 0;
  for (let i = prefix.length - 1; i >= 0 && prefix.charCodeAt(i) === BACKSLASH; i--) n++;
  return n % 2 === 1;
}

const isFreeKeyByte = (b: number) => b >= 0x20 && b < 0x7f && b !== QUOTE && b !== BACKSLASH;

/** An undeclared key: printable ASCII, no escapes. */
function isFreeKey(prefix: string): boolean {
  return /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(prefix);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The key bytes (latin1) as text, if they are whole UTF-8 (escapes as JSON reads them). */
function latin1ToText(prefix: string): string | null {
  try {
    const text = strictUtf8.decode(Uint8Array.from(prefix, (c) => c.charCodeAt(0)));
    return text.includes("\\") ? (JSON.parse(`"${text}"`) as string) : text;
  } catch {
    return null;
  }
}
