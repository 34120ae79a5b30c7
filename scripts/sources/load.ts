// A model source -> the build's input. Which loader runs depends on what the source is:
//   hf:<org>/<repo>[@revision]   downloaded from the Hugging Face Hub (cached), then as a folder
//   <folder>                     a Hugging Face model folder (config.json, safetensors, tokenizer.json)
//   <file>.gguf                  a GGUF file (Q8_0 / Q4_0 blocks kept as they are)
//   <file>                       a llama2.c checkpoint, with --tokenizer <tokenizer.bin>

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readGguf, ggufTokenizerToHf } from "../import/gguf";
import { readHfModel } from "../import/hf";
import { readLlama2cCheckpoint } from "../import/llama2c";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import type { BuildInput } from "../build/pipeline";
import { CliError } from "../commands/command";
import { downloadFromHub, parseHubSource } from "./hf-hub";
import { packHfTokenizer, packHfTokenizerFromObjects, type PackedHfTokenizer } from "./hf-tokenizer";

export interface SourceOptions {
  id: string;
  /** llama2.c tokenizer.bin (required for llama2.c checkpoints, ignored otherwise). */
  tokenizer?: string;
  /** Cap the context at this many tokens when reading. */
  maxContext?: number;
  json: boolean;
}

export async function loadSource(source: string, options: SourceOptions): Promise<BuildInput & { sourceKind: string }> {
  const hub = parseHubSource(source);
  if (hub) return { ...loadHfFolder(await downloadFromHub(hub, options.json), options), sourceKind: "hf" };
  if (!existsSync(source)) throw new CliError(`no such file or folder: ${source}`);
  if (statSync(source).isDirectory()) return { ...loadHfFolder(source, options), sourceKind: "hf" };
  if (source.endsWith(".gguf")) return { ...loadGgufFile(source, options), sourceKind: "gguf" };
  if (!options.tokenizer) throw new CliError("--tokenizer <tokenizer.bin> is required for a llama2.c checkpoint");
  return { ...loadLlama2cSource(source, options.tokenizer, options.id), sourceKind: "llama2c" };
}

export function loadLlama2cSource(checkpointPath: string, tokenizerPath: string, id: string): BuildInput {
  const checkpoint = readFile(checkpointPath, "checkpoint");
  const tokenizerBytes = readFile(tokenizerPath, "tokenizer");
  let imported;
  try {
    imported = readLlama2cCheckpoint(checkpoint);
  } catch (e) {
    throw new CliError(`${checkpointPath} is not a llama2.c checkpoint we can read: ${(e as Error).message}`);
  }
  try {
    Llama2cTokenizer.fromBytes(tokenizerBytes, imported.config.vocabSize);
  } catch (e) {
    throw new CliError(`${tokenizerPath} is not a llama2.c tokenizer for a vocabulary of ${imported.config.vocabSize}: ${(e as Error).message}`);
  }
  return {
    id,
    config: imported.config,
    tensors: imported.tensors,
    tokenizer: { kind: "llama2c", bytes: tokenizerBytes, bosId: 1, eosId: 2 },
  };
}

function loadHfFolder(dir: string, options: SourceOptions): BuildInput {
  if (!existsSync(join(dir, "config.json"))) throw new CliError(`${dir} is not a Hugging Face model folder: it has no config.json`);
  let model;
  let tokenizer: PackedHfTokenizer;
  try {
    model = readHfModel(dir, { maxContext: options.maxContext });
  } catch (e) {
    throw new CliError(`${dir}: ${(e as Error).message}`);
  }
  try {
    tokenizer = packHfTokenizer(dir);
  } catch (e) {
    throw new CliError(`${dir}: tokenizer: ${(e as Error).message}`);
  }
  return hfInput(options.id, model.config, model.tensors, tokenizer);
}

function loadGgufFile(path: string, options: SourceOptions): BuildInput {
  let model;
  try {
    model = readGguf(path, { maxContext: options.maxContext });
  } catch (e) {
    throw new CliError(`${path}: ${(e as Error).message}`);
  }
  if (!model.tokenizer) throw new CliError(`${path} carries no tokenizer (tokenizer.ggml.*)`);
  let tokenizer: PackedHfTokenizer;
  try {
    const files = ggufTokenizerToHf(model.tokenizer);
    tokenizer = packHfTokenizerFromObjects({
      tokenizer: files.tokenizer,
      tokenizerConfig: files.config,
      config: { vocab_size: model.vocabSize, bos_token_id: model.tokenizer.bosTokenId, eos_token_id: model.tokenizer.eosTokenId },
    });
  } catch (e) {
    throw new CliError(`${path}: tokenizer: ${(e as Error).message}`);
  }
  return hfInput(options.id, model.config, model.tensors, tokenizer);
}

function hfInput(id: string, config: BuildInput["config"], tensors: BuildInput["tensors"], tokenizer: PackedHfTokenizer): BuildInput {
  return {
    id,
    config,
    tensors,
    tokenizer: { kind: "hf", bytes: tokenizer.bytes, bosId: tokenizer.bosId, eosId: tokenizer.eosId },
  };
}

function readFile(path: string, what: string): Uint8Array {
  try {
    if (!statSync(path).isFile()) throw new Error("not a file");
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}
