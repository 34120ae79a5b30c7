// hf:<org>/<repo>[@revision]: the files a build needs from the Hugging Face Hub, listed with
// @huggingface/hub, downloaded with progress into our cache, resumed where a download
// stopped (HTTP Range), and checked: LFS files against their sha256, others against their
// git blob id. HF_ENDPOINT points at another hub (tests use one on loopback); HF_TOKEN
// authenticates.

import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, renameSync, statSync, createWriteStream } from "node:fs";
import { dirname, join } from "node:path";
import { listFiles } from "@huggingface/hub";
import { CliError, endProgress, progress } from "../commands/command";
import { modelCacheDir } from "../default-model";

export interface HubSource {
  repo: string;
  revision: string;
}

const HUB_SOURCE_RE = /^hf:([A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$/;

export function parseHubSource(source: string): HubSource | null {
  if (!source.startsWith("hf:")) return null;
  const m = HUB_SOURCE_RE.exec(source);
  if (!m) throw new CliError(`'${source}' is not hf:<org>/<repo>[@revision]`);
  return { repo: m[1], revision: m[2] ?? "main" };
}

/** Files of a model folder that a build reads; everything else in the repository is skipped. */
function wanted(path: string): boolean {
  return (
    ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "model.safetensors.index.json"].includes(path) ||
    /^model(-\d+-of-\d+)?\.safetensors$/.test(path)
  );
}

interface HubFile {
  path: string;
  size: number;
  /** sha256 for LFS files, else the git blob sha1. */
  check: { kind: "sha256" | "git-blob"; value: string };
}

export async function downloadFromHub(source: HubSource, json: boolean): Promise<string> {
  const hubUrl = process.env.HF_ENDPOINT ?? "https://huggingface.co";
  const accessToken = process.env.HF_TOKEN;
  const files: HubFile[] = [];
  try {
    for await (const f of listFiles({ repo: source.repo, revision: source.revision, recursive: true, hubUrl, ...(accessToken ? { accessToken } : {}) })) {
      if (f.type !== "file" || !wanted(f.path)) continue;
      files.push({
        path: f.path,
        size: f.size,
        check: f.lfs ? { kind: "sha256", value: f.lfs.oid } : { kind: "git-blob", value: f.oid ?? "" },
      });
    }
  } catch (e) {
    throw new CliError(`cannot list hf:${source.repo}@${source.revision} on ${hubUrl}: ${(e as Error).message}`);
  }
  if (!files.some((f) => f.path === "config.json")) throw new CliError(`hf:${source.repo}@${source.revision} has no config.json: not a model repository we can build`);
  const dir = join(modelCacheDir(), "hf", source.repo.replace("/", "--"), source.revision.replaceAll("/", "--"));
  for (const file of files) await fetchFile(hubUrl, source, file, join(dir, file.path), accessToken, json);
  return dir;
}

async function fetchFile(hubUrl: string, source: HubSource, file: HubFile, dest: string, token: string | undefined, json: boolean): Promise<void> {
  if (existsSync(dest) && statSync(dest).size === file.size) {
    if ((await digest(dest, file.check.kind, file.size)) === file.check.value) return;
  }
  mkdirSync(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > file.size) have = 0;
  const url = `${hubUrl}/${source.repo}/resolve/${encodeURIComponent(source.revision)}/${file.path}`;
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (have > 0 && have < file.size) headers.range = `bytes=${have}-`;
  if (have < file.size) {
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: "follow" });
    } catch (e) {
      throw new CliError(`downloading ${url} failed: ${(e as Error).message}; run the build again to resume`);
    }
    if (!res.ok || !res.body) throw new CliError(`downloading ${url} failed: HTTP ${res.status}`);
    // A server that ignores Range sends the whole file again: start over.
    const resumed = res.status === 206;
    if (!resumed) have = 0;
    const out = createWriteStream(part, { flags: resumed ? "a" : "w" });
    let received = have;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
        received += chunk.byteLength;
        progress(json, `hf:${source.repo} ${file.path} ${(received / 1e6).toFixed(1)}/${(file.size / 1e6).toFixed(1)} MB`);
      }
    } catch (e) {
      throw new CliError(`downloading ${file.path} stopped after ${received} of ${file.size} bytes (${(e as Error).message}); run the build again to resume`);
    } finally {
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
    endProgress(json);
  }
  if (statSync(part).size !== file.size) throw new CliError(`${file.path}: got ${statSync(part).size} of ${file.size} bytes; run the build again to resume`);
  const actual = await digest(part, file.check.kind, file.size);
  if (actual !== file.check.value) {
    renameSync(part, `${part}.bad`);
    throw new CliError(`${file.path} from hf:${source.repo} does not match its ${file.check.kind} (${actual}, expected ${file.check.value})`);
  }
  renameSync(part, dest);
}

async function digest(path: string, kind: HubFile["check"]["kind"], size: number): Promise<string> {
  const hash = createHash(kind === "sha256" ? "sha256" : "sha1");
  if (kind === "git-blob") hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
