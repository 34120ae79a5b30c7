// The server end-to-end tests talk to: `edgeinfer serve` (what `npm start` runs). It finds
// the default model as the tests' global setup did (scripts/default-model.ts: the same places
// in the same order; a download lands in the cache, where serve looks next).

import { startServeProcess, type ServeProcess } from "../../scripts/serve-process";

export type RunningServer = ServeProcess;

/** `prepare` runs before the server starts, with the local KV folder it will serve (e.g. to build more models into it). */
export function startServer(prepare?: (persistTo: string) => void): Promise<RunningServer> {
  return startServeProcess({ prepare });
}
