// build: imported model -> quantized tensors -> one weights blob -> sha256-named shards +
// manifest. Pure data in, data out: where the entries go (local KV, remote KV, a folder) is
// the caller's business.

import type { DType } from "../../kernels/quant";
import { checkTensors, specTensors } from "../../functions/model/arch/index";
import type { ImportedTensor, ModelConfig } from "../../functions/model/description";
import { sha256Hex } from "../../functions/model/hash";
import {
  canonicalJson,
  DEFAULT_SHARD_BYTES,
  kvKeys,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  MAX_SHARD_BYTES,
  TENSOR_ALIGN,
  type Manifest,
  type ManifestQuant,
  type TensorEntry,
  type TokenizerEntry,
} from "../../functions/model/manifest";
import { planMemory, tokenizerHeapBytes, type CacheDtype } from "../../functions/model/memory";
import { quantizeTensor, storedDtype, type BuildQuant, type QuantizedTensor } from "./quantize";

export interface BuildInput {
  id: string;
  config: ModelConfig;
  tensors: ImportedTensor[];
  tokenizer: { kind: TokenizerEntry["kind"]; bytes: Uint8Array; bosId: number | null; eosId: number | null };
}

export interface BuildOptions {
  /** A dtype for every matrix, a q4_k_m / q5_k_m mix, or "keep" (the source's own types). */
  quant: BuildQuant;
  shardBytes?: number;
  kvCacheDtype?: CacheDtype;
  /** Serve a shorter context than the checkpoint's to shrink the KV cache. */
  contextLength?: number;
  onTensor?: (report: TensorReport, done: number, total: number) => void;
}

export interface TensorReport {
  name: string;
  dtype: DType;
  shape: number[];
  bytes: number;
  relRmsError: number;
  maxAbsError: number;
}

export interface KvEntry {
  key: string;
  value: Uint8Array;
  /** A content-addressed entry never changes once written, so an existing key is skipped. */
  immutable: boolean;
}

export interface BuildArtifacts {
  manifest: Manifest;
  manifestSha256: string;
  /** Shards, tokenizer and manifest: everything but the live pointer. */
  entries: KvEntry[];
  tensors: TensorReport[];
}

