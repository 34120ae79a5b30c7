import type { CustomerMeter } from "./metering/meter";

export interface Env {
  /** Shards, tokenizers, manifests and model pointers (see functions/model/manifest.ts). */
  MODELS: KVNamespace;
  /** One CustomerMeter per customer: its limits and usage (functions/metering/meter.ts). */
  METER?: DurableObjectNamespace<CustomerMeter>;
  /** Bearer key of the /admin routes; without it they do not exist. */
  EDGEINFER_ADMIN_KEY?: string;
}
