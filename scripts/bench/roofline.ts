// Roofline probe: compiles scripts/bench/probe.as with the project's AssemblyScript into
// .edgeinfer/bench/probe.wasm (cached by source hash) and measures, on one thread:
//  - read bandwidth over a buffer far larger than the caches (DRAM bound), plus two
//    cache-sized buffers for context;
//  - the peak rate of the SIMD integer dot instructions and of f32 multiply-add;
//  - the rate of each quant's shortest exact dot sequence (a ceiling for its kernels).
// These are roofs, so each figure is the best of its passes (background load only lowers one).

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { projectRoot } from "../paths";

export const BENCH_DIR = join(projectRoot, ".edgeinfer", "bench");
const PROBE_SOURCE = join(projectRoot, "scripts", "bench", "probe.as");

interface ProbeExports {
  streamSum(p: number, bytes: number): number;
  streamSum4(p: number, bytes: number): number;
  fill(p: number, bytes: number, seed: number): void;
  dotI16(iters: number, seed: number): number;
  dotI8(iters: number, seed: number): number;
  dotI8Add(iters: number, seed: number): number;
  maddF32(iters: number, m: number, a: number): number;
  q8Dot(iters: number, seed: number): number;
  q8DotWide(iters: number, seed: number): number;
  q4Dot(iters: number, seed: number): number;
}

