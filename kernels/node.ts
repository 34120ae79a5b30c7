// Node-only loader for kernels.wasm. Kept apart from kernels/index.ts so the Worker bundle never
// imports node:fs (Workers get the Module from the bundler's .wasm import instead).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Path of the compiled module (built by `npm run build:kernels`). */
export const KERNELS_WASM_PATH = fileURLToPath(new URL("./build/kernels.wasm", import.meta.url));

let cached: WebAssembly.Module | undefined;

/** Synchronously compile kernels/build/kernels.wasm (once per process). */
export function loadKernelsModuleForNode(): WebAssembly.Module {
  if (cached) return cached;
  let bytes: Buffer;
  try {
    bytes = readFileSync(KERNELS_WASM_PATH);
  } catch (err) {
    throw new Error(`cannot read ${KERNELS_WASM_PATH} (run npm run build:kernels): ${(err as Error).message}`);
  }
  // workers-types declares Module abstract (Workers cannot compile); Node can.
  const ModuleCtor = WebAssembly.Module as unknown as new (bytes: Uint8Array) => WebAssembly.Module;
  const module = new ModuleCtor(bytes);
  cached = module;
  return module;
}
