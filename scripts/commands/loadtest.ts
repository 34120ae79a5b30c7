// edgeinfer loadtest (npm run loadtest): the Worker under `edgeinfer serve` (wrangler dev on
// a free loopback port), a bounded mixed workload from autocannon, every output checked.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runLoadtest, type LoadtestReport } from "../loadtest/run";
import { projectRoot } from "../paths";
import { CliError, type Command } from "./command";

export const loadtestCommand: Command = {
  summary: "load-test the Worker under wrangler dev with a mixed workload (--quick for a short run)",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        quick: { type: "boolean", default: false },
        url: { type: "string" },
        connections: { type: "string" },
        amount: { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
    const quick = values.quick;
    const options = {
      connections: Number(values.connections ?? (quick ? 8 : 32)),
      amount: Number(values.amount ?? (quick ? 60 : 600)),
      maxSeconds: quick ? 60 : 300,
      models: ["aidreams260K", "aidreams260K-q8_0", "aidreams260K-q4_0"],
    };
    const server = values.url ? null : await startServe();
    try {
      const report = await runLoadtest({ url: values.url ?? server!.url, ...options });
      print(report, options, values.json);
      return report.errors + report.non2xx + report.wrongOutputs === 0 ? 0 : 1;
    } finally {
      await server?.stop();
    }
  },
};

function print(r: LoadtestReport, o: { connections: number; amount: number }, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ ok: r.errors + r.non2xx + r.wrongOutputs === 0, ...o, ...r }));
    return;
  }
  console.log(`load test: ${r.requests} requests over ${o.connections} connections in ${r.durationSeconds.toFixed(1)} s`);
  console.log(`  requests/s        ${r.requestsPerSecond.toFixed(1)}`);
  console.log(`  latency ms        p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  max ${r.latencyMs.max}`);
  console.log(`  tokens/s          ${r.tokensPerSecond.toFixed(0)} (${r.completionTokens} completion tokens)`);
  console.log(`  errors            ${r.errors} transport, ${r.non2xx} non-2xx, ${r.wrongOutputs} wrong outputs`);
  console.log(`  first token (ms)  ${r.fairness.ttftAloneMs.toFixed(1)} alone, ${r.fairness.ttftUnderLoadMs.toFixed(1)} beside ${r.fairness.longRequests} long generations`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function startServe(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const persistTo = mkdtempSync(join(tmpdir(), "edgeinfer-load-"));
  const child = spawn(process.execPath, [join(projectRoot, "scripts", "bin", "edgeinfer.js"), "serve", "--port", `${port}`, "--persist-to", persistTo], {
    cwd: projectRoot,
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new CliError(`edgeinfer serve exited:\n${log}`);
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) throw new CliError(`edgeinfer serve did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    async stop() {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // already gone
      }
      await new Promise((r) => setTimeout(r, 500));
      rmSync(persistTo, { recursive: true, force: true });
    },
  };
}
