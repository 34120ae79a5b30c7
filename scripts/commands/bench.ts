// edgeinfer bench [--quick] [--json] [--write-docs]: speed, memory, cold start and size of our
// runtime on random-weight TinyStories shapes, beside onnxruntime-web and the machine's
// roofline. See scripts/bench/ for the pieces.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { projectRoot } from "../paths";
import { SHAPE_NAMES, type ShapeName } from "../bench/models";
import { formatReport } from "../bench/report";
import { defaultOptions, runBench } from "../bench/run";
import { benchChart } from "../bench/svg";
import type { BenchQuant } from "../bench/weights";
import { LLAMA2_TOKENIZER, resolveModelFiles } from "../default-model";
import { CliError, endProgress, jsonOption, progress, type Command, type OptionSpecs } from "./command";

const benchOptions = {
  quick: { type: "boolean", default: false, help: "stories15M only, shorter runs (what CI runs)" },
  "write-docs": { type: "boolean", default: false, help: "write docs/bench/latest.json and docs/bench/bench.svg" },
  tokenizer: { type: "string", value: "FILE", help: "llama2.c's 32000-token tokenizer.bin (default: found as npm start finds its model files, or downloaded)" },
  shapes: { type: "string", value: "LIST", help: `comma-separated shapes to run, of ${SHAPE_NAMES.join(", ")}` },
  quants: { type: "string", value: "LIST", help: "comma-separated quants to run, of f32, q8_0, q4_0" },
  "no-ort": { type: "boolean", default: false, help: "skip the onnxruntime-web comparison" },
  "no-cold-start": { type: "boolean", default: false, help: "skip the cold start under wrangler dev" },
  "no-bundle": { type: "boolean", default: false, help: "skip the Worker bundle size" },
  "no-peer": { type: "boolean", default: false, help: "skip llama.cpp beside ours (installed on demand into ~/.cache/edgeinfer/llama-cpp)" },
  ...jsonOption,
} as const satisfies OptionSpecs;

const BENCH_USAGE = "bench [options]";
const USAGE = `usage: edgeinfer ${BENCH_USAGE} (see edgeinfer bench --help)`;

export const DOCS_DIR = join(projectRoot, "docs", "bench");

/** llama2.c's 32,000-token tokenizer.bin, found (or downloaded, checked by sha256) as `npm start` finds its model files. */
export async function defaultTokenizer(json = false): Promise<string> {
  return (await resolveModelFiles([LLAMA2_TOKENIZER], { json }))[LLAMA2_TOKENIZER.name];
}

export const benchCommand: Command = {
  summary: "benchmark decode/prefill speed, memory, cold start and bundle size against the roofline and onnxruntime-web (--quick for CI)",
  usage: BENCH_USAGE,
  options: benchOptions,
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: benchOptions, strict: true, allowPositionals: true });
    if (positionals.length) throw new CliError(USAGE);
    const json = values.json;
    const tokenizer = values.tokenizer ?? (await defaultTokenizer(json));
    if (!existsSync(tokenizer)) throw new CliError(`no such tokenizer file: ${tokenizer}`);
    const o = defaultOptions(values.quick, tokenizer, (line) => progress(json, `bench: ${line}`));
    if (values.shapes) {
      const list = values.shapes.split(",").map((s) => s.trim());
      for (const s of list) if (!SHAPE_NAMES.includes(s as ShapeName)) throw new CliError(`unknown shape ${s}; known: ${SHAPE_NAMES.join(", ")}`);
      o.shapes = list as ShapeName[];
    }
    if (values.quants) {
      const list = values.quants.split(",").map((s) => s.trim());
      for (const q of list) if (!["f32", "q8_0", "q4_0"].includes(q)) throw new CliError(`unknown quant ${q}; known: f32, q8_0, q4_0`);
      o.quants = list as BenchQuant[];
    }
    if (values["no-ort"]) o.ort = false;
    if (values["no-bundle"]) o.bundle = false;
    if (values["no-peer"]) o.peer = false;
    if (values["no-cold-start"]) o.coldStart = () => false;

    // the kernels as the working tree has them (no-op when kernels.wasm is up to date)
    execFileSync(process.execPath, [join(projectRoot, "scripts", "build-kernels.mjs")], { stdio: ["ignore", json ? "ignore" : "inherit", "inherit"] });
    const result = await runBench(o);
    endProgress(json);
    if (values["write-docs"]) {
      mkdirSync(DOCS_DIR, { recursive: true });
      writeFileSync(join(DOCS_DIR, "latest.json"), JSON.stringify(result, null, 1) + "\n");
      writeFileSync(join(DOCS_DIR, "bench.svg"), benchChart(result));
    }
    if (json) console.log(JSON.stringify(result));
    else {
      console.log(formatReport(result));
      if (values["write-docs"]) console.log(`wrote ${join("docs", "bench", "latest.json")} and ${join("docs", "bench", "bench.svg")}`);
    }
    return 0;
  },
};

// `npx tsx scripts/commands/bench.ts [options]` runs it directly (before the CLI registers it).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchCommand.run(process.argv.slice(2)).then(
    (code) => (process.exitCode = code ?? 0),
    (e) => {
      const json = process.argv.includes("--json");
      const message = e instanceof Error ? e.message : String(e);
      if (json) console.log(JSON.stringify({ ok: false, error: message, ...(e instanceof CliError ? e.details : {}) }));
      else console.error(`edgeinfer: ${message}`);
      process.exitCode = 1;
    },
  );
}
