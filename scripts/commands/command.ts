export interface Command {
  summary: string;
  run(args: string[]): Promise<number | void>;
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
