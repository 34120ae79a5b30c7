// The server end-to-end tests talk to: `edgeinfer serve` (what `npm start` runs) with the
// shared test models.

import { startServeProcess, type ServeProcess } from "../../scripts/serve-process";
import { sharedModels } from "../setup/fixtures";

export type RunningServer = ServeProcess;

/** `prepare` runs before the server starts, with the local KV folder it will serve (e.g. to build more models into it). */
export function startServer(prepare?: (persistTo: string) => void): Promise<RunningServer> {
  return startServeProcess({ prepare, env: { EDGEINFER_MODEL_DIR: sharedModels } });
}
