// Per-customer limits and usage inside workerd, on customers the real CLI deployed (the
// "tenants" fixtures) and the real CustomerMeter Durable Object: limits set through the admin
// route, 429 rate_limit_exceeded in OpenAI's shape with Retry-After, x-ratelimit-* headers, one
// customer at its limit leaving another untouched, usage equal to the sum of the usage fields
// returned under concurrent load, and counts that survive a restart of the meter.

import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../functions/env";
import type { Limits } from "../../functions/metering/limits";
import { CustomerMeter } from "../../functions/metering/meter";
import app from "../../functions/index";
import { artifactFile, call, seed, sseEvents, testEnv } from "./support";

const ADMIN_KEY = "admin-test-key";
const env = { ...testEnv, EDGEINFER_ADMIN_KEY: ADMIN_KEY } as Env;
let keys: { acme: string; globex: string };

beforeAll(async () => {
  await seed("tenants");
  const tenants = JSON.parse(new TextDecoder().decode(await artifactFile("tenants.json")));
  keys = { acme: tenants.keys.acme.current, globex: tenants.keys.globex };
});

const admin = (path: string, init: { method?: string; body?: unknown; key?: string } = {}) =>
  call(`/admin/customers/${path}`, init.body, { env, headers: { authorization: `Bearer ${init.key ?? ADMIN_KEY}` } }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

async function putLimits(key: string | undefined, body: unknown, customer = "acme") {
  const res = await app.request(`/admin/customers/${customer}/limits`, { method: "PUT", headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) }, env);
  return { status: res.status, body: (await res.json()) as any };
}

async function setLimits(customer: string, limits: Partial<Limits>) {
  const res = await putLimits(ADMIN_KEY, { rpm: null, concurrency: null, tokensPerDay: null, ...limits }, customer);
  expect(res.status).toBe(200);
}

async function complete(customer: "acme" | "globex", body: Record<string, unknown> = {}) {
  const res = await call("/v1/completions", { model: customer === "acme" ? "story" : "helper", prompt: "Once upon a time", max_tokens: 4, temperature: 0, ...body }, { env, headers: { authorization: `Bearer ${keys[customer]}` } });
  return { status: res.status, headers: res.headers, res };
}

async function usageTotals(customer: string) {
  const res = await admin(`${customer}/usage`);
  expect(res.status).toBe(200);
  return res.body.totals as { requests: number; promptTokens: number; completionTokens: number; embeddingInputs: number };
}

