// The Worker's upload size: `wrangler deploy --dry-run --outdir` bundles functions/index.ts as
// a deploy would (offline), leaving the script and the kernels .wasm as separate modules;
// raw and gzip bytes of each. Should wrangler fail, esbuild bundles the script the same way
// (.wasm imports left external). onnxruntime-web's wasm (and its JS glue) for comparison.

import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { projectRoot } from "../paths";
import { ORT_DIST, ORT_WASM_FILE } from "./ort";

const execFileP = promisify(execFile);

export interface SizedFile {
  name: string;
  bytes: number;
  gzipBytes: number;
}

export interface BundleSizes {
  method: "wrangler deploy --dry-run" | "esbuild";
  note?: string;
  script: SizedFile;
  wasm: SizedFile[];
  totalBytes: number;
  totalGzipBytes: number;
  /** What wrangler itself printed ("Total Upload: ... / gzip: ..."), when it ran. */
  wranglerSummary?: string;
  ort: { wasm: SizedFile; js: SizedFile[]; totalGzipBytes: number };
}

function sized(name: string, data: Uint8Array): SizedFile {
  return { name, bytes: data.byteLength, gzipBytes: gzipSync(data).byteLength };
}

export async function measureBundle(): Promise<BundleSizes> {
  const out = mkdtempSync(join(tmpdir(), "edgeinfer-bundle-"));
  try {
    let method: BundleSizes["method"] = "wrangler deploy --dry-run";
    let note: string | undefined;
    let summary: string | undefined;
    let script: SizedFile;
    const wasm: SizedFile[] = [];
    try {
      const { stdout, stderr } = await execFileP(process.execPath, [join(projectRoot, "node_modules", "wrangler", "bin", "wrangler.js"), "deploy", "--dry-run", "--outdir", out], {
        cwd: projectRoot,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
        maxBuffer: 16 << 20,
      });
      summary = /Total Upload:[^\n]*/.exec(stdout + stderr)?.[0]?.trim();
      const files = readdirSync(out).filter((f) => statSync(join(out, f)).isFile());
      const js = files.filter((f) => f.endsWith(".js") || f.endsWith(".mjs"));
      if (js.length !== 1) throw new Error(`expected one script in the dry-run output, found ${js.join(", ") || "none"}`);
      script = sized(js[0], readFileSync(join(out, js[0])));
      for (const f of files.filter((f) => f.endsWith(".wasm"))) wasm.push(sized(f.replace(/^[0-9a-f]{40}-/, ""), readFileSync(join(out, f))));
    } catch (e) {
      method = "esbuild";
      note = `wrangler deploy --dry-run failed (${(e as Error).message.split("\n")[0]}); bundled with esbuild instead`;
      const esbuild = await import("esbuild");
      const result = await esbuild.build({
        entryPoints: [join(projectRoot, "functions", "index.ts")],
        bundle: true,
        format: "esm",
        platform: "browser",
        conditions: ["workerd", "worker", "browser"],
        external: ["*.wasm", "cloudflare:*", "node:*"],
        target: "es2022",
        write: false,
      });
      script = sized("index.js", result.outputFiles[0].contents);
      wasm.push(sized("kernels.wasm", readFileSync(join(projectRoot, "kernels", "build", "kernels.wasm"))));
    }
    const ortWasm = sized("ort-wasm-simd-threaded.wasm", readFileSync(ORT_WASM_FILE));
    const ortJs = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs"].map((f) => sized(f, readFileSync(join(ORT_DIST, f))));
    return {
      method,
      note,
      script,
      wasm,
      totalBytes: script.bytes + wasm.reduce((s, w) => s + w.bytes, 0),
      totalGzipBytes: script.gzipBytes + wasm.reduce((s, w) => s + w.gzipBytes, 0),
      wranglerSummary: summary,
      ort: { wasm: ortWasm, js: ortJs, totalGzipBytes: ortWasm.gzipBytes + ortJs.reduce((s, f) => s + f.gzipBytes, 0) },
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
