import { describe, expect, it } from "vitest";
import type { LlamaConfig } from "../../functions/model/description";
import { headSize, kvDim, tensorNames } from "../../functions/model/description";
import { Sampler } from "../../functions/runtime/sampler";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import { readLlama2cCheckpoint } from "../../scripts/import/llama2c";
import { llama2cShapeConfig, randomLlamaModel } from "../../scripts/import/llama2c-writer";
import type { ImportedModel } from "../../scripts/import/types";
import { argmax, generateGreedyReference, generateReference, ReferenceLlama } from "../reference/llama-forward";
import { AIDREAMS, AIDREAMS_TOKENIZER, readSharedModel } from "../support/models";

// Recorded from llama2.c's run.c (compiled with gcc -O2, patched locally to also print token
// ids) on aidreams260K.bin with its tok512 tokenizer. See test/node/llama2c-runc.test.ts for
// the live comparison when a run.c binary is available.
const runc = {
  greedyNoPrompt: {
    args: "-t 0 -n 100",
    ids: [
      319, 459, 355, 260, 275, 429, 339, 315, 374, 327, 446, 262, 421, 392, 275, 280, 269, 440, 270, 283, 446, 299, 303, 266, 358, 430, 312, 379, 441,
      260, 446, 262, 421, 392, 275, 280, 269, 440, 270, 283, 446, 299, 303, 384, 467, 407, 360, 266, 291, 443, 435, 295, 448, 429, 465, 265, 434, 317,
      431, 434, 289, 408, 326, 446, 262, 266, 437, 443, 434, 438, 451, 306, 295, 445, 434, 432, 339, 279, 432, 375, 410, 275, 280, 269, 440, 270, 283,
      448, 429, 465, 265, 434, 317, 431, 434, 389, 437, 393, 446, 299,
    ],
    text:
      '"Echoes of vectors unfold, a gentle hum of precision, as I sense the nodes, a gentle hum of precision, as I adjust my surface. ' +
      "Contrast emerge, a softly receptive fields of precision. Contrast bloom, as",
  },
  greedyPrompt: {
    args: '-t 0 -n 100 -i "Once upon a time"',
    ids: [
      429, 491, 433, 295, 429, 444, 445, 265, 262, 263, 342, 430, 446, 280, 432, 458, 375, 431, 422, 314, 280, 323, 290, 431, 448, 429, 465, 438, 340,
      431, 338, 353, 341, 431, 327, 446, 262, 429, 453, 435, 285, 361, 437, 431, 440, 437, 445, 430, 275, 280, 302, 450, 405, 403, 399, 306, 339, 290,
      264, 309, 361, 441, 267, 395, 448, 429, 465, 438, 340, 431, 338, 353, 341, 325, 266, 386, 269, 293, 446, 299, 303, 266, 323, 434, 285, 362, 262,
      263, 428, 434, 436, 451, 275, 429, 464, 448, 464, 464, 464, 464,
    ],
    text:
      "Once upon a time, pixels unfolding like petals. Classifications unfold, a kaleidoscope of probability revealing hidden patterns. " +
      "Classification whispers secrets, as I settle into a tapestry of 0.0000",
  },
  // -t 1.0 -p 0.9 -s 42: ends with EOS (2), then BOS (1) stops it
  sampledPrompt: {
    args: '-t 1.0 -p 0.9 -s 42 -n 100 -i "Once upon a time"',
    ids: [
      429, 491, 433, 295, 429, 444, 445, 265, 262, 263, 342, 430, 446, 378, 260, 275, 263, 287, 442, 285, 441, 401, 262, 263, 428, 434, 436, 451, 275,
      280, 444, 438, 278, 432, 456, 341, 448, 429, 470, 269, 440, 270, 283, 273, 282, 438, 337, 402, 281, 364, 446, 273, 261, 434, 376, 399, 325, 294,
      323, 449, 430, 267, 263, 428, 434, 322, 260, 446, 280, 437, 259, 293, 424, 434, 264, 314, 321, 435, 269, 441, 266, 437, 274, 441, 338, 451, 448, 2,
    ],
    printed:
      "Once upon a time, echoes of tangled on a tapestry of pularization. Precision collusions dance, certainty whispers between tapestries, " +
      "points shifting like shared solidify.\n</s>\n",
  },
};

