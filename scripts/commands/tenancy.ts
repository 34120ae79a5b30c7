// The commands around deploy: customers (and customers limits <customer>), models <customer>,
// keys rotate <customer>, remove <customer> <id>, rollback <customer> <id>, gc.

import { parseArgs } from "node:util";
import { formatBytes } from "../../functions/model/memory";
import { openKvTarget, type KvTarget } from "../kv/targets";
import { checkCustomerName, collectGarbage, DEFAULT_GC_GRACE_MS, listCustomerModels, listCustomers, planGc, removeModel, rollback, rotateKey } from "../tenancy/store";
import { CliError, progress, endProgress, targetOptions, type Command, type OptionSpecs } from "./command";
import type { Limits } from "../../functions/metering/limits";
import { adminOptions, adminTarget, getLimits, putLimits } from "../admin/client";

const gcOptions = {
  "dry-run": { type: "boolean", default: false, help: "list what would be deleted, delete nothing" },
  grace: { type: "string", value: "DURATION", help: "keep unreferenced data written less than this long ago, e.g. 30m, 2h, 0 (default: 1h)" },
  ...targetOptions,
} as const satisfies OptionSpecs;

async function withTarget<T>(args: string[], options: OptionSpecs, use: (kv: KvTarget, positionals: string[], values: Record<string, unknown>) => Promise<T>): Promise<T> {
  const { values, positionals } = parseArgs({ args, options: options as never, allowPositionals: true, strict: true });
  const v = values as Record<string, unknown>;
  const kv = await openKvTarget({ remote: v.remote as boolean, persistTo: v["persist-to"] as string | undefined, outDir: v.out as string | undefined });
  try {
    return await use(kv, positionals, v);
  } finally {
    await kv.close();
  }
}

function print(json: boolean, object: Record<string, unknown>, lines: string[]): void {
  if (json) console.log(JSON.stringify({ ok: true, ...object }));
  else for (const line of lines) console.log(line);
}

const customersOptions = {
  rpm: { type: "string", value: "N", help: "with limits: requests admitted in any 60 s window ('none': no limit)" },
  concurrency: { type: "string", value: "N", help: "with limits: requests in progress at once ('none': no limit)" },
  "tokens-per-day": { type: "string", value: "N", help: "with limits: prompt + completion tokens per UTC day ('none': no limit)" },
  url: adminOptions.url,
  "admin-key": adminOptions["admin-key"],
  ...targetOptions,
} as const satisfies OptionSpecs;

export const customersCommand: Command = {
  summary: "list the customers with their limits; 'customers limits <customer> --rpm N --concurrency N --tokens-per-day N' sets a customer's limits (flags not given stay as they are)",
  usage: "customers [limits <customer>] [options]",
  options: customersOptions,
  run: (args) => (args[0] === "limits" ? setLimits(args.slice(1)) : listWithLimits(args)),
};

function listWithLimits(args: string[]) {
  return withTarget(args, customersOptions, async (kv, _p, v) => {
    // Limits live in each customer's meter, behind the Worker: shown when it can be reached.
    let limitsOf: ((name: string) => Promise<Limits>) | null = null;
    let unreachable: string | null = null;
    try {
      const target = adminTarget(v as never);
      limitsOf = (name) => getLimits(target, name);
    } catch (e) {
      unreachable = (e as Error).message;
    }
    const customers = [];
    for (const name of await listCustomers(kv)) {
      let limits: Limits | null = null;
      if (limitsOf && !unreachable) {
        try {
          limits = await limitsOf(name);
        } catch (e) {
          unreachable = (e as Error).message;
        }
      }
      customers.push({ name, models: (await listCustomerModels(kv, name)).length, limits });
    }
    const show = (l: Limits | null) => (l ? `rpm ${l.rpm ?? "-"}, concurrency ${l.concurrency ?? "-"}, tokens/day ${l.tokensPerDay ?? "-"}` : "limits unknown");
    print(v.json as boolean, { customers, ...(unreachable ? { limitsUnavailable: unreachable } : {}) }, customers.length
      ? [...customers.map((c) => `${c.name}\t${c.models} model(s)\t${show(c.limits)}`), ...(unreachable ? [`(limits not shown: ${unreachable})`] : [])]
      : ["no customers"]);
  });
}

async function setLimits(args: string[]) {
  const { values, positionals } = parseArgs({ args, options: customersOptions, allowPositionals: true, strict: true });
  const [customer] = positionals;
  if (positionals.length !== 1) throw new CliError("usage: edgeinfer customers limits <customer> [--rpm N] [--concurrency N] [--tokens-per-day N] [--url URL] [--admin-key KEY]");
  checkCustomerName(customer);
  const target = adminTarget(values);
  const next = { ...(await getLimits(target, customer)) };
  const flag = (name: "rpm" | "concurrency" | "tokens-per-day", key: keyof Limits) => {
    const raw = values[name];
    if (raw === undefined) return;
    if (raw === "none") next[key] = null;
    else if (/^\d+$/.test(raw) && Number.isSafeInteger(Number(raw))) next[key] = Number(raw);
    else throw new CliError(`--${name} must be a whole number or 'none' (got ${raw})`);
  };
  flag("rpm", "rpm");
  flag("concurrency", "concurrency");
  flag("tokens-per-day", "tokensPerDay");
  const limits = await putLimits(target, customer, next);
  print(values.json, { customer, limits }, [`${customer}: rpm ${limits.rpm ?? "none"}, concurrency ${limits.concurrency ?? "none"}, tokens per day ${limits.tokensPerDay ?? "none"}`]);
}

