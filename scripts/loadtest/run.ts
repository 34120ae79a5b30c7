// The load test: a mixed workload (models, lengths, streaming or not, greedy and seeded
// sampling) from autocannon against a server on loopback, bounded in count and time. Every
// response is checked against the output the same request gets alone, and time to first
// token of short requests is measured while long generations run. Run as a customer, the
// customer's metered usage is checked against the sum of the usage fields it was sent.

import autocannon from "autocannon";
import { connect } from "node:net";

export interface LoadtestOptions {
  url: string;
  connections: number;
  /** Total requests (the run also stops after `maxSeconds`). */
  amount: number;
  maxSeconds: number;
  models: string[];
  /**
   * Besides the workload, this many streaming clients (a share of the workload's requests) that
   * close their socket mid-stream, as closed tabs and cancelled fetches do.
   */
  disconnects?: number;
  /**
   * Send the workload as a customer (this API key) and check its metered usage, read from the
   * admin route, against the usage fields returned; the hang-ups go as another customer.
   */
  metering?: { apiKey: string; hangupKey: string; customer: string; adminKey: string };
}

interface Shape {
  name: string;
  body: Record<string, unknown>;
}

function workload(models: string[]): Shape[] {
  const shapes: Shape[] = [];
  models.forEach((model, m) => {
    shapes.push({ name: `${model} short greedy`, body: { model, prompt: "Once upon a time", max_tokens: 8, temperature: 0 } });
    shapes.push({ name: `${model} long sampled`, body: { model, prompt: "The little robot", max_tokens: 64, temperature: 0.8, top_p: 0.9, seed: 7 + m } });
    shapes.push({ name: `${model} stream greedy`, body: { model, prompt: "In a quiet village", max_tokens: 32, temperature: 0, stream: true, stream_options: { include_usage: true } } });
  });
  return shapes;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** What a response said, reduced to something comparable: the text (streams reassembled), and its usage field. */
function outputOf(body: string, stream: boolean): { text: string; tokens: number; usage: Usage | null } | null {
  try {
    if (!stream) {
      const json = JSON.parse(body);
      return { text: json.choices[0].text, tokens: json.usage.completion_tokens, usage: json.usage };
    }
    const events = body.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    if (events.at(-1) !== "[DONE]") return null;
    let text = "";
    let tokens = 0;
    let usage: Usage | null = null;
    for (const e of events.slice(0, -1)) {
      const chunk = JSON.parse(e);
      if (chunk.error) return null;
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text ?? "";
        if (c.finish_reason === null && c.text) tokens++;
      }
    }
    return { text, tokens, usage };
  } catch {
    return null;
  }
}

async function solo(url: string, shape: Shape, headers: Record<string, string>, sent: Metered): Promise<string> {
  const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(shape.body) });
  const out = outputOf(await res.text(), Boolean(shape.body.stream));
  if (res.status !== 200 || !out) throw new Error(`warm-up request '${shape.name}' failed with HTTP ${res.status}`);
  sent.add(out.usage);
  return out.text;
}

/** The usage fields a customer was sent, summed. */
class Metered {
  requests = 0;
  promptTokens = 0;
  completionTokens = 0;
  missing = 0;
  add(usage: Usage | null): void {
    if (!usage) {
      this.missing++;
      return;
    }
    this.requests++;
    this.promptTokens += usage.prompt_tokens;
    this.completionTokens += usage.completion_tokens;
  }
}

