// edgeinfer gen-random: a random-weight llama2.c checkpoint of a published shape (or any
// shape), for speed and memory work and for tests: same work per token as the real model.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { LlamaConfig } from "../../functions/model/description";
import { randomLlamaModel, shapes, writeLlama2cCheckpoint } from "../import/llama2c-writer";
import { CliError, jsonOption, type Command, type OptionSpecs } from "./command";

const genRandomOptions = {
  out: { type: "string", value: "FILE", help: "where to write the checkpoint (required)" },
  shape: { type: "string", value: "NAME", help: "a published shape: stories15M, stories42M or stories110M" },
  seed: { type: "string", default: "1", value: "N", help: "random seed" },
  version: { type: "string", default: "0", value: "0|1", help: "llama2.c checkpoint version" },
  dim: { type: "string", value: "N", help: "model width (overrides the shape's)" },
  hidden: { type: "string", value: "N", help: "feed-forward width" },
  layers: { type: "string", value: "N", help: "layers" },
  heads: { type: "string", value: "N", help: "attention heads" },
  "kv-heads": { type: "string", value: "N", help: "key/value heads (grouped-query attention when fewer than --heads)" },
  vocab: { type: "string", value: "N", help: "vocabulary size" },
  "seq-len": { type: "string", value: "N", help: "context length" },
  untied: { type: "boolean", default: false, help: "a separate classifier instead of the tied embedding" },
  ...jsonOption,
} as const satisfies OptionSpecs;

export const genRandomCommand: Command = {
  summary: "write a random-weight llama2.c checkpoint (--shape stories15M|stories42M|stories110M or --dim ...)",
  usage: "gen-random --out <file> (--shape <name> | --dim N --hidden N ...) [options]",
  options: genRandomOptions,
  async run(args) {
    const { values } = parseArgs({ args, options: genRandomOptions, strict: true });
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
