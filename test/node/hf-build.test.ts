// Hugging Face and GGUF models through the real build path (loadSource -> buildArtifacts ->
// shards) and the runtime (our kernels), held against the plain Hugging Face-semantics
// reference forward pass, for every family.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { quantizeQ8_0, type DType } from "../../kernels/quant";
import { kvKeys } from "../../functions/model/manifest";
import { tokenizerFromBytes } from "../../functions/runtime/tokenizer/index";
import { buildArtifacts, type BuildArtifacts, type BuildInput } from "../../scripts/build/pipeline";
import { writeGguf } from "../../scripts/import/gguf-writer";
import type { GgufTokenizerMeta } from "../../scripts/import/gguf";
import { readHfModel } from "../../scripts/import/hf";
import { writeTinyHfCheckpoint, type HfFamily } from "../../scripts/import/hf-writer";
import { loadSource } from "../../scripts/sources/load";
import { hfForward } from "../reference/hf-forward";
import { maxRelError, runtimeFor } from "../support/runtime";
import { gpt2TokenizerJson, writeHfTokenizerDir, type HfFamily as TokenizerFamily } from "../support/hf-fixtures";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** The special token ids of each tokenizer, for the checkpoint's config.json. */
const SPECIAL_IDS: Record<TokenizerFamily, { bos_token_id: number; eos_token_id: number }> = {
  tinyllama: { bos_token_id: 1, eos_token_id: 2 },
  llama2: { bos_token_id: 1, eos_token_id: 2 },
  llama3: { bos_token_id: 128000, eos_token_id: 128001 },
  qwen: { bos_token_id: 151643, eos_token_id: 151645 },
  gpt2: { bos_token_id: 50256, eos_token_id: 50256 },
};

/** Each model family with a tokenizer of its kind (the vocabulary sets the embedding's rows). */
const FAMILIES: Array<[HfFamily, TokenizerFamily, number]> = [
  ["llama", "tinyllama", 32000],
  ["llama3", "llama3", 128256],
  ["tinyllama", "tinyllama", 32000],
  ["smollm2", "gpt2", 50257],
  ["mistral", "tinyllama", 32000],
  ["qwen2", "qwen", 151936],
  ["gpt2", "gpt2", 50257],
];

function hfFolder(family: HfFamily, tokenizer: TokenizerFamily, vocabSize: number): string {
  const dir = mkdtempSync(join(tmpdir(), `edgeinfer-hf-${family}-`));
  dirs.push(dir);
  writeHfTokenizerDir(tokenizer, { dir });
  writeTinyHfCheckpoint(dir, { family, vocabSize, seed: 5, configOverrides: SPECIAL_IDS[tokenizer] });
  return dir;
}



describe.each(FAMILIES)("%s checkpoint (tokenizer %s)", (family, tokenizerFamily, vocabSize) => {
  const dir = hfFolder(family, tokenizerFamily, vocabSize);
  const reference = readHfModel(dir);
  let input: BuildInput;

  it("loads as a build source with its own tokenizer", async () => {
    input = await loadSource(dir, { id: `tiny-${family}`, json: true });
    expect(input.config.architecture).toBe(family === "gpt2" ? "gpt2" : "llama");
    expect(input.tokenizer.kind).toBe("hf");
    const tokenizer = tokenizerFromBytes("hf", input.tokenizer.bytes, vocabSize);
    const ids = tokenizer.encode("Hello world, héllo 世界", { bos: false });
    expect(tokenizer.decode(ids, -1)).toBe("Hello world, héllo 世界");
  });

  it("at f32: a prompt step with allLogits hands over every position's logits (prompt logprobs), each equal to the reference", async () => {
    input ??= await loadSource(dir, { id: `tiny-${family}`, json: true });
    const { model, cache } = await runtimeFor(await buildArtifacts(input, { quant: "f32" }));
    const tokens = [5, 17, 300, 42, 7, 99, 1000, 3, 11, 250];
    const expected = hfForward(reference, tokens);
    const seen: number[] = [];
    let worst = 0;
    model.step([{ cache, pos: 0, tokens, wantLogits: true, allLogits: true }], (item, logits, index) => {
      expect(item).toBe(0);
      seen.push(index);
      worst = Math.max(worst, maxRelError(logits, Float32Array.from(expected[index])));
    });
    expect(seen).toEqual(tokens.map((_, i) => i));
    expect(worst).toBeLessThan(1e-4);
  });

  for (const quant of ["f32", "q8_0", "q4_0"] as DType[]) {
    it(`at ${quant}: logits follow the reference forward pass`, async () => {
      input ??= await loadSource(dir, { id: `tiny-${family}`, json: true });
      const { model, cache } = await runtimeFor(await buildArtifacts(input, { quant }));
      const tokens = [5, 17, 300, 42, 7, 99, 1000, 3, 11, 250];
      const expected = hfForward(reference, tokens);
      let worst = 0;
      tokens.forEach((t, pos) => {
        worst = Math.max(worst, maxRelError(model.forward([t], pos, cache), Float32Array.from(expected[pos])));
      });
      console.log(`${family} ${quant}: max logit error ${(worst * 100).toFixed(3)}% of max |logit|`);
      expect(worst).toBeLessThan({ f32: 1e-4, q8_0: 0.06, q4_0: 0.6 }[quant as "f32" | "q8_0" | "q4_0"]);
    });
  }
});

