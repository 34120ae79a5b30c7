// edgeinfer gen-random: a random-weight llama2.c checkpoint of a published shape (or any
// shape), for speed and memory work and for tests: same work per token as the real model.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { LlamaConfig } from "../../functions/model/description";
import { randomLlamaModel, shapes, writeLlama2cCheckpoint } from "../import/llama2c-writer";
import { CliError, type Command } from "./command";

export const genRandomCommand: Command = {
  summary: "write a random-weight llama2.c checkpoint (--shape stories15M|stories42M|stories110M or --dim ...)",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        shape: { type: "string" },
        out: { type: "string" },
        seed: { type: "string", default: "1" },
        version: { type: "string", default: "0" },
        dim: { type: "string" },
        hidden: { type: "string" },
        layers: { type: "string" },
        heads: { type: "string" },
        "kv-heads": { type: "string" },
        vocab: { type: "string" },
        "seq-len": { type: "string" },
        untied: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
    if (!values.out) throw new CliError("--out <file> is required");
    const base = values.shape ? (shapes as Record<string, Omit<LlamaConfig, "architecture" | "normEps" | "ropeTheta" | "ropeLayout" | "tiedEmbeddings">>)[values.shape] : undefined;
    if (values.shape && !base) throw new CliError(`unknown shape ${values.shape}; known: ${Object.keys(shapes).join(", ")}`);
    const int = (v: string | undefined, fallback: number | undefined, flag: string): number => {
      const n = v === undefined ? fallback : Number(v);
      if (n === undefined || !Number.isInteger(n) || n < 1) throw new CliError(`${flag} must be a positive integer`);
      return n;
    };
    const config: LlamaConfig = {
      architecture: "llama",
      dim: int(values.dim, base?.dim, "--dim"),
      hiddenDim: int(values.hidden, base?.hiddenDim, "--hidden"),
      nLayers: int(values.layers, base?.nLayers, "--layers"),
      nHeads: int(values.heads, base?.nHeads, "--heads"),
      nKvHeads: int(values["kv-heads"], base?.nKvHeads ?? (values.heads ? Number(values.heads) : undefined), "--kv-heads"),
      vocabSize: int(values.vocab, base?.vocabSize, "--vocab"),
      seqLen: int(values["seq-len"], base?.seqLen, "--seq-len"),
      normEps: 1e-5,
      ropeTheta: 10000,
      ropeLayout: "interleaved",
      tiedEmbeddings: !values.untied,
    };
    if (config.dim % config.nHeads !== 0 || config.nHeads % config.nKvHeads !== 0) {
      throw new CliError("--dim must be a multiple of --heads, and --heads a multiple of --kv-heads");
    }
    const version = Number(values.version);
    if (version !== 0 && version !== 1) throw new CliError("--version must be 0 (legacy) or 1");
    const bytes = writeLlama2cCheckpoint(randomLlamaModel(config, Number(values.seed)), version);
    writeFileSync(values.out, bytes);
    if (values.json) console.log(JSON.stringify({ ok: true, out: values.out, bytes: bytes.byteLength, config }));
    else console.log(`wrote ${values.out} (${bytes.byteLength} bytes): ${JSON.stringify(config)}`);
  },
};
