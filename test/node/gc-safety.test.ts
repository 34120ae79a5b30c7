// gc against publishes in flight, on the real KV targets: the real `edgeinfer gc` run in the
// middle of a many-shard publish (tiny shards) deletes nothing that publish needs, and the
// model loads whole afterwards through the Worker's loader; a publish that runs its whole
// course while gc deletes is spared, or (inside one batch) reported and repaired by
// publishing again; a publish whose entries vanish mid-way puts them back before its pointer,
// or fails without writing it; leases are renewed and expire; unreferenced data younger than
// the grace period is kept and collected once past it (clock injected); every backend keeps
// the write times gc reads.

import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadKernelsModuleForNode } from "../../kernels/node";
import { kvKeys } from "../../functions/model/manifest";
import { loadModelFromStore, readManifest, resolveModelPointer } from "../../functions/runtime/loader";
import { kvStore } from "../../functions/store/kv";
import { publishArtifacts, type PublishLease } from "../../scripts/build/publish";
import type { BuildArtifacts } from "../../scripts/build/pipeline";
import type { DType } from "../../kernels/quant";
import { buildArtifactsFor } from "../../scripts/commands/build";
import { DirectoryKv, openLocalKv, WranglerKv, type KvTarget } from "../../scripts/kv/targets";
import { collectGarbage, DEFAULT_GC_GRACE_MS, planGc } from "../../scripts/tenancy/store";
import { aidreams, edgeinfer, root } from "../setup/fixtures";

