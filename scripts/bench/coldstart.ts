// Cold start and memory under workerd: the model is built into a local KV state with the real
// CLI (`edgeinfer build ... --persist-to DIR`), `wrangler dev --persist-to DIR` is started, and
// once it answers /healthz (the server's own startup, reported apart) the first completion
// with max_tokens 1 is timed: model load from KV + prefill + first token in a fresh isolate.
// workerd's resident memory is sampled meanwhile, and a request that fills the whole context
// shows the peak.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { projectRoot } from "../paths";
import { freePort } from "../serve-process";
import { benchPrompt } from "./models";

const execFileP = promisify(execFile);

export interface KvBuild {
  id: string;
  manifest: string;
  buildMs: number;
  /** True when the state already held this build (skipped). */
  cached: boolean;
}

/** `edgeinfer build` into the local KV state at persistTo (skipped when a stamp says it is there). */
export async function buildIntoLocalKv(checkpoint: string, tokenizer: string, id: string, quant: string, persistTo: string): Promise<KvBuild> {
  mkdirSync(persistTo, { recursive: true });
  const stamp = join(persistTo, `built-${id}.json`);
  const want = { checkpoint, tokenizer, quant };
  if (existsSync(stamp)) {
    const s = JSON.parse(readFileSync(stamp, "utf8"));
    if (JSON.stringify(s.want) === JSON.stringify(want) && existsSync(join(persistTo, "v3"))) return { id, manifest: s.manifest, buildMs: s.buildMs, cached: true };
  }
  const t = performance.now();
  const { stdout } = await execFileP(process.execPath, [join(projectRoot, "scripts", "bin", "edgeinfer.js"), "build", checkpoint, "--tokenizer", tokenizer, "--id", id, "--quant", quant, "--persist-to", persistTo, "--json"], {
    cwd: projectRoot,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    maxBuffer: 64 << 20,
  });
  const buildMs = performance.now() - t;
  const result = JSON.parse(stdout.trim().split("\n").pop()!);
  if (!result.ok) throw new Error(`edgeinfer build ${id} failed: ${result.error}`);
  writeFileSync(stamp, JSON.stringify({ want, manifest: result.manifest, buildMs }));
  return { id, manifest: result.manifest, buildMs, cached: false };
}

/** Descendant process ids of `pid` (from /proc; Linux only). */
function descendants(pid: number): Array<{ pid: number; comm: string }> {
  const children = new Map<number, Array<{ pid: number; comm: string }>>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid)!.push({ pid: Number(entry), comm });
    } catch {
      // exited meanwhile
    }
  }
  const out: Array<{ pid: number; comm: string }> = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c.pid);
    }
  };
  walk(pid);
  return out;
}

function statusKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Samples the summed RSS of the workerd processes every few ms; `peak()` is the highest sum seen. */
class RssSampler {
  private max = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  constructor(private readonly pids: number[]) {}
  now(): number {
    return this.pids.reduce((s, p) => s + statusKb(p, "VmRSS"), 0) * 1024;
  }
  hwm(): number {
    return this.pids.reduce((s, p) => s + statusKb(p, "VmHWM"), 0) * 1024;
  }
  start(): void {
    this.max = this.now();
    this.timer = setInterval(() => (this.max = Math.max(this.max, this.now())), 5);
  }
  stop(): number {
    clearInterval(this.timer);
    this.max = Math.max(this.max, this.now());
    return this.max;
  }
}

export interface ColdStartOptions {
  persistTo: string;
  /** Also run a request that fills the whole context (memory peak). */
  fullContext: boolean;
  /** Warm requests after the cold one (median). */
  warmReps: number;
  /** Also measure decode speed of one stream through the API, and time to first token alone and beside 8 long generations. */
  api?: boolean;
  /**
   * The same stream in process (one run's tokens/s per call, see engineStream): run turn about
   * with the API streams, so the ratio between the two is taken under the same machine conditions.
   */
  apiReference?: () => number;
  startTimeoutMs: number;
}

