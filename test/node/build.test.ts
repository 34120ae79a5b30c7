// The build script through the real CLI: shards named by their content and no bigger than
// asked, a manifest that round-trips through its parser, a rebuild that writes nothing, and a
// model too big for an isolate refused with the numbers and what would fit.

import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { canonicalJson, parseManifest, ManifestError } from "../../functions/model/manifest";
import { aidreams, edgeinfer } from "../setup/fixtures";

const work = mkdtempSync(join(tmpdir(), "edgeinfer-build-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const build = (args: string[]) => edgeinfer(["build", aidreams.checkpoint, "--tokenizer", aidreams.tokenizer, ...args]);

describe("edgeinfer build", () => {
  const out = join(work, "kv");
  let first: any;

  it("cuts the weights into shards of at most --shard-size, each named by its sha256", () => {
    first = build(["--id", "a", "--quant", "f32", "--shard-size", "0.25", "--out", out]);
    expect(first.shards.length).toBe(Math.ceil(first.weightsBytes / (0.25 * 1024 * 1024)));
    for (const shard of first.shards) {
      const bytes = readFileSync(join(out, "shards", shard.sha256));
      expect(bytes.length).toBe(shard.bytes);
      expect(bytes.length).toBeLessThanOrEqual(0.25 * 1024 * 1024);
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(shard.sha256);
    }
    expect(first.tensors.every((t: { relRmsError: number }) => t.relRmsError === 0)).toBe(true);
  });

  it("writes a manifest the Worker's parser reads back, and whose name is its hash", () => {
    const text = readFileSync(join(out, "manifests", first.manifest), "utf8");
    expect(createHash("sha256").update(text).digest("hex")).toBe(first.manifest);
    const manifest = parseManifest(text);
    expect(canonicalJson(manifest)).toBe(text);
    expect(manifest.weights.shards.map((s) => s.sha256)).toEqual(first.shards.map((s: { sha256: string }) => s.sha256));
    const broken = { ...manifest, weights: { ...manifest.weights, bytes: manifest.weights.bytes + 1 } };
    expect(() => parseManifest(JSON.stringify(broken))).toThrow(ManifestError);
  });

  it("writes nothing when the same model is rebuilt with the same options", () => {
    const before = readdirSync(out, { recursive: true }).length;
    const again = build(["--id", "a", "--quant", "f32", "--shard-size", "0.25", "--out", out]);
    expect(again.written).toEqual([]);
    expect(again.pointer).toBe("unchanged");
    expect(again.manifest).toBe(first.manifest);
    expect(readdirSync(out, { recursive: true }).length).toBe(before);
  });

  it("prints each tensor's quantization error", () => {
    const q4 = build(["--id", "b", "--quant", "q4_0", "--out", out]);
    const matrices = q4.tensors.filter((t: { shape: number[] }) => t.shape.length === 2);
    expect(matrices.every((t: { dtype: string; relRmsError: number }) => t.dtype === "q4_0" && t.relRmsError > 0 && t.relRmsError < 0.3)).toBe(true);
  });

  it("builds K-quants and llama.cpp's Q4_K_M mix with ggml's quantizers; rows not of 256s fall back", () => {
    const k = join(work, "k256.bin");
    edgeinfer(["gen-random", "--out", k, "--dim", "256", "--hidden", "512", "--layers", "4", "--heads", "4", "--vocab", "512", "--seq-len", "64"]);
    const mix = edgeinfer(["build", k, "--tokenizer", aidreams.tokenizer, "--id", "mix", "--quant", "q4_k_m", "--out", join(work, "k")]);
    expect(mix.quant).toBe("q4_k_m");
    const dtype = (name: string) => mix.tensors.find((t: { name: string }) => t.name === name).dtype;
    // tied embeddings: token_embd is the classifier, q6_K; attn_v and ffn_down of layers 2 and 3
    expect([dtype("token_embd.weight"), dtype("blk.0.attn_q.weight"), dtype("blk.0.attn_v.weight"), dtype("blk.2.attn_v.weight"), dtype("blk.3.ffn_down.weight")]).toEqual(["q6_k", "q4_k", "q4_k", "q6_k", "q6_k"]);
    for (const t of mix.tensors.filter((x: { shape: number[] }) => x.shape.length === 2)) expect(t.relRmsError).toBeLessThan(t.dtype === "q6_k" ? 0.03 : 0.12);
    // aidreams260K's rows are 64 and 172 wide: q4_K falls back to q5_0 everywhere
    const fallback = build(["--id", "c", "--quant", "q4_k", "--out", out]);
    expect(new Set(fallback.tensors.filter((t: { shape: number[] }) => t.shape.length === 2).map((t: { dtype: string }) => t.dtype))).toEqual(new Set(["q5_0"]));
    expect(fallback.quant).toBe("q4_k");
    let error: any;
    try {
      build(["--id", "d", "--quant", "q3_k", "--out", out]);
    } catch (e) {
      error = JSON.parse((e as { stdout: string }).stdout.trim());
    }
    expect(error.error).toMatch(/--quant must be one of f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m, keep \(got q3_k\)/);
  });

  it("refuses a model too big for an isolate, saying by how much and what would fit", () => {
    const big = join(work, "long-context.bin");
    edgeinfer(["gen-random", "--out", big, "--dim", "512", "--hidden", "1024", "--layers", "8", "--heads", "8", "--vocab", "512", "--seq-len", "32768"]);
    let error: any;
    try {
      edgeinfer(["build", big, "--tokenizer", aidreams.tokenizer, "--id", "big", "--quant", "f32", "--out", join(work, "big")]);
    } catch (e) {
      error = JSON.parse((e as { stdout: string }).stdout.trim());
    }
    expect(error.ok).toBe(false);
    expect(error.overBytes).toBe(error.needBytes - error.budgetBytes);
    expect(error.overBytes).toBeGreaterThan(0);
    expect(error.error).toMatch(/MiB over/);
    expect(error.advice).toMatch(/--context \d+/);
  });
});
