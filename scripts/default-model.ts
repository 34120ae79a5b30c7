// Where model files come from, for `npm start` and the tests alike, file by file: the folder
// EDGEINFER_MODEL_DIR names, when set; else our download cache (~/.cache/edgeinfer/models);
// else a ../shared/models folder beside the project (this workplace's machines); else it is
// downloaded from its public address, checked against its sha256 and cached. A file found
// with the wrong sha256 is refused, wherever it is.
//
// The model `npm start` serves: aidreams260K, a llama2.c model distilled from Llama-3-8B
// outputs. The tests also read llama2.c's Llama 2 tokenizer.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CliError, progress, endProgress } from "./commands/command";
import { projectRoot } from "./paths";

export interface ModelFile {
  name: string;
  url: string;
  sha256: string;
}

export const DEFAULT_MODEL = {
  id: "aidreams260K",
  checkpoint: {
    name: "aidreams260K.bin",
    url: "https://raw.githubusercontent.com/mc9625/ai-dreamer-esp32-s3_matrix/main/data/aidreams260K.bin",
    sha256: "aa722d252ace805c9ff2264dce993df6843c8cec3d1a930d03e4c487f3db9028",
  },
  tokenizer: {
    name: "aidreams260K.tok512.bin",
    url: "https://raw.githubusercontent.com/mc9625/ai-dreamer-esp32-s3_matrix/main/data/tok512.bin",
    sha256: "3817c307fffc9637c908ca3430a028db0c46b5700392e0d19b2133d246f54bcb",
  },
} as const;

/** The Llama 2 tokenizer (32000 entries) in llama2.c's format: llama2.c's own tokenizer.bin. */
export const LLAMA2_TOKENIZER: ModelFile = {
  name: "llama2-tokenizer.bin",
  url: "https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.bin",
  sha256: "50a52ef822ee9e83de5ce9d0be0a025a773d019437f58b5ff9dcafb063ece361",
};

export function modelCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "edgeinfer", "models");
}

/** The folders looked in, in order. */
export interface ModelPlaces {
  /** EDGEINFER_MODEL_DIR, looked in first. */
  explicitDir?: string;
  cacheDir: string;
  sharedDir: string;
}

export function modelPlaces(): ModelPlaces {
  return { explicitDir: process.env.EDGEINFER_MODEL_DIR || undefined, cacheDir: modelCacheDir(), sharedDir: join(projectRoot, "..", "shared", "models") };
}

/**
 * Each file's path in the first place that has it (checked against its sha256), without
 * downloading; files found nowhere are left out.
 */
export function findModelFiles(files: readonly ModelFile[], places: ModelPlaces = modelPlaces()): Record<string, string> {
  const found: Record<string, string> = {};
  const dirs = [places.explicitDir, places.cacheDir, places.sharedDir].filter((d): d is string => !!d);
  for (const f of files) {
    for (const dir of dirs) {
      const path = join(dir, f.name);
      if (!existsSync(path)) continue;
      verify(path, f);
      found[f.name] = path;
      break;
    }
  }
  return found;
}

/** As findModelFiles, then what was found nowhere is downloaded into the cache folder. */
export async function resolveModelFiles(files: readonly ModelFile[], options: { places?: ModelPlaces; json?: boolean } = {}): Promise<Record<string, string>> {
  const places = options.places ?? modelPlaces();
  const found = findModelFiles(files, places);
  for (const f of files) {
    if (found[f.name]) continue;
    mkdirSync(places.cacheDir, { recursive: true });
    const path = join(places.cacheDir, f.name);
    await download(f, path, options.json ?? false);
    found[f.name] = path;
  }
  return found;
}

export async function defaultModelFiles(json: boolean): Promise<{ checkpoint: string; tokenizer: string; source: string }> {
  const { checkpoint, tokenizer } = DEFAULT_MODEL;
  const found = await resolveModelFiles([checkpoint, tokenizer], { json });
  return { checkpoint: found[checkpoint.name]!, tokenizer: found[tokenizer.name]!, source: dirname(found[checkpoint.name]!) };
}

function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function verify(path: string, file: ModelFile): void {
  const actual = sha256File(path);
  if (actual !== file.sha256) throw new CliError(`${path} has sha256 ${actual}, expected ${file.sha256}: remove it and start again`);
}

async function download(file: ModelFile, path: string, json: boolean): Promise<void> {
  progress(json, `downloading ${file.url}`);
  let response: Response;
  try {
    response = await fetch(file.url);
  } catch (e) {
    throw new CliError(`cannot download ${file.url} (${(e as Error).message}). Without a network, set EDGEINFER_MODEL_DIR to a folder holding ${file.name}.`);
  }
  if (!response.ok || !response.body) throw new CliError(`downloading ${file.url} failed: HTTP ${response.status}`);
  const total = Number(response.headers.get("content-length") ?? 0);
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    received += chunk.byteLength;
    progress(json, `downloading ${file.name} ${received}${total ? `/${total}` : ""} bytes`);
  }
  endProgress(json);
  const bytes = Buffer.concat(chunks);
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== file.sha256) throw new CliError(`${file.url} has sha256 ${actual}, expected ${file.sha256}; not cached`);
  writeFileSync(`${path}.part`, bytes);
  renameSync(`${path}.part`, path);
}
