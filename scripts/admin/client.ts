// The CLI's way to a customer's limits and usage: they live in the customer's meter (a Durable
// Object), which only the Worker can reach, so the CLI asks the Worker's admin routes
// (functions/admin.ts) with the admin key. Locally `edgeinfer serve` makes that key once and
// keeps it beside its KV state (`<persist-to>/admin-key`), so the commands find it themselves.

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Limits, UsageRow } from "../../functions/metering/limits";
import { CliError, type OptionSpecs } from "../commands/command";
import { projectRoot } from "../paths";

export const DEFAULT_URL = "http://127.0.0.1:8787";

export const adminOptions = {
  url: { type: "string", value: "URL", help: "the Worker to ask (default: EDGEINFER_URL, else http://127.0.0.1:8787, what npm start serves)" },
  "admin-key": { type: "string", value: "KEY", help: "the Worker's EDGEINFER_ADMIN_KEY (default: that variable, else the key edgeinfer serve keeps in the state folder)" },
  "persist-to": { type: "string", value: "DIR", help: "the local state folder whose admin key to use (default: .wrangler/state)" },
  json: { type: "boolean", default: false, help: "print one JSON object instead of the report" },
} as const satisfies OptionSpecs;

const keyFile = (persistTo?: string) => join(persistTo ?? join(projectRoot, ".wrangler", "state"), "admin-key");

/** The admin key `edgeinfer serve` gives wrangler dev: EDGEINFER_ADMIN_KEY, or one made once for this state folder. */
export function localAdminKey(persistTo?: string): string {
  if (process.env.EDGEINFER_ADMIN_KEY) return process.env.EDGEINFER_ADMIN_KEY;
  const file = keyFile(persistTo);
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const key = `eiadmin_${randomBytes(24).toString("base64url")}`;
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

export interface AdminTarget {
  url: string;
  key: string;
}

export function adminTarget(values: { url?: string; "admin-key"?: string; "persist-to"?: string }): AdminTarget {
  const url = (values.url ?? process.env.EDGEINFER_URL ?? DEFAULT_URL).replace(/\/+$/, "");
  let key = values["admin-key"] ?? process.env.EDGEINFER_ADMIN_KEY;
  if (!key && existsSync(keyFile(values["persist-to"]))) key = readFileSync(keyFile(values["persist-to"]), "utf8").trim();
  if (!key) throw new CliError("no admin key: pass --admin-key, set EDGEINFER_ADMIN_KEY (the Worker's secret), or run `edgeinfer serve` once locally");
  return { url, key };
}

async function request<T>(target: AdminTarget, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${target.url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${target.key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new CliError(`cannot reach the Worker at ${target.url} (${(e as Error).message}); is it running? (--url to point elsewhere)`);
  }
  const json = (await res.json().catch(() => null)) as { error?: { message: string } } | null;
  if (!res.ok) throw new CliError(`${target.url}: HTTP ${res.status}: ${json?.error?.message ?? "no message"}${res.status === 404 && !json?.error?.message?.startsWith("No customer") ? " (is EDGEINFER_ADMIN_KEY set on the Worker?)" : ""}`);
  return json as T;
}

export const getLimits = (t: AdminTarget, customer: string) => request<{ customer: string; limits: Limits }>(t, "GET", `/customers/${customer}/limits`).then((r) => r.limits);
export const putLimits = (t: AdminTarget, customer: string, limits: Limits) => request<{ customer: string; limits: Limits }>(t, "PUT", `/customers/${customer}/limits`, limits).then((r) => r.limits);
export const getUsage = (t: AdminTarget, customer: string, since?: string) =>
  request<{ customer: string; since: string; days: UsageRow[]; totals: { requests: number; promptTokens: number; completionTokens: number; embeddingInputs: number } }>(t, "GET", `/customers/${customer}/usage${since ? `?since=${since}` : ""}`);
