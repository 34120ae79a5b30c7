// Where model files are found (scripts/default-model.ts), for `npm start` and the tests, file
// by file: EDGEINFER_MODEL_DIR, then the download cache, then ../shared/models, else a
// download checked by sha256 and cached. Temporary folders stand in for the three places, and
// a loopback HTTP server for the public addresses.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findModelFiles, modelPlaces, resolveModelFiles, type ModelFile, type ModelPlaces } from "../../scripts/default-model";
import { TEST_MODEL_FILES, TEST_MODELS_ENV } from "../support/models";

const work = mkdtempSync(join(tmpdir(), "edgeinfer-models-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (bytes: string | Uint8Array) => createHash("sha256").update(bytes).digest("hex");

// A loopback server for "public addresses": /good/<name> serves the right bytes, /bad/<name> others.
let server: Server;
let base = "";
const requests: string[] = [];
const contents: Record<string, string> = { "alpha.bin": "alpha weights", "beta.bin": "beta tokenizer" };
beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url!);
    const [, kind, name] = req.url!.split("/");
    res.end(kind === "good" ? contents[name] : "something else");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const file = (name: string, kind: "good" | "bad" = "good"): ModelFile => ({ name, url: `${base}/${kind}/${name}`, sha256: sha256(contents[name]) });

let n = 0;
/** Three fresh, empty places. */
function places(explicit = false): ModelPlaces {
  const dir = join(work, `case-${n++}`);
  const p = { explicitDir: explicit ? join(dir, "explicit") : undefined, cacheDir: join(dir, "cache"), sharedDir: join(dir, "shared") };
  for (const d of [p.explicitDir, p.cacheDir, p.sharedDir]) if (d) mkdirSync(d, { recursive: true });
  return p;
}
const put = (dir: string, name: string, text = contents[name]) => writeFileSync(join(dir, name), text);

describe("finding model files", () => {
  it("looks in the cache before ../shared/models, file by file", async () => {
    const p = places();
    put(p.sharedDir, "alpha.bin");
    put(p.sharedDir, "beta.bin");
    put(p.cacheDir, "beta.bin");
    const before = requests.length;
    expect(await resolveModelFiles([file("alpha.bin"), file("beta.bin")], { places: p })).toEqual({
      "alpha.bin": join(p.sharedDir, "alpha.bin"),
      "beta.bin": join(p.cacheDir, "beta.bin"),
    });
    expect(requests.length).toBe(before);
  });

  it("looks in EDGEINFER_MODEL_DIR first, then on", async () => {
    const p = places(true);
    put(p.explicitDir!, "alpha.bin");
    put(p.cacheDir, "alpha.bin");
    put(p.sharedDir, "beta.bin");
    expect(findModelFiles([file("alpha.bin"), file("beta.bin")], p)).toEqual({
      "alpha.bin": join(p.explicitDir!, "alpha.bin"),
      "beta.bin": join(p.sharedDir, "beta.bin"),
    });
  });

  it("refuses a file whose sha256 is wrong, wherever it is found", async () => {
    const p = places();
    put(p.cacheDir, "alpha.bin", "corrupted");
    put(p.sharedDir, "alpha.bin");
    expect(() => findModelFiles([file("alpha.bin")], p)).toThrow(`${join(p.cacheDir, "alpha.bin")} has sha256 ${sha256("corrupted")}, expected ${sha256(contents["alpha.bin"])}`);
    const q = places(true);
    put(q.explicitDir!, "alpha.bin", "corrupted");
    expect(() => findModelFiles([file("alpha.bin")], q)).toThrow(/has sha256/);
  });

  it("downloads only what is found nowhere, checks it, caches it, and finds it there next time", async () => {
    const p = places();
    put(p.sharedDir, "beta.bin");
    const before = requests.length;
    const paths = await resolveModelFiles([file("alpha.bin"), file("beta.bin")], { places: p, json: true });
    expect(requests.slice(before)).toEqual(["/good/alpha.bin"]);
    expect(paths).toEqual({ "alpha.bin": join(p.cacheDir, "alpha.bin"), "beta.bin": join(p.sharedDir, "beta.bin") });
    expect(readFileSync(paths["alpha.bin"]!, "utf8")).toBe(contents["alpha.bin"]);
    await resolveModelFiles([file("alpha.bin"), file("beta.bin")], { places: p, json: true });
    expect(requests.length).toBe(before + 1);
  });

  it("refuses a download whose sha256 is wrong and caches nothing", async () => {
    const p = places();
    await expect(resolveModelFiles([file("alpha.bin", "bad")], { places: p, json: true })).rejects.toThrow(`${base}/bad/alpha.bin has sha256 ${sha256("something else")}, expected ${sha256(contents["alpha.bin"])}; not cached`);
    expect(existsSync(join(p.cacheDir, "alpha.bin"))).toBe(false);
  });

  it("takes its places from EDGEINFER_MODEL_DIR and XDG_CACHE_HOME", () => {
    const saved = { dir: process.env.EDGEINFER_MODEL_DIR, xdg: process.env.XDG_CACHE_HOME };
    try {
      process.env.EDGEINFER_MODEL_DIR = "/models/here";
      process.env.XDG_CACHE_HOME = "/cache/home";
      expect(modelPlaces()).toMatchObject({ explicitDir: "/models/here", cacheDir: join("/cache/home", "edgeinfer", "models") });
      process.env.EDGEINFER_MODEL_DIR = "";
      expect(modelPlaces().explicitDir).toBeUndefined();
    } finally {
      for (const [k, v] of [["EDGEINFER_MODEL_DIR", saved.dir], ["XDG_CACHE_HOME", saved.xdg]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe("the tests' models", () => {
  it("the global setup resolved every test model as npm start would, and passed the paths on", () => {
    const passed = JSON.parse(process.env[TEST_MODELS_ENV] ?? "null") as Record<string, string> | null;
    expect(passed).not.toBeNull();
    expect(passed).toEqual(findModelFiles(TEST_MODEL_FILES));
    for (const f of TEST_MODEL_FILES) expect(sha256(readFileSync(passed![f.name]!))).toBe(f.sha256);
  });
});
