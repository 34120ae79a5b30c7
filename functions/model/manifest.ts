// The manifest: the one definition of how a built model is laid out in KV. The build script
// writes it, the Worker reads it; both import this file.
//
// KV layout (all values immutable except the small pointers):
//   shards/<sha256>      one slice of the weights blob (content-addressed)
//   tokenizers/<sha256>  the tokenizer file as built (content-addressed)
//   manifests/<sha256>   a manifest (content-addressed: JSON below)
//   models/<id>          pointer {manifest, previous, at} to the live version, written last
//                        (open models, served without a key while no customer exists)
//   customers/<c>/record            the customer: {name, keyHash, createdAt}
//   customers/<c>/models/<id>       pointer to a customer's model (as models/<id>)
//   keys/<sha256 of API key>        {customer}: who a key belongs to (keys are never stored)
//   config/auth-required            present once any customer exists: every request needs a key
//   publishes/<id>       a publish in progress: the keys it will reference, until it expires
//                        (written before its first entry, deleted after its pointer; gc keeps
//                        what an unexpired one names)

import { DTYPES as DTYPE_LIST, type DType } from "../../kernels/quant";
import { checkTensors, isArchitecture } from "./arch/index";
import type { ModelConfig } from "./description";

export const MANIFEST_FORMAT = "edgeinfer/manifest";
export const MANIFEST_VERSION = 1;

/** Shards hold at most this much. KV allows 25 MiB a value; see README "KV layout" for why smaller. */
export const DEFAULT_SHARD_BYTES = 8 * 1024 * 1024;
export const MAX_SHARD_BYTES = 25 * 1024 * 1024;

/** Tensor data is aligned inside the weights blob so SIMD loads of a row start cleanly. */
export const TENSOR_ALIGN = 64;

export const kvKeys = {
  shard: (sha256: string) => `shards/${sha256}`,
  tokenizer: (sha256: string) => `tokenizers/${sha256}`,
  manifest: (sha256: string) => `manifests/${sha256}`,
  modelPointer: (id: string) => `models/${id}`,
  modelPointerPrefix: "models/",
  customerRecord: (customer: string) => `customers/${customer}/record`,
  customerModelPointer: (customer: string, id: string) => `customers/${customer}/models/${id}`,
  customerModelPrefix: (customer: string) => `customers/${customer}/models/`,
  customersPrefix: "customers/",
  apiKey: (keyHash: string) => `keys/${keyHash}`,
  authRequired: "config/auth-required",
  publishLease: (id: string) => `publishes/${id}`,
  publishLeasePrefix: "publishes/",
} as const;

export interface CustomerRecord {
  name: string;
  /** sha256 (hex) of the customer's current API key. */
  keyHash: string;
  createdAt: string;
}

/** Customer names: what can sit in a KV key and a URL without escaping. */
export const CUSTOMER_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * llama2c: llama2.c's tokenizer.bin as is. hf: a JSON object holding a Hugging Face model's
 * tokenizer.json, tokenizer_config.json and generation_config.json (see tokenizer/hf.ts).
 */
export type TokenizerKind = "llama2c" | "hf";

export interface TokenizerEntry {
  kind: TokenizerKind;
  sha256: string;
  bytes: number;
  /** null where the model starts without one (Qwen, GPT-2 prompts). */
  bosId: number | null;
  eosId: number | null;
}

export interface TensorEntry {
  name: string;
  dtype: DType;
  /** [rows, cols] for matrices (rows = outputs), [n] for vectors. */
  shape: number[];
  /** Byte offset inside the weights blob. */
  offset: number;
  bytes: number;
}

export interface ShardEntry {
  sha256: string;
  bytes: number;
}

export interface MemoryPlan {
  weights: number;
  /** One sequence's KV cache at the full context. */
  kvCache: number;
  /** Activations, logits, quantized-activation and RoPE tables, allocated once. */
  scratch: number;
  /** Estimate of the tokenizer's footprint in the JS heap. */
  tokenizer: number;
  total: number;
  budget: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  id: string;
  architecture: ModelConfig["architecture"];
  config: ModelConfig;
  /**
   * Scheme for the matrices: one dtype, the q4_k_m / q5_k_m mix our build made, or "mixed" when
   * they differ otherwise (a GGUF file's own types, a K-quant whose fallback took some rows);
   * each tensor entry names its dtype. Vectors (norm weights) are always f32.
   */
  quant: ManifestQuant;
  kvCacheDtype: "f32" | "f16";
  tokenizer: TokenizerEntry;
  tensors: TensorEntry[];
  weights: { bytes: number; shardBytes: number; shards: ShardEntry[] };
  memory: MemoryPlan;
}