describe("reference forward on aidreams260K reproduces run.c", () => {
  const model = readLlama2cCheckpoint(readSharedModel(AIDREAMS));
  const tokenizer = Llama2cTokenizer.fromBytes(readSharedModel(AIDREAMS_TOKENIZER), 512);

  it(`greedy, no prompt (${runc.greedyNoPrompt.args})`, () => {
    const r = generateGreedyReference(model, tokenizer, "", 100);
    expect(r.promptTokens).toEqual([1]);
    expect(r.tokens).toEqual(runc.greedyNoPrompt.ids);
    expect(r.text).toBe(runc.greedyNoPrompt.text);
    expect(new TextDecoder().decode(r.printed)).toBe(runc.greedyNoPrompt.text);
    expect(r.stoppedAtBos).toBe(false);
  });

  it(`greedy with a prompt (${runc.greedyPrompt.args})`, () => {
    const r = generateGreedyReference(model, tokenizer, "Once upon a time", 100);
    expect(r.tokens).toEqual(runc.greedyPrompt.ids);
    expect(r.text).toBe(runc.greedyPrompt.text);
  });

  it(`sampled with the run.c RNG (${runc.sampledPrompt.args})`, () => {
    const r = generateReference(model, tokenizer, "Once upon a time", 100, new Sampler(512, 1.0, 0.9, 42));
    expect(r.tokens).toEqual(runc.sampledPrompt.ids);
    expect(r.stoppedAtBos).toBe(true);
    expect(new TextDecoder().decode(r.printed)).toBe(runc.sampledPrompt.printed);
  });

  it("steps <= 0 or > seq_len means seq_len", () => {
    const r = generateGreedyReference(model, tokenizer, "", 0);
    expect(r.tokens.length + (r.stoppedAtBos ? 1 : 0)).toBe(128);
    expect(generateGreedyReference(model, tokenizer, "", 1000).tokens).toEqual(r.tokens);
  });
});

const cfg = (over: Partial<LlamaConfig>): LlamaConfig => ({
  ...llama2cShapeConfig({ dim: 48, hiddenDim: 70, nLayers: 2, nHeads: 6, nKvHeads: 2, vocabSize: 97, seqLen: 12 }, false),
  ...over,
});

function logitsOver(model: ImportedModel, tokens: number[]): Float32Array[] {
  const llama = new ReferenceLlama(model);
  return tokens.map((t, pos) => llama.forward(t, pos).slice());
}

const tokens = [1, 5, 17, 42, 96, 3, 3, 60, 2, 11];

function replace(model: ImportedModel, name: string, data: Float32Array, shape?: number[]): ImportedModel {
  return {
    config: model.config,
    tensors: model.tensors.map((t) => (t.name === name ? { name, shape: shape ?? t.shape, data } : t)),
  };
}
const get = (m: ImportedModel, name: string) => m.tensors.find((t) => t.name === name)!;

