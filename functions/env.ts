export interface Env {
  /** Shards, tokenizers, manifests and model pointers (see functions/model/manifest.ts). */
  MODELS: KVNamespace;
}
