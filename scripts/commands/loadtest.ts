// edgeinfer loadtest (npm run loadtest): the Worker under `edgeinfer serve` (wrangler dev on
// a free loopback port), a bounded mixed workload from autocannon, every output checked. By
// default the workload runs as a customer, so limits and metering are on its path and its
// metered usage must equal the usage it was sent; --open runs it without customers.

import { parseArgs } from "node:util";
import { buildIntoLocalKv } from "../bench/coldstart";
import { ensureCheckpoint, modelId } from "../bench/models";
import { kvKeys } from "../../functions/model/manifest";
import { localAdminKey } from "../admin/client";
import { openKvTarget } from "../kv/targets";
import { runLoadtest, type LoadtestOptions, type LoadtestReport } from "../loadtest/run";
import { startServeProcess } from "../serve-process";
import { ensureCustomer } from "../tenancy/store";
import { DEFAULT_VARIANTS, seedDefaultModel } from "./serve";
import { defaultTokenizer } from "./bench";
import { CliError, jsonOption, type Command, type OptionSpecs } from "./command";

const loadtestOptions = {
  quick: { type: "boolean", default: false, help: "a short run (60 requests, 8 connections) as npm test runs it" },
  url: { type: "string", value: "URL", help: "test a server already running there instead of starting edgeinfer serve" },
  connections: { type: "string", value: "N", help: "concurrent connections (default: 32, 8 with --quick)" },
  amount: { type: "string", value: "N", help: "requests in all (default: 600, 60 with --quick)" },
  "disconnect-share": { type: "string", value: "0..1", help: "share of streaming clients that hang up mid-stream (default: 0.25)" },
  open: { type: "boolean", default: false, help: "run without customers: no API keys, no limits, no metering (by default the workload runs as a customer and its metered usage is checked)" },
  ...jsonOption,
} as const satisfies OptionSpecs;

/** Besides the default model, the full run loads a random-weight model of the stories15M shape at q8_0 (32,000-token vocabulary, 15M parameters). */
const STORIES15M = modelId("stories15M", "q8_0");

export const loadtestCommand: Command = {
  summary: "load-test the Worker under wrangler dev with a mixed workload, a share of streaming clients hanging up mid-stream (--quick for a short run, --disconnect-share 0..1)",
  usage: "loadtest [options]",
  options: loadtestOptions,
  async run(args) {
    const { values } = parseArgs({ args, options: loadtestOptions, strict: true });
    const quick = values.quick;
    const amount = Number(values.amount ?? (quick ? 60 : 600));
    const share = Number(values["disconnect-share"] ?? 0.25);
    if (!(share >= 0 && share <= 1)) throw new CliError("--disconnect-share must be between 0 and 1");
    const options = {
      connections: Number(values.connections ?? (quick ? 8 : 32)),
      amount,
      maxSeconds: quick ? 60 : 300,
      models: ["aidreams260K", "aidreams260K-q8_0", "aidreams260K-q4_0"],
      disconnects: Math.round(share * amount),
    };
    const withStories = !quick && !values.url;
    let metering: LoadtestOptions["metering"];
    const server = values.url
      ? null
      : await startServeProcess({
          prepare: async (persistTo) => {
            // the stories15M-shape model built into the server's local KV before it starts
            if (withStories) await buildIntoLocalKv(ensureCheckpoint("stories15M"), await defaultTokenizer(values.json), STORIES15M, "q8_0", persistTo);
            if (!values.open) metering = await loadtestCustomers(persistTo, withStories ? [STORIES15M] : []);
          },
          timeoutMs: 300_000,
        }).catch((e: Error) => {
          throw new CliError(e.message);
        });
    try {
      const url = values.url ?? server!.url;
      const reports: Array<{ label: string; report: LoadtestReport }> = [];
      reports.push({ label: "aidreams260K (f32, q8_0, q4_0)", report: await runLoadtest({ url, ...options, metering }) });
      if (withStories) reports.push({ label: `${STORIES15M} (random weights, stories15M shape)`, report: await runLoadtest({ url, ...options, models: [STORIES15M], metering }) });
      for (const { label, report } of reports) print(label, report, options, values.json);
      return reports.every((r) => failures(r.report) === 0) ? 0 : 1;
    } finally {
      await server?.stop();
    }
  },
};

/**
 * Two customers in the server's local KV, each given the default models (and `extra` open
 * models): one sends the workload, the other the clients that hang up (whose usage no answer
 * reports).
 */
export async function loadtestCustomers(persistTo: string, extra: string[] = []): Promise<NonNullable<LoadtestOptions["metering"]>> {
  await seedDefaultModel(persistTo, true);
  const kv = await openKvTarget({ persistTo });
  try {
    const keys: string[] = [];
    for (const name of ["loadtest", "loadtest-hangups"]) {
      const { apiKey } = await ensureCustomer(kv, name);
      keys.push(apiKey!);
      for (const id of [...DEFAULT_VARIANTS.map((v) => v.id), ...extra]) await kv.put(kvKeys.customerModelPointer(name, id), (await kv.get(kvKeys.modelPointer(id)))!);
    }
    return { customer: "loadtest", apiKey: keys[0], hangupKey: keys[1], adminKey: localAdminKey(persistTo) };
  } finally {
    await kv.close();
  }
}

const failures = (r: LoadtestReport) => r.errors + r.non2xx + r.wrongOutputs + r.disconnects.leakedSlots + (r.metering?.mismatches ?? 0);

function print(label: string, r: LoadtestReport, o: { connections: number; amount: number }, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ ok: failures(r) === 0, label, ...o, ...r }));
    return;
  }
  console.log(`load test, ${label}: ${r.requests} requests over ${o.connections} connections in ${r.durationSeconds.toFixed(1)} s`);
  console.log(`  requests/s        ${r.requestsPerSecond.toFixed(1)}`);
  console.log(`  latency ms        p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  max ${r.latencyMs.max}`);
  console.log(`  tokens/s          ${r.tokensPerSecond.toFixed(0)} (${r.completionTokens} completion tokens)`);
  console.log(`  errors            ${r.errors} transport, ${r.non2xx} non-2xx, ${r.wrongOutputs} wrong outputs`);
  console.log(`  first token (ms)  ${r.fairness.ttftAloneMs.toFixed(1)} alone, ${r.fairness.ttftUnderLoadMs.toFixed(1)} beside ${r.fairness.longRequests} long generations`);
  console.log(`  disconnects       ${r.disconnects.clients} clients hung up mid-stream; ${r.disconnects.leakedSlots} KV caches still held afterwards`);
  if (r.metering) {
    const { sent, metered } = r.metering;
    console.log(`  metering          sent ${sent.requests} requests, ${sent.promptTokens} prompt + ${sent.completionTokens} completion tokens; metered ${metered.requests}, ${metered.promptTokens} + ${metered.completionTokens}${r.metering.mismatches ? " MISMATCH" : " (equal)"}`);
  } else console.log("  metering          off (--open: no customers)");
}
