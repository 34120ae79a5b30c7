// edgeinfer: the developer's command line. One file per command under commands/; this file
// only dispatches, and turns errors into one clear line (or one JSON object with --json).

import { commands } from "./commands/index";
import { CliError, helpText, wantsHelp } from "./commands/command";

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return `usage: edgeinfer <command> [options]\n\ncommands:\n${lines.join("\n")}\n\nEvery command takes --json to print one JSON object instead of its report, and --help (-h) to print its usage and options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  const json = rest.includes("--json");
  if (!command) {
    report(json, `unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (wantsHelp(rest)) {
    console.log(helpText(command));
    return 0;
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
