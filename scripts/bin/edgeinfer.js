#!/usr/bin/env node
// The `edgeinfer` CLI. Our kernels need relaxed SIMD (Node >= 22); the project brings its
// own Node 22 (the `node` devDependency), which `npx` and `npm run` put first on PATH. Run
// from anywhere else with an older Node, this re-runs itself with the project's Node.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const major = Number(process.versions.node.split(".")[0]);
if (major < 22) {
  const projectNode = join(root, "node_modules", ".bin", "node");
  if (!existsSync(projectNode)) {
    console.error(`edgeinfer needs Node >= 22 (this is ${process.version}); run \`npm ci\` to install the project's own.`);
    process.exit(1);
  }
  // Children (wrangler) find the same Node first on PATH, as under `npm run`.
  const env = { ...process.env, PATH: `${join(root, "node_modules", ".bin")}${delimiter}${process.env.PATH ?? ""}` };
  const result = spawnSync(projectNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit", env });
  process.exit(result.status ?? 1);
}
const { register } = await import("tsx/esm/api");
register();
await import("../cli.ts");
