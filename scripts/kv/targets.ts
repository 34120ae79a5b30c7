// Where the build writes: the local KV that `npm start` / `wrangler dev` serve (miniflare's
// persisted state, through wrangler's getPlatformProxy), or a Cloudflare KV namespace
// through the wrangler CLI (--remote).

import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "../paths";

export interface KvTarget {
  readonly description: string;
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
  close(): Promise<void>;
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
  return options.remote ? new RemoteKv() : openLocalKv(options.persistTo ?? join(projectRoot, ".wrangler", "state"));
}

/**
 * KV entries as files: `shards/<sha256>` is the file <dir>/shards/<sha256>. For building
 * once and uploading elsewhere, and for seeding the KV of tests.
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
  async put(key: string, value: Uint8Array) {
    const path = this.path(key);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, value);
  }
  async delete(key: string) {
    rmSync(this.path(key), { force: true });
  }
  async list(prefix: string) {
    if (!existsSync(this.dir)) return [];
    const files = readdirSync(this.dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(this.dir, join(e.parentPath, e.name)).split("\\").join("/"));
    return files.filter((k) => k.startsWith(prefix)).sort();
  }
  async close() {}
}

/** KV namespace binding name in wrangler.toml. */
export const KV_BINDING = "MODELS";

export async function openLocalKv(persistTo: string): Promise<KvTarget> {
  const { getPlatformProxy } = await import("wrangler");
  const proxy = await getPlatformProxy<Record<string, KVNamespace>>({
    configPath: join(projectRoot, "wrangler.toml"),
    // wrangler dev keeps its state under <persist-to>/v3; point the proxy at the same place.
    persist: { path: join(persistTo, "v3") },
  });
  const kv = proxy.env[KV_BINDING];
  return {
    description: `local KV (${persistTo})`,
    async get(key) {
      const value = await kv.get(key, "arrayBuffer");
      return value === null ? null : new Uint8Array(value);
    },
    async put(key, value) {
      await kv.put(key, value);
    },
    async delete(key) {
      await kv.delete(key);
    },
    async list(prefix) {
      const keys: string[] = [];
      let cursor: string | undefined;
      do {
        const page: KVNamespaceListResult<unknown> = await kv.list({ prefix, cursor });
        keys.push(...page.keys.map((k) => k.name));
        cursor = page.list_complete ? undefined : page.cursor;
      } while (cursor);
      return keys;
    },
    close: () => proxy.dispose(),
  };
}

const run = promisify(execFile);

/** A Cloudflare KV namespace, by the MODELS binding's id in wrangler.toml, through wrangler. */
class RemoteKv implements KvTarget {
  readonly description = `Cloudflare KV (binding ${KV_BINDING} in wrangler.toml)`;
  private readonly scratch = mkdtempSync(join(tmpdir(), "edgeinfer-kv-"));

  private async wrangler(args: string[], encoding: "utf8" | "buffer" = "utf8") {
    const bin = join(projectRoot, "node_modules", "wrangler", "bin", "wrangler.js");
    const { stdout } = await run(process.execPath, [bin, "kv", ...args, "--binding", KV_BINDING, "--remote"], {
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

  async put(key: string, value: Uint8Array) {
    const file = join(this.scratch, "value");
    writeFileSync(file, value);
    await this.wrangler(["key", "put", key, "--path", file]);
  }

  async delete(key: string) {
    await this.wrangler(["key", "delete", key]);
  }

  async list(prefix: string) {
    const out = (await this.wrangler(["key", "list", "--prefix", prefix])) as string;
    return (JSON.parse(out) as Array<{ name: string }>).map((k) => k.name);
  }

  async close() {
    rmSync(this.scratch, { recursive: true, force: true });
  }
}