const ticketsOf = (customer: string) =>
  runInDurableObject(env.METER!.get(env.METER!.idFromName(customer)), (_instance: CustomerMeter, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tickets").one().n);

describe("the admin route", () => {
  it("sets and shows a customer's limits with the admin key only", async () => {
    const asPut = putLimits;
    // Only PUT writes.
    const post = await call("/admin/customers/acme/limits", { rpm: 1 }, { env, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(post.status).toBe(404);
    expect((await asPut(undefined, { rpm: 1 })).status).toBe(401);
    expect((await asPut(keys.acme, { rpm: 1 })).status).toBe(401);
    expect((await asPut(ADMIN_KEY, { rpm: -1 })).status).toBe(400);
    expect((await asPut(ADMIN_KEY, { rps: 1 })).status).toBe(400);
    const set = await asPut(ADMIN_KEY, { rpm: 30, concurrency: 4, tokensPerDay: 10_000 });
    expect(set).toEqual({ status: 200, body: { customer: "acme", limits: { rpm: 30, concurrency: 4, tokensPerDay: 10_000 } } });
    expect((await admin("acme/limits")).body.limits).toEqual({ rpm: 30, concurrency: 4, tokensPerDay: 10_000 });
    expect((await admin("nobody/limits")).status).toBe(404);
    // Without the secret the admin routes do not exist.
    const off = await call("/admin/customers/acme/limits", undefined, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(off.status).toBe(404);
    await asPut(ADMIN_KEY, { rpm: null, concurrency: null, tokensPerDay: null });
  });
});

describe("limits", () => {
  it("requests per minute: exactly the limit is admitted from a burst, the rest get 429 with Retry-After; another customer is untouched", async () => {
    await setLimits("acme", { rpm: 4 });
    await setLimits("globex", { rpm: 100 });
    const burst = await Promise.all([
      ...Array.from({ length: 10 }, () => complete("acme")),
      ...Array.from({ length: 6 }, () => complete("globex")),
    ]);
    const acme = burst.slice(0, 10);
    const globex = burst.slice(10);
    expect(acme.filter((r) => r.status === 200)).toHaveLength(4);
    const refused = acme.filter((r) => r.status === 429);
    expect(refused).toHaveLength(6);
    for (const r of refused) {
      const body = (await r.res.json()) as any;
      expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
      expect(body.error.code).toBe("rate_limit_exceeded");
      expect(body.error.type).toBe("requests");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(r.headers.get("x-ratelimit-limit-requests")).toBe("4");
      expect(r.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    }
    const remaining = acme.filter((r) => r.status === 200).map((r) => Number(r.headers.get("x-ratelimit-remaining-requests")));
    expect(remaining.sort()).toEqual([0, 1, 2, 3]);
    for (const r of acme) expect(r.headers.get("x-ratelimit-reset-requests")).toMatch(/^(\d+m)?\d+(ms|s)$/);
    // globex: every request admitted, its own window counted, nothing of acme's in it.
    expect(globex.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(globex.map((r) => Number(r.headers.get("x-ratelimit-remaining-requests"))).sort((a, b) => a - b)).toEqual([94, 95, 96, 97, 98, 99]);
    await setLimits("acme", {});
    await setLimits("globex", {});
  });

  it("concurrency: a request past the requests in progress gets 429 until one ends; streams hold their slot until they end", async () => {
    await setLimits("acme", { concurrency: 2 });
    const meter = env.METER!.get(env.METER!.idFromName("acme"));
    // Two requests in progress (as the middleware admits them).
    expect((await meter.begin("held-1")).admitted).toBe(true);
    expect((await meter.begin("held-2")).admitted).toBe(true);
    const refused = await complete("acme");
    expect(refused.status).toBe(429);
    expect(((await refused.res.json()) as any).error.message).toMatch(/2 concurrent requests/);
    await meter.finish("held-1", null);
    const stream = await complete("acme", { stream: true, stream_options: { include_usage: true } });
    expect(stream.status).toBe(200);
    expect(await ticketsOf("acme")).toBeGreaterThanOrEqual(1);
    await sseEvents(stream.res);
    await meter.finish("held-2", null);
    expect(await ticketsOf("acme")).toBe(0);
    await setLimits("acme", {});
  });

  it("tokens per day: once the day's tokens are spent every request gets 429 (type tokens); the overshoot stays within the documented slack", async () => {
    await setLimits("globex", {});
    const start = await usageTotals("globex");
    const used = start.promptTokens + start.completionTokens;
    const limit = used + 60;
    const concurrency = 3;
    await setLimits("globex", { tokensPerDay: limit, concurrency });
    let refusedTokens = 0;
    let biggest = 0;
    for (let wave = 0; wave < 20 && refusedTokens === 0; wave++) {
      const answers = await Promise.all(Array.from({ length: 5 }, () => complete("globex", { max_tokens: 8 })));
      for (const a of answers) {
        const body = (await a.res.json()) as any;
        if (a.status === 200) biggest = Math.max(biggest, body.usage.total_tokens);
        else if (body.error.type === "tokens") {
          refusedTokens++;
          expect(a.status).toBe(429);
          expect(a.headers.get("x-ratelimit-remaining-tokens")).toBe("0");
          expect(Number(a.headers.get("retry-after"))).toBeGreaterThan(0);
        } else expect(body.error.message).toMatch(/concurrent/);
      }
    }
    expect(refusedTokens).toBeGreaterThan(0);
    const end = await usageTotals("globex");
    const spent = end.promptTokens + end.completionTokens;
    // Slack: the requests in progress when the limit was crossed, each at most one request's tokens.
    expect(spent).toBeGreaterThanOrEqual(limit);
    expect(spent).toBeLessThanOrEqual(limit + concurrency * biggest);
    expect((await complete("globex")).status).toBe(429);
    await setLimits("globex", {});
  });
});

describe("usage", () => {
  it("equals the sum of the usage fields returned under concurrent load, per model, and survives a restart of the meter", async () => {
    await setLimits("acme", {});
    await setLimits("globex", {});
    const before = { acme: await usageTotals("acme"), globex: await usageTotals("globex") };
    const sums = { acme: { requests: 0, promptTokens: 0, completionTokens: 0 }, globex: { requests: 0, promptTokens: 0, completionTokens: 0 } };
    const one = async (i: number) => {
      const customer = i % 3 === 0 ? "globex" : "acme";
      const stream = i % 2 === 0;
      const a = await complete(customer, { prompt: "Once upon a time".slice(0, 4 + (i % 12)), max_tokens: 1 + (i % 9), temperature: 0.8, seed: i, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) });
      expect(a.status).toBe(200);
      let usage;
      if (stream) {
        const events = await sseEvents(a.res);
        usage = JSON.parse(events.at(-2)!).usage;
      } else usage = ((await a.res.json()) as any).usage;
      sums[customer].requests++;
      sums[customer].promptTokens += usage.prompt_tokens;
      sums[customer].completionTokens += usage.completion_tokens;
    };
    await Promise.all(Array.from({ length: 36 }, (_, i) => one(i)));
    // A refused or bad request uses no tokens.
    expect((await complete("acme", { max_tokens: -1 })).status).toBe(400);
    for (const customer of ["acme", "globex"] as const) {
      const after = await usageTotals(customer);
      expect(after.requests - before[customer].requests).toBe(sums[customer].requests);
      expect(after.promptTokens - before[customer].promptTokens).toBe(sums[customer].promptTokens);
      expect(after.completionTokens - before[customer].completionTokens).toBe(sums[customer].completionTokens);
      expect(await ticketsOf(customer)).toBe(0);
    }
    const usage = await admin("acme/usage");
    expect(usage.body.days.map((d: { model: string }) => d.model)).toContain("story");
    expect((await admin(`acme/usage?since=2999-01-01`)).body.days).toEqual([]);

    // Restart: a new object over the same storage (what the runtime makes after an eviction, a
    // deploy or a crash) has the same counts.
    const stub = env.METER!.get(env.METER!.idFromName("acme"));
    const fresh = await runInDurableObject(stub, (_instance: CustomerMeter, state) => new CustomerMeter(state, {}).usage());
    expect(fresh).toEqual(usage.body.days);
  });
});
