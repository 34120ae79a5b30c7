// Models the tests run on, built by the real CLI (`edgeinfer build ... --out`) into
// test/.artifacts/<set>/ as KV entries (one file per key). Worker tests copy a set into
// their isolated KV; end-to-end tests build into wrangler dev's local KV instead.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { LlamaConfig } from "../../functions/model/description";
import { buildArtifacts } from "../../scripts/build/pipeline";
import { readGguf } from "../../scripts/import/gguf";
import { llama2cTokenizerToGguf, writeGguf } from "../../scripts/import/gguf-writer";
import { writeTinyHfCheckpoint } from "../../scripts/import/hf-writer";
import { randomLlamaModel } from "../../scripts/import/llama2c-writer";
import { runtimeFor } from "../support/runtime";
import { LLAMA31_STYLE_TEMPLATE } from "../support/chat-templates";
import { writeHfTokenizerDir } from "../support/hf-fixtures";
import { AIDREAMS, AIDREAMS_TOKENIZER, sharedModelPath } from "../support/models";
import { join } from "node:path";

export const root = join(import.meta.dirname, "..", "..");
export const artifactsDir = join(root, "test", ".artifacts");
/** aidreams260K's files, where the models' global setup found them (test/support/models.ts). */
export const aidreams = {
  get checkpoint() {
    return sharedModelPath(AIDREAMS);
  },
  get tokenizer() {
    return sharedModelPath(AIDREAMS_TOKENIZER);
  },
};

