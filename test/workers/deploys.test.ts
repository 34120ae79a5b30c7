// Deploys and rollbacks across locations that see KV each in their own time: the Worker at
// every location, on a store that delays each key's arrival per location and caches misses
// (propagating-kv.ts, around the real KV binding, on models the real CLI built). Under traffic
// through a deploy and a rollback there is no 5xx and every answer is exactly one whole
// version's; a version whose data stays missing past the bound is an error.

import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../functions/app";
import { kvKeys, parseManifest, parseModelPointer } from "../../functions/model/manifest";
import { PROPAGATION_BOUND_MS } from "../../functions/runtime/consistency";
import kernelsModule from "../../kernels/build/kernels.wasm";
import { PropagatingKv } from "./propagating-kv";
import { seed, testEnv } from "./support";

const T0 = Date.UTC(2026, 0, 1);
let t = T0;
const clock = () => t;

const LOCATIONS = ["near", "far-1", "far-2", "far-3"];
const net = new PropagatingKv(testEnv.MODELS, clock);
const workers = Object.fromEntries(
  [...LOCATIONS, "ref"].map((name) => [name, { ...createApp(kernelsModule, { now: clock }), env: { MODELS: net.location(name) } }]),
);

const body = { model: "story", prompt: "Once upon a time", max_tokens: 6, temperature: 0, return_token_ids: true };

