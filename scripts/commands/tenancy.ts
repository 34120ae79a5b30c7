// The commands around deploy: customers, models <customer>, keys rotate <customer>,
// remove <customer> <id>, rollback <customer> <id>, gc.

import { parseArgs } from "node:util";
import { formatBytes } from "../../functions/model/memory";
import { openKvTarget, type KvTarget } from "../kv/targets";
import { listCustomerModels, listCustomers, planGc, removeModel, rollback, rotateKey, checkCustomerName } from "../tenancy/store";
import { CliError, progress, endProgress, type Command } from "./command";
import { targetOptions } from "./deploy";

async function withTarget<T>(args: string[], extra: Record<string, { type: "string" | "boolean"; default?: string | boolean }>, use: (kv: KvTarget, positionals: string[], values: Record<string, unknown>) => Promise<T>): Promise<T> {
  const { values, positionals } = parseArgs({ args, options: { ...targetOptions, ...extra } as never, allowPositionals: true, strict: true });
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

export const customersCommand: Command = {
  summary: "list the customers",
  run: (args) =>
    withTarget(args, {}, async (kv, _p, v) => {
      const customers = [];
      for (const name of await listCustomers(kv)) customers.push({ name, models: (await listCustomerModels(kv, name)).length });
      print(v.json as boolean, { customers }, customers.length ? customers.map((c) => `${c.name}\t${c.models} model(s)`) : ["no customers"]);
    }),
};

export const modelsCommand: Command = {
  summary: "list a customer's models (models <customer>)",
  run: (args) =>
    withTarget(args, {}, async (kv, [customer], v) => {
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
  run: (args) =>
    withTarget(args, {}, async (kv, [verb, customer], v) => {
      if (verb !== "rotate" || !customer) throw new CliError("usage: edgeinfer keys rotate <customer>");
      const apiKey = await rotateKey(kv, customer);
      print(v.json as boolean, { customer, apiKey }, [`new API key for ${customer} (shown once; the old key no longer works):`, "", `  ${apiKey}`, ""]);
    }),
};

export const removeCommand: Command = {
  summary: "remove <customer> <id>: stop serving a customer's model (data stays until gc)",
  run: (args) =>
    withTarget(args, {}, async (kv, [customer, id], v) => {
      if (!customer || !id) throw new CliError("usage: edgeinfer remove <customer> <id>");
      await removeModel(kv, customer, id);
      print(v.json as boolean, { customer, id, removed: true }, [`removed ${id} from ${customer}; run gc to delete its data`]);
    }),
};

export const rollbackCommand: Command = {
  summary: "rollback <customer> <id>: make the previous version live again",
  run: (args) =>
    withTarget(args, {}, async (kv, [customer, id], v) => {
      if (!customer || !id) throw new CliError("usage: edgeinfer rollback <customer> <id>");
      const pointer = await rollback(kv, customer, id);
      print(v.json as boolean, { customer, id, manifest: pointer.manifest, previous: pointer.previous }, [`${customer}/${id}: version ${pointer.manifest.slice(0, 12)} is live again (rolled back from ${pointer.previous?.slice(0, 12)})`]);
    }),
};

export const gcCommand: Command = {
  summary: "delete shards, tokenizers and manifests no live or previous version references (--dry-run to list)",
  run: (args) =>
    withTarget(args, { "dry-run": { type: "boolean", default: false } }, async (kv, _p, v) => {
      const json = v.json as boolean;
      const plan = await planGc(kv);
      if (!v["dry-run"]) {
        for (const [i, key] of plan.remove.entries()) {
          progress(json, `gc [${i + 1}/${plan.remove.length}] ${key}`);
          await kv.delete(key);
        }
        endProgress(json);
      }
      print(json, { dryRun: v["dry-run"], removed: plan.remove, bytes: plan.bytes, kept: plan.keep }, [
        ...plan.remove.map((k) => `${v["dry-run"] ? "would delete" : "deleted"} ${k}`),
        `${plan.remove.length} key(s), ${formatBytes(plan.bytes)} ${v["dry-run"] ? "to delete" : "deleted"}; kept ${plan.keep.manifests} manifest(s), ${plan.keep.shards} shard(s), ${plan.keep.tokenizers} tokenizer(s)`,
      ]);
    }),
};