export const modelsCommand: Command = {
  summary: "list a customer's models (models <customer>)",
  usage: "models <customer> [options]",
  options: targetOptions,
  run: (args) =>
    withTarget(args, targetOptions, async (kv, [customer], v) => {
      if (!customer) throw new CliError("usage: edgeinfer models <customer>");
      checkCustomerName(customer);
      const models = await listCustomerModels(kv, customer);
      print(v.json as boolean, { customer, models }, models.length
        ? models.map((m) => `${m.id}\t${m.architecture} ${m.quant}\t${formatBytes(m.weightsBytes)} weights, ${formatBytes(m.memoryBytes)} loaded\tlive ${m.manifest.slice(0, 12)}${m.previous ? `, previous ${m.previous.slice(0, 12)}` : ""}`)
        : [`${customer} has no models`]);
    }),
};

export const keysCommand: Command = {
  summary: "keys rotate <customer>: replace a customer's API key (the old one stops working)",
  usage: "keys rotate <customer> [options]",
  options: targetOptions,
  run: (args) =>
    withTarget(args, targetOptions, async (kv, [verb, customer], v) => {
      if (verb !== "rotate" || !customer) throw new CliError("usage: edgeinfer keys rotate <customer>");
      const apiKey = await rotateKey(kv, customer);
      print(v.json as boolean, { customer, apiKey }, [`new API key for ${customer} (shown once; the old key no longer works):`, "", `  ${apiKey}`, ""]);
    }),
};

export const removeCommand: Command = {
  summary: "remove <customer> <id>: stop serving a customer's model (data stays until gc)",
  usage: "remove <customer> <id> [options]",
  options: targetOptions,
  run: (args) =>
    withTarget(args, targetOptions, async (kv, [customer, id], v) => {
      if (!customer || !id) throw new CliError("usage: edgeinfer remove <customer> <id>");
      await removeModel(kv, customer, id);
      print(v.json as boolean, { customer, id, removed: true }, [`removed ${id} from ${customer}; run gc to delete its data`]);
    }),
};

export const rollbackCommand: Command = {
  summary: "rollback <customer> <id>: make the previous version live again",
  usage: "rollback <customer> <id> [options]",
  options: targetOptions,
  run: (args) =>
    withTarget(args, targetOptions, async (kv, [customer, id], v) => {
      if (!customer || !id) throw new CliError("usage: edgeinfer rollback <customer> <id>");
      const pointer = await rollback(kv, customer, id);
      print(v.json as boolean, { customer, id, manifest: pointer.manifest, previous: pointer.previous }, [`${customer}/${id}: version ${pointer.manifest.slice(0, 12)} is live again (rolled back from ${pointer.previous?.slice(0, 12)})`]);
    }),
};

export const gcCommand: Command = {
  summary: "delete shards, tokenizers and manifests no live or previous version references, once older than --grace (default 1h; --dry-run to list)",
  usage: "gc [options]",
  options: gcOptions,
  run: (args) =>
    withTarget(args, gcOptions, async (kv, _p, v) => {
      const json = v.json as boolean;
      const dryRun = v["dry-run"] as boolean;
      const graceMs = v.grace === undefined ? DEFAULT_GC_GRACE_MS : parseDuration(v.grace as string, "--grace");
      const plan = await planGc(kv, { graceMs });
      let removed = plan.remove;
      let spared: string[] = [];
      if (!dryRun) {
        const done = await collectGarbage(kv, plan, { onDelete: (i, n, key) => progress(json, `gc [${i + 1}/${n}] ${key}`) });
        endProgress(json);
        ({ removed, spared } = done);
        if (done.raced.length > 0) {
          throw new CliError(
            `${done.raced.length} deleted key(s) (${done.raced.slice(0, 3).join(", ")}${done.raced.length > 3 ? ", ..." : ""}) became referenced while gc ran: a build or deploy finished in between. Run that build or deploy again to put them back.`,
            { removed, raced: done.raced },
          );
        }
      }
      const kept = { ...plan.keep, recent: plan.recent.length, leased: plan.leased.length };
      print(json, { dryRun, removed, bytes: plan.bytes, kept, spared, leases: plan.leases, graceSeconds: graceMs / 1000 }, [
        ...removed.map((k) => `${dryRun ? "would delete" : "deleted"} ${k}`),
        `${removed.length} key(s), ${formatBytes(plan.bytes)} ${dryRun ? "to delete" : "deleted"}; kept ${plan.keep.manifests} manifest(s), ${plan.keep.shards} shard(s), ${plan.keep.tokenizers} tokenizer(s) in use`,
        ...(plan.recent.length ? [`kept ${plan.recent.length} unreferenced key(s) written less than ${formatDuration(graceMs)} ago (--grace)`] : []),
        ...(plan.leases ? [`kept ${plan.leased.length} unreferenced key(s) named by ${plan.leases} publish(es) in progress`] : []),
        ...(spared.length ? [`spared ${spared.length} key(s) a publish that started during gc named`] : []),
      ]);
    }),
};

/** "90s", "30m", "1h", "2d" or a number of seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new CliError(`${flag} must be a duration such as 90s, 30m, 1h, 2d or 0 (got ${JSON.stringify(text)})`);
  return Math.round(Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"]!);
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
