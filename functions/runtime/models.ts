// The forward pass of each architecture (functions/model/arch/ has their specs), by the
// manifest's architecture. A new architecture adds its class here.

import type { Kernels, Ptr } from "../../kernels/index";
import type { Architecture } from "../model/arch/index";
import type { Manifest } from "../model/manifest";
import { Gpt2Model } from "./gpt2";
import { LlamaModel } from "./llama";
import type { CausalLm } from "./weights";

type ForwardPass = new (kernels: Kernels, manifest: Manifest, weightsPtr: Ptr, logitRows: number) => CausalLm;

const FORWARD_PASSES: Record<Architecture, ForwardPass> = {
  llama: LlamaModel,
  gpt2: Gpt2Model,
};

/** `logitRows`: sequences whose logits one step computes in one product (one per KV cache). */
export function createModel(kernels: Kernels, manifest: Manifest, weightsPtr: Ptr, logitRows = 1): CausalLm {
  const ForwardPass = FORWARD_PASSES[manifest.config.architecture];
  if (!ForwardPass) throw new Error(`no forward pass for architecture ${JSON.stringify(manifest.config.architecture)}`);
  return new ForwardPass(kernels, manifest, weightsPtr, logitRows);
}