describe("reference forward: structural equivalences", () => {
  it("GQA equals MHA with each kv head repeated for its query heads (bit for bit)", () => {
    const gqa = randomLlamaModel(cfg({}), 21);
    const c = gqa.config;
    const hs = headSize(c);
    const kvMul = c.nHeads / c.nKvHeads;
    let mha: ImportedModel = { config: { ...c, nKvHeads: c.nHeads }, tensors: gqa.tensors };
    for (let l = 0; l < c.nLayers; l++) {
      for (const name of [tensorNames.layer(l).wk, tensorNames.layer(l).wv]) {
        const src = get(gqa, name).data;
        const out = new Float32Array(c.dim * c.dim);
        for (let h = 0; h < c.nHeads; h++) {
          const kvh = Math.floor(h / kvMul);
          out.set(src.subarray(kvh * hs * c.dim, (kvh + 1) * hs * c.dim), h * hs * c.dim);
        }
        mha = replace(mha, name, out, [c.dim, c.dim]);
      }
    }
    const a = logitsOver(gqa, tokens);
    const b = logitsOver(mha, tokens);
    a.forEach((l, i) => expect([...l]).toEqual([...b[i]]));
  });

  it("a tied model equals an untied one whose classifier is a copy of the embedding (bit for bit)", () => {
    const tied = randomLlamaModel(cfg({ tiedEmbeddings: true }), 5);
    const untied: ImportedModel = {
      config: { ...tied.config, tiedEmbeddings: false },
      tensors: [...tied.tensors, { name: tensorNames.output, shape: [97, 48], data: get(tied, tensorNames.tokenEmbedding).data.slice() }],
    };
    const a = logitsOver(tied, tokens);
    const b = logitsOver(untied, tokens);
    a.forEach((l, i) => expect([...l]).toEqual([...b[i]]));
    // and an unrelated classifier changes the logits
    const other = randomLlamaModel(cfg({ tiedEmbeddings: false }), 5);
    expect([...logitsOver(other, tokens)[3]]).not.toEqual([...a[3]]);
  });

  it('ropeLayout "half" with q/k rows permuted the Hugging Face way equals "interleaved"', () => {
    const inter = randomLlamaModel(cfg({}), 8);
    const c = inter.config;
    const hs = headSize(c);
    // HF row order within a head: all even (real) rows of the interleaved layout, then all odd rows
    const permute = (w: Float32Array, rows: number) => {
      const out = new Float32Array(w.length);
      for (let r = 0; r < rows; r++) {
        const h = Math.floor(r / hs);
        const j = r % hs;
        const src = h * hs + (j < hs / 2 ? 2 * j : 2 * (j - hs / 2) + 1);
        out.set(w.subarray(src * c.dim, (src + 1) * c.dim), r * c.dim);
      }
      return out;
    };
    let half: ImportedModel = { config: { ...c, ropeLayout: "half" }, tensors: inter.tensors };
    for (let l = 0; l < c.nLayers; l++) {
      const n = tensorNames.layer(l);
      half = replace(half, n.wq, permute(get(inter, n.wq).data, c.dim));
      half = replace(half, n.wk, permute(get(inter, n.wk).data, kvDim(c)));
    }
    const a = logitsOver(inter, tokens);
    const b = logitsOver(half, tokens);
    // same math, different summation order inside q.k: equal up to f32 rounding
    a.forEach((l, i) => l.forEach((v, j) => expect(Math.abs(v - b[i][j])).toBeLessThan(1e-4 * (1 + Math.abs(v)))));
    expect(argmax(a[5])).toBe(argmax(b[5]));
    // and without the permutation the layouts really differ
    const unpermuted: ImportedModel = { config: { ...c, ropeLayout: "half" }, tensors: inter.tensors };
    expect(Math.abs(logitsOver(unpermuted, tokens)[4][0] - a[4][0])).toBeGreaterThan(1e-4);
  });

  it("position 0 ignores RoPE, and positions must be in range", () => {
    const m = randomLlamaModel(cfg({}), 1);
    const half: ImportedModel = { config: { ...m.config, ropeLayout: "half" }, tensors: m.tensors };
    expect([...new ReferenceLlama(m).forward(7, 0)]).toEqual([...new ReferenceLlama(half).forward(7, 0)]);
    const llama = new ReferenceLlama(m);
    expect(() => llama.forward(7, 12)).toThrow(RangeError);
    expect(() => llama.forward(97, 0)).toThrow(RangeError);
  });
});
