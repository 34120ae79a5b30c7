// Will the model fit an isolate? Answered before any quantizing, from shapes alone, with a
// suggestion of what would fit when it does not.

import { rowBytes, type DType } from "../../kernels/quant";
import type { ImportedTensor, ModelConfig } from "../../functions/model/description";
import { TENSOR_ALIGN, type MemoryPlan } from "../../functions/model/manifest";
import { formatBytes, planMemory, type CacheDtype } from "../../functions/model/memory";

const QUANTS: DType[] = ["f32", "f16", "q8_0", "q4_0"];

export function weightsBytes(tensors: Pick<ImportedTensor, "shape">[], quant: DType): number {
  let offset = 0;
  for (const t of tensors) {
    offset = Math.ceil(offset / TENSOR_ALIGN) * TENSOR_ALIGN;
    const dtype = t.shape.length === 2 ? quant : "f32";
    const rows = t.shape.length === 2 ? t.shape[0] : 1;
    offset += rows * rowBytes(dtype, t.shape[t.shape.length - 1]);
  }
  return offset;
}

export interface FitCheck {
  plan: MemoryPlan;
  fits: boolean;
  /** When it does not fit: what would, in words. */
  advice: string;
}

export function checkFit(
  config: ModelConfig,
  tensors: Pick<ImportedTensor, "shape">[],
  quant: DType,
  cacheDtype: CacheDtype,
  /** The tokenizer's heap share (tokenizerHeapBytes). */
  tokenizerBytes: number,
  cacheDtypeFor: (q: DType) => CacheDtype,
): FitCheck {
  const plan = planMemory(config, weightsBytes(tensors, quant), cacheDtype, tokenizerBytes);
  if (plan.total <= plan.budget) return { plan, fits: true, advice: "" };
  const options: string[] = [];
  for (const q of QUANTS) {
    if (q === quant) continue;
    const p = planMemory(config, weightsBytes(tensors, q), cacheDtypeFor(q), tokenizerBytes);
    if (p.total <= p.budget) options.push(`--quant ${q} (${formatBytes(p.total)})`);
  }
  for (let context = config.seqLen >> 1; context >= 64; context >>= 1) {
    const p = planMemory({ ...config, seqLen: context }, weightsBytes(tensors, quant), cacheDtype, tokenizerBytes);
    if (p.total <= p.budget) {
      options.push(`--context ${context} at ${quant} (${formatBytes(p.total)})`);
      break;
    }
  }
  if (cacheDtype === "f32") {
    const p = planMemory(config, weightsBytes(tensors, quant), "f16", tokenizerBytes);
    if (p.total <= p.budget) options.push(`--kv-cache f16 (${formatBytes(p.total)})`);
  }
  const advice = options.length > 0 ? `Would fit: ${options.join("; ")}.` : "Nothing at these shapes fits: the weights alone are too large even at q4_0.";
  return { plan, fits: false, advice };
}

export function describePlan(plan: MemoryPlan, seqLen: number): string {
  return `${formatBytes(plan.total)} (weights ${formatBytes(plan.weights)}, KV cache ${formatBytes(plan.kvCache)} for ${seqLen} tokens, scratch ${formatBytes(plan.scratch)}, tokenizer ${formatBytes(plan.tokenizer)})`;
}
