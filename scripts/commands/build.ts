// edgeinfer build <checkpoint> --tokenizer <file> --id <model-id> [--quant <dtype, mix or keep>]

import { parseArgs } from "node:util";
import { formatBytes, tokenizerHeapBytes } from "../../functions/model/memory";
import { buildArtifacts, checkModelId, defaultCacheDtype, manifestQuant, buildDtypes, type BuildArtifacts } from "../build/pipeline";
import { BUILD_QUANTS, type BuildQuant } from "../build/quantize";
import { checkFit, describePlan } from "../build/fit";
import { publishArtifacts, type PublishResult } from "../build/publish";
import { openKvTarget, type KvTarget } from "../kv/targets";
import { loadSource } from "../sources/load";
import { CliError, endProgress, progress, targetOptions, type Command, type OptionSpecs } from "./command";

/** Checks a --quant value; undefined stays undefined (the source's default, see resolveQuant). */
export function parseQuant(value: string | undefined): BuildQuant | undefined {
  if (value === undefined) return undefined;
  if (!(BUILD_QUANTS as readonly string[]).includes(value)) throw new CliError(`--quant must be one of ${BUILD_QUANTS.join(", ")} (got ${value})`);
  return value as BuildQuant;
}

/** Without --quant: a GGUF file keeps its own types, anything else is built at q8_0. */
export function resolveQuant(quant: BuildQuant | undefined, sourceKind: string): BuildQuant {
  return quant ?? (sourceKind === "gguf" ? "keep" : "q8_0");
}

export const buildOptions = {
  id: { type: "string", value: "MODEL-ID", help: "the model id it is served under (required)" },
  tokenizer: { type: "string", value: "FILE", help: "llama2.c's tokenizer.bin (llama2.c checkpoints only)" },
  quant: { type: "string", value: "FORMAT", help: `weight format: ${BUILD_QUANTS.join(", ")} (default: keep for a GGUF file, its own types; q8_0 otherwise)` },
  context: { type: "string", value: "N", help: "shorten the context to N tokens (less KV cache memory)" },
  "kv-cache": { type: "string", value: "f32|f16", help: "KV cache format (default: f32 for f32 models, else f16)" },
  "shard-size": { type: "string", value: "MiB", help: "largest shard in MiB (default: 8; KV allows 25)" },
  ...targetOptions,
} as const satisfies OptionSpecs;

const BUILD_USAGE = "build <checkpoint | hf-folder | file.gguf | hf:org/repo[@rev]> --id <model-id> [options]";

export interface BuildRequest {
  /** A llama2.c checkpoint, a Hugging Face folder, a .gguf file or hf:<org>/<repo>[@revision]. */
  source: string;
  /** llama2.c tokenizer.bin (llama2.c checkpoints only). */
  tokenizer?: string;
  id: string;
  /** Default: "keep" for a GGUF file, q8_0 otherwise. */
  quant?: BuildQuant;
  contextLength?: number;
  kvCacheDtype?: "f32" | "f16";
  shardBytes?: number;
  remote: boolean;
  persistTo?: string;
  outDir?: string;
  json: boolean;
}

export interface BuildOutcome {
  artifacts: BuildArtifacts;
  published: PublishResult;
  target: string;
}

export const buildCommand: Command = {
  summary: "quantize a checkpoint, shard it into KV and point the model id at it",
  usage: BUILD_USAGE,
  options: buildOptions,
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: buildOptions, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new CliError(`usage: edgeinfer ${BUILD_USAGE} (see edgeinfer build --help)`);
    if (!values.id) throw new CliError("--id <model-id> is required");
    const kvCache = values["kv-cache"];
    if (kvCache !== undefined && kvCache !== "f32" && kvCache !== "f16") throw new CliError("--kv-cache must be f32 or f16");
    const outcome = await buildModel({
      source: positionals[0],
      tokenizer: values.tokenizer,
      id: values.id,
      quant: parseQuant(values.quant),
      contextLength: values.context === undefined ? undefined : positiveInt(values.context, "--context"),
      kvCacheDtype: kvCache,
      shardBytes: values["shard-size"] === undefined ? undefined : Math.round(Number(values["shard-size"]) * 1024 * 1024),
      remote: values.remote,
      persistTo: values["persist-to"],
      outDir: values.out,
      json: values.json,
    });
    printBuild(outcome, values.json);
  },
};

/**
 * Builds and publishes under `pointerKey` (default: the open model id); writes to `target`
 * when given (kept open), else opens the one `req` names.
 */