const work = mkdtempSync(join(tmpdir(), "edgeinfer-gc-safety-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Smallest shard the build allows: aidreams260K at f32 is 221 shards of it. */
const TINY_SHARD = 4096;
const tinyShardMiB = `${TINY_SHARD / (1024 * 1024)}`;

async function aidreamsArtifacts(id: string, contextLength?: number, quant: DType = "f32"): Promise<BuildArtifacts> {
  return buildArtifactsFor({ source: aidreams.checkpoint, tokenizer: aidreams.tokenizer, id, quant, shardBytes: TINY_SHARD, contextLength, remote: false, json: true });
}

/** A folder KV where version 1 of "m" (f32, tiny shards) has fallen out of m's history (v2, v3 after it). */
async function withOrphanedV1(dir: string) {
  const kv = new DirectoryKv(dir);
  const v1 = await aidreamsArtifacts("m");
  for (const a of [v1, await aidreamsArtifacts("m", undefined, "q8_0"), await aidreamsArtifacts("m", undefined, "q4_0")]) await publishArtifacts(kv, a);
  return { kv, v1Shards: v1.manifest.weights.shards.map((s) => kvKeys.shard(s.sha256)), v1Manifest: kvKeys.manifest(v1.manifestSha256) };
}

const missingFrom = (dir: string, a: BuildArtifacts) => needed(a).filter((k) => !existsSync(join(dir, k)));

/** The content-addressed keys a pointer to these artifacts references. */
const needed = (a: BuildArtifacts) => a.entries.filter((e) => e.immutable).map((e) => e.key);

/** The model as the Worker loads it from a real (miniflare) KV namespace: every shard read and hash-checked. */
async function loadFromLocalKv(persistTo: string, id: string) {
  const { getPlatformProxy } = await import("wrangler");
  const proxy = await getPlatformProxy<{ MODELS: KVNamespace }>({ configPath: join(root, "wrangler.toml"), persist: { path: join(persistTo, "v3") } });
  try {
    const kv = kvStore(proxy.env.MODELS);
    const sha = (await resolveModelPointer(kv, id)).manifest;
    const manifest = await readManifest(kv, id, sha);
    const loaded = await loadModelFromStore(kv, id, sha, manifest, { kernelsModule: loadKernelsModuleForNode() });
    return { sha, shards: manifest.weights.shards.length, memoryBytes: loaded.memoryBytes };
  } finally {
    await proxy.dispose();
  }
}

describe("gc during a publish", () => {
  it("a gc in the middle of a publish deletes nothing it needs, and the model loads whole", { timeout: 300_000 }, async () => {
    const persistTo = join(work, "local");
    const tok = ["--tokenizer", aidreams.tokenizer];
    // Garbage beforehand: version 1 of "m" (tiny shards) falls out of its pointer's history.
    const v1 = edgeinfer(["build", aidreams.checkpoint, ...tok, "--id", "m", "--quant", "f32", "--shard-size", tinyShardMiB, "--persist-to", persistTo]);
    const v2 = edgeinfer(["build", aidreams.checkpoint, ...tok, "--id", "m", "--quant", "q8_0", "--persist-to", persistTo]);
    edgeinfer(["build", aidreams.checkpoint, ...tok, "--id", "m", "--quant", "q4_0", "--persist-to", persistTo]);
    const v1Shards: string[] = v1.shards.map((s: { sha256: string }) => kvKeys.shard(s.sha256));
    expect(v1Shards.length).toBeGreaterThan(200);

    // A publish that finds that old, unreferenced data present and reuses it (the same weights
    // under another id): a gc with no grace period, run while it uploads, must not take it.
    const again = await aidreamsArtifacts("again", 96);
    const reused = new Set(needed(again));
    expect(v1Shards.every((k) => reused.has(k))).toBe(true);
    let during: any;
    const kv = await openLocalKv(persistTo);
    try {
      const result = await publishArtifacts(kv, again, undefined, (done) => {
        if (done === 0) during = edgeinfer(["gc", "--grace", "0", "--persist-to", persistTo]);
      });
      expect(result.alreadyPresent).toBe(reused.size - 1);
    } finally {
      await kv.close();
    }
    expect(during.leases).toBe(1);
    expect(during.removed).toEqual([kvKeys.manifest(v1.manifest)]);
    expect(during.kept.leased).toBe(v1Shards.length);
    expect((await loadFromLocalKv(persistTo, "again")).sha).toBe(again.manifestSha256);

    // Fresh garbage (v2 falls out of m's history), then a random model of many tiny shards,
    // published in this process while the real CLI's gc runs in another: before the first
    // entry (default grace), halfway and after the last, before the pointer (no grace).
    edgeinfer(["build", aidreams.checkpoint, ...tok, "--id", "m", "--quant", "f16", "--persist-to", persistTo]);
    const v2Keys = [kvKeys.manifest(v2.manifest), ...v2.shards.map((s: { sha256: string }) => kvKeys.shard(s.sha256))];
    const checkpoint = join(work, "many.bin");
    edgeinfer(["gen-random", "--out", checkpoint, "--dim", "96", "--hidden", "256", "--layers", "4", "--heads", "4", "--vocab", "512", "--seq-len", "64", "--seed", "11"]);
    const many = await buildArtifactsFor({ source: checkpoint, tokenizer: aidreams.tokenizer, id: "many", quant: "f32", shardBytes: TINY_SHARD, remote: false, json: true });
    expect(many.manifest.weights.shards.length).toBeGreaterThan(400);
    const gcRuns: any[] = [];
    const kv2 = await openLocalKv(persistTo);
    try {
      await publishArtifacts(kv2, many, undefined, (done, total) => {
        if (done === 0) gcRuns.push(edgeinfer(["gc", "--persist-to", persistTo]));
        if (done === Math.floor(total / 2) || done === total) gcRuns.push(edgeinfer(["gc", "--grace", "0", "--persist-to", persistTo]));
      });
    } finally {
      await kv2.close();
    }
    expect(gcRuns.length).toBe(3);
    const removed = gcRuns.flatMap((r) => r.removed as string[]);
    // gc was at work (v2's data, past a zero grace period, went) ...
    expect(removed.sort()).toEqual(v2Keys.sort());
    // ... and saw the publish, but took none of its keys.
    expect(gcRuns.map((r) => r.leases)).toEqual([1, 1, 1]);
    expect(gcRuns[1].kept.leased).toBeGreaterThan(200);
    const loaded = await loadFromLocalKv(persistTo, "many");
    expect(loaded.sha).toBe(many.manifestSha256);
    expect(loaded.shards).toBe(many.manifest.weights.shards.length);
    // Once the publish is done its lease is gone: its pointer protects its data now.
    const after = edgeinfer(["gc", "--grace", "0", "--persist-to", persistTo]);
    expect(after.leases).toBe(0);
    expect(after.removed).toEqual([]);
  });
});

describe("a publish that runs its whole course while gc deletes", () => {
  it("between gc's plan and its deletes: gc looks again and spares what the new pointer references", async () => {
    const dir = join(work, "between");
    const { kv, v1Shards, v1Manifest } = await withOrphanedV1(dir);
    const plan = await planGc(kv, { graceMs: 0 });
    expect([...plan.remove].sort()).toEqual([...v1Shards, v1Manifest].sort());
    // The same weights under another id: it reuses v1's shards, found present.
    const again = await aidreamsArtifacts("again", 96);
    expect((await publishArtifacts(kv, again)).alreadyPresent).toBe(v1Shards.length + 1);
    const done = await collectGarbage(kv, plan);
    expect(done.removed).toEqual([v1Manifest]);
    expect([...done.spared].sort()).toEqual([...v1Shards].sort());
    expect(done.raced).toEqual([]);
    expect(missingFrom(dir, again)).toEqual([]);
  });

  it("inside one of gc's batches: gc says which keys it took, and publishing again puts them back", async () => {
    const dir = join(work, "inside");
    const { kv, v1Shards, v1Manifest } = await withOrphanedV1(dir);
    const plan = await planGc(kv, { graceMs: 0 });
    const again = await aidreamsArtifacts("again", 96);
    const done = await collectGarbage(kv, plan, {
      // Right after gc's look before its first batch, a whole publish reusing v1's shards.
      onDelete: async (i) => {
        if (i === 0) await publishArtifacts(kv, again);
      },
    });
    // The first batch (64 keys) went ahead; the looks after it saw the new pointer.
    const firstBatch = plan.remove.slice(0, 64);
    expect(done.raced).toEqual(firstBatch);
    expect([...done.spared].sort()).toEqual(v1Shards.filter((k) => !firstBatch.includes(k)).sort());
    expect(done.removed).toEqual([...firstBatch, v1Manifest]);
    expect(missingFrom(dir, again).sort()).toEqual([...firstBatch].sort());
    const republished = await publishArtifacts(kv, again);
    expect(republished.pointer).toBe("unchanged");
    expect([...republished.written].sort()).toEqual([...firstBatch].sort());
    expect(missingFrom(dir, again)).toEqual([]);
  });
});

describe("a publish checks its entries before its pointer", () => {
  it("puts back entries deleted while it ran, then writes the pointer", async () => {
    const dir = join(work, "vanish");
    const artifacts = await aidreamsArtifacts("vanish");
    const shards = artifacts.manifest.weights.shards.map((s) => kvKeys.shard(s.sha256));
    let deleted: string[] = [];
    const result = await publishArtifacts(new DirectoryKv(dir), artifacts, undefined, (done) => {
      // Another client deletes the first 100 shards written, 150 entries in.
      if (done === 150) {
        deleted = shards.slice(0, 100);
        for (const key of deleted) rmSync(join(dir, key));
      }
    });
    expect(deleted.length).toBe(100);
    expect([...result.restored].sort()).toEqual([...deleted].sort());
    expect(result.pointer).toBe("created");
    expect(JSON.parse(readFileSync(join(dir, kvKeys.modelPointer("vanish")), "utf8")).manifest).toBe(artifacts.manifestSha256);
    for (const s of artifacts.manifest.weights.shards) {
      expect(createHash("sha256").update(readFileSync(join(dir, kvKeys.shard(s.sha256)))).digest("hex")).toBe(s.sha256);
    }
    expect(existsSync(join(dir, "publishes")) ? readdirSync(join(dir, "publishes")) : []).toEqual([]);
  });

  it("fails clearly, without its pointer, when an entry keeps vanishing", async () => {
    const dir = join(work, "hostile");
    const store = new DirectoryKv(dir);
    const live = await aidreamsArtifacts("target", 64);
    await publishArtifacts(store, live);
    const artifacts = await aidreamsArtifacts("target", 96);
    const victim = kvKeys.manifest(artifacts.manifestSha256);
    // A client that deletes the new manifest whenever the publisher looks at the store.
    const hostile: KvTarget = {
      description: store.description,
      get: (k) => store.get(k),
      getStream: (k) => store.getStream(k),
      put: (k, v) => store.put(k, v),
      delete: (k) => store.delete(k),
      list: async (prefix) => {
        await store.delete(victim);
        return store.list(prefix);
      },
      listWithTimes: (prefix) => store.listWithTimes(prefix),
      close: () => store.close(),
    };
    await expect(publishArtifacts(hostile, artifacts)).rejects.toThrow(new RegExp(`1 key\\(s\\) of model 'target' \\(${victim}\\) kept vanishing .* The pointer was not written; the live version is unchanged`));
    expect(JSON.parse(readFileSync(join(dir, kvKeys.modelPointer("target")), "utf8")).manifest).toBe(live.manifestSha256);
    expect(readdirSync(join(dir, "publishes"))).toEqual([]);
  });
});

describe("the grace period", () => {
  it("keeps unreferenced data younger than --grace and collects it once past (clock injected)", async () => {
    const out = join(work, "grace");
    const tok = ["--tokenizer", aidreams.tokenizer];
    const v1 = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "a", "--quant", "f32", "--out", out]);
    edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "a", "--quant", "q8_0", "--out", out]);
    edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "a", "--quant", "q4_0", "--out", out]);
    const manifest = JSON.parse(readFileSync(join(out, kvKeys.manifest(v1.manifest)), "utf8"));
    const orphaned = [kvKeys.manifest(v1.manifest), ...manifest.weights.shards.map((s: { sha256: string }) => kvKeys.shard(s.sha256))].sort();

    // Just deployed: the default grace keeps v1, and says so.
    const now = edgeinfer(["gc", "--out", out]);
    expect(now.removed).toEqual([]);
    expect(now.kept.recent).toBe(orphaned.length);
    expect(now.graceSeconds).toBe(DEFAULT_GC_GRACE_MS / 1000);
    expect(edgeinfer(["gc", "--dry-run", "--grace", "2h", "--out", out]).removed).toEqual([]);
    expect(() => edgeinfer(["gc", "--grace", "soon", "--out", out])).toThrow(/--grace must be a duration/);

    const kv = new DirectoryKv(out);
    const later = Date.now() + DEFAULT_GC_GRACE_MS + 60_000;
    const justBefore = await planGc(kv, { now: Date.now() + DEFAULT_GC_GRACE_MS - 60_000 });
    expect(justBefore.remove).toEqual([]);
    const plan = await planGc(kv, { now: later });
    expect([...plan.remove].sort()).toEqual(orphaned);
    expect((await collectGarbage(kv, plan, { now: () => later })).removed.sort()).toEqual(orphaned);
    expect(orphaned.filter((k) => existsSync(join(out, k)))).toEqual([]);
  });

  it("a lease left by a crashed publish protects its keys until it expires, then goes with them", async () => {
    const dir = join(work, "crashed");
    const kv = new DirectoryKv(dir);
    const artifacts = await aidreamsArtifacts("crashed");
    // A publish that died after its lease and some shards (its process killed: no cleanup).
    const t0 = Date.now();
    const lease: PublishLease = { pointer: kvKeys.modelPointer("crashed"), manifest: artifacts.manifestSha256, keys: needed(artifacts), startedAt: t0, expiresAt: t0 + 60_000 };
    await kv.put(kvKeys.publishLease("crashed-1"), new TextEncoder().encode(JSON.stringify(lease)));
    const written = artifacts.entries.slice(0, 50);
    for (const e of written) await kv.put(e.key, e.value);

    const during = await planGc(kv, { graceMs: 0, now: t0 + 30_000 });
    expect(during.remove).toEqual([]);
    expect(during.leases).toBe(1);
    expect([...during.leased].sort()).toEqual(written.map((e) => e.key).sort());

    const after = await planGc(kv, { graceMs: 0, now: t0 + 61_000 });
    expect(after.leases).toBe(0);
    expect([...after.remove].sort()).toEqual([...written.map((e) => e.key), kvKeys.publishLease("crashed-1")].sort());
  });

  it("a long upload renews its lease before it expires (clock injected)", async () => {
    const dir = join(work, "renew");
    const artifacts = await aidreamsArtifacts("renew");
    let clock = 1_000_000;
    const seen: Array<{ at: number; expiresAt: number }> = [];
    await publishArtifacts(new DirectoryKv(dir), artifacts, undefined, (done) => {
      // Each entry takes 100 "ms" of a 1000 "ms" lease.
      clock += 100;
      if (done % 10 === 0 && done > 0) {
        const [file] = readdirSync(join(dir, "publishes"));
        const lease = JSON.parse(readFileSync(join(dir, "publishes", file!), "utf8")) as PublishLease;
        seen.push({ at: clock, expiresAt: lease.expiresAt });
        expect(lease.keys).toEqual(needed(artifacts));
      }
    }, { now: () => clock, leaseMs: 1000 });
    expect(seen.length).toBeGreaterThan(10);
    // Never about to lapse (renewed at half-time), and moving on with the upload.
    for (const s of seen) expect(s.expiresAt - s.at).toBeGreaterThanOrEqual(400);
    expect(seen.at(-1)!.expiresAt).toBeGreaterThan(seen[0]!.expiresAt + 10_000);
  });

  it("a publish that fails leaves no lease behind", async () => {
    const dir = join(work, "failed");
    await expect(publishArtifacts(new DirectoryKv(dir), await aidreamsArtifacts("failed"), undefined, (done) => {
      if (done === 10) throw new Error("upload interrupted");
    })).rejects.toThrow("upload interrupted");
    expect(readdirSync(join(dir, "publishes"))).toEqual([]);
    expect(existsSync(join(dir, kvKeys.modelPointer("failed")))).toBe(false);
  });
});

