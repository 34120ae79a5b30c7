// deploy and the commands around it, through the real CLI on a KV folder (--out): dry runs
// write nothing, redeploys upload nothing new, interrupted deploys leave the live version,
// and gc removes exactly what no live or previous version references.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { aidreams, edgeinfer } from "../setup/fixtures";

const work = mkdtempSync(join(tmpdir(), "edgeinfer-tenancy-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const tok = ["--tokenizer", aidreams.tokenizer];

function keysIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

function readJson(dir: string, key: string): any {
  return JSON.parse(readFileSync(join(dir, key), "utf8"));
}

describe("deploy", () => {
  const out = join(work, "kv");

  it("a dry run plans the keys and bytes without writing", () => {
    const plan = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q8_0", "--out", out, "--dry-run"]);
    expect(plan.createsCustomer).toBe(true);
    expect(plan.newKeys.length).toBe(3);
    expect(plan.bytesToWrite).toBe(plan.newKeys.reduce((n: number, k: { bytes: number }) => n + k.bytes, 0));
    expect(keysIn(out)).toEqual([]);
  });

  it("creates the customer once, with a key stored only as a hash", () => {
    const first = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q8_0", "--out", out]);
    expect(first.apiKey).toMatch(/^ei_/);
    const stored = keysIn(out).map((k) => readFileSync(join(out, k)).toString("latin1")).join("\n");
    expect(stored).not.toContain(first.apiKey);
    const again = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q8_0", "--out", out]);
    expect(again.apiKey).toBeUndefined();
    expect(again.uploaded).toEqual([]);
    expect(again.pointer).toBe("unchanged");
  });

  it("an interrupted deploy of a new version leaves the live version untouched", () => {
    const live = readJson(out, "customers/acme/models/story");
    // Simulate a crash after the shards and manifest of a new version went up: everything but the pointer.
    const plan = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q4_0", "--out", out, "--dry-run"]);
    const staging = join(work, "staging");
    edgeinfer(["build", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q4_0", "--out", staging]);
    for (const { key } of plan.newKeys) writeFileSync(join(out, key), readFileSync(join(staging, key)));
    expect(readJson(out, "customers/acme/models/story")).toEqual(live);
    // The next deploy finds the data there and only flips the pointer.
    const resumed = edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "story", "--quant", "q4_0", "--out", out]);
    expect(resumed.uploaded).toEqual(["customers/acme/models/story"]);
    const before = Date.now();
    expect(readJson(out, "customers/acme/models/story")).toEqual({ manifest: plan.pointer.to, previous: live.manifest, at: expect.any(Number) });
    expect(readJson(out, "customers/acme/models/story").at).toBeLessThanOrEqual(before);
  });

  it("rollback needs a previous version and returns to it", () => {
    const before = readJson(out, "customers/acme/models/story");
    const back = edgeinfer(["rollback", "acme", "story", "--out", out]);
    expect(back.manifest).toBe(before.previous);
    // A rollback is a new pointer write: its time tells the Worker it may still be propagating.
    expect(readJson(out, "customers/acme/models/story").at).toBeGreaterThanOrEqual(before.at);
    expect(() => edgeinfer(["rollback", "acme", "nothing", "--out", out])).toThrow();
  });
});

describe("gc", () => {
  it("removes exactly the shards, tokenizers and manifests no pointer references", () => {
    const out = join(work, "gc");
    edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "a", "--quant", "f32", "--out", out]);
    edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "a", "--quant", "q8_0", "--out", out]);
    edgeinfer(["deploy", "acme", "--model", aidreams.checkpoint, ...tok, "--id", "a", "--quant", "q4_0", "--out", out]);
    edgeinfer(["deploy", "globex", "--model", aidreams.checkpoint, ...tok, "--id", "b", "--quant", "f16", "--out", out]);
    edgeinfer(["remove", "globex", "b", "--out", out]);

    // Independently: what the pointers reference (live + previous), and so what must go.
    const referenced = new Set<string>();
    for (const key of keysIn(out).filter((k) => /^customers\/[^/]+\/models\//.test(k) || k.startsWith("models/"))) {
      const pointer = readJson(out, key);
      for (const sha of [pointer.manifest, pointer.previous].filter(Boolean)) {
        referenced.add(`manifests/${sha}`);
        const m = readJson(out, `manifests/${sha}`);
        referenced.add(`tokenizers/${m.tokenizer.sha256}`);
        for (const s of m.weights.shards) referenced.add(`shards/${s.sha256}`);
      }
    }
    const expected = keysIn(out).filter((k) => /^(shards|tokenizers|manifests)\//.test(k) && !referenced.has(k));
    expect(expected.length).toBeGreaterThan(0);

    const dry = edgeinfer(["gc", "--dry-run", "--grace", "0", "--out", out]);
    expect([...dry.removed].sort()).toEqual(expected);
    expect(keysIn(out).filter((k) => expected.includes(k))).toEqual(expected);
    const gc = edgeinfer(["gc", "--grace", "0", "--out", out]);
    expect([...gc.removed].sort()).toEqual(expected);
    expect(keysIn(out).filter((k) => expected.includes(k))).toEqual([]);
    for (const key of referenced) expect(statSync(join(out, key)).isFile()).toBe(true);
  });
});

describe("customers, models, keys", () => {
  it("lists, rotates and refuses bad names", () => {
    const out = join(work, "misc");
    const first = edgeinfer(["deploy", "initech", "--model", aidreams.checkpoint, ...tok, "--id", "m", "--out", out]);
    // Limits live behind the Worker; with none to ask, they are unknown and the report says why.
    const listed = edgeinfer(["customers", "--out", out]);
    expect(listed.customers).toEqual([{ name: "initech", models: 1, limits: null }]);
    expect(typeof listed.limitsUnavailable).toBe("string");
    expect(edgeinfer(["models", "initech", "--out", out]).models.map((m: { id: string }) => m.id)).toEqual(["m"]);
    const rotated = edgeinfer(["keys", "rotate", "initech", "--out", out]);
    expect(rotated.apiKey).not.toBe(first.apiKey);
    expect(() => edgeinfer(["deploy", "Bad Name", "--model", aidreams.checkpoint, ...tok, "--out", out])).toThrow();
  });
});