/** GPT-2's tokenizer.json as GGUF stores a byte-level BPE vocabulary. */
function gpt2GgufTokenizer(): GgufTokenizerMeta {
  const json = gpt2TokenizerJson() as {
    model: { vocab: Record<string, number>; merges: Array<string | [string, string]> };
    added_tokens?: Array<{ id: number; content: string }>;
  };
  const tokens: string[] = [];
  for (const [token, id] of Object.entries(json.model.vocab)) tokens[id] = token;
  for (const t of json.added_tokens ?? []) tokens[t.id] = t.content;
  return {
    model: "gpt2",
    pre: "gpt-2",
    tokens,
    tokenTypes: tokens.map((t) => (t === "<|endoftext|>" ? 3 : 1)),
    merges: json.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m)),
    bosTokenId: 50256,
    eosTokenId: 50256,
  };
}

describe("GGUF", () => {
  for (const [family, arch] of [["llama", "llama"], ["qwen2", "qwen2"]] as const) {
    it(`${family}: Q8_0 blocks are copied byte for byte and greedy tokens equal the safetensors build at q8_0`, async () => {
      const dir = hfFolder(family, "gpt2", 50257);
      const hf = readHfModel(dir);
      const ggufPath = join(dir, "model.gguf");
      writeFileSync(ggufPath, writeGguf(hf, { quant: "q8_0", arch, tokenizer: gpt2GgufTokenizer() }));

      const fromGguf = await buildArtifacts(await loadSource(ggufPath, { id: "g", json: true }), { quant: "q8_0" });
      const fromHf = await buildArtifacts(await loadSource(dir, { id: "h", json: true }), { quant: "q8_0" });

      // The blob holds the GGUF's own blocks: compare one matrix against quantizing the source.
      const entry = fromGguf.manifest.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!;
      const blob = new Uint8Array(fromGguf.manifest.weights.bytes);
      let offset = 0;
      const shards = new Map(fromGguf.entries.map((e) => [e.key, e.value]));
      for (const s of fromGguf.manifest.weights.shards) {
        blob.set(shards.get(kvKeys.shard(s.sha256))!, offset);
        offset += s.bytes;
      }
      const source = hf.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!;
      expect(blob.subarray(entry.offset, entry.offset + entry.bytes)).toEqual(quantizeQ8_0(source.data, source.shape[0], source.shape[1]));
      expect(fromGguf.tensors.find((t) => t.name === entry.name)!.relRmsError).toBe(0);

      const greedy = async (artifacts: BuildArtifacts) => {
        const { model, cache } = await runtimeFor(artifacts);
        const out = [5];
        for (let pos = 0; pos < 24; pos++) {
          const logits = model.forward([out[pos]], pos, cache);
          let best = 0;
          for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
          out.push(best);
        }
        return out;
      };
      expect(await greedy(fromGguf)).toEqual(await greedy(fromHf));
    });
  }
});
