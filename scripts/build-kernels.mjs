#!/usr/bin/env node
// Compiles kernels/assembly (AssemblyScript) to kernels/build/kernels.wasm with SIMD128 and
// relaxed SIMD. Skips the compile when the output is newer than every source file.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const sourceDir = join(root, "kernels", "assembly");
const outFile = join(root, "kernels", "build", "kernels.wasm");

const sources = readdirSync(sourceDir).filter((f) => f.endsWith(".ts")).map((f) => join(sourceDir, f));
const newestSource = Math.max(...sources.map((f) => statSync(f).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (existsSync(outFile) && statSync(outFile).mtimeMs > newestSource && !process.argv.includes("--force")) {
  process.exit(0);
}
mkdirSync(dirname(outFile), { recursive: true });
const asc = join(root, "node_modules", "assemblyscript", "bin", "asc.js");
execFileSync(process.execPath, [
  asc, join(sourceDir, "index.ts"),
  "-o", outFile,
  "-t", outFile.replace(/\.wasm$/, ".wat"),
  "-O3", "--noAssert", "--converge",
  "--runtime", "stub",
  "--importMemory",
  "--enable", "simd", "--enable", "relaxed-simd",
  "--use", "abort=",
], { stdio: "inherit" });
console.log(`kernels: wrote ${outFile} (${statSync(outFile).size} bytes)`);
