// The real test models (aidreams260K, its tokenizer, the Llama 2 tokenizer), found the way
// `npm start` finds its model (scripts/default-model.ts): EDGEINFER_MODEL_DIR, the download
// cache, ../shared/models, else downloaded and checked by sha256. The global setup
// (test/setup/models.ts) resolves them once, downloading if needed, and passes their paths on
// in EDGEINFER_TEST_MODELS; they are never copied into the repository.
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_MODEL, findModelFiles, LLAMA2_TOKENIZER as LLAMA2_TOKENIZER_FILE, type ModelFile } from "../../scripts/default-model";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export const AIDREAMS = DEFAULT_MODEL.checkpoint.name;
export const AIDREAMS_TOKENIZER = DEFAULT_MODEL.tokenizer.name;
export const LLAMA2_TOKENIZER = LLAMA2_TOKENIZER_FILE.name;

/** Every model file the tests read. */
export const TEST_MODEL_FILES: readonly ModelFile[] = [DEFAULT_MODEL.checkpoint, DEFAULT_MODEL.tokenizer, LLAMA2_TOKENIZER_FILE];

/** JSON {file name: path}, set by the global setup. */
export const TEST_MODELS_ENV = "EDGEINFER_TEST_MODELS";

let found: Record<string, string> | undefined;

/** name -> path of the test models: as the global setup resolved them, else found (without downloading) in the same places. */
export function testModelPaths(): Record<string, string> {
  const passed = process.env[TEST_MODELS_ENV];
  if (passed) return JSON.parse(passed) as Record<string, string>;
  return (found ??= findModelFiles(TEST_MODEL_FILES));
}

export function sharedModelPath(name: string): string {
  const path = testModelPaths()[name];
  if (!path || !existsSync(path)) {
    throw new Error(`missing test model ${name}: not in EDGEINFER_MODEL_DIR, ~/.cache/edgeinfer/models or ../shared/models, and not downloaded (run the tests through vitest: its global setup, test/setup/models.ts, downloads what is missing)`);
  }
  return path;
}

export function hasSharedModel(name: string): boolean {
  return testModelPaths()[name] !== undefined;
}

/** The file's bytes; a missing file throws, saying where it was looked for. */
export function readSharedModel(name: string): Uint8Array {
  return new Uint8Array(readFileSync(sharedModelPath(name)));
}
