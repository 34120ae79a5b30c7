// edgeinfer serve (npm start): make sure the default model is in local KV, then run the
// Worker under `wrangler dev` on 127.0.0.1:$PORT (8787).

import { spawn } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { DType } from "../../kernels/quant";
import { DEFAULT_MODEL, defaultModelFiles } from "../default-model";
import { localAdminKey } from "../admin/client";
import { openKvTarget } from "../kv/targets";
import { projectRoot } from "../paths";
import { buildModel } from "./build";
import { jsonOption, type Command, type OptionSpecs } from "./command";

const serveOptions = {
  port: { type: "string", value: "N", help: "port on 127.0.0.1 (default: $PORT or 8787)" },
  "persist-to": { type: "string", value: "DIR", help: "the wrangler state folder holding local KV (default: .wrangler/state)" },
  ...jsonOption,
} as const satisfies OptionSpecs;

/** The default model is served at full precision under its own name, and at each quant beside it. */
export const DEFAULT_VARIANTS: Array<{ id: string; quant: DType }> = [
  { id: DEFAULT_MODEL.id, quant: "f32" },
  { id: `${DEFAULT_MODEL.id}-q8_0`, quant: "q8_0" },
  { id: `${DEFAULT_MODEL.id}-q4_0`, quant: "q4_0" },
];

export async function seedDefaultModel(persistTo: string | undefined, json: boolean): Promise<string[]> {
  const files = await defaultModelFiles(json);
  const target = await openKvTarget({ persistTo });
  try {
    const lines: string[] = [];
    for (const v of DEFAULT_VARIANTS) {
      const { published } = await buildModel({ source: files.checkpoint, tokenizer: files.tokenizer, id: v.id, quant: v.quant, remote: false, json: true }, target);
      lines.push(`${v.id} (${v.quant}): ${published.written.length === 0 ? "already in local KV" : `wrote ${published.written.length} key(s)`}`);
    }
    return lines;
  } finally {
    await target.close();
  }
}

export const serveCommand: Command = {
  summary: "build the default model into local KV and serve the Worker with wrangler dev (npm start)",
  usage: "serve [options]",
  options: serveOptions,
  async run(args) {
    const { values } = parseArgs({ args, options: serveOptions, strict: true });
    const port = values.port ?? process.env.PORT ?? "8787";
    for (const line of await seedDefaultModel(values["persist-to"], values.json)) console.error(line);
    // wrangler runs on this same Node (>= 22), whatever `node` is first on PATH.
    const wrangler = join(projectRoot, "node_modules", "wrangler", "bin", "wrangler.js");
    // The admin routes' key (`edgeinfer usage`, `customers limits` find it beside the state).
    const adminKey = localAdminKey(values["persist-to"]);
    const child = spawn(
      process.execPath,
      [wrangler, "dev", "--port", port, "--ip", "127.0.0.1", "--var", `EDGEINFER_ADMIN_KEY:${adminKey}`, ...(values["persist-to"] ? ["--persist-to", values["persist-to"]] : [])],
      { cwd: projectRoot, stdio: "inherit", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
    );
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
    return new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? 0)));
  },
};