async function meteredTotals(url: string, m: NonNullable<LoadtestOptions["metering"]>) {
  const res = await fetch(`${url}/admin/customers/${m.customer}/usage`, { headers: { authorization: `Bearer ${m.adminKey}` } });
  if (!res.ok) throw new Error(`reading usage: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { totals: { requests: number; promptTokens: number; completionTokens: number } }).totals;
}

export interface LoadtestReport {
  requests: number;
  errors: number;
  non2xx: number;
  wrongOutputs: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  completionTokens: number;
  tokensPerSecond: number;
  durationSeconds: number;
  fairness: { ttftAloneMs: number; ttftUnderLoadMs: number; longRequests: number };
  /** Clients that hung up mid-stream, and KV caches still held once the server is idle again (must be 0). */
  disconnects: { clients: number; leakedSlots: number };
  /** As a customer: the usage fields it was sent, summed, and what its meter counted (must be equal). */
  metering: { sent: { requests: number; promptTokens: number; completionTokens: number }; metered: { requests: number; promptTokens: number; completionTokens: number }; mismatches: number } | null;
}

export async function runLoadtest(options: LoadtestOptions): Promise<LoadtestReport> {
  const shapes = workload(options.models);
  const m = options.metering;
  const auth: Record<string, string> = m ? { authorization: `Bearer ${m.apiKey}` } : {};
  const sent = new Metered();
  const meteredBefore = m ? await meteredTotals(options.url, m) : null;
  const expected = new Map<string, string>();
  for (const s of shapes) expected.set(s.name, await solo(options.url, s, auth, sent));

  let wrongOutputs = 0;
  let completionTokens = 0;
  const hangups = hangUpMidStream(options.url, options.models, options.disconnects ?? 0, m?.hangupKey);
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    amount: options.amount,
    duration: options.maxSeconds,
    timeout: 60,
    requests: shapes.map((s) => ({
      method: "POST" as const,
      path: "/v1/completions",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify(s.body),
      onResponse: (status: number, body: string) => {
        const out = outputOf(body, Boolean(s.body.stream));
        if (status !== 200 || !out || out.text !== expected.get(s.name)) wrongOutputs++;
        if (out) completionTokens += out.tokens;
        if (status === 200) sent.add(out?.usage ?? null);
      },
    })),
  });
  const clients = await hangups;
  let metering: LoadtestReport["metering"] = null;
  if (m) {
    // Usage is counted before it is sent, so every answer received is counted by now.
    const after = await meteredTotals(options.url, m);
    const metered = { requests: after.requests - meteredBefore!.requests, promptTokens: after.promptTokens - meteredBefore!.promptTokens, completionTokens: after.completionTokens - meteredBefore!.completionTokens };
    const total = { requests: sent.requests, promptTokens: sent.promptTokens, completionTokens: sent.completionTokens };
    const mismatches = sent.missing + (["requests", "promptTokens", "completionTokens"] as const).filter((k) => metered[k] !== total[k]).length;
    metering = { sent: total, metered, mismatches };
  }
  const leakedSlots = await slotsHeldOnceIdle(options.url, m?.adminKey);
  const fairness = await measureFairness(options.url, options.models[0], auth);
  return {
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    wrongOutputs,
    requestsPerSecond: result.requests.total / result.duration,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    completionTokens,
    tokensPerSecond: completionTokens / result.duration,
    durationSeconds: result.duration,
    fairness,
    disconnects: { clients, leakedSlots },
    metering,
  };
}

/**
 * `count` streaming requests over raw sockets, four at a time, each closed after its first
 * bytes arrive (or a few milliseconds in): the server sees a client vanish mid-stream.
 */
async function hangUpMidStream(url: string, models: string[], count: number, apiKey?: string): Promise<number> {
  const { hostname, port } = new URL(url);
  let started = 0;
  let done = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({ model: models[i % models.length], prompt: "Hi", max_tokens: 120, stream: true, temperature: 0.8, seed: i });
      const socket = connect(Number(port), hostname);
      const hangUp = () => {
        socket.destroy();
        resolve();
      };
      socket.setTimeout(30_000, hangUp);
      socket.on("error", hangUp);
      socket.once("data", () => setTimeout(hangUp, i % 7));
      socket.write(`POST /v1/completions HTTP/1.1\r\nhost: ${hostname}\r\n${apiKey ? `authorization: Bearer ${apiKey}\r\n` : ""}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
  const worker = async () => {
    while (started < count) {
      await one(started++);
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, count) }, worker));
  return done;
}

/** KV caches the loaded models still hold (running or queued sequences) once nothing is being asked; waits up to 10 s for the server to go idle. */
async function slotsHeldOnceIdle(url: string, adminKey?: string): Promise<number> {
  let held = 0;
  for (let i = 0; i < 40; i++) {
    // Once customers exist /healthz says only "ok"; the admin route shows the same detail.
    const health = (await (await fetch(adminKey ? `${url}/admin/status` : `${url}/healthz`, { headers: adminKey ? { authorization: `Bearer ${adminKey}` } : {} })).json()) as { loaded?: Array<{ sequences: { running: number; queued: number } }> };
    held = (health.loaded ?? []).reduce((n, m) => n + m.sequences.running + m.sequences.queued, 0);
    if (held === 0) return 0;
    await new Promise((r) => setTimeout(r, 250));
  }
  return held;
}

/** Time to the first streamed token of a short request: alone, then while long generations run. */
async function measureFairness(url: string, model: string, auth: Record<string, string>): Promise<LoadtestReport["fairness"]> {
  const ttft = async () => {
    const start = performance.now();
    const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify({ model, prompt: "Hi", max_tokens: 4, stream: true, temperature: 0 }) });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
      if (/"text":"[^"]+"/.test(seen)) break;
    }
    const ms = performance.now() - start;
    await reader.cancel().catch(() => {});
    return ms;
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const alone: number[] = [];
  for (let i = 0; i < 5; i++) alone.push(await ttft());
  const longRequests = 4;
  const long = Array.from({ length: longRequests }, () =>
    fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify({ model, prompt: "Once", max_tokens: 120, temperature: 0.9, seed: 1 }) }).then((r) => r.text()),
  );
  await new Promise((r) => setTimeout(r, 20));
  const underLoad: number[] = [];
  for (let i = 0; i < 5; i++) underLoad.push(await ttft());
  await Promise.all(long);
  return { ttftAloneMs: median(alone), ttftUnderLoadMs: median(underLoad), longRequests };
}