export interface ColdStartResult {
  id: string;
  /** spawn of `wrangler dev` until /healthz answers. */
  serverStartMs: number;
  /** The first completion (max_tokens 1) on the just-started server: load from KV + prefill + first token. */
  coldMs: number;
  /** The same request once the model is loaded (median). */
  warmMs: number;
  promptTokens: number;
  /** The Worker's own figure for the loaded model (wasm memory + tokenizer share), from /healthz. */
  workerMemoryBytes: number | null;
  /** Summed RSS of workerd processes: when ready, growth during the cold request, peak growth during the full-context request. */
  rssBaselineBytes: number;
  rssGrowthColdBytes: number;
  rssGrowthFullContextBytes: number | null;
  /** Peak growth during the full-context request alone (model already loaded): what generating adds. */
  rssGrowthGenerationBytes: number | null;
  /** Growth of the kernel's high-water mark (VmHWM) over the whole run, a second view of the peak. */
  hwmGrowthBytes: number;
  fullContextTokens: number | null;
  fullContextMs: number | null;
  workerdProcesses: number;
  /** One greedy stream through the API: tokens/s from its first token to its last (32-token prompt, as in process), median of API_STREAM_RUNS. */
  apiDecodeTokensPerSecond?: number;
  /** The same stream in process, run turn about with the API's (median), when an apiReference was given. */
  apiReferenceTokensPerSecond?: number;
  /** Every run's tokens/s: through the API, and in process. */
  apiSamples?: { api: number[]; reference: number[] };
  /** Time to the first streamed token of a short request: alone, and while 8 long generations run (medians). */
  ttft?: { aloneMs: number; underLoadMs: number; longRequests: number };
}

