// Every command of the CLI, by name (scripts/cli.ts dispatches to them; the help test lists them).

import { benchCommand } from "./bench";
import { buildCommand } from "./build";
import type { Command } from "./command";
import { deployCommand } from "./deploy";
import { genRandomCommand } from "./gen-random";
import { loadtestCommand } from "./loadtest";
import { serveCommand } from "./serve";
import { usageCommand } from "./usage";
import { customersCommand, gcCommand, keysCommand, modelsCommand, removeCommand, rollbackCommand } from "./tenancy";

export const commands: Record<string, Command> = {
  build: buildCommand,
  deploy: deployCommand,
  customers: customersCommand,
  models: modelsCommand,
  keys: keysCommand,
  remove: removeCommand,
  rollback: rollbackCommand,
  gc: gcCommand,
  usage: usageCommand,
  serve: serveCommand,
  loadtest: loadtestCommand,
  bench: benchCommand,
  "gen-random": genRandomCommand,
};
