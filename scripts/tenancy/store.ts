// Customers, their keys and their model pointers, as the CLI keeps them in KV (layout in
// functions/model/manifest.ts). API keys are shown once and stored only as sha256.

import { randomBytes } from "node:crypto";
import { sha256Hex } from "../../functions/model/hash";
import {
  CUSTOMER_NAME_RE,
  kvKeys,
  parseManifest,
  parseModelPointer,
  type CustomerRecord,
  type Manifest,
  type ModelPointer,
} from "../../functions/model/manifest";
import { CliError } from "../commands/command";
import { readLeases } from "../build/publish";
import type { KvTarget } from "../kv/targets";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

export function checkCustomerName(name: string): void {
  if (!CUSTOMER_NAME_RE.test(name)) throw new CliError(`customer name '${name}' must be 1-63 lowercase letters, digits or '-', starting with a letter or digit`);
}

export function newApiKey(): string {
  return `ei_${randomBytes(32).toString("base64url")}`;
}

export async function readCustomer(kv: KvTarget, name: string): Promise<CustomerRecord | null> {
  const bytes = await kv.get(kvKeys.customerRecord(name));
  return bytes ? (JSON.parse(decode(bytes)) as CustomerRecord) : null;
}

/** Creates the customer if new; returns its record and, only when created, its API key. */
export async function ensureCustomer(kv: KvTarget, name: string): Promise<{ record: CustomerRecord; apiKey: string | null }> {
  checkCustomerName(name);
  const existing = await readCustomer(kv, name);
  if (existing) return { record: existing, apiKey: null };
  const apiKey = newApiKey();
  const record: CustomerRecord = { name, keyHash: await sha256Hex(apiKey), createdAt: new Date().toISOString() };
  // Key index first, record second, the auth switch last: a half-done creation grants nothing.
  await kv.put(kvKeys.apiKey(record.keyHash), text(JSON.stringify({ customer: name })));
  await kv.put(kvKeys.customerRecord(name), text(JSON.stringify(record)));
  await kv.put(kvKeys.authRequired, text("1"));
  return { record, apiKey };
}

export async function rotateKey(kv: KvTarget, name: string): Promise<string> {
  const record = await readCustomer(kv, name);
  if (!record) throw new CliError(`no customer '${name}'`);
  const apiKey = newApiKey();
  const next: CustomerRecord = { ...record, keyHash: await sha256Hex(apiKey) };
  await kv.put(kvKeys.apiKey(next.keyHash), text(JSON.stringify({ customer: name })));
  await kv.put(kvKeys.customerRecord(name), text(JSON.stringify(next)));
  await kv.delete(kvKeys.apiKey(record.keyHash));
  return apiKey;
}

export async function listCustomers(kv: KvTarget): Promise<string[]> {
  const keys = await kv.list(kvKeys.customersPrefix);
  return keys.filter((k) => k.endsWith("/record")).map((k) => k.slice(kvKeys.customersPrefix.length, -"/record".length)).sort();
}

export async function readPointerAt(kv: KvTarget, key: string): Promise<ModelPointer | null> {
  const bytes = await kv.get(key);
  return bytes ? parseModelPointer(decode(bytes)) : null;
}

export async function readManifestBySha(kv: KvTarget, sha: string): Promise<Manifest | null> {
  const bytes = await kv.get(kvKeys.manifest(sha));
  return bytes ? parseManifest(decode(bytes)) : null;
}

export interface ModelSummary {
  id: string;
  manifest: string;
  previous: string | null;
  quant: string;
  architecture: string;
  weightsBytes: number;
  memoryBytes: number;
}

export async function listCustomerModels(kv: KvTarget, customer: string): Promise<ModelSummary[]> {
  const prefix = kvKeys.customerModelPrefix(customer);
  const out: ModelSummary[] = [];
  for (const key of await kv.list(prefix)) {
    const pointer = await readPointerAt(kv, key);
    if (!pointer) continue;
    const manifest = await readManifestBySha(kv, pointer.manifest);
    out.push({
      id: key.slice(prefix.length),
      manifest: pointer.manifest,
      previous: pointer.previous,
      quant: manifest?.quant ?? "?",
      architecture: manifest?.architecture ?? "?",
      weightsBytes: manifest?.weights.bytes ?? 0,
      memoryBytes: manifest?.memory.total ?? 0,
    });
  }
  return out;
}

