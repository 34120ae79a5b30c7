// A model source on disk -> the build's input. llama2.c checkpoints for now; other formats
// plug in here as further loaders.

import { readFileSync, statSync } from "node:fs";
import { readLlama2cCheckpoint } from "../import/llama2c";
import { Llama2cTokenizer } from "../../functions/runtime/tokenizer/llama2c";
import type { BuildInput } from "../build/pipeline";
import { CliError } from "../commands/command";

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

function readFile(path: string, what: string): Uint8Array {
  try {
    if (!statSync(path).isFile()) throw new Error("not a file");
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}
