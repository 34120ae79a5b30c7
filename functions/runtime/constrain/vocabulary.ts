// A tokenizer's vocabulary as bytes, sorted, for walking every token against an automaton
// state at once: tokens that share a prefix share the steps over it, and once a prefix is
// refused every token that starts with it is skipped without a step. Built once per
// tokenizer (about 16 bytes per token plus the token bytes themselves).

import type { Tokenizer } from "../tokenizer/index";

export class TokenVocabulary {
  /** Token ids by their bytes in ascending order. */
  readonly order: Int32Array;
  /** The sorted tokens' bytes end to end; token k is bytes[offsets[k]..offsets[k + 1]). */
  readonly bytes: Uint8Array;
  readonly offsets: Uint32Array;
  /** Length of the common prefix of sorted token k and token k - 1. */
  readonly lcp: Uint16Array;
  /** Each id's byte length (0: not text; never allowed under a constraint). */
  readonly lengths: Uint16Array;
  /** Ids of tokens that are not text (special tokens, ids without a token, empty tokens). */
  readonly nonText: Int32Array;
  /**
   * Per sorted token: how many characters of plain string text it is (no quote, backslash or
   * control byte, whole UTF-8 characters only; capped at 255), or 0 if it is anything else.
   * Bit 0x100 of `plainAscii` marks tokens that are printable ASCII only.
   */
  readonly plainChars: Uint8Array;
  readonly plainAscii: Uint8Array;
  /** The longest token, in bytes. */
  readonly maxTokenBytes: number;
  /** Ids of every token that is not plain text (these are stepped through inside strings). */
  readonly nonPlainIds: Int32Array;
  /** Ids of plain-text tokens by ascending character count; those of c or more characters start at firstWithChars[c]. */
  readonly plainByChars: Int32Array;
  readonly firstWithChars: Int32Array;
  /** Ids of plain-text tokens that are not all printable ASCII. */
  readonly plainNonAscii: Int32Array;
  /** Sorted positions of the tokens that are not plain text, and their common prefixes in that list. */
  readonly nonPlainPos: Int32Array;
  readonly nonPlainLcp: Uint16Array;
  /** Per first byte, and per first two bytes (b0 * 256 + b1): the sorted position after the last token that starts so. */
  readonly byteEnd: Int32Array;
  readonly pairEnd: Int32Array;

  constructor(
    readonly size: number,
    tokenBytes: (id: number) => Uint8Array | null,
  ) {
    // Every token's bytes go end to end into one growing buffer (by id), then ids are sorted by
    // them: no object per token, so building the index of a 150k-token vocabulary holds little
    // more than the index itself (one Uint8Array per token held 45 MB at once).
    const nonText: number[] = [];
    this.lengths = new Uint16Array(size);
    const start = new Uint32Array(size);
    let raw = new Uint8Array(size * 8);
    let used = 0;
    let longest = 0;
    const ids: number[] = [];
    for (let id = 0; id < size; id++) {
      const b = tokenBytes(id);
      if (b === null || b.length === 0 || b.length > 0xffff) {
        nonText.push(id);
        continue;
      }
      if (used + b.length > raw.length) {
        const grown = new Uint8Array(Math.max(raw.length * 2, used + b.length));
        grown.set(raw.subarray(0, used));
        raw = grown;
      }
      raw.set(b, used);
      start[id] = used;
      used += b.length;
      this.lengths[id] = b.length;
      longest = Math.max(longest, b.length);
      ids.push(id);
    }
    const lengths = this.lengths;
    const compare = (x: number, y: number): number => {
      const a0 = start[x];
      const b0 = start[y];
      const n = Math.min(lengths[x], lengths[y]);
      for (let i = 0; i < n; i++) {
        const d = raw[a0 + i] - raw[b0 + i];
        if (d !== 0) return d;
      }
      return lengths[x] - lengths[y] || x - y;
    };
    this.order = Int32Array.from(ids).sort(compare);
    const n = this.order.length;
    this.offsets = new Uint32Array(n + 1);
    this.lcp = new Uint16Array(n);
    this.bytes = new Uint8Array(used);
    let at = 0;
    for (let k = 0; k < n; k++) {
      const id = this.order[k];
      const len = lengths[id];
      this.offsets[k] = at;
      this.bytes.set(raw.subarray(start[id], start[id] + len), at);
      if (k > 0) {
        const p = this.offsets[k - 1];
        const pl = at - p;
        let l = 0;
        while (l < pl && l < len && this.bytes[p + l] === this.bytes[at + l]) l++;
        this.lcp[k] = l;
      }
      at += len;
    }
    this.offsets[n] = at;
    this.maxTokenBytes = longest;
    this.nonText = Int32Array.from(nonText);
    this.plainChars = new Uint8Array(n);
    this.plainAscii = new Uint8Array(n);
    const nonPlain: number[] = [...nonText];
    const byChars: number[][] = Array.from({ length: 256 }, () => []);
    const nonAscii: number[] = [];
    for (let k = 0; k < n; k++) {
      const [chars, ascii] = plainText(this.bytes, this.offsets[k], this.offsets[k + 1]);
      this.plainChars[k] = Math.min(chars, 255);
      this.plainAscii[k] = ascii ? 1 : 0;
      if (chars === 0) nonPlain.push(this.order[k]);
      else {
        byChars[this.plainChars[k]].push(this.order[k]);
        if (!ascii) nonAscii.push(this.order[k]);
      }
    }
    this.nonPlainIds = Int32Array.from(nonPlain);
    this.plainByChars = Int32Array.from(byChars.flat());
    this.firstWithChars = new Int32Array(257);
    let first = 0;
    for (let c = 0; c < 256; c++) {
      this.firstWithChars[c] = first;
      first += byChars[c].length;
    }
    this.firstWithChars[256] = first;
    this.plainNonAscii = Int32Array.from(nonAscii);
    const positions: number[] = [];
    const lcps: number[] = [];
    let run = 0;
    for (let k = 0; k < n; k++) {
      run = Math.min(run, this.lcp[k]);
      if (this.plainChars[k] > 0) continue;
      positions.push(k);
      lcps.push(positions.length === 1 ? 0 : run);
      run = 0xffff;
    }
    this.nonPlainPos = Int32Array.from(positions);
    this.nonPlainLcp = Uint16Array.from(lcps);
    this.byteEnd = new Int32Array(256);
    this.pairEnd = new Int32Array(65536);
    for (let k = 0; k < n; k++) {
      const at = this.offsets[k];
      this.byteEnd[this.bytes[at]] = k + 1;
      if (this.offsets[k + 1] - at >= 2) this.pairEnd[this.bytes[at] * 256 + this.bytes[at + 1]] = k + 1;
    }
  }

