// Build llama2.c tokenizer.bin files in tests, and an obviously-run.c-shaped encoder to check
// the real one against.

export interface VocabEntry {
  piece: string | Uint8Array;
  score: number;
}

const enc = new TextEncoder();
const asBytes = (p: string | Uint8Array) => (typeof p === "string" ? enc.encode(p) : p);

/** Serialize entries as tokenizer.bin: int32 max_token_length, then (f32 score, int32 len, bytes) each. */
export function buildTokenizerBin(entries: VocabEntry[], maxTokenLength?: number): Uint8Array {
  const pieces = entries.map((e) => asBytes(e.piece));
  const max = maxTokenLength ?? pieces.reduce((m, p) => Math.max(m, p.length), 0);
  const size = 4 + pieces.reduce((n, p) => n + 8 + p.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setInt32(0, max, true);
  let o = 4;
  entries.forEach((e, i) => {
    view.setFloat32(o, e.score, true);
    view.setInt32(o + 4, pieces[i].length, true);
    out.set(pieces[i], o + 8);
    o += 8 + pieces[i].length;
  });
  return out;
}

/** The 259 entries every llama2.c vocabulary starts with: <unk>, <s>, </s>, <0x00>..<0xFF>. */
export function baseEntries(): VocabEntry[] {
  const entries: VocabEntry[] = [
    { piece: "<unk>", score: 0 },
    { piece: "\n<s>\n", score: 0 },
    { piece: "\n</s>\n", score: 0 },
  ];
  for (let b = 0; b < 256; b++) entries.push({ piece: `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, score: 0 });
  return entries;
}

/**
 * run.c's encode written the way run.c writes it: linear lookups, rescan every pair after each
 * merge. Slow; only for checking the real encoder. Pieces are compared as byte strings.
 */
export function naiveRuncEncode(pieces: Uint8Array[], scores: ArrayLike<number>, text: Uint8Array, bos: boolean, eos: boolean): number[] {
  const key = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");
  const keys = pieces.map(key);
  const find = (k: string) => keys.indexOf(k);
  const nul = text.indexOf(0);
  if (nul >= 0) text = text.subarray(0, nul);
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  if (text.length > 0) tokens.push(find(" "));
  let buf: number[] = [];
  for (let c = 0; c < text.length; c++) {
    if ((text[c] & 0xc0) !== 0x80) buf = [];
    buf.push(text[c]);
    const next = c + 1 < text.length ? text[c + 1] : 0;
    if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = find(key(Uint8Array.from(buf)));
    if (id !== -1) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  for (;;) {
    let bestScore = Math.fround(-1e10);
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = find(keys[tokens[i]] + keys[tokens[i + 1]]);
      if (id !== -1 && scores[id] > bestScore) {
        bestScore = scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  if (eos) tokens.push(2);
  return tokens;
}

/** Pieces and scores straight out of a tokenizer.bin (independent of the runtime's parser). */
export function parseTokenizerBin(bytes: Uint8Array, vocabSize: number): { pieces: Uint8Array[]; scores: Float32Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: Uint8Array[] = [];
  const scores = new Float32Array(vocabSize);
  let o = 4;
  for (let i = 0; i < vocabSize; i++) {
    scores[i] = view.getFloat32(o, true);
    const len = view.getInt32(o + 4, true);
    pieces.push(bytes.slice(o + 8, o + 8 + len));
    o += 8 + len;
  }
  return { pieces, scores };
}

/**
 * A small llama-style vocabulary for random models: the 259 base entries, " ", the printable
 * ASCII letters, then merges of frequent English fragments with descending scores, padded with
 * unused entries up to vocabSize. Deterministic.
 */
export function syntheticVocab(vocabSize: number): VocabEntry[] {
  const entries = baseEntries();
  const seen = new Set(entries.map((e) => String(e.piece)));
  const add = (piece: string, score: number) => {
    if (entries.length < vocabSize && !seen.has(piece)) {
      seen.add(piece);
      entries.push({ piece, score });
    }
  };
  const merges = [" t", "he", " a", "in", " the", "er", "on", " s", "an", "re", " o", "at", "en", "nd", " w", " c", "ou", "it", "is", " b", "ing", " and", " to", "ed", " h", " f", "or", " in", "es", " p", "ar", " m", "al", " d", "Once", " upon", " time", " é", "é"];
  merges.forEach((m, i) => add(m, -i));
  add(" ", -1000);
  for (let c = 0x21; c < 0x7f; c++) add(String.fromCharCode(c), -2000);
  for (let i = 0; entries.length < vocabSize; i++) add(`<unused${i}>`, -1e6);
  return entries;
}
