// Puts built artifacts into KV: content-addressed entries first (skipping those already
// there), the model's live pointer last, so a reader never sees a manifest whose shards are
// not all present, and an interrupted publish leaves the live version as it was. Rebuilding
// the same model writes nothing.

import { kvKeys, parseModelPointer, type ModelPointer } from "../../functions/model/manifest";
import type { KvTarget } from "../kv/targets";
import type { BuildArtifacts, KvEntry } from "./pipeline";

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
}

export async function planPublish(target: KvTarget, artifacts: BuildArtifacts, pointerKey = kvKeys.modelPointer(artifacts.manifest.id)): Promise<PublishPlan> {
  const existing = new Set<string>();
  for (const prefix of new Set(artifacts.entries.map((e) => e.key.slice(0, e.key.indexOf("/") + 1)))) {
    for (const key of await target.list(prefix)) existing.add(key);
  }
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
  onProgress?: (done: number, total: number, key: string) => void,
): Promise<PublishResult> {
  const plan = await planPublish(target, artifacts, pointerKey);
  const written: string[] = [];
  let bytesWritten = 0;
  for (const entry of plan.missing) {
    onProgress?.(written.length, plan.missing.length, entry.key);
    await target.put(entry.key, entry.value);
    written.push(entry.key);
    bytesWritten += entry.value.byteLength;
  }
  onProgress?.(written.length, plan.missing.length, "");
  if (plan.pointer === "unchanged") {
    return { written, alreadyPresent: plan.alreadyPresent, bytesWritten, pointer: "unchanged", previousManifest: plan.current!.previous };
  }
  const pointer: ModelPointer = { manifest: artifacts.manifestSha256, previous: plan.current?.manifest ?? null };
  await target.put(pointerKey, new TextEncoder().encode(JSON.stringify(pointer)));
  written.push(pointerKey);
  return { written, alreadyPresent: plan.alreadyPresent, bytesWritten, pointer: plan.pointer, previousManifest: pointer.previous };
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
