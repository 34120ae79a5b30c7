// Puts built artifacts into KV: content-addressed entries first (skipping those already
// there), the model's live pointer last, so a reader never sees a manifest whose shards are
// not all present, and an interrupted publish leaves the live version as it was. Rebuilding
// the same model writes nothing.
//
// Against a concurrent `edgeinfer gc`: before its first entry a publish writes a lease,
// publishes/<id>, naming every key its pointer will reference (gc keeps them while the lease
// is unexpired; it is renewed during long uploads and deleted after the pointer). Just before
// the pointer it lists KV again and puts back whatever vanished, or fails without touching
// the pointer; just after, it checks once more.

import { randomUUID } from "node:crypto";
import { kvKeys, parseModelPointer, type ModelPointer } from "../../functions/model/manifest";
import { CliError } from "../commands/command";
import type { KvTarget } from "../kv/targets";
import type { BuildArtifacts, KvEntry } from "./pipeline";

/** How long a lease protects its keys unless renewed; an upload renews it at half-time. */
export const PUBLISH_LEASE_MS = 60 * 60 * 1000;
/** Rounds of putting back vanished entries before a publish gives up. */
const REPAIR_ROUNDS = 3;

export interface PublishLease {
  /** The pointer this publish will write. */
  pointer: string;
  manifest: string;
  /** Every content-addressed key the pointer will reference. */
  keys: string[];
  startedAt: number;
  /** Milliseconds since the epoch; after this gc ignores the lease and deletes it. */
  expiresAt: number;
}

export interface PublishPlan {
  /** Entries not yet in KV, in write order. */
  missing: KvEntry[];
  alreadyPresent: number;
  bytesToWrite: number;
  pointerKey: string;
  current: ModelPointer | null;
  pointer: "created" | "updated" | "unchanged";
}

export interface PublishResult {
  written: string[];
  alreadyPresent: number;
  bytesWritten: number;
  pointer: "created" | "updated" | "unchanged";
  previousManifest: string | null;
  /** Entries that vanished from KV while the publish ran (a concurrent delete) and were put back. */
  restored: string[];
}

export interface PublishOptions {
  /** The clock (for tests); Date.now by default. */
  now?: () => number;
  leaseMs?: number;
}

export async function planPublish(target: KvTarget, artifacts: BuildArtifacts, pointerKey = kvKeys.modelPointer(artifacts.manifest.id)): Promise<PublishPlan> {
  const existing = await presentKeys(target, artifacts.entries);
  const missing = artifacts.entries.filter((e) => !(e.immutable && existing.has(e.key)));
  const current = await readPointer(target, pointerKey);
  return {
    missing,
    alreadyPresent: artifacts.entries.length - missing.length,
    bytesToWrite: missing.reduce((n, e) => n + e.value.byteLength, 0),
    pointerKey,
    current,
    pointer: current?.manifest === artifacts.manifestSha256 ? "unchanged" : current ? "updated" : "created",
  };
}

export async function publishArtifacts(
  target: KvTarget,
  artifacts: BuildArtifacts,
  pointerKey = kvKeys.modelPointer(artifacts.manifest.id),
  /** Called before each entry is written (key "" once all are). */
  onProgress?: (done: number, total: number, key: string) => void,
  options: PublishOptions = {},
): Promise<PublishResult> {
  const now = options.now ?? Date.now;
  const current = await readPointer(target, pointerKey);
  if (current?.manifest === artifacts.manifestSha256) {
    // Already live: the pointer itself keeps this data from gc; put back anything missing.
    const plan = await planPublish(target, artifacts, pointerKey);
    const { written, bytesWritten } = await writeEntries(target, plan.missing, onProgress);
    return { written, alreadyPresent: plan.alreadyPresent, bytesWritten, pointer: "unchanged", previousManifest: current.previous, restored: [] };
  }

  const lease = new Lease(target, pointerKey, artifacts, now, options.leaseMs ?? PUBLISH_LEASE_MS);
  await lease.write();
  try {
    // Planned after the lease is visible: what is found present now stays present for gc.
    const plan = await planPublish(target, artifacts, pointerKey);
    const { written, bytesWritten } = await writeEntries(target, plan.missing, onProgress, () => lease.renewIfDue());
    const restored = await restoreVanished(target, artifacts, () => lease.renewIfDue());
    // `at` lets the Worker tell a version still propagating through KV from a settled one.
    const pointer: ModelPointer = { manifest: artifacts.manifestSha256, previous: plan.current?.manifest ?? null, at: now() };
    await target.put(pointerKey, new TextEncoder().encode(JSON.stringify(pointer)));
    written.push(pointerKey);
    // A gc that planned before the lease appeared may still have been deleting: look once more.
    restored.push(...(await restoreVanished(target, artifacts, () => lease.renewIfDue(), true)));
    return { written, alreadyPresent: plan.alreadyPresent, bytesWritten, pointer: plan.pointer, previousManifest: pointer.previous, restored };
  } finally {
    await lease.release();
  }
}