/** Compiles the probe (when its source changed) and returns the wasm path. */
export function compileProbe(dir = BENCH_DIR): string {
  const source = readFileSync(PROBE_SOURCE, "utf8");
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const out = join(dir, "probe.wasm");
  const stamp = join(dir, "probe.hash");
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, "utf8") === hash) return out;
  // private names until the rename, so a test and a bench compiling at once do not collide
  const srcDir = join(dir, `probe-src-${process.pid}`);
  mkdirSync(srcDir, { recursive: true });
  const entry = join(srcDir, "probe.ts"); // asc wants a .ts entry
  writeFileSync(entry, source);
  const tmp = join(srcDir, "probe.wasm");
  const asc = join(projectRoot, "node_modules", "assemblyscript", "bin", "asc.js");
  execFileSync(process.execPath, [
    asc, entry, "-o", tmp,
    "-O3", "--noAssert", "--runtime", "stub", "--importMemory",
    "--enable", "simd", "--enable", "relaxed-simd", "--use", "abort=",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  renameSync(tmp, out);
  rmSync(srcDir, { recursive: true, force: true });
  writeFileSync(stamp, hash);
  return out;
}

export interface RooflineOptions {
  /** Bytes of the DRAM-bound buffer (64-256 MiB). */
  bufferBytes: number;
  /** Passes over each buffer (the best one counts). */
  passes: number;
  /** Wall time per compute measurement, ms. */
  computeMs: number;
}

export interface Roofline {
  /** Best single-thread read bandwidth over the large buffer, bytes/s: the roof. */
  bandwidth: number;
  bandwidthOneStream: number;
  bandwidthFourStreams: number;
  bufferBytes: number;
  /** Read bandwidth over buffers that fit the last-level cache / L2 (context only). */
  bandwidthCacheSized: Array<{ bytes: number; bandwidth: number }>;
  /** Multiply-accumulates per second of each instruction, and the best integer one: the roof. */
  macsPerSecond: { dotI16: number; relaxedDotI8: number; relaxedDotI8Add: number; f32MulAdd: number };
  /**
   * Multiply-accumulates per second of the shortest exact instruction sequence per quant (the
   * kernels' inner step alone, in registers): ceilings for any kernel of that quant, used to
   * say how far a compute-bound target (prefill) can go on this machine.
   */
  sequenceMacsPerSecond: { q8_0: number; q4_0: number; q8_0SignRoute: number; q8_0WideRoute: number };
  intMacsPerSecond: number;
  f32MacsPerSecond: number;
  wasm: string;
}

function instantiateProbe(bufferBytes: number): { e: ProbeExports; base: number; wasm: string } {
  const wasm = compileProbe();
  const module = new (WebAssembly.Module as unknown as new (b: Uint8Array) => WebAssembly.Module)(readFileSync(wasm));
  const base = 1 << 20; // past the module's static data
  const pages = Math.ceil((base + bufferBytes) / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return { e: new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as ProbeExports, base, wasm };
}

/**
 * The q8_0 and q4_0 exact dot sequences again, for a measurement taken turn about with something
 * else (llama.cpp's prefill, scripts/bench/peer.ts): each call runs the quant's for about `ms`
 * and returns its multiply-adds per second (q8_0: the better of its two routes).
 */
export function sequenceProbe(ms: number): (quant: "q8_0" | "q4_0") => number {
  const { e } = instantiateProbe(0);
  const chains = 12;
  let sink = 0;
  const rate = (fn: (iters: number) => number, macsPerIter: number) => {
    let iters = 1 << 12;
    for (;;) {
      const t = performance.now();
      sink ^= fn(iters);
      const took = performance.now() - t;
      if (took >= ms / 4 || iters > 1 << 30) break;
      iters *= 2;
    }
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      sink ^= fn(iters);
      best = Math.min(best, performance.now() - t);
    }
    if (sink === 0x7fffffff) console.error(""); // keep the results observable
    return (iters * macsPerIter) / (best / 1000);
  };
  return (quant) =>
    quant === "q8_0" ? Math.max(rate((n) => e.q8Dot(n, 3), chains * 16), rate((n) => e.q8DotWide(n, 3), chains * 8)) : rate((n) => e.q4Dot(n, 3), chains * 32);
}

export function runRoofline(o: RooflineOptions): Roofline {
  const { e, base, wasm } = instantiateProbe(o.bufferBytes);
  e.fill(base, o.bufferBytes, 0x01020304);

  let sink = 0;
  const bw = (fn: (p: number, n: number) => number, bytes: number, passes: number) => {
    sink ^= fn(base, bytes); // warm (tier-up, TLB)
    const times: number[] = [];
    for (let i = 0; i < passes; i++) {
      const t = performance.now();
      sink ^= fn(base, bytes);
      times.push(performance.now() - t);
    }
    return bytes / (Math.min(...times) / 1000); // a roof: the best pass (noise only slows a pass down)
  };
  const one = bw(e.streamSum, o.bufferBytes, o.passes);
  const four = bw(e.streamSum4, o.bufferBytes, o.passes);
  const cacheSized = [16 << 20, 1 << 20].filter((bytes) => bytes <= o.bufferBytes).map((bytes) => ({ bytes, bandwidth: Math.max(bw(e.streamSum, bytes, 4 * o.passes), bw(e.streamSum4, bytes, 4 * o.passes)) }));

  const rate = (fn: (iters: number) => number, macsPerIter: number) => {
    let iters = 1 << 14;
    for (;;) {
      const t = performance.now();
      sink ^= fn(iters);
      const ms = performance.now() - t;
      if (ms > o.computeMs / 4 || iters > 1 << 30) break;
      iters *= 2;
    }
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      sink ^= fn(iters);
      times.push(performance.now() - t);
    }
    return (iters * macsPerIter) / (Math.min(...times) / 1000);
  };
  const chains = 12;
  const macs = {
    dotI16: rate((n) => e.dotI16(n, 3), chains * 8),
    relaxedDotI8: rate((n) => e.dotI8(n, 3), chains * 16),
    relaxedDotI8Add: rate((n) => e.dotI8Add(n, 3), chains * 16),
    f32MulAdd: rate((n) => e.maddF32(n, 0.5, 1) | 0, chains * 4),
  };
  const q8Sign = rate((n) => e.q8Dot(n, 3), chains * 16);
  const q8Wide = rate((n) => e.q8DotWide(n, 3), chains * 8);
  const sequences = {
    // q8_0: the better of the two exact routes (sign moved onto i8 operands, or i16 operands)
    q8_0: Math.max(q8Sign, q8Wide),
    q4_0: rate((n) => e.q4Dot(n, 3), chains * 32),
    q8_0SignRoute: q8Sign,
    q8_0WideRoute: q8Wide,
  };
  if (sink === 0x7fffffff) console.error(""); // keep the results observable
  return {
    bandwidth: Math.max(one, four),
    bandwidthOneStream: one,
    bandwidthFourStreams: four,
    bufferBytes: o.bufferBytes,
    bandwidthCacheSized: cacheSized,
    macsPerSecond: macs,
    sequenceMacsPerSecond: sequences,
    intMacsPerSecond: Math.max(macs.dotI16, macs.relaxedDotI8, macs.relaxedDotI8Add),
    f32MacsPerSecond: macs.f32MulAdd,
    wasm: relative(projectRoot, wasm),
  };
}
