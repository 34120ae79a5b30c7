// Access to the shared real test models in ../shared/models (relative to the repo root).
// They are never copied into the repository; see ../shared/models/README.md for their sources.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const sharedModelsDir = resolve(repoRoot, "../shared/models");

export function sharedModelPath(name: string): string {
  return resolve(sharedModelsDir, name);
}

export function hasSharedModel(name: string): boolean {
  return existsSync(sharedModelPath(name));
}

/** The file's bytes; a missing file throws, pointing at the README that says where it comes from. */
export function readSharedModel(name: string): Uint8Array {
  const path = sharedModelPath(name);
  if (!existsSync(path)) {
    throw new Error(`missing test model ${path}: see ${resolve(sharedModelsDir, "README.md")} (or the project notes) for its source`);
  }
  return new Uint8Array(readFileSync(path));
}

export const AIDREAMS = "aidreams260K.bin";
export const AIDREAMS_TOKENIZER = "aidreams260K.tok512.bin";
export const LLAMA2_TOKENIZER = "llama2-tokenizer.bin";
