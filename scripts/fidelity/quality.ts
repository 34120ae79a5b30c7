// What each quantized type costs in model quality (not part of `npm test`):
//   npx tsx scripts/fidelity/quality.ts [--positions 2048]
// For each model and type: the KL divergence of the next-token distribution from the f32
// build's, and how often the top token agrees, over `positions` positions of text the f32
// model samples itself (temperature 1, fixed seed), every build fed the same tokens. Models:
// the trained aidreams260K (its 64- and 172-wide rows are not whole 256-value blocks, so the
// K-quants fall back to q5_0 / q5_1 / q8_0 there, as llama.cpp's quantizer does) and a random
// model with trained-looking weights (heavy tails, per-row scales, outlier columns) whose rows
// are whole 256-value blocks.
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ImportedTensor, LlamaConfig } from "../../functions/model/description";
import { instantiateArtifacts } from "../build/instance";
import { buildArtifacts, type BuildInput } from "../build/pipeline";
import type { BuildQuant } from "../build/quantize";
import { expectedLlamaTensors } from "../import/types";
import { SeededRandom } from "../import/llama2c-writer";
import { loadLlama2cSource } from "../sources/load";

const QUANTS: BuildQuant[] = ["f32", "q8_0", "q6_k", "q5_k_m", "q5_k", "q5_1", "q5_0", "q4_k_m", "q4_k", "q4_1", "q4_0"];

/** Random weights shaped like a trained model's: Student-t-like tails, per-row scales, a few outlier input channels. */
function trainedLookingModel(config: LlamaConfig, seed: number): BuildInput {
  const rng = new SeededRandom(seed);
  const tensors: ImportedTensor[] = [];
  const outliers = new Set(Array.from({ length: 6 }, () => Math.floor(rng.uniform() * config.dim)));
  for (const { name, shape } of expectedLlamaTensors(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) {
      for (let i = 0; i < data.length; i++) data[i] = 1 + 0.2 * rng.normal();
    } else {
      const [rows, cols] = shape as [number, number];
      const isEmbedding = name === "token_embd.weight" || name === "output.weight";
      const std = isEmbedding ? 2 / Math.sqrt(config.dim) : 1 / Math.sqrt(cols);
      for (let r = 0; r < rows; r++) {
        const rowScale = Math.exp(0.3 * rng.normal());
        for (let c = 0; c < cols; c++) {
          // a normal divided by sqrt of a scaled chi-square with 4 degrees of freedom: heavy tails
          let chi = 0;
          for (let k = 0; k < 4; k++) chi += rng.normal() ** 2;
          let v = (std * rowScale * rng.normal()) / Math.sqrt(chi / 4) / Math.SQRT2;
          if (cols === config.dim && outliers.has(c)) v *= 6;
          data[r * cols + c] = v;
        }
      }
    }
    tensors.push({ name, shape: [...shape], data });
  }
  return { id: "quality", config, tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } };
}

async function load(input: BuildInput, quant: BuildQuant) {
  const artifacts = await buildArtifacts(input, { quant });
  const { model, caches } = await instantiateArtifacts(artifacts);
  const dtypes = [...new Set(artifacts.manifest.tensors.filter((t) => t.shape.length === 2).map((t) => t.dtype))].sort();
  const bits = (8 * artifacts.manifest.tensors.filter((t) => t.shape.length === 2).reduce((s, t) => s + t.bytes, 0)) /
    artifacts.manifest.tensors.filter((t) => t.shape.length === 2).reduce((s, t) => s + t.shape[0]! * t.shape[1]!, 0);
  return { model, cache: caches[0]!, dtypes, bits };
}

function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i]! - max);
  for (let i = 0; i < p.length; i++) p[i]! /= sum;
  return p;
}

const argmax = (a: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i;
  return b;
};

export async function measureQuality(name: string, input: BuildInput, positions: number, log = console.log): Promise<void> {
  const seqLen = input.config.seqLen;
  const sequences = Math.ceil(positions / (seqLen - 1));
  // the f32 model's own text, and its distributions
  const ref = await load(input, "f32");
  const rng = new SeededRandom(7);
  const streams: number[][] = [];
  const refProbs: Float64Array[] = [];
  for (let s = 0; s < sequences; s++) {
    const tokens = [1];
    for (let pos = 0; pos < seqLen - 1 && refProbs.length < positions; pos++) {
      const p = softmax(ref.model.forward([tokens[pos]!], pos, ref.cache));
      refProbs.push(p);
      let u = rng.uniform(), next = 0;
      for (; next < p.length - 1 && (u -= p[next]!) > 0; next++);
      tokens.push(next);
    }
    streams.push(tokens);
  }
  log(`${name}: ${refProbs.length} positions`);
  log(`| type | matrices | bits/weight | mean KL from f32 (nats) | top-1 agreement |`);
  log(`| --- | --- | --- | --- | --- |`);
  for (const quant of QUANTS.slice(1)) {
    const q = await load(input, quant);
    let kl = 0, agree = 0, i = 0;
    for (const tokens of streams) {
      for (let pos = 0; pos < tokens.length - 1 && i < refProbs.length; pos++, i++) {
        const p = refProbs[i]!;
        const qp = softmax(q.model.forward([tokens[pos]!], pos, q.cache));
        for (let j = 0; j < p.length; j++) if (p[j]! > 0) kl += p[j]! * Math.log(p[j]! / Math.max(qp[j]!, 1e-300));
        if (argmax(p) === argmax(qp)) agree++;
      }
    }
    log(`| ${quant} | ${q.dtypes.join(", ")} | ${q.bits.toFixed(2)} | ${(kl / i).toExponential(2)} | ${((100 * agree) / i).toFixed(1)}% |`);
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({ options: { positions: { type: "string", default: "2048" } } });
  const positions = Number(values.positions);
  const models = join(import.meta.dirname, "..", "..", "..", "shared", "models");
  await measureQuality("aidreams260K (trained)", loadLlama2cSource(join(models, "aidreams260K.bin"), join(models, "aidreams260K.tok512.bin"), "aidreams"), positions);
  const config: LlamaConfig = { architecture: "llama", dim: 512, hiddenDim: 1536, nLayers: 4, nHeads: 8, nKvHeads: 8, vocabSize: 4096, seqLen: 512, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false };
  await measureQuality("trained-looking random model (dim 512, hidden 1536, 4 layers, vocab 4096)", trainedLookingModel(config, 11), positions);
}
