import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { defineConfig } from "vitest/config";

const artifacts = join(import.meta.dirname, "test", ".artifacts");
/** The test models' paths, as test/setup/models.ts (every project's global setup) resolved them. */
const testModels = (): Record<string, string> => JSON.parse(process.env.EDGEINFER_TEST_MODELS ?? "{}");

/**
 * SEED: a service the Worker tests call to read KV entries the real build wrote
 * (test/.artifacts/<set>/<key>), so each test can seed its own isolated KV with them.
 */
async function seedService(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/shared" || url.pathname === "/artifact") {
    const name = url.searchParams.get("name") ?? "";
    if (!/^[A-Za-z0-9._-]+$/.test(name)) return new Response(`no file ${name}`, { status: 404 });
    const path = url.pathname === "/shared" ? testModels()[name] : join(artifacts, name);
    if (!path || !existsSync(path)) return new Response(`no file ${name}`, { status: 404 });
    return new Response(readFileSync(path));
  }
  const set = url.searchParams.get("set") ?? "";
  if (!/^[a-z0-9-]+$/.test(set) || !existsSync(join(artifacts, set))) return new Response(`no fixture set ${set}`, { status: 404 });
  // The layout of `edgeinfer build --out`: one file per key.
  const dir = join(artifacts, set);
  const keys = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
  if (url.pathname === "/keys") return Response.json(keys);
  const key = url.searchParams.get("key") ?? "";
  return keys.includes(key) ? new Response(readFileSync(join(dir, key))) : new Response("no such key", { status: 404 });
}

export default defineConfig({
  test: {
    // Under CI each run also writes a JSON report, which .ci/run sums into one closing line.
    ...(process.env.CI ? { reporters: ["default", "json"], outputFile: { json: join(import.meta.dirname, "test", ".results", `run-${process.pid}.json`) } } : {}),
    projects: [
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          globalSetup: ["test/setup/models.ts"],
          testTimeout: 60_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: { serviceBindings: { SEED: seedService } },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          globalSetup: ["test/setup/models.ts", "test/setup/global-setup.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/setup/models.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
