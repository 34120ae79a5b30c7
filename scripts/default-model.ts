// The model `npm start` serves: aidreams260K, a llama2.c model distilled from Llama-3-8B
// outputs. Its two files come from EDGEINFER_MODEL_DIR when set; else from our download
// cache, else from a ../shared/models folder beside the project (this workplace's machines),
// else they are downloaded from their public addresses, checked against their sha256 and
// cached.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CliError, progress, endProgress } from "./commands/command";
import { projectRoot } from "./paths";

interface ModelFile {
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

export function modelCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "edgeinfer", "models");
}

export async function defaultModelFiles(json: boolean): Promise<{ checkpoint: string; tokenizer: string; source: string }> {
  const explicit = process.env.EDGEINFER_MODEL_DIR;
  const files = [DEFAULT_MODEL.checkpoint, DEFAULT_MODEL.tokenizer];
  if (explicit) {
    for (const f of files) {
      const path = join(explicit, f.name);
      if (!existsSync(path)) throw new CliError(`EDGEINFER_MODEL_DIR=${explicit} has no ${f.name}`);
      verify(path, f);
    }
    return { checkpoint: join(explicit, files[0].name), tokenizer: join(explicit, files[1].name), source: explicit };
  }
  for (const dir of [modelCacheDir(), join(projectRoot, "..", "shared", "models")]) {
    if (files.every((f) => existsSync(join(dir, f.name)))) {
      files.forEach((f) => verify(join(dir, f.name), f));
      return { checkpoint: join(dir, files[0].name), tokenizer: join(dir, files[1].name), source: dir };
    }
  }
  const cache = modelCacheDir();
  mkdirSync(cache, { recursive: true });
  for (const f of files) await download(f, join(cache, f.name), json);
  return { checkpoint: join(cache, files[0].name), tokenizer: join(cache, files[1].name), source: cache };
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
