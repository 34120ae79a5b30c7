// The admin routes, for the operator's CLI (`edgeinfer customers limits`, `edgeinfer usage`):
// a customer's limits and usage, read from and written to its meter. They exist only when the
// EDGEINFER_ADMIN_KEY secret is set (a local var under `edgeinfer serve`), and need it as the
// bearer key. Customer API keys never reach them.
//
//   GET /admin/customers/:customer/limits
//   PUT /admin/customers/:customer/limits   {rpm, concurrency, tokensPerDay}: numbers, or null for none
//   GET /admin/customers/:customer/usage?since=YYYY-MM-DD
//   GET /admin/status   this isolate's loaded models and their sequences (what /healthz shows in open mode)

import { Hono, type Context } from "hono";
import { readJsonBody } from "./api/body";
import { ApiError, invalidRequest } from "./api/errors";
import type { AppContext } from "./app";
import { sha256Hex } from "./model/hash";
import { CUSTOMER_NAME_RE, kvKeys } from "./model/manifest";
import { parseLimits, type UsageRow } from "./metering/limits";
import { workerStore } from "./store/worker";

export const admin = new Hono<AppContext>();

admin.use("*", async (c, next) => {
  const key = c.env.EDGEINFER_ADMIN_KEY;
  if (!key) throw new ApiError(404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}`, "invalid_request_error", null, "not_found");
  const given = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  // Compared as hashes: equal length, so the comparison's time says nothing about the key.
  const [a, b] = await Promise.all([sha256Hex(given), sha256Hex(key)]);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  if (diff !== 0) throw new ApiError(401, "Incorrect admin key", "authentication_error", null, "invalid_api_key");
  if (!c.env.METER) throw new ApiError(503, "Metering is not configured (no METER Durable Object binding)", "server_error", null, "metering_unavailable");
  return next();
});

async function meterOf(c: Context<AppContext>) {
  const customer = c.req.param("customer") ?? "";
  if (!CUSTOMER_NAME_RE.test(customer) || (await workerStore(c.env).get(kvKeys.customerRecord(customer))) === null) {
    throw new ApiError(404, `No customer '${customer}'`, "invalid_request_error", "customer", "customer_not_found");
  }
  const namespace = c.env.METER!;
  return { customer, meter: namespace.get(namespace.idFromName(customer)) };
}

admin.get("/status", (c) => {
  const models = c.var.models;
  return c.json({ status: "ok", memory: { inUse: models.memoryInUse, loadedModels: models.loadedModels.length }, loaded: models.loadedModels });
});

admin.get("/customers/:customer/limits", async (c) => {
  const { customer, meter } = await meterOf(c);
  return c.json({ customer, limits: await meter.limits() });
});

admin.put("/customers/:customer/limits", async (c) => {
  const { customer, meter } = await meterOf(c);
  let limits;
  try {
    limits = parseLimits(await readJsonBody(c.req.raw));
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw invalidRequest((e as Error).message, "limits");
  }
  return c.json({ customer, limits: await meter.setLimits(limits) });
});

admin.get("/customers/:customer/usage", async (c) => {
  const { customer, meter } = await meterOf(c);
  const since = c.req.query("since") ?? "0000-00-00";
  if (!/^\d{4}-\d{2}-\d{2}$/.test(since)) throw invalidRequest("since must be a date, YYYY-MM-DD", "since");
  const days: UsageRow[] = await meter.usage(since);
  const totals = { requests: 0, promptTokens: 0, completionTokens: 0, embeddingInputs: 0 };
  for (const d of days) {
    totals.requests += d.requests;
    totals.promptTokens += d.promptTokens;
    totals.completionTokens += d.completionTokens;
    totals.embeddingInputs += d.embeddingInputs;
  }
  return c.json({ customer, since, days, totals });
});
