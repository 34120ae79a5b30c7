// llama.cpp, for the fidelity checks only (never a dependency of the project or of `npm test`):
// node-llama-cpp 3.21.1 and its prebuilt linux-x64 CPU binaries, installed on demand into
// ~/.cache/edgeinfer/llama-cpp (83 MB) with npm.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const LLAMA_CPP_VERSION = "3.21.1";
export const LLAMA_CPP_DIR = process.env.EDGEINFER_LLAMA_CPP_DIR ?? join(homedir(), ".cache", "edgeinfer", "llama-cpp");

/** Installs node-llama-cpp into LLAMA_CPP_DIR if it is not there yet; returns its folder. */
export function ensureLlamaCpp(log: (s: string) => void = console.log): string {
  const pkg = join(LLAMA_CPP_DIR, "node_modules", "node-llama-cpp", "package.json");
  if (!existsSync(pkg)) {
    mkdirSync(LLAMA_CPP_DIR, { recursive: true });
    if (!existsSync(join(LLAMA_CPP_DIR, "package.json"))) writeFileSync(join(LLAMA_CPP_DIR, "package.json"), '{"name":"edgeinfer-llama-cpp","private":true}\n');
    log(`installing node-llama-cpp@${LLAMA_CPP_VERSION} into ${LLAMA_CPP_DIR}`);
    const res = spawnSync("npm", ["i", "-E", `node-llama-cpp@${LLAMA_CPP_VERSION}`, `@node-llama-cpp/linux-x64@${LLAMA_CPP_VERSION}`, "--omit=optional", "--no-audit", "--no-fund"], { cwd: LLAMA_CPP_DIR, stdio: "inherit" });
    if (res.status !== 0) throw new Error("npm could not install node-llama-cpp");
  }
  return join(LLAMA_CPP_DIR, "node_modules");
}

/** Path of ggml's base library (ggml_quantize_chunk, the type traits). */
export async function ggmlBaseLibrary(log?: (s: string) => void): Promise<string> {
  const lib = join(ensureLlamaCpp(log), "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libggml-base.so");
  if (!existsSync(lib)) throw new Error(`${lib} is missing: the linux-x64 build of node-llama-cpp did not install`);
  return lib;
}
