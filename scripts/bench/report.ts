// The bench result as text tables for people (the JSON is for machines).

import { VARIANT_NOTES } from "./ort";
import type { BenchResult } from "./run";

const MiB = 1024 * 1024;

function table(header: string[], rows: string[][], rightAlign: (col: number) => boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (rightAlign(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

const num = (n: number | null | undefined, digits = 1) => (n === null || n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits));
const mib = (n: number | null | undefined) => (n === null || n === undefined ? "-" : (n / MiB).toFixed(1));
const gb = (n: number) => (n / 1e9).toFixed(1);

/** llama.cpp's rows beside ours (or why it was not measured). */
export function peerLines(r: Pick<BenchResult, "peer" | "peerError">): string[] {
  const out: string[] = [];
  if (r.peer) {
    const p = r.peer;
    out.push("");
    out.push(`llama.cpp beside ours: ${p.peer}, on GGUF files of our writer (same random checkpoints as above), turn about; prefill of a 128-token prompt`);
    out.push(table(["model", "quant", "decode t/s", "llama.cpp", "ratio", "prefill t/s", "llama.cpp", "ratio", "prefill G mac/s", "llama.cpp", "wasm seq."],
      p.rows.map((x) => [x.shape, x.quant, num(x.ours.decodeTokensPerSecond), num(x.llamaCpp.decodeTokensPerSecond), `${num(x.decodeRatio, 2)}x`,
        num(x.ours.prefillTokensPerSecond), num(x.llamaCpp.prefillTokensPerSecond), `${num(x.prefillRatio, 2)}x`, gb(x.oursPrefillMacsPerSecond), gb(x.llamaCppPrefillMacsPerSecond), gb(x.wasmSequenceMacsPerSecond)]), (i) => i >= 2));
    out.push(`  llama.cpp's CPU backend: ${p.systemInfo}`);
    out.push("  prefill G mac/s: matrix multiply-adds per second of the prefill (the classifier once per prompt); wasm seq.: the quant's exact dot sequence in");
    out.push("  wasm registers alone (G/s, best of the same turns), the most any wasm kernel of that quant could do beside llama.cpp's figure.");
    for (const e of p.errors) out.push(`  not measured: ${e}`);
  } else if (r.peerError) out.push(`llama.cpp not measured: ${r.peerError}`);
  return out;
}

export function formatReport(r: BenchResult): string {
  const out: string[] = [];
  const env = r.env as Record<string, unknown>;
  out.push(`edgeinfer bench (${r.mode}) ${r.startedAt}: Node ${env.node}, ${env.cpu}, ${env.cores} cores, load ${(env.loadAverage as number[]).join(" ")} -> ${(env.loadAverageAtEnd as number[]).join(" ")}; commit ${env.commit}${(env.kernelsDirty as string[]).length ? " (kernels/ has uncommitted changes: measured as in the working tree)" : ""}`);
  out.push("");
  const rf = r.roofline;
  out.push(`Roofline (one thread, wasm SIMD): read bandwidth ${gb(rf.bandwidth)} GB/s over ${rf.bufferBytes >> 20} MiB (1 stream ${gb(rf.bandwidthOneStream)}, 4 streams ${gb(rf.bandwidthFourStreams)}); ` +
    rf.bandwidthCacheSized.map((c) => `${c.bytes >> 20} MiB buffer ${gb(c.bandwidth)} GB/s`).join(", ") + ".");
  out.push(`  peak multiply-adds: relaxed i8 dot ${gb(rf.macsPerSecond.relaxedDotI8)} G/s, relaxed i8 dot+add ${gb(rf.macsPerSecond.relaxedDotI8Add)} G/s, i16 dot ${gb(rf.macsPerSecond.dotI16)} G/s, f32 mul+add ${gb(rf.macsPerSecond.f32MulAdd)} G/s`);
  const sq = rf.sequenceMacsPerSecond;
  out.push(`  exact dot sequences (the kernels' inner step alone, in registers): q8_0 ${gb(sq.q8_0)} G/s (i8 with the sign moved ${gb(sq.q8_0SignRoute)}, i16 operands ${gb(sq.q8_0WideRoute)}), q4_0 ${gb(sq.q4_0)} G/s multiply-adds`);
  out.push("");

  out.push("Models (in process on Node 22 unless marked; decode: one token at a time after a 32-token prompt, median per token; prefill: 128 tokens through forward())");
  const rows: string[][] = [];
  const overBudget = (m: BenchResult["models"][number]) =>
    `needs ${mib(m.plan.total)} MiB (weights ${mib(m.plan.weights)}, KV cache ${mib(m.plan.kvCache)}) of the ${mib(m.plan.budget)} MiB budget`;
  for (const m of r.models) {
    if (!m.inProcess) {
      rows.push([m.shape, m.quant, `does not fit: ${overBudget(m)}`]);
      continue;
    }
    const p = m.inProcess;
    const c = m.coldStart;
    rows.push([
      m.fits ? m.shape : `${m.shape}*`,
      m.quant,
      mib(m.tokenCost!.bytes),
      num(p.decodeTokensPerSecond),
      num(m.roofline!.bound),
      `${num(100 * m.roofline!.fraction, 0)}%`,
      num(m.matmulOnly?.oursTokensPerSecond),
      num(m.matmulOnly?.ortTokensPerSecond),
      num(p.prefillTokensPerSecond),
      `${num(p.prefillTokensPerSecond / p.decodeTokensPerSecond, 2)}x`,
      mib(p.peakBytes),
      c ? num(c.coldMs, 0) : m.coldStartError ? "error" : "-",
      c ? num(c.warmMs, 0) : "-",
      c ? num(c.serverStartMs, 0) : "-",
      c ? mib(c.workerMemoryBytes) : "-",
      c ? mib(c.rssGrowthFullContextBytes ?? c.rssGrowthColdBytes) : "-",
    ]);
  }
  const header = ["model", "quant", "MiB/tok", "decode t/s", "roof t/s", "%roof", "ours mm t/s", "ort mm t/s", "prefill t/s", "pf/dec", "peak MiB", "cold ms", "warm ms", "start ms", "worker MiB", "RSS+ MiB"];
  const wide = rows.filter((row) => row.length > 3);
  const narrow = rows.filter((row) => row.length <= 3);
  out.push(table(header, wide, (i) => i >= 2));
  for (const row of narrow) out.push(`${row[0]} ${row[1]}: ${row[2]}`);
  for (const m of r.models.filter((x) => !x.fits && x.inProcess)) out.push(`* ${m.shape} ${m.quant} does not fit (${overBudget(m)}): measured in process only, it cannot be served.`);
  for (const p of r.pairs ?? []) out.push(`Turn about: ${p.a} ${num(p.aTokensPerSecond)} tok/s, ${p.b} ${num(p.bTokensPerSecond)} tok/s = ${p.ratio.toFixed(2)}x (${p.rounds} turns each, the two loaded at once).`);
  if (r.concurrency) {
    out.push("");
    out.push(`Concurrency (${r.concurrency.model}, greedy streams decoding at once through the batched step engine, in process):`);
    out.push(table(["streams", "tok/s (sum)", "x one stream", "steps", "memory MiB", "fits 112 MiB", "stream 0 = alone"],
      r.concurrency.points.map((p) => [`${p.streams}`, num(p.tokensPerSecond), num(p.speedup, 2), `${p.steps}`, mib(p.memoryBytes), p.fitsBudget ? "yes" : "no", p.mismatches === 0 ? "yes" : "NO"]), (i) => i >= 1 && i <= 4));
  }
  if (r.kquants) {
    const k = r.kquants;
    out.push(`K-quants, stories110M: q4_k decode ${num(k.pair.aTokensPerSecond)} tok/s vs q4_0 ${num(k.pair.bTokensPerSecond)} tok/s turn about = ${k.pair.ratio.toFixed(2)}x; prefill q4_k ${num(k.q4kPrefillTokensPerSecond)} tok/s, q4_0 ${num(k.q4_0PrefillTokensPerSecond)} tok/s.`);
    const l = k.q4km.llamaCpp;
    out.push(`Q4_K_M GGUF (same file): ours decode ${num(k.q4km.ours.decodeTokensPerSecond)} tok/s, prefill ${num(k.q4km.ours.prefillTokensPerSecond)} tok/s; ` +
      (l ? `llama.cpp (one thread) decode ${num(l.decodeTokensPerSecond)} tok/s (decoded turn about with ours), prefill ${num(l.prefillTokensPerSecond)} tok/s.` : `llama.cpp not measured: ${k.q4km.llamaCppError}.`));
  } else if (r.kquantsError) out.push(`K-quants not measured: ${r.kquantsError}`);
  out.push(...peerLines(r));
  for (const c of r.constraint ?? []) {
    out.push(
      `Structured output, ${c.model} (${c.vocabSize.toLocaleString("en-US")} tokens): ${num(c.plainMs, 3)} ms free vs ${num(c.constrainedMs, 3)} ms constrained per decode step = ` +
        `+${(100 * c.overhead).toFixed(1)}% (medians +${(100 * c.medianOverhead).toFixed(1)}%; time inside the constraint ${(100 * c.constraintShare).toFixed(1)}% of a free step), ${c.steps} steps turn about; ` +
        `schema compile ${num(c.compileMs, 2)} ms, vocabulary index ${num(c.vocabIndexMs, 0)} ms / ${mib(c.vocabIndexBytes)} MiB once per tokenizer, ` +
        `${c.masksComputed} masks computed, mask cache ${mib(c.maskCacheBytes)} MiB; ${c.completed}/${c.generations} values completed, ${c.parsed} parse.`,
    );
  }
  if (r.constraintError) out.push(`Structured output: not measured (${r.constraintError}).`);
  out.push("  MiB/tok: weights streamed per decode step (every matrix incl. the classifier, norms, one embedding row).");
  out.push("  roof t/s: min(bandwidth / bytes per token, peak multiply-adds / multiply-adds per token); %roof: decode as a share of it.");
  out.push("  ours/ort mm t/s: tokens/s the matrix products alone allow (sum over one forward pass of the per-shape medians below).");
  out.push("  peak MiB: the model's wasm memory (one sequence, full context) + its planned tokenizer share; generated to the full context in process.");
  out.push("  cold ms: under wrangler dev (workerd), the first completion (max_tokens 1) on a just-started server: load from local KV + prefill + 1 token,");
  out.push("  median over fresh servers;");
  out.push("  warm ms: the same request again; start ms: the server's own startup (spawn until /healthz), not in cold ms;");
  out.push("  worker MiB: what the Worker says the loaded model holds (/healthz; spare memory goes to extra KV caches); RSS+ MiB: workerd's resident");
  out.push("  memory growth (peak, summed over its processes) during a request filling the whole context: a cross-check, includes miniflare's KV service.");
  const heap = r.models.filter((m) => m.inProcess && m.inProcess.fullContextTokens > 0);
  if (heap.length) out.push(`  JS heap growth while generating to the full context in process: ${heap.map((m) => `${m.shape} ${m.quant} ${(m.inProcess!.fullContextHeapGrowthBytes / 1024).toFixed(0)} KiB`).join(", ")} (everything else is preallocated).`);
  const colds = r.models.filter((m) => m.coldStart);
  if (colds.length) {
    out.push("  cold start samples (ms, one fresh server each): " + colds.map((m) => `${m.shape} ${m.quant} ${m.coldStart!.coldSamplesMs.map((x) => x.toFixed(0)).join("/")}`).join("; "));
    const gen = colds.filter((m) => m.coldStart!.rssGrowthGenerationBytes !== null);
    if (gen.length) out.push("  workerd RSS growth during the full-context request alone (model already loaded): " + gen.map((m) => `${m.shape} ${m.quant} ${mib(m.coldStart!.rssGrowthGenerationBytes)} MiB over ${m.coldStart!.fullContextTokens} tokens`).join("; "));
  }
  const loads = r.models.filter((m) => m.inProcess && m.coldStart);
  if (loads.length) {
    out.push("  load work in process (what a cold start does besides reading KV): " + loads.map((m) => {
      const l = m.inProcess!.load;
      return `${m.shape} ${m.quant} tokenizer ${num(l.tokenizerMs, 0)} + sha256 ${num(l.sha256Ms, 0)} + instance ${num(l.instantiateMs, 0)} ms`;
    }).join("; "));
  }
  for (const m of r.models) if (m.coldStartError) out.push(`  ${m.shape} ${m.quant} cold start failed: ${m.coldStartError.split("\n")[0]}`);
  out.push("");

  if (r.products.length) {
    out.push("One matrix-vector product (M = 1), ours vs onnxruntime-web (wasm, 1 thread, SIMD); median ms per product; speed-up = ORT's best / ours");
    const prow = r.products.map((p) => [
      p.shape,
      p.label,
      p.quant,
      String(p.copies),
      p.oursMs.toFixed(4),
      (p.weightBytes / p.oursMs / 1e6).toFixed(1),
      p.ortBest ? p.ortBest.ms.toFixed(4) : "-",
      p.ortBest?.variant ?? "none ran",
      p.speedup === null ? "-" : `${p.speedup.toFixed(2)}x`,
      p.ort.map((v) => `${v.variant} ${v.ms === null ? "failed" : v.ms.toFixed(4)}`).join(", "),
    ]);
    out.push(table(["model", "shape", "quant", "copies", "ours ms", "ours GB/s", "ort ms", "ort best", "speed-up", "every ORT variant (ms)"], prow, (i) => i >= 3 && i <= 8 && i !== 7));
    for (const bits of ["4", "8"]) {
      const tried = r.products.flatMap((p) => p.ort.filter((v) => v.variant.startsWith(`MatMulNBits${bits}`)));
      if (!tried.length) continue;
      const ran = tried.filter((v) => v.ms !== null).length;
      if (ran === 0) {
        out.push(`  MatMulNBits (bits=${bits}) is missing from this onnxruntime-web wasm build (every session failed); ${bits === "4" ? "q4_0" : "q8_0"} is compared against the best ${bits}-bit path that ran.`);
        continue;
      }
      // accuracy_level 4 asks for int8 activations: an output as exact as the f32 one means it was not used
      const int8 = tried.filter((v) => v.variant.endsWith("-int8") && v.ms !== null);
      const plain = r.products.flatMap((p) => p.ort.filter((v) => v.variant === `MatMulNBits${bits}` && v.ms !== null));
      const exact = int8.length > 0 && int8.every((v) => (v.relRms ?? 1) < 1e-4);
      const ratio = int8.length && plain.length ? int8.reduce((t, v) => t + v.ms!, 0) / plain.reduce((t, v) => t + v.ms!, 0) : NaN;
      out.push(`  MatMulNBits (bits=${bits}) is in this onnxruntime-web wasm build (${ran} of ${tried.length} sessions ran)` +
        (int8.length ? `; accuracy_level 4 takes ${ratio.toFixed(2)}x the time of level 0 and its output is ${exact ? "as exact as with f32 activations (no int8 path used)" : "that of int8 activations"}` : "") + ".");
    }
    const failures = new Map<string, string>();
    for (const p of r.products) for (const v of p.ort) if (v.error) failures.set(v.variant, v.error);
    for (const [v, e] of failures) out.push(`  ${v} failed: ${e}`);
    const checks = r.products.flatMap((p) => p.ort.filter((v) => v.relRms !== undefined).map((v) => v.relRms!));
    const ours = r.products.filter((p) => p.oursRelRms !== undefined).map((p) => p.oursRelRms!);
    if (checks.length) out.push(`  outputs vs a float64 reference on the same weights: ORT exact-value variants rel. RMS <= ${Math.max(...checks).toExponential(1)}; ours <= ${Math.max(...ours).toExponential(1)} (q8_0 activations for quantized weights)`);
    out.push("  copies: distinct weight copies each side cycles through, as many as make up the model's weights per token (its decode working set,");
    out.push("  same for both sides); ours GB/s: weight bytes / our time.");
    const used = new Set(r.products.flatMap((p) => p.ort.map((v) => v.variant)));
    for (const v of used) out.push(`  ${v}: ${VARIANT_NOTES[v]}`);
    out.push("");
  }

  if (r.bundle) {
    const b = r.bundle;
    out.push(`Worker bundle (${b.method}${b.note ? `; ${b.note}` : ""}): script ${b.script.bytes} B (gzip ${b.script.gzipBytes}), ` +
      b.wasm.map((w) => `${w.name} ${w.bytes} B (gzip ${w.gzipBytes})`).join(", ") + `; total ${b.totalBytes} B, gzip ${b.totalGzipBytes} B` + (b.wranglerSummary ? ` [wrangler: ${b.wranglerSummary}]` : ""));
    out.push(`onnxruntime-web: ${b.ort.wasm.name} ${b.ort.wasm.bytes} B (gzip ${b.ort.wasm.gzipBytes}), JS ${b.ort.js.map((f) => `${f.name} ${f.bytes} B (gzip ${f.gzipBytes})`).join(", ")}; ` +
      `${(b.ort.totalGzipBytes / b.totalGzipBytes).toFixed(0)}x our gzip total`);
    out.push("");
  } else if (r.bundleError) {
    out.push(`Worker bundle: failed: ${r.bundleError}`);
    out.push("");
  }

  out.push("Targets");
  for (const t of r.targets) {
    out.push(`${t.status.padEnd(4)}  ${t.name}: ${t.detail}`);
    if (t.limit) out.push(`      limit: ${t.limit}`);
  }
  out.push("");
  out.push(`bench took ${(r.durationMs / 1000).toFixed(0)} s`);
  return out.join("\n");
}
