// The model store the Worker reads: its MODELS binding as Workers KV. The one place that picks
// the backend for the Worker.

import type { Env } from "../env";
import { kvStore } from "./kv";
import type { ModelStore } from "./store";

export function workerStore(env: Pick<Env, "MODELS">): ModelStore {
  return kvStore(env.MODELS, "Workers KV (binding MODELS)");
}
