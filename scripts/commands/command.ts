// The shape of a CLI command, its help, and the progress lines and errors commands share.

// What every command is: a summary, a usage line, its options (each with a one-line
// description; the same object goes to parseArgs, so the help cannot miss an option), and run.

/** One option: what parseArgs needs, plus its help. */
export interface OptionSpec {
  type: "string" | "boolean";
  default?: string | boolean;
  short?: string;
  /** The value's placeholder in the help (string options), e.g. "N" or "DIR". */
  value?: string;
  help: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

export interface Command {
  summary: string;
  /** What follows `edgeinfer` on the usage line, e.g. "build <source> --id <model-id> [options]". */
  usage: string;
  /** Every option the command accepts. */
  options: OptionSpecs;
  run(args: string[]): Promise<number | void>;
}

/** The options every command that reads or writes KV takes. */
export const targetOptions = {
  remote: { type: "boolean", default: false, help: "use the Cloudflare KV namespace bound as MODELS in wrangler.toml (through wrangler)" },
  "persist-to": { type: "string", value: "DIR", help: "use the local KV in this wrangler state folder (default: .wrangler/state, what npm start serves)" },
  out: { type: "string", value: "DIR", help: "use a folder of files, one per KV key" },
  json: { type: "boolean", default: false, help: "print one JSON object instead of the report" },
} as const satisfies OptionSpecs;

export const jsonOption = { json: targetOptions.json } as const satisfies OptionSpecs;

/** `--help` or `-h` among the arguments (before a `--`). */
export function wantsHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "--help" || a === "-h");
}

/** The command's help: usage, summary, and each option with its description. */
export function helpText(command: Command): string {
  const options = { ...command.options, help: { type: "boolean", short: "h", help: "print this help" } as OptionSpec };
  const rows = Object.entries(options).map(([flag, o]) => {
    const left = `${o.short ? `-${o.short}, ` : ""}--${flag}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    const fallback = o.default !== undefined && o.type === "string" ? ` (default: ${o.default})` : "";
    return [left, `${o.help}${fallback}`];
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    `usage: edgeinfer ${command.usage}`,
    "",
    command.summary,
    "",
    "options:",
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`),
  ].join("\n");
}

/** An error the user can act on: printed as one line, no stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

let lastLogged = 0;

/**
 * Progress goes to stderr so stdout stays the report (or the one JSON object). On a terminal
 * the line is redrawn; in a log, a line a second at most.
 */
export function progress(json: boolean, line: string): void {
  if (json) return;
  if (process.stderr.isTTY) {
    process.stderr.write(`\r\x1b[2K${line}`);
  } else if (Date.now() - lastLogged >= 1000) {
    lastLogged = Date.now();
    process.stderr.write(`${line}\n`);
  }
}

export function endProgress(json: boolean): void {
  if (!json && process.stderr.isTTY) process.stderr.write("\n");
}
