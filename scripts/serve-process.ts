// `edgeinfer serve` as a child process on a free loopback port with its own local-KV folder:
// what the load test, the benchmark's cold start and the end-to-end tests run against.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "./paths";

export interface ServeProcess {
  url: string;
  persistTo: string;
  /** Everything the server printed so far. */
  log(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

export interface ServeOptions {
  /** Runs before the server starts, with the local KV folder it will serve. */
  prepare?: (persistTo: string) => void | Promise<void>;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export async function startServeProcess(options: ServeOptions = {}): Promise<ServeProcess> {
  const port = await freePort();
  const persistTo = mkdtempSync(join(tmpdir(), "edgeinfer-serve-"));
  await options.prepare?.(persistTo);
  let output = "";
  const child = spawn(process.execPath, [join(projectRoot, "scripts", "bin", "edgeinfer.js"), "serve", "--port", `${port}`, "--persist-to", persistTo], {
    cwd: projectRoot,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so stopping it also stops wrangler and workerd.
    detached: true,
  });
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    rmSync(persistTo, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`edgeinfer serve exited with ${child.exitCode}:\n${output}`);
    }
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`edgeinfer serve did not come up in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, persistTo, log: () => output, stop };
}
