// edgeinfer usage <customer> [--since DATE]: a customer's metered usage per day and model,
// read from its meter through the Worker's admin route (scripts/admin/client.ts).

import { parseArgs } from "node:util";
import { adminOptions, adminTarget, getUsage } from "../admin/client";
import { checkCustomerName } from "../tenancy/store";
import { CliError, type Command, type OptionSpecs } from "./command";

const usageOptions = {
  since: { type: "string", value: "YYYY-MM-DD", help: "only days from this one on (UTC)" },
  ...adminOptions,
} as const satisfies OptionSpecs;

export const usageCommand: Command = {
  summary: "a customer's usage per day and model: requests, prompt and completion tokens, embedding inputs (from its meter, through the Worker's admin route)",
  usage: "usage <customer> [options]",
  options: usageOptions,
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: usageOptions, allowPositionals: true, strict: true });
    const [customer] = positionals;
    if (positionals.length !== 1) throw new CliError("usage: edgeinfer usage <customer> [--since YYYY-MM-DD] [--url URL] [--admin-key KEY] [--json]");
    checkCustomerName(customer);
    if (values.since !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(values.since)) throw new CliError(`--since must be a date, YYYY-MM-DD (got ${values.since})`);
    const usage = await getUsage(adminTarget(values), customer, values.since);
    if (values.json) {
      console.log(JSON.stringify({ ok: true, ...usage }));
      return;
    }
    if (usage.days.length === 0) {
      console.log(`${customer}: no usage${values.since ? ` since ${values.since}` : ""}`);
      return;
    }
    console.log(["day", "model", "requests", "prompt", "completion", "embedding inputs"].join("\t"));
    for (const d of usage.days) console.log([d.day, d.model, d.requests, d.promptTokens, d.completionTokens, d.embeddingInputs].join("\t"));
    const t = usage.totals;
    console.log(["total", "", t.requests, t.promptTokens, t.completionTokens, t.embeddingInputs].join("\t"));
  },
};