async function ask(location: string, model = "story") {
  const w = workers[location];
  const res = await w.app.request("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, model }) }, w.env);
  return { status: res.status, body: (await res.json()) as any };
}

/** A seeded generator, so a failing schedule can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = random(20261130);

/** Each version's greedy token ids (as JSON) -> its name. */
type Versions = Record<string, string>;
let v1: string;
let v1Tokens: string;
/** v2's KV entries (the random GQA model the real build wrote), not in KV until deployed. */
const gqaEntries = new Map<string, ArrayBuffer>();
const pointer = (manifest: string, previous: string | null, at: number) => JSON.stringify({ manifest, previous, at });

/**
 * Two requests at each location every `stepMs` of the clock, `steps` times. Each answer must be
 * a 200 whose tokens are exactly one version's; returns which version each location served.
 */
async function traffic(versions: Versions, steps: number, stepMs: number): Promise<Array<{ at: number; location: string; version: string }>> {
  const served = [];
  for (let i = 0; i < steps; i++) {
    t += stepMs;
    const answers = await Promise.all(LOCATIONS.flatMap((location) => [0, 1].map(async () => ({ location, ...(await ask(location)) }))));
    for (const a of answers) {
      if (a.status !== 200) throw new Error(`t+${(t - T0) / 1000}s at ${a.location}: HTTP ${a.status} ${JSON.stringify(a.body)}`);
      const version = versions[JSON.stringify(a.body.choices[0].token_ids)];
      if (!version) throw new Error(`t+${(t - T0) / 1000}s at ${a.location}: tokens of no version: ${JSON.stringify(a.body.choices[0].token_ids)}`);
      served.push({ at: t, location: a.location, version });
    }
  }
  return served;
}

const tokensOf = async (location: string, model: string) => {
  const res = await ask(location, model);
  expect(res.status).toBe(200);
  return JSON.stringify(res.body.choices[0].token_ids);
};

const pointerIn = (entries: Map<string, ArrayBuffer>, id: string) => parseModelPointer(new TextDecoder().decode(entries.get(kvKeys.modelPointer(id))!)).manifest;

beforeAll(async () => {
  // v1: aidreams260K (f32), in KV; later versions: random GQA models, not yet in KV.
  await seed("aidreams");
  v1 = parseModelPointer((await testEnv.MODELS.get(kvKeys.modelPointer("aidreams260K")))!).manifest;
  await seed("gqa", { put: async (key: string, value: ArrayBuffer) => void gqaEntries.set(key, value) } as unknown as KVNamespace);
  // "story" has been at v1 for an hour: settled everywhere.
  await testEnv.MODELS.put(kvKeys.modelPointer("story"), pointer(v1, null, T0 - 3_600_000));
  v1Tokens = await tokensOf("ref", "story");
});

describe("a deploy and a rollback under traffic, each location seeing KV in its own time", () => {
  it("never answers 5xx, always with one whole version, and converges on each", async () => {
    // Every location has served v1 (and cached the pointer that says so).
    const versions: Versions = { [v1Tokens]: "v1" };
    expect(new Set((await traffic(versions, 3, 2_000)).map((s) => s.version))).toEqual(new Set(["v1"]));

    // The deploy: v2's content goes up first, its pointer last. Each key reaches each location
    // after up to a minute; "near" sees the pointer at once but the data only 40-60 s later.
    const v2 = pointerIn(gqaEntries, "gqa-untied");
    for (const [key, value] of gqaEntries) {
      await net.put(key, value, (location) => (location === "ref" ? 0 : location === "near" ? 40_000 + rng() * 20_000 : rng() * 60_000));
    }
    versions[await tokensOf("ref", "gqa-untied")] = "v2";
    expect(Object.keys(versions)).toHaveLength(2);
    const deployedAt = t;
    await net.put(kvKeys.modelPointer("story"), pointer(v2, v1, t), (location) => (location === "near" || location === "ref" ? 0 : rng() * 60_000));

    const deploy = await traffic(versions, 90, 2_000);
    // "near" read v2's pointer, found v2's data missing, and answered with v1 meanwhile.
    const nearMisses = net.log("near").filter((r) => r.at >= deployedAt && !r.found && r.source === "not-arrived");
    expect(nearMisses.length).toBeGreaterThan(0);
    expect(workers.near.models.servedPrevious).toBeGreaterThan(0);
    expect(deploy.some((s) => s.location === "near" && s.version === "v1" && s.at > nearMisses[0].at)).toBe(true);
    // Each location moved from v1 to v2 once and for all, and all serve v2 at the end.
    for (const location of LOCATIONS) {
      const seen = deploy.filter((s) => s.location === location).map((s) => s.version);
      expect(seen.slice(seen.indexOf("v2")).every((v) => v === "v2")).toBe(true);
    }
    expect(new Set(deploy.filter((s) => s.at > deployedAt + 160_000).map((s) => s.version))).toEqual(new Set(["v2"]));

    // The rollback: only the pointer changes; v1 is whole everywhere.
    const rolledBackAt = t;
    await net.put(kvKeys.modelPointer("story"), pointer(v1, v2, t), () => rng() * 60_000);
    const rollback = await traffic(versions, 60, 2_000);
    for (const location of LOCATIONS) {
      const seen = rollback.filter((s) => s.location === location).map((s) => s.version);
      expect(seen.slice(seen.indexOf("v1")).every((v) => v === "v1")).toBe(true);
    }
    expect(new Set(rollback.filter((s) => s.at > rolledBackAt + 100_000).map((s) => s.version))).toEqual(new Set(["v1"]));
  });

  it("a version whose data stays missing past the bound is an error naming the key; the previous version serves until then", async () => {
    // v3 (the GQA model at q4_0) deployed over v1, but one of its shards never arrives anywhere.
    const v3 = pointerIn(gqaEntries, "gqa-untied-q4_0");
    for (const [key, value] of gqaEntries) await net.put(key, value, () => 0);
    const versions: Versions = { [v1Tokens]: "v1", [await tokensOf("ref", "gqa-untied-q4_0")]: "v3" };
    expect(Object.keys(versions)).toHaveLength(2);
    const manifest = parseManifest((await testEnv.MODELS.get(kvKeys.manifest(v3)))!);
    const shardKey = kvKeys.shard(manifest.weights.shards[0].sha256);
    const shard = (await testEnv.MODELS.get(shardKey, "arrayBuffer"))!;
    await testEnv.MODELS.delete(shardKey);
    const deployedAt = t;
    await net.put(kvKeys.modelPointer("story"), pointer(v3, v1, t), () => 0);
    t += 31_000; // every location's cached pointer has expired

    const before = await traffic(versions, Math.floor((PROPAGATION_BOUND_MS - 40_000) / 10_000), 10_000);
    expect(new Set(before.map((s) => s.version))).toEqual(new Set(["v1"]));

    t = deployedAt + PROPAGATION_BOUND_MS + 1_000;
    for (const location of LOCATIONS) {
      const res = await ask(location);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("model_load_failed");
      expect(res.body.error.message).toContain(shardKey);
    }

    // The shard arrives after all: once the cached misses expire, v3 serves.
    await net.put(shardKey, shard, () => 0);
    t += 61_000;
    const after = await traffic(versions, 2, 1_000);
    expect(new Set(after.map((s) => s.version))).toEqual(new Set(["v3"]));
  });
});