export async function buildModel(req: BuildRequest, target?: KvTarget, pointerKey?: string): Promise<BuildOutcome> {
  const artifacts = await buildArtifactsFor(req);
  const kv = target ?? (await openKvTarget({ remote: req.remote, persistTo: req.persistTo, outDir: req.outDir }));
  try {
    const published = await publishArtifacts(kv, artifacts, pointerKey, (done, total, key) =>
      progress(req.json, total === 0 ? "KV: nothing new to write" : `writing to ${kv.description} [${done}/${total}] ${key}`),
    );
    endProgress(req.json);
    return { artifacts, published, target: kv.description };
  } finally {
    if (!target) await kv.close();
  }
}

/** Import, check the memory budget, quantize and shard: everything short of writing. */
export async function buildArtifactsFor(req: BuildRequest): Promise<BuildArtifacts> {
  try {
    checkModelId(req.id);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const input = await loadSource(req.source, { id: req.id, tokenizer: req.tokenizer, maxContext: req.contextLength, json: req.json });
  const config = { ...input.config, seqLen: Math.min(input.config.seqLen, req.contextLength ?? Infinity) };
  const quant = resolveQuant(req.quant, input.sourceKind);
  const matrices = input.tensors.filter((t) => t.shape.length === 2);
  const cacheDtype = req.kvCacheDtype ?? defaultCacheDtype(manifestQuant(quant, buildDtypes(matrices, quant, config)));
  const fit = checkFit(config, input.tensors, quant, cacheDtype, tokenizerHeapBytes(input.tokenizer.kind, input.tokenizer.bytes.byteLength), defaultCacheDtype);
  if (!fit.fits) {
    throw new CliError(
      `model '${req.id}' at ${quant === "keep" ? "its own types" : quant} needs ${describePlan(fit.plan, config.seqLen)}, ${formatBytes(fit.plan.total - fit.plan.budget)} over the ${formatBytes(fit.plan.budget)} an isolate can give a model. ${fit.advice}`,
      { needBytes: fit.plan.total, budgetBytes: fit.plan.budget, overBytes: fit.plan.total - fit.plan.budget, advice: fit.advice },
    );
  }
  let artifacts: BuildArtifacts;
  try {
    artifacts = await buildArtifacts(input, {
      quant,
      shardBytes: req.shardBytes,
      kvCacheDtype: cacheDtype,
      contextLength: req.contextLength,
      onTensor: (t, done, total) => progress(req.json, `quantizing [${done}/${total}] ${t.name}`),
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  endProgress(req.json);
  return artifacts;
}

export function printBuild({ artifacts, published, target }: BuildOutcome, json: boolean): void {
  const m = artifacts.manifest;
  if (json) {
    console.log(JSON.stringify({
      ok: true,
      id: m.id,
      quant: m.quant,
      manifest: artifacts.manifestSha256,
      target,
      tensors: artifacts.tensors,
      shards: m.weights.shards,
      weightsBytes: m.weights.bytes,
      memory: m.memory,
      written: published.written,
      alreadyPresent: published.alreadyPresent,
      bytesWritten: published.bytesWritten,
      pointer: published.pointer,
      previousManifest: published.previousManifest,
    }));
    return;
  }
  console.log(`${"tensor".padEnd(28)} ${"dtype".padEnd(5)} ${"shape".padEnd(14)} ${"bytes".padStart(10)}  rel.rms.err  max.abs.err`);
  for (const t of artifacts.tensors) {
    console.log(`${t.name.padEnd(28)} ${t.dtype.padEnd(5)} ${`[${t.shape.join(",")}]`.padEnd(14)} ${formatBytes(t.bytes).padStart(10)}  ${t.relRmsError.toExponential(2).padStart(11)}  ${t.maxAbsError.toExponential(2).padStart(11)}`);
  }
  console.log(`\nmodel ${m.id} (${m.architecture}, ${m.quant}, context ${m.config.seqLen}, KV cache ${m.kvCacheDtype})`);
  console.log(`manifest ${artifacts.manifestSha256}`);
  console.log(`weights ${formatBytes(m.weights.bytes)} in ${m.weights.shards.length} shard(s) of at most ${formatBytes(m.weights.shardBytes)}`);
  console.log(`memory when loaded ${describePlan(m.memory, m.config.seqLen)} of ${formatBytes(m.memory.budget)}`);
  console.log(`${target}: wrote ${published.written.length} key(s), ${formatBytes(published.bytesWritten)}; ${published.alreadyPresent} already present; pointer ${published.pointer}`);
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${flag} must be a positive integer (got ${text})`);
  return n;
}
