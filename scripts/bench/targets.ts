// The issue's targets, evaluated on a bench result. They are printed as PASS / FAIL / SKIP
// lines and never fail the process.

import { ISOLATE_MEMORY_BYTES } from "../../functions/model/memory";
import type { BenchResult, ModelResult } from "./run";

export interface Target {
  name: string;
  status: "PASS" | "FAIL" | "SKIP";
  /** The numbers behind the verdict, in words. */
  detail: string;
  /**
   * When this machine's own ceiling (measured in the same run) is below the target: the
   * measurement that says so. The target cannot be met here by any kernel of this kind.
   */
  limit?: string;
}

const MiB = 1024 * 1024;
const f1 = (n: number) => n.toFixed(1);

export function evaluateTargets(r: Pick<BenchResult, "models" | "products" | "bundle" | "mode"> & Partial<Pick<BenchResult, "roofline" | "pairs" | "concurrency" | "apiReference" | "kquants" | "peer" | "peerError" | "constraint" | "constraintError">>): Target[] {
  const model = (shape: string, quant: string): ModelResult | undefined => r.models.find((m) => m.shape === shape && m.quant === quant);
  const skip = (name: string, why: string): Target => ({ name, status: "SKIP", detail: why });
  const verdict = (name: string, ok: boolean, detail: string): Target => ({ name, status: ok ? "PASS" : "FAIL", detail });
  const out: Target[] = [];

  {
    const name = "q8_0 decode on stories15M >= 75% of its roofline";
    const m = model("stories15M", "q8_0");
    if (!m?.inProcess || !m.roofline) out.push(skip(name, "not measured"));
    else {
      const bw = m.roofline.bandwidthBound <= m.roofline.computeBound;
      out.push(verdict(name, m.roofline.fraction >= 0.75,
        `${f1(m.inProcess.decodeTokensPerSecond)} tok/s = ${f1(100 * m.roofline.fraction)}% of ${f1(m.roofline.bound)} tok/s (${bw ? "bandwidth" : "compute"}-bound: ${m.tokenCost!.bytes} B/token)` +
        `; the q8_0 dot sequence alone would allow ${f1(m.roofline.sequenceDecodeBound)} tok/s`));
    }
  }
  {
    const name = "every quantized product >= 2x onnxruntime-web's on the same shape";
    const q = r.products.filter((p) => p.quant !== "f32");
    const measured = q.filter((p) => p.speedup !== null);
    if (measured.length === 0) out.push(skip(name, "not measured"));
    else {
      const worst = measured.reduce((a, b) => (b.speedup! < a.speedup! ? b : a));
      const failing = measured.filter((p) => p.speedup! < 2);
      const detail = `worst ${worst.speedup!.toFixed(2)}x on ${worst.shape} ${worst.label} ${worst.quant} (ours ${worst.oursMs.toFixed(4)} ms vs ${worst.ortBest!.variant} ${worst.ortBest!.ms.toFixed(4)} ms)` +
        (failing.length ? `; below 2x: ${failing.map((p) => `${p.shape} ${p.rows}x${p.cols} ${p.quant} ${p.speedup!.toFixed(2)}x`).join(", ")}` : `; all ${measured.length} >= 2x`) +
        (q.length > measured.length ? `; ${q.length - measured.length} without a working ORT operator` : "");
      out.push(verdict(name, failing.length === 0 && q.length === measured.length, detail));
    }
  }
  for (const quant of ["f32", "q8_0", "q4_0"]) {
    const name = `prefill >= 4x decode tokens/s on stories42M (${quant})`;
    const m = model("stories42M", quant);
    if (!m?.inProcess) {
      if (m || r.mode === "full") out.push(skip(name, m?.skipped ?? "not measured"));
      else if (quant !== "f32") out.push(skip(name, "stories42M is not run in --quick"));
      continue;
    }
    const decode = m.inProcess.decodeTokensPerSecond;
    const ratio = m.inProcess.prefillTokensPerSecond / decode;
    const t = verdict(name, ratio >= 4, `prefill ${f1(m.inProcess.prefillTokensPerSecond)} tok/s / decode ${f1(decode)} tok/s = ${ratio.toFixed(2)}x`);
    if (m.roofline) {
      const ceiling = m.roofline.sequencePrefillBound / decode;
      t.detail += `; ceiling ${f1(m.roofline.sequencePrefillBound)} tok/s = ${ceiling.toFixed(2)}x decode (every prefill multiply-add at the ${quant} dot sequence's register-only rate, nothing else counted)`;
      if (ceiling < 4) t.limit = `4x is above this machine's ceiling of ${ceiling.toFixed(2)}x for ${quant}: the decode step runs at ${f1(100 * m.roofline.fraction)}% of its memory bound, and prefill cannot beat the dot instructions' own rate`;
    }
    out.push(t);
  }
  {
    const name = "q4_0 decode >= 1.5x q8_0 decode on stories110M";
    const a = model("stories110M", "q4_0");
    const b = model("stories110M", "q8_0");
    if (!a?.inProcess || !b?.inProcess) out.push(skip(name, r.mode === "quick" ? "stories110M is not run in --quick" : "not measured"));
    else {
      // preferably the two measured turn about (same machine conditions), else one after the other
      const pair = r.pairs?.find((p) => p.a === a.id && p.b === b.id);
      const qa = pair ? pair.aTokensPerSecond : a.inProcess.decodeTokensPerSecond;
      const qb = pair ? pair.bTokensPerSecond : b.inProcess.decodeTokensPerSecond;
      const ratio = qa / qb;
      const t = verdict(name, ratio >= 1.5, `q4_0 ${f1(qa)} tok/s / q8_0 ${f1(qb)} tok/s = ${ratio.toFixed(2)}x` +
        (pair ? `, decoded turn about (${pair.rounds} turns each; measured apart: ${(a.inProcess.decodeTokensPerSecond / b.inProcess.decodeTokensPerSecond).toFixed(2)}x)` : "") +
        (b.fits ? "" : " (q8_0 measured in process: it does not fit the budget)"));
      if (a.roofline) {
        const q4 = Math.min(a.roofline.bandwidthBound, a.roofline.sequenceDecodeBound);
        const ceiling = q4 / qb;
        t.detail += `; q4_0's ceiling min(bandwidth ${f1(a.roofline.bandwidthBound)}, q4_0 dot sequence ${f1(a.roofline.sequenceDecodeBound)}) = ${f1(q4)} tok/s = ${ceiling.toFixed(2)}x this q8_0`;
        if (ceiling < 1.5) t.limit = `1.5x is above this machine's ceiling of ${ceiling.toFixed(2)}x`;
      }
      out.push(t);
    }
  }
  {
    const name = "q4_K decode within 15% of q4_0 decode on stories110M";
    const k = r.kquants;
    if (!k) out.push(skip(name, r.mode === "quick" ? "not run in --quick" : "not measured"));
    else out.push(verdict(name, k.pair.ratio >= 0.85, `q4_k ${f1(k.pair.aTokensPerSecond)} tok/s / q4_0 ${f1(k.pair.bTokensPerSecond)} tok/s = ${k.pair.ratio.toFixed(2)}x, decoded turn about`));
  }
  {
    const name = "Q4_K_M decode ahead of llama.cpp's on the same file (stories110M)";
    const k = r.kquants;
    if (!k) out.push(skip(name, r.mode === "quick" ? "not run in --quick" : "not measured"));
    else if (!k.q4km.llamaCpp) out.push(skip(name, `llama.cpp not measured: ${k.q4km.llamaCppError}`));
    else {
      const ours = k.q4km.ours, l = k.q4km.llamaCpp;
      out.push(verdict(name, ours.decodeTokensPerSecond > l.decodeTokensPerSecond,
        `ours ${f1(ours.decodeTokensPerSecond)} tok/s, llama.cpp (one thread) ${f1(l.decodeTokensPerSecond)} tok/s, decoded turn about; prefill ours ${f1(ours.prefillTokensPerSecond)} tok/s, llama.cpp ${f1(l.prefillTokensPerSecond)} tok/s`));
    }
  }
  for (const shape of ["stories42M", "stories110M"]) {
    for (const quant of ["q8_0", "q4_0"] as const) {
      const name = `prefill >= 0.75x llama.cpp's on ${shape} (${quant}, GGUF of the same shape)`;
      const p = r.peer?.rows.find((x) => x.shape === shape && x.quant === quant);
      if (!p) {
        out.push(skip(name, r.peerError ?? (r.mode === "quick" ? `${shape} is not run in --quick` : r.peer?.errors.find((e) => e.startsWith(`${shape} ${quant}:`)) ?? "not measured")));
        continue;
      }
      const G = (n: number) => (n / 1e9).toFixed(1);
      const t = verdict(name, p.prefillRatio >= 0.75,
        `ours ${f1(p.ours.prefillTokensPerSecond)} tok/s / llama.cpp ${f1(p.llamaCpp.prefillTokensPerSecond)} tok/s = ${p.prefillRatio.toFixed(2)}x (128-token prompt, ${p.rounds} turns each, turn about); ` +
        `in matrix multiply-adds: ours ${G(p.oursPrefillMacsPerSecond)} G/s, llama.cpp ${G(p.llamaCppPrefillMacsPerSecond)} G/s`);
      const need = 0.75 * p.llamaCppPrefillMacsPerSecond;
      // the better of the run's roofline figure and the one taken in the turns beside llama.cpp's (a ceiling: the highest seen)
      const ceiling = Math.max(r.roofline?.sequenceMacsPerSecond[quant] ?? 0, p.wasmSequenceMacsPerSecond ?? 0);
      if (ceiling > 0) {
        const peak = r.roofline?.intMacsPerSecond ?? 0;
        t.detail += `; the ${quant} exact dot sequence runs at ${G(ceiling)} G/s in wasm registers alone (best of the roofline probe and the same turns): ours is ${f1((100 * p.oursPrefillMacsPerSecond) / ceiling)}% of it, ` +
          `0.75x needs ${G(need)} G/s = ${f1((100 * need) / ceiling)}% of it for the whole prefill (norms, attention and activation quantization included)`;
        if (need > ceiling) {
          const vnni = /AVX512_VNNI = 1/.test(r.peer!.systemInfo) ? " with AVX512-VNNI" : "";
          t.limit = `0.75x is out of reach for wasm SIMD on this CPU: llama.cpp's native kernels${vnni} prefill at ${G(p.llamaCppPrefillMacsPerSecond)} G multiply-adds/s, 0.75x of that is ${G(need)} G/s, ` +
            `above the ${G(ceiling)} G/s of the ${quant} exact dot sequence in registers` +
            (!peak ? "" : need > peak ? ` and above the ${G(peak)} G/s of wasm's fastest int8 dot instruction alone` : ` (wasm's fastest int8 dot instruction alone: ${G(peak)} G/s)`);
        }
      }
      out.push(t);
    }
  }
  {
    const name = "stories110M q4_0 with 1024-token context generates within 128 MB peak";
    const m = model("stories110M", "q4_0");
    if (!m?.inProcess) out.push(skip(name, r.mode === "quick" ? "stories110M is not run in --quick" : "not measured"));
    else {
      const peak = m.inProcess.peakBytes;
      const cs = m.coldStart;
      const rss = cs?.rssGrowthFullContextBytes ?? null;
      const detail = `wasm memory ${f1(m.inProcess.wasmMemoryBytes / MiB)} MiB + tokenizer share ${f1(m.plan.tokenizer / MiB)} MiB = ${f1(peak / MiB)} MiB of ${ISOLATE_MEMORY_BYTES / MiB} MiB` +
        ` (generated to ${m.inProcess.fullContextTokens} tokens)` +
        (cs?.workerMemoryBytes ? `; the Worker reports ${f1(cs.workerMemoryBytes / MiB)} MiB` : "") +
        (rss !== null ? `; workerd RSS grew ${f1(rss / MiB)} MiB over a ${cs!.fullContextTokens}-token request (cross-check, includes miniflare's KV service)` : "");
      out.push(verdict(name, peak <= ISOLATE_MEMORY_BYTES && m.inProcess.fullContextTokens >= 1024, detail));
    }
  }
  {
    const name = "8 concurrent greedy streams on stories42M q8_0 >= 3x one stream's decode tokens/s";
    const c = r.concurrency;
    const eight = c?.points.find((p) => p.streams === 8);
    if (!c || !eight || !c.model.includes("stories42M")) out.push(skip(name, r.mode === "quick" ? `--quick measures ${c?.model ?? "no model"} only` : "not measured"));
    else {
      const one = c.points.find((p) => p.streams === 1)!;
      const t = verdict(name, eight.speedup >= 3 && eight.mismatches === 0,
        `8 streams ${f1(eight.tokensPerSecond)} tok/s / 1 stream ${f1(one.tokensPerSecond)} tok/s = ${eight.speedup.toFixed(2)}x (${eight.steps} steps)`);
      const m = model("stories42M", "q8_0");
      if (m?.roofline && m.inProcess) {
        // 8 decode rows per step run through the same integer-dot tiles as prefill, but every row
        // also needs the classifier: the decode multiply-adds per token (classifier included)
        // at the q8_0 dot sequence's register-only rate is the ceiling for any number of streams
        const ceiling = m.roofline.sequenceDecodeBound / one.tokensPerSecond;
        t.detail += `; prefill (the same tiles, classifier once per prompt) runs at ${f1(m.inProcess.prefillTokensPerSecond)} tok/s; every decode multiply-add (classifier included) at the q8_0 dot sequence's register-only rate would allow ${f1(m.roofline.sequenceDecodeBound)} tok/s = ${ceiling.toFixed(2)}x one stream`;
        if (ceiling < 3) t.limit = `3x is above this machine's ceiling of ${ceiling.toFixed(2)}x: batched decode is compute-bound at the q8_0 dot instructions' own rate`;
      }
      out.push(t);
    }
  }
  {
    const name = "one stream through the API (wrangler dev) >= 90% of its in-process decode tokens/s (stories15M q8_0)";
    const m = model("stories15M", "q8_0");
    const api = m?.coldStart?.apiDecodeTokensPerSecond;
    const ref = r.apiReference?.tokensPerSecond;
    if (!api || !ref) out.push(skip(name, "not measured"));
    else {
      const ratio = api / ref;
      const runs = m!.coldStart!.apiSamples?.api.length;
      out.push(verdict(name, ratio >= 0.9, `${f1(api)} tok/s streamed through workerd / ${f1(ref)} tok/s in process through the same engine, on the same workload (32-token prompt, then 160 tokens, first token to last) = ${f1(100 * ratio)}%` +
        (runs ? ` (medians of ${runs} runs each, turn about)` : "")));
    }
  }
  {
    const name = "time to first token of a short request beside 8 long generations <= 2x alone (stories15M q8_0, wrangler dev)";
    const t = model("stories15M", "q8_0")?.coldStart?.ttft;
    if (!t) out.push(skip(name, "not measured"));
    else {
      const ratio = t.underLoadMs / t.aloneMs;
      out.push(verdict(name, ratio <= 2, `${f1(t.underLoadMs)} ms beside ${t.longRequests} long generations / ${f1(t.aloneMs)} ms alone = ${ratio.toFixed(2)}x`));
    }
  }
  {
    const name = "Worker bundle < 300 KB gzip incl. kernels";
    if (!r.bundle) out.push(skip(name, "not measured"));
    else {
      const b = r.bundle;
      out.push(verdict(name, b.totalGzipBytes < 300_000,
        `${f1(b.totalGzipBytes / 1000)} KB gzip (script ${f1(b.script.gzipBytes / 1000)} KB + wasm ${f1(b.wasm.reduce((s, w) => s + w.gzipBytes, 0) / 1000)} KB; raw ${f1(b.totalBytes / 1000)} KB)`));
    }
  }
  {
    const name = "cold start for stories15M q8_0 < 300 ms with local KV";
    const m = model("stories15M", "q8_0");
    if (!m?.coldStart) out.push(skip(name, m?.coldStartError ? `failed: ${m.coldStartError.split("\n")[0]}` : "not measured"));
    else {
      const c = m.coldStart;
      out.push(verdict(name, c.coldMs < 300,
        `first request ${c.coldMs.toFixed(0)} ms (load from KV + prefill ${c.promptTokens} tokens + 1 token; the same request warm ${c.warmMs.toFixed(0)} ms); server start ${c.serverStartMs.toFixed(0)} ms not included`));
    }
  }
  for (const [name, match, limit] of [
    ["structured output adds <= 15% per decode step on stories15M q8_0", "stories15M", 0.15],
    ["structured output adds <= 25% per decode step on a Qwen2-layout model (Qwen's vocabulary)", "Qwen2", 0.25],
  ] as const) {
    const c = (r.constraint ?? []).find((x) => x.model.startsWith(match));
    if (!c) out.push(skip(name, r.constraintError ?? "not measured"));
    else out.push(verdict(name, c.overhead <= limit, `+${(100 * c.overhead).toFixed(1)}% (${c.plainMs.toFixed(3)} -> ${c.constrainedMs.toFixed(3)} ms per step, cache misses included; medians +${(100 * c.medianOverhead).toFixed(1)}%)`));
  }
  return out;
}