describe("write times on every KV target", () => {
  async function checkTarget(kv: KvTarget, withGc = true) {
    const before = Date.now();
    await kv.put("shards/0000", new TextEncoder().encode("unreferenced"));
    const after = Date.now();
    const [info] = await kv.listWithTimes("shards/");
    expect(info.key).toBe("shards/0000");
    // The time of this write (file systems stamp mtimes from a coarse clock, a few ms behind).
    expect(info.writtenAt).toBeGreaterThan(before - 1000);
    expect(info.writtenAt).toBeLessThanOrEqual(after + 1000);
    if (!withGc) return;
    expect((await planGc(kv, { now: after })).recent).toEqual(["shards/0000"]);
    expect((await planGc(kv, { now: after + DEFAULT_GC_GRACE_MS + 1 })).remove).toEqual(["shards/0000"]);
  }

  it("a folder (--out): file mtimes", async () => {
    await checkTarget(new DirectoryKv(join(work, "times-dir")));
  });

  it("local KV (getPlatformProxy): KV metadata", async () => {
    const kv = await openLocalKv(join(work, "times-local"));
    try {
      await checkTarget(kv);
    } finally {
      await kv.close();
    }
  });

  it("the wrangler CLI (--remote's commands, on wrangler's local storage): --metadata", { timeout: 120_000 }, async () => {
    const persistTo = join(work, "times-wrangler");
    const kv = new WranglerKv({ persistTo });
    try {
      // (gc's reading of the times is the same code for every target: checked above)
      await checkTarget(kv, false);
    } finally {
      await kv.close();
    }
    // The same store through the proxy sees the metadata wrangler wrote.
    const local = await openLocalKv(persistTo);
    const cli = new WranglerKv({ persistTo });
    try {
      expect((await local.listWithTimes("shards/"))[0].writtenAt).toEqual((await cli.listWithTimes("shards/"))[0].writtenAt);
    } finally {
      await local.close();
      await cli.close();
    }
  });
});
