// The llama2.c tokenizer (tokenizer.bin) with run.c's exact encode/decode behaviour.
// Worker-safe: only TextEncoder/TextDecoder, typed arrays, Map.
//
// tokenizer.bin: int32 max_token_length, then for each of vocab_size tokens (the count is not
// in the file; it comes from the model): f32 score, int32 byte length, the piece's bytes.
// All little-endian.

export const BOS_ID = 1;
export const EOS_ID = 2;

const utf8Encoder = new TextEncoder();
/** ignoreBOM keeps a U+FEFF that the text really contains. */
const newUtf8Decoder = () => new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const utf8Decoder = newUtf8Decoder();

/** run.c's best_score start value, as the f32 it is. */
const NO_MERGE_SCORE = Math.fround(-1e10);

/** A byte string as a JS string of char codes 0..255, usable as an exact Map key. */
function byteKey(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

export interface EncodeOptions {
  /** Prepend BOS (id 1). */
  bos: boolean;
  /** Append EOS (id 2). */
  eos: boolean;
}

export class Llama2cTokenizer {
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  private readonly keys: string[];
  private readonly lookup = new Map<string, number>();

  private constructor(
    readonly vocabSize: number,
    readonly maxTokenLength: number,
    private readonly pieces: Uint8Array[],
    private readonly scores: Float32Array,
  ) {
    this.keys = pieces.map((p) => byteKey(p));
    // run.c finds pieces by binary search over the sorted vocabulary; with a duplicate piece the
    // match is unspecified. We take the lowest id (the tokenizers we ship have no duplicates).
    this.keys.forEach((k, id) => {
      if (!this.lookup.has(k)) this.lookup.set(k, id);
    });
  }

  static fromBytes(bytes: Uint8Array, vocabSize: number): Llama2cTokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new Error(`vocabSize must be a positive integer, got ${vocabSize}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (what: string, need: number): never => {
      throw new Error(
        `tokenizer.bin is truncated: ${what} needs bytes up to offset ${need}, the file has ${bytes.byteLength} bytes`,
      );
    };
    if (bytes.byteLength < 4) fail("max_token_length", 4);
    const maxTokenLength = view.getInt32(0, true);
    const pieces: Uint8Array[] = [];
    const scores = new Float32Array(vocabSize);
    let off = 4;
    for (let i = 0; i < vocabSize; i++) {
      if (off + 8 > bytes.byteLength) fail(`token ${i} of ${vocabSize}`, off + 8);
      scores[i] = view.getFloat32(off, true);
      const len = view.getInt32(off + 4, true);
      if (len < 0) throw new Error(`tokenizer.bin: token ${i} has negative length ${len}`);
      off += 8;
      if (off + len > bytes.byteLength) fail(`token ${i} of ${vocabSize}`, off + len);
      pieces.push(bytes.slice(off, off + len));
      off += len;
    }
    return new Llama2cTokenizer(vocabSize, maxTokenLength, pieces, scores);
  }

  /** The raw bytes of a vocabulary entry (do not modify). */
  piece(id: number): Uint8Array {
    this.checkId(id);
    return this.pieces[id];
  }

  score(id: number): number {
    this.checkId(id);
    return this.scores[id];
  }

  /** Id of the vocabulary entry whose bytes are exactly `piece` (a string is UTF-8 encoded), or -1. */
  lookupPiece(piece: string | Uint8Array): number {
    const b = typeof piece === "string" ? utf8Encoder.encode(piece) : piece;
    return this.lookup.get(byteKey(b)) ?? -1;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  /**
   * Exactly run.c's encode(): optional BOS; if the text is non-empty a dummy-prefix " " token;
   * one token per UTF-8 code point found in the vocabulary, else its bytes as <0xNN> tokens
   * (id byte + 3); then, while any adjacent pair concatenates to a vocabulary entry, merge the
   * pair whose entry has the highest score (leftmost on ties); optional EOS.
   * Like C, the text ends at its first NUL character. A Uint8Array is taken as raw bytes.
   *
   * run.c rescans all pairs after every merge (O(n^2)); this keeps every candidate pair in a
   * heap ordered by (score desc, position asc), which picks the same pair at every step.
   */
  encode(text: string | Uint8Array, opts: EncodeOptions): number[] {
    let bytes = typeof text === "string" ? utf8Encoder.encode(text) : text;
    const nul = bytes.indexOf(0);
    if (nul >= 0) bytes = bytes.subarray(0, nul);

    const ids: number[] = [];
    if (opts.bos) ids.push(BOS_ID);
    if (bytes.length > 0) {
      const space = this.lookup.get(" ");
      if (space === undefined) throw new Error('tokenizer has no " " piece for the dummy prefix');
      ids.push(space);
    }

    // UTF-8 walk, byte for byte as run.c does it (including its treatment of malformed input:
    // a code point is at most 4 bytes, stray continuation bytes start a new one).
    let len = 0;
    for (let c = 0; c < bytes.length; c++) {
      if ((bytes[c] & 0xc0) !== 0x80) len = 0;
      len++;
      const next = c + 1 < bytes.length ? bytes[c + 1] : 0;
      if ((next & 0xc0) === 0x80 && len < 4) continue;
      const start = c + 1 - len;
      const id = this.lookup.get(byteKey(bytes, start, c + 1));
      if (id !== undefined) {
        ids.push(id);
      } else {
        for (let i = start; i <= c; i++) {
          const byteId = bytes[i] + 3; // <unk>, <s>, </s> come first, then <0x00>..<0xFF>
          if (byteId >= this.vocabSize) throw new Error(`byte fallback id ${byteId} is outside the vocabulary`);
          ids.push(byteId);
        }
      }
      len = 0;
    }

    const merged = this.merge(ids);
    if (opts.eos) merged.push(EOS_ID);
    return merged;
  }

  private merge(ids: number[]): number[] {
    const n = ids.length;
    if (n < 2) return ids;
    const tok = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Int32Array(n); // bumped whenever a node's token changes
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new CandidateHeap();
    const consider = (left: number) => {
      if (left < 0) return;
      const right = next[left];
      if (right < 0) return;
      const id = this.lookup.get(this.keys[tok[left]] + this.keys[tok[right]]);
      if (id === undefined) return;
      const score = this.scores[id];
      if (!(score > NO_MERGE_SCORE)) return; // run.c never picks a pair that does not beat -1e10
      heap.push({ score, left, right, id, leftVersion: version[left], rightVersion: version[right] });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (;;) {
      const c = heap.pop();
      if (!c) break;
      const { left, right } = c;
      if (!alive[left] || !alive[right] || next[left] !== right) continue;
      if (version[left] !== c.leftVersion || version[right] !== c.rightVersion) continue;
      tok[left] = c.id;
      version[left]++;
      alive[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      consider(prev[left]);
      consider(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(tok[i]);
    return out;
  }

  /**
   * run.c's decode(): the bytes to print for `token` when it follows `prev`. After BOS a
   * leading space is dropped (sentencepiece behaviour); a "<0xNN>" piece is that raw byte.
   */
  decodePiece(prev: number, token: number): Uint8Array {
    let piece = this.piece(token);
    if (prev === BOS_ID && piece.length > 0 && piece[0] === 0x20) piece = piece.subarray(1);
    const byte = parseBytePiece(piece);
    return byte === null ? piece : Uint8Array.of(byte);
  }

  /** UTF-8 text of a token sequence, decoded piece by piece as run.c does (prev starts as `prev`). */
  decode(tokens: number[], prev: number = BOS_ID): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const t of tokens) {
      const p = this.decodePiece(prev, t);
      parts.push(p);
      total += p.length;
      prev = t;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return utf8Decoder.decode(all);
  }
}

const isHex = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const hexVal = (b: number) => (b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10);
const isCSpace = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/**
 * sscanf(piece, "<0x%02hhX>", &byte) == 1: the literal "<0x", optional white space, then one or
 * two hex digits; what follows is not checked (sscanf's return value does not depend on it).
 * (A sign before the digits, which sscanf would also take, is not handled: no vocabulary has one.)
 */
function parseBytePiece(p: Uint8Array): number | null {
  if (p.length < 4 || p[0] !== 0x3c || p[1] !== 0x30 || p[2] !== 0x78) return null;
  let i = 3;
  while (i < p.length && isCSpace(p[i])) i++;
  if (i >= p.length || !isHex(p[i])) return null;
  let v = hexVal(p[i++]);
  if (i < p.length && isHex(p[i])) v = v * 16 + hexVal(p[i]);
  return v;
}

/**
 * What run.c's safe_printf actually writes for a decoded piece: nothing for an empty piece or
 * for a single byte that is neither printable nor white space in the C locale (so byte-fallback
 * bytes >= 0x80 are dropped), otherwise the piece. For comparing with run.c's output only.
 */
export function runcPrintedBytes(piece: Uint8Array): Uint8Array {
  if (piece.length === 0) return piece;
  if (piece.length === 1) {
    const b = piece[0];
    if (!((b >= 0x20 && b <= 0x7e) || isCSpace(b))) return piece.subarray(0, 0);
  }
  return piece;
}

/**
 * Streaming token → text: byte-fallback tokens can split one character across several
 * tokens, so each push returns only the characters completed so far and keeps a trailing
 * partial UTF-8 sequence for later. Invalid bytes become U+FFFD, exactly as decoding the whole
 * byte stream at once would. Decoding follows run.c (leading space dropped after BOS).
 */
export class TokenTextDecoder {
  private pending = new Uint8Array(0);
  private readonly decoder = newUtf8Decoder();

  /** `prev` is the token before the first one pushed; generation starts from BOS. */
  constructor(
    private readonly tokenizer: Llama2cTokenizer,
    private prev: number = BOS_ID,
  ) {}

  /** Add one token; returns the newly completed text (possibly ""). */
  push(token: number): string {
    const piece = this.tokenizer.decodePiece(this.prev, token);
    this.prev = token;
    const joined = new Uint8Array(this.pending.length + piece.length);
    joined.set(this.pending);
    joined.set(piece, this.pending.length);
    const cut = completePrefixLength(joined);
    this.pending = joined.slice(cut);
    return cut === 0 ? "" : this.decoder.decode(joined.subarray(0, cut));
  }

  /** Text of any bytes still held back (an incomplete sequence becomes U+FFFD); resets. */
  flush(): string {
    const rest = this.pending;
    this.pending = new Uint8Array(0);
    return rest.length === 0 ? "" : this.decoder.decode(rest);
  }
}

/**
 * Length of the prefix of `b` that can be decoded now: everything except a trailing lead byte
 * (with the continuation bytes after it) that still lacks continuation bytes. Cutting just
 * before a lead byte never changes how a UTF-8 decoder treats the bytes on either side.
 */
function completePrefixLength(b: Uint8Array): number {
  const n = b.length;
  for (let k = 1; k <= Math.min(3, n); k++) {
    const c = b[n - k];
    if ((c & 0xc0) === 0x80) continue; // continuation byte: keep looking for its lead
    const need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;
    return need > k ? n - k : n;
  }
  return n;
}

/** Binary max-heap of merge candidates: higher score first, then the leftmost pair. */
interface Candidate {
  score: number;
  left: number;
  right: number;
  id: number;
  leftVersion: number;
  rightVersion: number;
}

class CandidateHeap {
  private items: Candidate[] = [];
  private static before(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  push(c: Candidate): void {
    const h = this.items;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!CandidateHeap.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Candidate | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && CandidateHeap.before(h[l], h[m])) m = l;
        if (r < h.length && CandidateHeap.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