/** Points the model back at its previous version (whose data must still be complete). */
export async function rollback(kv: KvTarget, customer: string, id: string): Promise<ModelPointer> {
  const key = kvKeys.customerModelPointer(customer, id);
  const pointer = await readPointerAt(kv, key);
  if (!pointer) throw new CliError(`customer '${customer}' has no model '${id}'`);
  if (!pointer.previous) throw new CliError(`model '${id}' of '${customer}' has no previous version to return to`);
  const manifest = await readManifestBySha(kv, pointer.previous);
  if (!manifest) throw new CliError(`the previous version's manifest ${pointer.previous} is gone (collected?)`);
  const present = new Set(await kv.list("shards/"));
  const missing = manifest.weights.shards.filter((s) => !present.has(kvKeys.shard(s.sha256)));
  if (missing.length > 0) throw new CliError(`the previous version lacks ${missing.length} shard(s) in KV; not rolling back`);
  const next: ModelPointer = { manifest: pointer.previous, previous: pointer.manifest, at: Date.now() };
  await kv.put(key, text(JSON.stringify(next)));
  return next;
}

export async function removeModel(kv: KvTarget, customer: string, id: string): Promise<void> {
  const key = kvKeys.customerModelPointer(customer, id);
  if (!(await kv.get(key))) throw new CliError(`customer '${customer}' has no model '${id}'`);
  await kv.delete(key);
}

/** gc's default grace period: unreferenced data younger than this is kept (see README "gc"). */
export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

export interface GcOptions {
  /** Keep unreferenced entries written less than this long ago. */
  graceMs?: number;
  /** The clock (for tests); Date.now() by default. */
  now?: number;
}

export interface GcPlan {
  keep: { manifests: number; shards: number; tokenizers: number };
  /** Unreferenced entries kept because they are younger than the grace period. */
  recent: string[];
  /** Unreferenced entries kept because an unexpired publish lease names them. */
  leased: string[];
  /** Unexpired publish leases (publishes in progress). */
  leases: number;
  /** What gc deletes: unreferenced data past the grace period, and expired leases. */
  remove: string[];
  bytes: number;
  graceMs: number;
}

const CONTENT_PREFIXES = ["shards/", "tokenizers/", "manifests/"];

/** Manifests read so far, by sha256 (null: not in KV), so gc reads each once. */
type ManifestCache = Map<string, Manifest | null>;

/** The keys every pointer (open or a customer's, live or previous) references. */
async function pointerReferences(kv: KvTarget, manifests: ManifestCache): Promise<Set<string>> {
  const pointerKeys = [...(await kv.list(kvKeys.modelPointerPrefix)), ...(await kv.list(kvKeys.customersPrefix)).filter((k) => k.includes("/models/"))];
  const shas = new Set<string>();
  for (const key of pointerKeys) {
    const p = await readPointerAt(kv, key).catch(() => null);
    if (!p) continue;
    shas.add(p.manifest);
    if (p.previous) shas.add(p.previous);
  }
  const keep = new Set<string>();
  for (const sha of shas) {
    if (!manifests.has(sha)) manifests.set(sha, await readManifestBySha(kv, sha).catch(() => null));
    const m = manifests.get(sha);
    if (!m) continue;
    keep.add(kvKeys.manifest(sha));
    keep.add(kvKeys.tokenizer(m.tokenizer.sha256));
    for (const s of m.weights.shards) keep.add(kvKeys.shard(s.sha256));
  }
  return keep;
}

