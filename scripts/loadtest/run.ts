// The load test: a mixed workload (models, lengths, streaming or not, greedy and seeded
// sampling) from autocannon against a server on loopback, bounded in count and time. Every
// response is checked against the output the same request gets alone, and time to first
// token of short requests is measured while long generations run.

import autocannon from "autocannon";

export interface LoadtestOptions {
  url: string;
  connections: number;
  /** Total requests (the run also stops after `maxSeconds`). */
  amount: number;
  maxSeconds: number;
  models: string[];
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
    shapes.push({ name: `${model} stream greedy`, body: { model, prompt: "In a quiet village", max_tokens: 32, temperature: 0, stream: true } });
  });
  return shapes;
}

/** What a response said, reduced to something comparable: the text (streams reassembled). */
function outputOf(body: string, stream: boolean): { text: string; tokens: number } | null {
  try {
    if (!stream) {
      const json = JSON.parse(body);
      return { text: json.choices[0].text, tokens: json.usage.completion_tokens };
    }
    const events = body.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    if (events.at(-1) !== "[DONE]") return null;
    let text = "";
    let tokens = 0;
    for (const e of events.slice(0, -1)) {
      const chunk = JSON.parse(e);
      if (chunk.error) return null;
      for (const c of chunk.choices) {
        text += c.text ?? "";
        if (c.finish_reason === null && c.text) tokens++;
      }
    }
    return { text, tokens };
  } catch {
    return null;
  }
}

async function solo(url: string, shape: Shape): Promise<string> {
  const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(shape.body) });
  const out = outputOf(await res.text(), Boolean(shape.body.stream));
  if (res.status !== 200 || !out) throw new Error(`warm-up request '${shape.name}' failed with HTTP ${res.status}`);
  return out.text;
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
}

export async function runLoadtest(options: LoadtestOptions): Promise<LoadtestReport> {
  const shapes = workload(options.models);
  const expected = new Map<string, string>();
  for (const s of shapes) expected.set(s.name, await solo(options.url, s));

  let wrongOutputs = 0;
  let completionTokens = 0;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    amount: options.amount,
    duration: options.maxSeconds,
    timeout: 60,
    requests: shapes.map((s) => ({
      method: "POST" as const,
      path: "/v1/completions",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(s.body),
      onResponse: (status: number, body: string) => {
        const out = outputOf(body, Boolean(s.body.stream));
        if (status !== 200 || !out || out.text !== expected.get(s.name)) wrongOutputs++;
        if (out) completionTokens += out.tokens;
      },
    })),
  });
  const fairness = await measureFairness(options.url, options.models[0]);
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
  };
}

/** Time to the first streamed token of a short request: alone, then while long generations run. */
async function measureFairness(url: string, model: string): Promise<LoadtestReport["fairness"]> {
  const ttft = async () => {
    const start = performance.now();
    const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, prompt: "Hi", max_tokens: 4, stream: true, temperature: 0 }) });
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
    fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, prompt: "Once", max_tokens: 120, temperature: 0.9, seed: 1 }) }).then((r) => r.text()),
  );
  await new Promise((r) => setTimeout(r, 20));
  const underLoad: number[] = [];
  for (let i = 0; i < 5; i++) underLoad.push(await ttft());
  await Promise.all(long);
  return { ttftAloneMs: median(alone), ttftUnderLoadMs: median(underLoad), longRequests };
}
