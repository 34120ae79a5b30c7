// edgeinfer: the developer's command line. One file per command under commands/; this file
// only dispatches, and turns errors into one clear line (or one JSON object with --json).

import { benchCommand } from "./commands/bench";
import { buildCommand } from "./commands/build";
import { deployCommand } from "./commands/deploy";
import { customersCommand, gcCommand, keysCommand, modelsCommand, removeCommand, rollbackCommand } from "./commands/tenancy";
import { genRandomCommand } from "./commands/gen-random";
import { loadtestCommand } from "./commands/loadtest";
import { serveCommand } from "./commands/serve";
import { CliError, type Command } from "./commands/command";

const commands: Record<string, Command> = {
  build: buildCommand,
  deploy: deployCommand,
  customers: customersCommand,
  models: modelsCommand,
  keys: keysCommand,
  remove: removeCommand,
  rollback: rollbackCommand,
  gc: gcCommand,
  serve: serveCommand,
  loadtest: loadtestCommand,
  bench: benchCommand,
  "gen-random": genRandomCommand,
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `usage: edgeinfer <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nEvery command takes --json to print one JSON object instead of its report.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  const command = commands[name];
  const json = rest.includes("--json");
  if (!command) {
    report(json, `unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return (await command.run(rest)) ?? 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    report(json, message, e instanceof CliError ? e.details : undefined);
    if (!(e instanceof CliError) && process.env.EDGEINFER_DEBUG) console.error(e);
    return 1;
  }
}

function report(json: boolean, message: string, details?: Record<string, unknown>): void {
  if (json) console.log(JSON.stringify({ ok: false, error: message, ...details }));
  else console.error(`edgeinfer: ${message}`);
}

process.exitCode = await main(process.argv.slice(2));
