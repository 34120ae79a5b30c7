// Starts `edgeinfer serve` (what `npm start` runs: default model into local KV, then
// wrangler dev) on a free loopback port with its own state folder, for end-to-end tests.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root, sharedModels } from "../setup/fixtures";

export interface RunningServer {
  url: string;
  persistTo: string;
  log: () => string;
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

/** `prepare` runs before the server starts, with the local KV folder it will serve (e.g. to build more models into it). */
export async function startServer(prepare?: (persistTo: string) => void): Promise<RunningServer> {
  const port = await freePort();
  const persistTo = mkdtempSync(join(tmpdir(), "edgeinfer-e2e-"));
  prepare?.(persistTo);
  let output = "";
  const child: ChildProcess = spawn(process.execPath, [join(root, "scripts", "bin", "edgeinfer.js"), "serve", "--port", `${port}`, "--persist-to", persistTo], {
    cwd: root,
    env: { ...process.env, EDGEINFER_MODEL_DIR: sharedModels, WRANGLER_SEND_METRICS: "false" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`edgeinfer serve exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`edgeinfer serve did not come up in time:\n${output}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    persistTo,
    log: () => output,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        process.kill(-child.pid!, "SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) process.kill(-child.pid!, "SIGKILL");
      }
      rmSync(persistTo, { recursive: true, force: true });
    },
  };
}
