// What a checkpoint reader hands over: the internal model description (config) plus every
// tensor as f32, named after `tensorNames` (GGUF conventions), matrices as [rows = out, cols = in];
// which tensors, of which shapes, is the architecture's spec (functions/model/arch/).
import { checkTensors, specTensors } from "../../functions/model/arch/index";
import type { ImportedTensor, LlamaConfig, ModelConfig } from "../../functions/model/description";

/** Llama-family by default; importers of other families (GPT-2) return ImportedModel<ModelConfig>. */
export interface ImportedModel<C extends ModelConfig = LlamaConfig> {
  config: C;
  tensors: ImportedTensor[];
}

/** llama2.c's order within a layer (w1 = gate, w2 = down, w3 = up): the order random weights are drawn in. */
const DRAW_ORDER = ["attnNorm", "wq", "wk", "wv", "bq", "bk", "bv", "wo", "ffnNorm", "wGate", "wDown", "wUp"];

/**
 * The shape every tensor of a Llama model must have (its architecture's spec), in llama2.c's
 * order within each layer: random models are drawn in this order, so a seed keeps giving the
 * same weights.
 */
export function expectedLlamaTensors(config: LlamaConfig): { name: string; shape: number[] }[] {
  const rank = (role: string) => DRAW_ORDER.indexOf(role);
  return specTensors(config)
    .map((t, i) => ({ t, i }))
    .sort((a, b) => (a.t.layer !== null && a.t.layer === b.t.layer ? rank(a.t.role) - rank(b.t.role) : a.i - b.i))
    .map(({ t }) => ({ name: t.name, shape: t.shape }));
}

/**
 * Index a model's tensors by name and check that every tensor its architecture's spec calls for
 * is there with the right shape and element count (others are left out: writers take what they
 * need). Throws an Error naming the first problem.
 */
export function indexTensors(model: ImportedModel<ModelConfig>): Map<string, ImportedTensor> {
  const byName = checkTensors(model.config, model.tensors, "", true);
  for (const t of byName.values()) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) throw new Error(`tensor ${t.name} holds ${t.data.length} values, its shape needs ${numel}`);
  }
  return byName;
}