/** Streams a completion; returns when its first token arrived and when it ended, and how many tokens it had. */
async function streamTimes(url: string, body: Record<string, unknown>): Promise<{ firstMs: number; endMs: number; tokens: number }> {
  const t = performance.now();
  const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true, return_token_ids: true }) });
  if (!res.ok) throw new Error(`streamed completion answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let firstMs = -1;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (firstMs < 0 && /"token_ids":\[\d/.test(text)) firstMs = performance.now() - t;
  }
  const tokens = (text.match(/"token_ids":\[\d+\]/g) ?? []).length;
  return { firstMs, endMs: performance.now() - t, tokens };
}

/** Tokens the API decode measurement generates after its 32-token prompt (the in-process reference uses the same). */
export const apiDecodeTokens = (seqLen: number) => Math.min(160, seqLen - 40);

/** Runs of the API decode measurement (each side; the median is reported). */
export const API_STREAM_RUNS = 7;

async function measureApi(url: string, id: string, seqLen: number, vocab: number, reference?: () => number): Promise<Pick<ColdStartResult, "apiDecodeTokensPerSecond" | "apiReferenceTokensPerSecond" | "apiSamples" | "ttft">> {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const decodeTokens = apiDecodeTokens(seqLen);
  const api = async () => {
    const r = await streamTimes(url, { model: id, prompt: benchPrompt(32, vocab), max_tokens: decodeTokens, temperature: 0, stop: null });
    return (1000 * (r.tokens - 1)) / (r.endMs - r.firstMs);
  };
  // one warm-up run each, then turns in alternating order
  await api();
  reference?.();
  const rates: number[] = [];
  const refs: number[] = [];
  for (let i = 0; i < API_STREAM_RUNS; i++) {
    if (i % 2 === 0 || !reference) rates.push(await api());
    if (reference) refs.push(reference());
    if (i % 2 === 1 && reference) rates.push(await api());
  }
  const short = { model: id, prompt: benchPrompt(8, vocab), max_tokens: 4, temperature: 0 };
  const alone: number[] = [];
  for (let i = 0; i < 5; i++) alone.push((await streamTimes(url, short)).firstMs);
  const longRequests = 8;
  const long = Array.from({ length: longRequests }, (_, i) => streamTimes(url, { model: id, prompt: benchPrompt(16 + i, vocab), max_tokens: Math.min(200, seqLen - 40), temperature: 0.8, seed: i }));
  await new Promise((r) => setTimeout(r, 50));
  const underLoad: number[] = [];
  for (let i = 0; i < 5; i++) underLoad.push((await streamTimes(url, short)).firstMs);
  await Promise.all(long);
  return {
    apiDecodeTokensPerSecond: median(rates),
    ...(reference ? { apiReferenceTokensPerSecond: median(refs) } : {}),
    apiSamples: { api: rates, reference: refs },
    ttft: { aloneMs: median(alone), underLoadMs: median(underLoad), longRequests },
  };
}

/** Start wrangler dev on the state, time the cold request, stop. Throws with the log on failure. */
export async function measureColdStart(id: string, seqLen: number, vocab: number, o: ColdStartOptions): Promise<ColdStartResult> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, [join(projectRoot, "node_modules", "wrangler", "bin", "wrangler.js"), "dev", "--port", `${port}`, "--ip", "127.0.0.1", "--persist-to", o.persistTo], {
    cwd: projectRoot,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child.stdout!.on("data", (d) => (log += d));
  child.stderr!.on("data", (d) => (log += d));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch {
      return;
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // gone
      }
    }
  };
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}`);
      try {
        const res = await fetch(`${url}/healthz`);
        if (res.ok) {
          await res.text();
          break;
        }
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > o.startTimeoutMs) throw new Error("wrangler dev did not answer /healthz in time");
      await new Promise((r) => setTimeout(r, 20));
    }
    const serverStartMs = performance.now() - t0;
    const workerd = descendants(child.pid!).filter((p) => p.comm.startsWith("workerd")).map((p) => p.pid);
    const sampler = new RssSampler(workerd);
    const baseline = sampler.now();
    const hwm0 = sampler.hwm();

    const complete = async (body: unknown) => {
      const t = performance.now();
      const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      const text = await res.text();
      const ms = performance.now() - t;
      if (!res.ok) throw new Error(`completion for ${id} answered ${res.status}: ${text.slice(0, 500)}`);
      return { ms, json: JSON.parse(text) };
    };
    const first = { model: id, prompt: "Once upon a time", max_tokens: 1, temperature: 0 };
    sampler.start();
    const cold = await complete(first);
    const coldPeak = sampler.stop();
    const warm: number[] = [];
    for (let i = 0; i < o.warmReps; i++) warm.push((await complete(first)).ms);
    const health = (await (await fetch(`${url}/healthz`)).json()) as { loaded?: Array<{ id: string; memoryBytes: number }> };
    const loaded = health.loaded?.find((m) => m.id === id);

    let fullPeak: number | null = null;
    let beforeFull: number | null = null;
    let fullMs: number | null = null;
    let fullTokens: number | null = null;
    if (o.fullContext) {
      const prompt = benchPrompt(seqLen - 8, vocab);
      beforeFull = sampler.now();
      sampler.start();
      const full = await complete({ model: id, prompt, max_tokens: 8, temperature: 0 });
      fullPeak = sampler.stop();
      fullMs = full.ms;
      fullTokens = full.json.usage?.total_tokens ?? null;
    }
    const hwmGrowth = sampler.hwm() - hwm0;
    const api = o.api ? await measureApi(url, id, seqLen, vocab, o.apiReference) : {};
    return {
      ...api,
      id,
      serverStartMs,
      coldMs: cold.ms,
      warmMs: warm.length ? warm.sort((a, b) => a - b)[warm.length >> 1] : NaN,
      promptTokens: cold.json.usage?.prompt_tokens ?? 0,
      workerMemoryBytes: loaded?.memoryBytes ?? null,
      rssBaselineBytes: baseline,
      rssGrowthColdBytes: coldPeak - baseline,
      rssGrowthFullContextBytes: fullPeak === null ? null : fullPeak - baseline,
      rssGrowthGenerationBytes: fullPeak === null || beforeFull === null ? null : fullPeak - beforeFull,
      hwmGrowthBytes: hwmGrowth,
      fullContextTokens: fullTokens,
      fullContextMs: fullMs,
      workerdProcesses: workerd.length,
    };
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- wrangler dev log (tail) ---\n${log.slice(-3000)}`);
  } finally {
    await stop();
  }
}