/** Runs the edgeinfer CLI as a user would (through the package's bin) and returns its JSON. */
export function edgeinfer(args: string[], env: Record<string, string> = {}): any {
  let out: string;
  try {
    out = execFileSync(process.execPath, [join(root, "scripts", "bin", "edgeinfer.js"), ...args, "--json"], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    // Say why: the CLI's JSON error (stdout) and the end of what it printed on stderr.
    const { stdout = "", stderr = "" } = e as { stdout?: string; stderr?: string };
    throw Object.assign(new Error(`edgeinfer ${args.join(" ")} failed: ${stdout.trim().split("\n").pop() ?? ""}\n${stderr.slice(-2000)}`), e);
  }
  return JSON.parse(out.trim().split("\n").pop()!);
}

export interface FixtureModel {
  set: string;
  id: string;
  quant: string;
}

/** A random-weight model with grouped-query attention (8 heads, 2 kv heads) and its own classifier. */
export const GQA_MODEL = { id: "gqa-untied", dim: 64, hidden: 172, layers: 2, heads: 8, kvHeads: 2, vocab: 512, seqLen: 96 };

/** A random-weight Qwen2 model in Hugging Face's layout with Qwen's real tokenizer and ChatML template. */
export const CHAT_MODEL = { id: "tiny-qwen2", family: "qwen2" as const, vocabSize: 151936 };

/** A random-weight Llama 3-layout model (RoPE scaling, GQA) with Llama 3's tokenizer and chat template. */
export const LLAMA3_CHAT_MODEL = { id: "tiny-llama3", family: "llama3" as const, vocabSize: 128256 };

export function writeLlama3ChatFolder(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeHfTokenizerDir("llama3", { dir });
  writeTinyHfCheckpoint(dir, { family: LLAMA3_CHAT_MODEL.family, vocabSize: LLAMA3_CHAT_MODEL.vocabSize, seed: 4, configOverrides: { bos_token_id: 128000, eos_token_id: 128009 } });
  return dir;
}

/**
 * The same model with a chat template in the manner of Llama 3.1's, which takes tools and calls
 * them as JSON (test/support/chat-templates.ts): no Llama 3.1 template installs from npm.
 */
export const LLAMA31_TOOLS_MODEL = { id: "tiny-llama3-tools" };

export function writeLlama31ToolsFolder(dir: string): string {
  writeLlama3ChatFolder(dir);
  const configPath = join(dir, "tokenizer_config.json");
  const config = JSON.parse(readFileSync(configPath, "utf8"));
  writeFileSync(configPath, JSON.stringify({ ...config, chat_template: LLAMA31_STYLE_TEMPLATE }));
  return dir;
}

export function writeChatModelFolder(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeHfTokenizerDir("qwen", { dir });
  writeTinyHfCheckpoint(dir, { family: CHAT_MODEL.family, vocabSize: CHAT_MODEL.vocabSize, seed: 3, configOverrides: { bos_token_id: 151643, eos_token_id: 151645 } });
  return dir;
}

/**
 * A random-weight model with K-quant-sized rows, written as a GGUF file at llama.cpp's Q4_K_M
 * mix by our writer (ggml's reference quantizers), with the aidreams vocabulary as GGUF
 * tokenizer metadata; built by the CLI, which keeps each tensor's type.
 */
export const MIXED_MODEL = {
  id: "tiny-q4_k_m",
  config: { architecture: "llama", dim: 256, hiddenDim: 768, nLayers: 4, nHeads: 4, nKvHeads: 2, vocabSize: 512, seqLen: 96, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "interleaved", tiedEmbeddings: false } as LlamaConfig,
  prompt: [1, 400, 300, 20],
  steps: 32,
};

/** Writes the mixed GGUF file, and the greedy tokens our runtime gives for it in Node (kquants.json). */
async function writeMixedGguf(path: string): Promise<void> {
  const tokenizer = llama2cTokenizerToGguf(readFileSync(aidreams.tokenizer), MIXED_MODEL.config.vocabSize);
  writeFileSync(path, writeGguf(randomLlamaModel(MIXED_MODEL.config, 23), { quant: "q4_k_m", tokenizer }));
  const g = readGguf(path);
  const artifacts = await buildArtifacts({ id: MIXED_MODEL.id, config: g.config, tensors: g.tensors, tokenizer: { kind: "llama2c", bytes: new Uint8Array(8), bosId: 1, eosId: 2 } }, { quant: "keep" });
  const { model, cache } = await runtimeFor(artifacts);
  const tokens = [...MIXED_MODEL.prompt];
  let logits = model.forward(tokens, 0, cache);
  const generated: number[] = [];
  for (let i = 0; i < MIXED_MODEL.steps; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
    generated.push(best);
    logits = model.forward([best], tokens.length + i, cache);
  }
  writeFileSync(join(artifactsDir, "kquants.json"), JSON.stringify({ generated }));
}

export async function buildFixtures(): Promise<FixtureModel[]> {
  const built: FixtureModel[] = [];
  rmSync(artifactsDir, { recursive: true, force: true });
  mkdirSync(artifactsDir, { recursive: true });
  for (const [id, quant] of [["aidreams260K", "f32"], ["aidreams260K-q8_0", "q8_0"], ["aidreams260K-q4_0", "q4_0"]]) {
    edgeinfer(["build", aidreams.checkpoint, "--tokenizer", aidreams.tokenizer, "--id", id, "--quant", quant, "--out", join(artifactsDir, "aidreams")]);
    built.push({ set: "aidreams", id, quant });
  }
  const gqa = join(artifactsDir, "gqa-untied.bin");
  const g = GQA_MODEL;
  edgeinfer(["gen-random", "--out", gqa, "--dim", `${g.dim}`, "--hidden", `${g.hidden}`, "--layers", `${g.layers}`, "--heads", `${g.heads}`, "--kv-heads", `${g.kvHeads}`, "--vocab", `${g.vocab}`, "--seq-len", `${g.seqLen}`, "--untied", "--seed", "7", "--version", "1"]);
  for (const quant of ["f32", "q8_0", "q4_0"]) {
    const id = quant === "f32" ? g.id : `${g.id}-${quant}`;
    edgeinfer(["build", gqa, "--tokenizer", aidreams.tokenizer, "--id", id, "--quant", quant, "--out", join(artifactsDir, "gqa")]);
    built.push({ set: "gqa", id, quant });
  }
  buildTenants(gqa);
  built.push({ set: "tenants", id: "story", quant: "f32" });
  const chat = writeChatModelFolder(join(artifactsDir, "tiny-qwen2"));
  edgeinfer(["build", chat, "--id", CHAT_MODEL.id, "--quant", "q8_0", "--out", join(artifactsDir, "hf")]);
  built.push({ set: "hf", id: CHAT_MODEL.id, quant: "q8_0" });
  const llama3 = writeLlama3ChatFolder(join(artifactsDir, "tiny-llama3"));
  edgeinfer(["build", llama3, "--id", LLAMA3_CHAT_MODEL.id, "--quant", "q4_0", "--out", join(artifactsDir, "hf")]);
  built.push({ set: "hf", id: LLAMA3_CHAT_MODEL.id, quant: "q4_0" });
  const llama31 = writeLlama31ToolsFolder(join(artifactsDir, "tiny-llama3-tools"));
  edgeinfer(["build", llama31, "--id", LLAMA31_TOOLS_MODEL.id, "--quant", "q4_0", "--out", join(artifactsDir, "hf")]);
  built.push({ set: "hf", id: LLAMA31_TOOLS_MODEL.id, quant: "q4_0" });
  const mixed = join(artifactsDir, "tiny-q4_k_m.gguf");
  await writeMixedGguf(mixed);
  edgeinfer(["build", mixed, "--id", MIXED_MODEL.id, "--out", join(artifactsDir, "kquants")]);
  built.push({ set: "kquants", id: MIXED_MODEL.id, quant: "mixed" });
  if (!existsSync(join(artifactsDir, "aidreams", "models", "aidreams260K"))) throw new Error("fixture build wrote no pointer");
  return built;
}

/**
 * Two customers deployed by the CLI into the "tenants" set, with a history to test: acme's
 * "story" deployed at f32, redeployed at q4_0, rolled back to f32; acme's "extra" deployed,
 * removed and collected; acme's key rotated. Keys and manifests go to tenants.json.
 */
export function buildTenants(gqaCheckpoint: string): void {
  const out = join(artifactsDir, "tenants");
  const tok = ["--tokenizer", aidreams.tokenizer];
  const acme1 = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "f32", "--out", out]);
  const globex = edgeinfer(["deploy", "globex", "--model", gqaCheckpoint, ...tok, "--id", "helper", "--quant", "q8_0", "--out", out]);
  const acme2 = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q4_0", "--out", out]);
  const rolledBack = edgeinfer(["rollback", "acme", "story", "--out", out]);
  edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "extra", "--quant", "q8_0", "--out", out]);
  edgeinfer(["remove", "acme", "extra", "--out", out]);
  const gc = edgeinfer(["gc", "--grace", "0", "--out", out]);
  const rotated = edgeinfer(["keys", "rotate", "acme", "--out", out]);
  writeFileSync(join(artifactsDir, "tenants.json"), JSON.stringify({
    keys: { acme: { old: acme1.apiKey, current: rotated.apiKey }, globex: globex.apiKey },
    story: { v1: acme1.manifest, v2: acme2.manifest, live: rolledBack.manifest },
    gcRemoved: gc.removed,
  }));
}
