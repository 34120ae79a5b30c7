// `--help` on the real CLI: every command prints its usage and each of its options with a
// description, and exits 0, whatever else is on the line; `edgeinfer --help` lists them all.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { commands } from "../../scripts/commands/index";

const cli = join(import.meta.dirname, "..", "..", "scripts", "bin", "edgeinfer.js");

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], { encoding: "utf8" });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("edgeinfer <command> --help", () => {
  const names = Object.keys(commands);

  it("covers the commands the CLI has", () => {
    expect(names).toEqual(expect.arrayContaining(["build", "deploy", "customers", "models", "keys", "remove", "rollback", "gc", "usage", "serve", "loadtest", "bench", "gen-random"]));
  });

  it.each(names)("%s --help: its usage and every option, described, exit 0", async (name) => {
    const { code, stdout, stderr } = await run([name, "--help"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`usage: edgeinfer ${commands[name].usage}`);
    expect(lines[0].startsWith(`usage: edgeinfer ${name}`)).toBe(true);
    expect(stdout).toContain(commands[name].summary);
    for (const [flag, spec] of Object.entries(commands[name].options)) {
      const line = lines.find((l) => new RegExp(`^\\s+(-\\w, )?--${flag}\\b`).test(l));
      expect(line, `--${flag}`).toBeDefined();
      expect(spec.help.length).toBeGreaterThan(5);
      expect(line).toContain(spec.help);
    }
    expect(lines.some((l) => /^\s+-h, --help\s+\S/.test(l))).toBe(true);
  });

  it("-h does the same, and help wins over arguments that would be an error", async () => {
    const short = await run(["build", "-h"]);
    expect(short.code).toBe(0);
    expect(short.stdout.startsWith("usage: edgeinfer build ")).toBe(true);
    const mixed = await run(["deploy", "--no-such-flag", "--help"]);
    expect(mixed.code).toBe(0);
    expect(mixed.stdout.startsWith("usage: edgeinfer deploy ")).toBe(true);
    // Without --help the same line is still refused.
    const refused = await run(["deploy", "--no-such-flag"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("no-such-flag");
  });

  it("edgeinfer --help lists every command; an unknown command is exit 2", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    for (const name of names) expect(stdout).toMatch(new RegExp(`^  ${name}\\s+${commands[name].summary.slice(0, 20).replace(/[()|.]/g, "\\$&")}`, "m"));
    expect((await run(["toString"])).code).toBe(2);
  });
});