/** A dtype for every matrix, a llama.cpp-style mix our build made, or "mixed" (a source's own types). */
export type ManifestQuant = DType | "q4_k_m" | "q5_k_m" | "mixed";

export interface ModelPointer {
  manifest: string;
  previous: string | null;
  /**
   * When the pointer was written (ms since the epoch), null in pointers older CLIs wrote. The
   * Worker uses it to tell a version still propagating through KV from one that is settled.
   */
  at: number | null;
}

export class ManifestError extends Error {}

const SHA256_RE = /^[0-9a-f]{64}$/;
const DTYPES = new Set<string>(DTYPE_LIST);

/** Parses and checks a manifest read from KV; any inconsistency is a ManifestError. */
export function parseManifest(text: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ManifestError("manifest is not valid JSON");
  }
  const m = value as Manifest;
  const fail = (why: string): never => {
    throw new ManifestError(`manifest ${why}`);
  };
  if (typeof m !== "object" || m === null) fail("is not an object");
  if (m.format !== MANIFEST_FORMAT) fail(`has format ${JSON.stringify(m.format)}, expected ${MANIFEST_FORMAT}`);
  if (m.version !== MANIFEST_VERSION) fail(`has version ${JSON.stringify(m.version)}, this Worker reads ${MANIFEST_VERSION}`);
  if (!isArchitecture(m.architecture)) fail(`names unknown architecture ${JSON.stringify(m.architecture)}`);
  if (!DTYPES.has(m.quant) && !["mixed", "q4_k_m", "q5_k_m"].includes(m.quant)) fail(`names unknown quant ${JSON.stringify(m.quant)}`);
  if (m.kvCacheDtype !== "f32" && m.kvCacheDtype !== "f16") fail(`names unknown kvCacheDtype ${JSON.stringify(m.kvCacheDtype)}`);
  if (!m.config || m.config.architecture !== m.architecture) fail("config does not match its architecture");
  if (!m.tokenizer || !SHA256_RE.test(m.tokenizer.sha256)) fail("has no valid tokenizer entry");
  if (!m.weights || !Array.isArray(m.weights.shards)) fail("has no shard list");
  let total = 0;
  for (const s of m.weights.shards) {
    if (!SHA256_RE.test(s.sha256) || !Number.isInteger(s.bytes) || s.bytes <= 0) fail("has a malformed shard entry");
    total += s.bytes;
  }
  if (total !== m.weights.bytes) fail(`shards add up to ${total} bytes, weights are ${m.weights.bytes}`);
  if (!Array.isArray(m.tensors)) fail("has no tensor index");
  for (const t of m.tensors) {
    if (!DTYPES.has(t.dtype)) fail(`tensor ${t.name} has unknown dtype ${JSON.stringify(t.dtype)}`);
    if (t.offset < 0 || t.offset + t.bytes > m.weights.bytes) fail(`tensor ${t.name} lies outside the weights`);
  }
  // exactly the tensors the architecture's spec lists for this config, each of its shape
  try {
    checkTensors(m.config, m.tensors);
  } catch (e) {
    fail(`tensor index does not match the ${m.architecture} architecture: ${(e as Error).message}`);
  }
  return m;
}

export function parseModelPointer(text: string): ModelPointer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ManifestError("model pointer is not valid JSON");
  }
  const p = value as ModelPointer;
  if (typeof p !== "object" || p === null || typeof p.manifest !== "string" || !SHA256_RE.test(p.manifest)) {
    throw new ManifestError("model pointer does not name a manifest");
  }
  const previous = typeof p.previous === "string" && SHA256_RE.test(p.previous) ? p.previous : null;
  return { manifest: p.manifest, previous, at: typeof p.at === "number" && Number.isFinite(p.at) ? p.at : null };
}

/** Stable JSON (sorted keys) so the same model built twice hashes the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
      : v,
  );
}
