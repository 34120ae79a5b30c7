// Where the build writes, as model stores (functions/store/store.ts): the local KV that
// `npm start` / `wrangler dev` serve (miniflare's persisted state, through wrangler's
// getPlatformProxy, as the Worker's own KV backend), a Cloudflare KV namespace through the
// wrangler CLI (--remote), or a folder of files (--out). Every backend keeps each entry's write
// time (KV metadata {writtenAt}, a file's mtime), which gc's grace period reads.

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { kvStore } from "../../functions/store/kv";
import { writtenAtOf, type EntryMetadata, type ModelStore, type StoreKeyInfo } from "../../functions/store/store";
import { projectRoot } from "../paths";

/** What the CLI writes to and reads from: the model store the Worker reads too. */
export type KvTarget = ModelStore;
export type KvKeyInfo = StoreKeyInfo;

/** A whole value as a one-chunk stream (backends that read values whole). */
function streamOf(value: Uint8Array | null): ReadableStream<Uint8Array> | null {
  if (value === null) return null;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(value);
      controller.close();
    },
  });
}

export interface KvTargetOptions {
  remote?: boolean;
  /** Write entries as files under this folder (key = path) instead of into KV. */
  outDir?: string;
  /** Local state folder, as `wrangler dev --persist-to` takes it (default .wrangler/state). */
  persistTo?: string;
}

export async function openKvTarget(options: KvTargetOptions): Promise<KvTarget> {
  if (options.outDir) return new DirectoryKv(options.outDir);
  return options.remote ? new WranglerKv({ remote: true }) : openLocalKv(options.persistTo ?? join(projectRoot, ".wrangler", "state"));
}

/**
 * KV entries as files: `shards/<sha256>` is the file <dir>/shards/<sha256>. For building
 * once and uploading elsewhere, and for seeding the KV of tests. A file's mtime is its
 * entry's write time.
 */
export class DirectoryKv implements KvTarget {
  readonly description: string;
  constructor(private readonly dir: string) {
    this.description = `folder ${dir}`;
  }
  private path(key: string): string {
    if (key.split("/").some((part) => part === "" || part === "." || part === "..")) throw new Error(`key ${key} cannot be a file name`);
    return join(this.dir, key);
  }
  async get(key: string) {
    const path = this.path(key);
    return existsSync(path) ? new Uint8Array(readFileSync(path)) : null;
  }
  async getStream(key: string) {
    return streamOf(await this.get(key));
  }
  async put(key: string, value: Uint8Array) {
    const path = this.path(key);
    mkdirSync(dirname(path), { recursive: true });
    // Written beside and renamed into place, so a concurrent reader sees all of it or nothing.
    const part = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString("hex")}.part`);
    writeFileSync(part, value);
    renameSync(part, path);
  }
  async delete(key: string) {
    rmSync(this.path(key), { force: true });
  }
  async list(prefix: string) {
    if (!existsSync(this.dir)) return [];
    const files = readdirSync(this.dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && !e.name.startsWith("."))
      .map((e) => relative(this.dir, join(e.parentPath, e.name)).split("\\").join("/"));
    return files.filter((k) => k.startsWith(prefix)).sort();
  }
  async listWithTimes(prefix: string) {
    const out: KvKeyInfo[] = [];
    for (const key of await this.list(prefix)) {
      try {
        out.push({ key, writtenAt: statSync(this.path(key)).mtimeMs });
      } catch {
        // deleted since the listing
      }
    }
    return out;
  }
  async close() {}
}

/** KV namespace binding name in wrangler.toml. */
export const KV_BINDING = "MODELS";

export async function openLocalKv(persistTo: string): Promise<KvTarget> {
  const { getPlatformProxy, unstable_readConfig } = await import("wrangler");
  // The proxy needs only the KV binding (same namespace id, so the same local state); the
  // Worker's other bindings (the meter's Durable Object) exist only in the Worker itself.
  const config = unstable_readConfig({ config: join(projectRoot, "wrangler.toml") });
  const scratch = mkdtempSync(join(tmpdir(), "edgeinfer-proxy-"));
  const configPath = join(scratch, "wrangler.json");
  writeFileSync(configPath, JSON.stringify({ name: config.name, compatibility_date: config.compatibility_date, kv_namespaces: config.kv_namespaces.filter((k: { binding: string }) => k.binding === KV_BINDING) }));
  const proxy = await getPlatformProxy<Record<string, KVNamespace>>({
    configPath,
    // wrangler dev keeps its state under <persist-to>/v3; point the proxy at the same place.
    persist: { path: join(persistTo, "v3") },
  });
  return kvStore(proxy.env[KV_BINDING], `local KV (${persistTo})`, async () => {
    await proxy.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });
}

const run = promisify(execFile);

/**
 * A KV namespace through the wrangler CLI (`wrangler kv key ...`): the Cloudflare namespace of
 * the MODELS binding in wrangler.toml (`{ remote: true }`, what --remote opens), or wrangler's
 * local storage under a --persist-to folder (`{ persistTo }`, the same commands run without an
 * account; the tests use it).
 */
export class WranglerKv implements KvTarget {
  readonly description: string;
  private readonly scratch = mkdtempSync(join(tmpdir(), "edgeinfer-kv-"));
  private readonly where: string[];

  constructor(location: { remote: true } | { persistTo: string }) {
    if ("persistTo" in location) {
      this.where = ["--local", "--persist-to", location.persistTo];
      this.description = `local KV through wrangler (${location.persistTo})`;
    } else {
      this.where = ["--remote"];
      this.description = `Cloudflare KV (binding ${KV_BINDING} in wrangler.toml)`;
    }
  }

  private async wrangler(args: string[], encoding: "utf8" | "buffer" = "utf8") {
    const bin = join(projectRoot, "node_modules", "wrangler", "bin", "wrangler.js");
    const { stdout } = await run(process.execPath, [bin, "kv", ...args, "--binding", KV_BINDING, ...this.where], {
      cwd: projectRoot,
      encoding: encoding === "buffer" ? "buffer" : "utf8",
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    });
    return stdout;
  }

  async get(key: string) {
    // `wrangler kv key get` prints "Value not found" for a missing key and succeeds: ask the
    // listing whether the key exists first.
    if (!(await this.list(key)).includes(key)) return null;
    return new Uint8Array((await this.wrangler(["key", "get", key], "buffer")) as Buffer);
  }

  async getStream(key: string) {
    return streamOf(await this.get(key));
  }

  async put(key: string, value: Uint8Array) {
    const file = join(this.scratch, "value");
    writeFileSync(file, value);
    const metadata: EntryMetadata = { writtenAt: Date.now() };
    await this.wrangler(["key", "put", key, "--path", file, "--metadata", JSON.stringify(metadata)]);
  }

  async delete(key: string) {
    await this.wrangler(["key", "delete", key]);
  }

  async list(prefix: string) {
    return (await this.listWithTimes(prefix)).map((k) => k.key);
  }

  async listWithTimes(prefix: string) {
    const out = (await this.wrangler(["key", "list", "--prefix", prefix])) as string;
    return (JSON.parse(out) as Array<{ name: string; metadata?: unknown }>).map((k) => ({ key: k.name, writtenAt: writtenAtOf(k.metadata) }));
  }

  async close() {
    rmSync(this.scratch, { recursive: true, force: true });
  }
}
