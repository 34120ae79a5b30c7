// The model families the runtime can run, by the manifest's architecture.

import type { Kernels, Ptr } from "../../kernels/index";
import type { Manifest } from "../model/manifest";
import { Gpt2Model } from "./gpt2";
import { LlamaModel } from "./llama";
import type { CausalLm } from "./weights";

/** `logitRows`: sequences whose logits one step computes in one product (one per KV cache). */
export function createModel(kernels: Kernels, manifest: Manifest, weightsPtr: Ptr, logitRows = 1): CausalLm {
  switch (manifest.config.architecture) {
    case "llama":
      return new LlamaModel(kernels, manifest, weightsPtr, logitRows);
    case "gpt2":
      return new Gpt2Model(kernels, manifest, weightsPtr, logitRows);
  }
}