/** The keys unexpired publish leases name, how many leases those are, and the lease keys gc may delete. */
async function leaseReferences(kv: KvTarget, now: number, graceMs: number): Promise<{ keys: Set<string>; active: number; stale: string[] }> {
  const times = new Map((await kv.listWithTimes(kvKeys.publishLeasePrefix)).map((k) => [k.key, k.writtenAt]));
  const keys = new Set<string>();
  const stale: string[] = [];
  let active = 0;
  for (const { key, lease } of await readLeases(kv, [...times.keys()])) {
    if (lease && lease.expiresAt > now) {
      active++;
      for (const k of lease.keys) keys.add(k);
    } else if (lease || isOld(times.get(key) ?? null, now, graceMs)) {
      // Expired, or unreadable for longer than the grace period.
      stale.push(key);
    }
  }
  return { keys, active, stale };
}

/**
 * What no live or previous version references and nothing protects: every manifest named by
 * a pointer (open or a customer's, live or previous) keeps its shards and tokenizer; of the
 * rest, entries younger than the grace period and keys an unexpired publish lease names are
 * kept (a publish in progress will reference them); everything else goes, with expired leases.
 */
export async function planGc(kv: KvTarget, options: GcOptions = {}): Promise<GcPlan> {
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const now = options.now ?? Date.now();
  // Leases first: a publish writes its lease before it lists what is present.
  const leases = await leaseReferences(kv, now, graceMs);
  const keep = await pointerReferences(kv, new Map());
  const recent: string[] = [];
  const leased: string[] = [];
  const remove: string[] = [];
  for (const prefix of CONTENT_PREFIXES) {
    for (const { key, writtenAt } of await kv.listWithTimes(prefix)) {
      if (keep.has(key)) continue;
      if (leases.keys.has(key)) leased.push(key);
      else if (!isOld(writtenAt, now, graceMs)) recent.push(key);
      else remove.push(key);
    }
  }
  remove.push(...leases.stale);
  let bytes = 0;
  for (const k of remove) bytes += (await kv.get(k))?.byteLength ?? 0;
  const count = (prefix: string) => [...keep].filter((k) => k.startsWith(prefix)).length;
  return { keep: { manifests: count("manifests/"), shards: count("shards/"), tokenizers: count("tokenizers/") }, recent, leased, leases: leases.active, remove, bytes, graceMs };
}

/** Entries written before write times were kept (null) count as old. */
function isOld(writtenAt: number | null, now: number, graceMs: number): boolean {
  return writtenAt === null || now - writtenAt >= graceMs;
}

/** Deletes at most this many keys between two looks at the leases and pointers. */
const GC_BATCH = 64;

export interface GcResult {
  removed: string[];
  /** Planned for deletion, but a lease or pointer written since the plan names them: kept. */
  spared: string[];
  /**
   * Deleted, and named by a lease or pointer once gc was done: a publish ran its whole course
   * between one of gc's looks and its deletes. That publish's model lacks them until it is
   * published again (which puts them back).
   */
  raced: string[];
}

/**
 * Deletes what `plan` removes, in batches; before each batch it reads the publish leases and
 * the pointers again and spares the keys named since the plan. A last look afterwards reports
 * any deleted key that became referenced while it deleted.
 */
export async function collectGarbage(
  kv: KvTarget,
  plan: GcPlan,
  options: { now?: () => number; onDelete?: (done: number, total: number, key: string) => void | Promise<void> } = {},
): Promise<GcResult> {
  const now = options.now ?? Date.now;
  const manifests: ManifestCache = new Map();
  const named = async () => {
    const { keys } = await leaseReferences(kv, now(), plan.graceMs);
    for (const k of await pointerReferences(kv, manifests)) keys.add(k);
    return keys;
  };
  const removed: string[] = [];
  const spared: string[] = [];
  for (let i = 0; i < plan.remove.length; i += GC_BATCH) {
    const protect = await named();
    for (const key of plan.remove.slice(i, i + GC_BATCH)) {
      if (protect.has(key)) {
        spared.push(key);
        continue;
      }
      await options.onDelete?.(removed.length, plan.remove.length, key);
      await kv.delete(key);
      removed.push(key);
    }
  }
  const after = removed.length > 0 ? await named() : new Set<string>();
  return { removed, spared, raced: removed.filter((k) => after.has(k)) };
}