const MODEL_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkModelId(id: string): void {
  if (!MODEL_ID_RE.test(id)) {
    throw new Error(`model id ${JSON.stringify(id)} must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
}

export function defaultCacheDtype(quant: BuildQuant | ManifestQuant): CacheDtype {
  // f32 models are the exact reference: keep their cache exact too.
  return quant === "f32" ? "f32" : "f16";
}

/** The dtype of every tensor of a build, in the input's order. */
export function buildDtypes(tensors: Pick<ImportedTensor, "name" | "shape" | "quantized" | "sourceDtype">[], quant: BuildQuant, config: Pick<ModelConfig, "nLayers"> & { tiedEmbeddings?: boolean }): DType[] {
  return tensors.map((t) => storedDtype(t, quant, config));
}

/**
 * The manifest's `quant`: what was asked for (a dtype, whose K-quant fallbacks the tensor
 * entries show, or a mix); for "keep", the source's one dtype, or "mixed".
 */
export function manifestQuant(quant: BuildQuant, matrixDtypes: DType[]): ManifestQuant {
  if (quant !== "keep") return quant;
  const kinds = new Set(matrixDtypes);
  if (kinds.size === 1) return matrixDtypes[0]!;
  return kinds.size === 0 ? "f32" : "mixed";
}

/**
 * The tensors in the order the weights blob stores them, whatever order the importer produced:
 * the architecture spec's order (functions/model/arch/), which puts each fusion group (q, k, v;
 * gate and up) back to back. Tensors must be exactly the spec's for `config`: one it lacks, or
 * one missing or of another shape, is refused naming it.
 */
export function storageOrder<T extends Pick<ImportedTensor, "name" | "shape">>(tensors: T[], config: ModelConfig): T[] {
  const byName = checkTensors(config, tensors);
  return specTensors(config).map((t) => byName.get(t.name)!);
}

export async function buildArtifacts(input: BuildInput, options: BuildOptions): Promise<BuildArtifacts> {
  checkModelId(input.id);
  const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isInteger(shardBytes) || shardBytes < 4096 || shardBytes > MAX_SHARD_BYTES) {
    throw new Error(`shard size must be between 4096 bytes and ${MAX_SHARD_BYTES} bytes (the KV value limit), got ${shardBytes}`);
  }
  const config: ModelConfig = { ...input.config };
  if (options.contextLength !== undefined) {
    if (!Number.isInteger(options.contextLength) || options.contextLength < 1) throw new Error("context length must be a positive integer");
    config.seqLen = Math.min(config.seqLen, options.contextLength);
  }
  const tensors = storageOrder(input.tensors, config);
  const dtypes = buildDtypes(tensors, options.quant, config);
  const quant = manifestQuant(options.quant, dtypes.filter((_, i) => tensors[i]!.shape.length === 2));
  const kvCacheDtype = options.kvCacheDtype ?? defaultCacheDtype(quant);

  const quantized: QuantizedTensor[] = [];
  const reports: TensorReport[] = [];
  for (const [i, tensor] of tensors.entries()) {
    const q = quantizeTensor(tensor, dtypes[i]!);
    quantized.push(q);
    const report = { name: q.name, dtype: q.dtype, shape: q.shape, bytes: q.data.byteLength, relRmsError: q.relRmsError, maxAbsError: q.maxAbsError };
    reports.push(report);
    options.onTensor?.(report, reports.length, tensors.length);
  }

  const { blob, index } = packTensors(quantized);
  const shards = [];
  const entries: KvEntry[] = [];
  for (let offset = 0; offset < blob.byteLength; offset += shardBytes) {
    const value = blob.subarray(offset, Math.min(offset + shardBytes, blob.byteLength));
    const sha256 = await sha256Hex(value);
    shards.push({ sha256, bytes: value.byteLength });
    entries.push({ key: kvKeys.shard(sha256), value, immutable: true });
  }

  const tokenizerSha = await sha256Hex(input.tokenizer.bytes);
  entries.push({ key: kvKeys.tokenizer(tokenizerSha), value: input.tokenizer.bytes, immutable: true });

  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    id: input.id,
    architecture: config.architecture,
    config,
    quant,
    kvCacheDtype,
    tokenizer: {
      kind: input.tokenizer.kind,
      sha256: tokenizerSha,
      bytes: input.tokenizer.bytes.byteLength,
      bosId: input.tokenizer.bosId,
      eosId: input.tokenizer.eosId,
    },
    tensors: index,
    weights: { bytes: blob.byteLength, shardBytes, shards },
    memory: planMemory(config, blob.byteLength, kvCacheDtype, tokenizerHeapBytes(input.tokenizer.kind, input.tokenizer.bytes.byteLength), dtypes),
  };
  const manifestText = canonicalJson(manifest);
  const manifestSha256 = await sha256Hex(manifestText);
  entries.push({ key: kvKeys.manifest(manifestSha256), value: new TextEncoder().encode(manifestText), immutable: true });
  return { manifest, manifestSha256, entries, tensors: reports };
}

function packTensors(tensors: QuantizedTensor[]): { blob: Uint8Array; index: TensorEntry[] } {
  const index: TensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    offset = Math.ceil(offset / TENSOR_ALIGN) * TENSOR_ALIGN;
    index.push({ name: t.name, dtype: t.dtype, shape: t.shape, offset, bytes: t.data.byteLength });
    offset += t.data.byteLength;
  }
  const blob = new Uint8Array(offset);
  tensors.forEach((t, i) => blob.set(t.data, index[i].offset));
  return { blob, index };
}
