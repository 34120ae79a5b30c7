// `edgeinfer build hf:<org>/<repo>`: listing through @huggingface/hub, download with resume
// and checksums, against a Hub stand-in on loopback (HF_ENDPOINT), through the real CLI.

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { root, writeChatModelFolder } from "../setup/fixtures";

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), "edgeinfer-hub-"));
const folder = writeChatModelFolder(join(work, "repo"));
const files = readdirSync(folder).filter((f) => statSync(join(folder, f)).isFile());

/** What the stand-in does to the next download of model.safetensors. */
let weightsFault: "cut" | "corrupt" | null = null;
const rangeRequests: string[] = [];
let fileDownloads = 0;
let server: Server;
let endpoint: string;

function entry(path: string) {
  const bytes = readFileSync(join(folder, path));
  const gitOid = createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
  const lfs = path.endsWith(".safetensors") ? { oid: createHash("sha256").update(bytes).digest("hex"), size: bytes.length, pointerSize: 134 } : undefined;
  return { type: "file", path, size: bytes.length, oid: gitOid, ...(lfs ? { lfs } : {}) };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    if (url.pathname === "/api/models/acme/tiny-qwen2/tree/main") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify([...files.map(entry), { type: "file", path: "README.md", size: 3, oid: "0" }]));
      return;
    }
    const m = /^\/acme\/tiny-qwen2\/resolve\/main\/(.+)$/.exec(url.pathname);
    if (!m || !files.includes(m[1])) {
      res.statusCode = 404;
      res.end("not found");
      return;
    }
    fileDownloads++;
    let bytes = readFileSync(join(folder, m[1]));
    const range = req.headers.range;
    if (m[1] === "model.safetensors" && range) rangeRequests.push(range);
    if (m[1] === "model.safetensors" && weightsFault === "corrupt") {
      weightsFault = null;
      bytes = Buffer.from(bytes);
      bytes[bytes.length - 1] ^= 0xff;
    }
    if (range) {
      const start = Number(/^bytes=(\d+)-$/.exec(range)![1]);
      res.statusCode = 206;
      res.setHeader("content-range", `bytes ${start}-${bytes.length - 1}/${bytes.length}`);
      bytes = bytes.subarray(start);
    }
    res.setHeader("content-length", bytes.length);
    if (m[1] === "model.safetensors" && weightsFault === "cut") {
      // Send part of the file, then drop the connection.
      weightsFault = null;
      res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy());
      return;
    }
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => {
  server?.close();
  rmSync(work, { recursive: true, force: true });
});

async function build(out: string): Promise<{ code: number; json: any }> {
  try {
    const { stdout } = await run(process.execPath, [join(root, "scripts", "bin", "edgeinfer.js"), "build", "hf:acme/tiny-qwen2", "--id", "tiny", "--quant", "q4_0", "--out", out, "--json"], {
      cwd: root,
      env: { ...process.env, HF_ENDPOINT: endpoint, XDG_CACHE_HOME: join(work, "cache") },
    });
    return { code: 0, json: JSON.parse(stdout.trim().split("\n").pop()!) };
  } catch (e) {
    const err = e as { code: number; stdout: string };
    return { code: err.code, json: JSON.parse(err.stdout.trim().split("\n").pop()!) };
  }
}

describe("hf: sources", () => {
  it("resumes a cut download, then builds the model", async () => {
    weightsFault = "cut";
    const first = await build(join(work, "out1"));
    expect(first.code).not.toBe(0);
    expect(first.json.error).toMatch(/model\.safetensors|resume/);
    const second = await build(join(work, "out1"));
    expect(second.code).toBe(0);
    expect(second.json.id).toBe("tiny");
    expect(rangeRequests.length).toBe(1);
    expect(Number(/bytes=(\d+)-/.exec(rangeRequests[0])![1])).toBeGreaterThan(0);
  });

  it("uses the cache the second time and builds the same manifest", async () => {
    fileDownloads = 0;
    const again = await build(join(work, "out2"));
    expect(again.code).toBe(0);
    expect(fileDownloads).toBe(0);
    const first = JSON.parse(readFileSync(join(work, "out1", "models", "tiny"), "utf8"));
    expect(again.json.manifest).toBe(first.manifest);
  });

  it("refuses a file that does not match its checksum", async () => {
    rmSync(join(work, "cache"), { recursive: true, force: true });
    weightsFault = "corrupt";
    const bad = await build(join(work, "out3"));
    expect(bad.code).not.toBe(0);
    expect(bad.json.error).toMatch(/does not match its sha256/);
  });
});