  /** The bytes of token `id` (empty if it is not text). */
  tokenBytes(id: number): Uint8Array {
    // ids are found through the sorted order only during walks; single lookups are rare (advance)
    const k = this.positionOf(id);
    return k < 0 ? new Uint8Array(0) : this.bytes.subarray(this.offsets[k], this.offsets[k + 1]);
  }

  private position: Int32Array | null = null;

  private positionOf(id: number): number {
    if (!this.position) {
      this.position = new Int32Array(this.size).fill(-1);
      for (let k = 0; k < this.order.length; k++) this.position[this.order[k]] = k;
    }
    return id >= 0 && id < this.size ? this.position[id] : -1;
  }

  /** The most characters of a plain-text token of at most `room` characters (0: none). */
  maxPlainChars(room: number): number {
    for (let c = Math.min(255, room); c > 0; c--) if (this.firstWithChars[c + 1] > this.firstWithChars[c]) return c;
    return 0;
  }

  /** Bytes held (for memory accounting). */
  get memoryBytes(): number {
    return (
      this.order.byteLength + this.bytes.byteLength + this.offsets.byteLength + this.lcp.byteLength + this.lengths.byteLength + this.nonText.byteLength +
      this.plainChars.byteLength + this.plainAscii.byteLength + this.nonPlainIds.byteLength + this.plainByChars.byteLength + this.plainNonAscii.byteLength +
      this.nonPlainPos.byteLength + this.nonPlainLcp.byteLength + this.byteEnd.byteLength + this.pairEnd.byteLength + this.size * 4
    );
  }
}

/**
 * Characters of plain JSON string text in bytes[from..to) (0 if not all plain: a quote,
 * backslash or control byte, or a UTF-8 character cut or malformed), and whether all of it
 * is printable ASCII (what undeclared keys may hold).
 */
function plainText(bytes: Uint8Array, from: number, to: number): [number, boolean] {
  let chars = 0;
  let ascii = true;
  for (let i = from; i < to; chars++) {
    const b = bytes[i];
    if (b < 0x80) {
      if (b < 0x20 || b === 0x22 || b === 0x5c) return [0, false];
      if (b === 0x7f) ascii = false;
      i++;
      continue;
    }
    ascii = false;
    const need = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (need < 0 || i + need >= to) return [0, false];
    try {
      strict.decode(bytes.subarray(i, i + need + 1));
    } catch {
      return [0, false];
    }
    i += need + 1;
  }
  return [chars, ascii];
}

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const vocabularies = new WeakMap<Tokenizer, TokenVocabulary>();

/** The vocabulary index of a tokenizer, built on first use and kept as long as the tokenizer. */
export function vocabularyOf(tokenizer: Tokenizer, size: number): TokenVocabulary {
  let v = vocabularies.get(tokenizer);
  if (!v || v.size !== size) {
    v = new TokenVocabulary(size, (id) => tokenizer.tokenBytes(id));
    vocabularies.set(tokenizer, v);
  }
  return v;
}