async function writeEntries(target: KvTarget, entries: KvEntry[], onProgress?: (done: number, total: number, key: string) => void, beforeEach?: () => Promise<void>) {
  const written: string[] = [];
  let bytesWritten = 0;
  for (const entry of entries) {
    onProgress?.(written.length, entries.length, entry.key);
    await beforeEach?.();
    await target.put(entry.key, entry.value);
    written.push(entry.key);
    bytesWritten += entry.value.byteLength;
  }
  onProgress?.(written.length, entries.length, "");
  return { written, bytesWritten };
}

/**
 * Lists KV and writes again every content-addressed entry of the build that is not there,
 * until all are (or REPAIR_ROUNDS pass: then a CliError, unless `pointerWritten`, when the
 * error says the live version is incomplete).
 */
async function restoreVanished(target: KvTarget, artifacts: BuildArtifacts, beforeEach: () => Promise<void>, pointerWritten = false): Promise<string[]> {
  const restored: string[] = [];
  for (let round = 0; ; round++) {
    const present = await presentKeys(target, artifacts.entries);
    const vanished = artifacts.entries.filter((e) => e.immutable && !present.has(e.key));
    if (vanished.length === 0) return restored;
    if (round === REPAIR_ROUNDS) {
      const what = `${vanished.length} key(s) of model '${artifacts.manifest.id}' (${vanished.slice(0, 3).map((e) => e.key).join(", ")}${vanished.length > 3 ? ", ..." : ""}) kept vanishing from ${target.description} after being written ${REPAIR_ROUNDS} times: is something else deleting there (a gc run by hand, another tool)?`;
      throw new CliError(pointerWritten
        ? `${what} The pointer was already written: the live version is incomplete; publish again once the deletions stop.`
        : `${what} The pointer was not written; the live version is unchanged.`);
    }
    for (const entry of vanished) {
      await beforeEach();
      await target.put(entry.key, entry.value);
      restored.push(entry.key);
    }
  }
}

/** Which of the entries' keys KV holds now (one listing per key prefix). */
async function presentKeys(target: KvTarget, entries: KvEntry[]): Promise<Set<string>> {
  const present = new Set<string>();
  for (const prefix of new Set(entries.map((e) => e.key.slice(0, e.key.indexOf("/") + 1)))) {
    for (const key of await target.list(prefix)) present.add(key);
  }
  return present;
}

class Lease {
  readonly key = kvKeys.publishLease(`${Date.now().toString(36)}-${randomUUID()}`);
  private record: PublishLease;

  constructor(private readonly target: KvTarget, pointer: string, artifacts: BuildArtifacts, private readonly now: () => number, private readonly ms: number) {
    const t = now();
    const keys = artifacts.entries.filter((e) => e.immutable).map((e) => e.key);
    this.record = { pointer, manifest: artifacts.manifestSha256, keys, startedAt: t, expiresAt: t + ms };
  }

  async write(): Promise<void> {
    this.record = { ...this.record, expiresAt: this.now() + this.ms };
    await this.target.put(this.key, new TextEncoder().encode(JSON.stringify(this.record)));
  }

  /** Extends the lease once half of it has passed. */
  async renewIfDue(): Promise<void> {
    if (this.record.expiresAt - this.now() < this.ms / 2) await this.write();
  }

  async release(): Promise<void> {
    await this.target.delete(this.key);
  }
}

/** Every publish lease in KV, parsed (unreadable ones as null, so gc can delete them). */
export async function readLeases(target: KvTarget, keys?: string[]): Promise<Array<{ key: string; lease: PublishLease | null }>> {
  const out: Array<{ key: string; lease: PublishLease | null }> = [];
  for (const key of keys ?? (await target.list(kvKeys.publishLeasePrefix))) {
    const bytes = await target.get(key);
    if (!bytes) continue;
    out.push({ key, lease: parseLease(new TextDecoder().decode(bytes)) });
  }
  return out;
}

function parseLease(text: string): PublishLease | null {
  try {
    const v = JSON.parse(text) as PublishLease;
    const ok = typeof v === "object" && v !== null && typeof v.expiresAt === "number" && Array.isArray(v.keys) && v.keys.every((k) => typeof k === "string");
    return ok ? v : null;
  } catch {
    return null;
  }
}

export async function readPointer(target: KvTarget, key: string): Promise<ModelPointer | null> {
  const bytes = await target.get(key);
  if (!bytes) return null;
  try {
    return parseModelPointer(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
