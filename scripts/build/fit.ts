// Will the model fit an isolate? Answered before any quantizing, from shapes alone, with a
// suggestion of what would fit when it does not.

import { rowBytes } from "../../kernels/quant";
import type { ImportedTensor, ModelConfig } from "../../functions/model/description";
import { TENSOR_ALIGN, type MemoryPlan } from "../../functions/model/manifest";
import { formatBytes, planMemory, type CacheDtype } from "../../functions/model/memory";
import { storedDtype, type BuildQuant } from "./quantize";

/** What the advice tries, smallest last. */
const QUANTS: BuildQuant[] = ["f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"];

type TensorShape = Pick<ImportedTensor, "name" | "shape" | "quantized" | "sourceDtype">;

export function weightsBytes(tensors: TensorShape[], quant: BuildQuant, config: Pick<ModelConfig, "nLayers"> & { tiedEmbeddings?: boolean } = { nLayers: 0 }): number {
  let offset = 0;
  for (const t of tensors) {
    offset = Math.ceil(offset / TENSOR_ALIGN) * TENSOR_ALIGN;
    const dtype = storedDtype(t, quant, config);
    const rows = t.shape.length === 2 ? t.shape[0] : 1;
    offset += rows * rowBytes(dtype, t.shape[t.shape.length - 1]);
  }
  return offset;
}

function plan(config: ModelConfig, tensors: TensorShape[], quant: BuildQuant, cacheDtype: CacheDtype, tokenizerBytes: number): MemoryPlan {
  const dtypes = tensors.map((t) => storedDtype(t, quant, config));
  return planMemory(config, weightsBytes(tensors, quant, config), cacheDtype, tokenizerBytes, dtypes);
}

export interface FitCheck {
  plan: MemoryPlan;
  fits: boolean;
  /** When it does not fit: what would, in words. */
  advice: string;
}

export function checkFit(
  config: ModelConfig,
  tensors: TensorShape[],
  quant: BuildQuant,
  cacheDtype: CacheDtype,
  /** The tokenizer's heap share (tokenizerHeapBytes). */
  tokenizerBytes: number,
  cacheDtypeFor: (q: BuildQuant) => CacheDtype,
): FitCheck {
  const need = plan(config, tensors, quant, cacheDtype, tokenizerBytes);
  if (need.total <= need.budget) return { plan: need, fits: true, advice: "" };
  const options: string[] = [];
  for (const q of QUANTS) {
    if (q === quant) continue;
    const p = plan(config, tensors, q, cacheDtypeFor(q), tokenizerBytes);
    if (p.total <= p.budget) options.push(`--quant ${q} (${formatBytes(p.total)})`);
  }
  for (let context = config.seqLen >> 1; context >= 64; context >>= 1) {
    const p = plan({ ...config, seqLen: context }, tensors, quant, cacheDtype, tokenizerBytes);
    if (p.total <= p.budget) {
      options.push(`--context ${context} at ${quant} (${formatBytes(p.total)})`);
      break;
    }
  }
  if (cacheDtype === "f32") {
    const p = plan(config, tensors, quant, "f16", tokenizerBytes);
    if (p.total <= p.budget) options.push(`--kv-cache f16 (${formatBytes(p.total)})`);
  }
  const advice = options.length > 0 ? `Would fit: ${options.join("; ")}.` : "Nothing at these shapes fits: the weights alone are too large even at q4_0.";
  return { plan: need, fits: false, advice };
}

export function describePlan(plan: MemoryPlan, seqLen: number): string {
  return `${formatBytes(plan.total)} (weights ${formatBytes(plan.weights)}, KV cache ${formatBytes(plan.kvCache)} for ${seqLen} tokens, scratch ${formatBytes(plan.scratch)}, tokenizer ${formatBytes(plan.tokenizer)})`;
}
