// What a checkpoint reader hands over: the internal model description (config) plus every
// tensor as f32, named after `tensorNames` (GGUF conventions), matrices as [rows = out, cols = in].
import type { ImportedTensor, LlamaConfig, ModelConfig } from "../../functions/model/description";
import { kvDim, tensorNames } from "../../functions/model/description";

/** Llama-family by default; importers of other families (GPT-2) return ImportedModel<ModelConfig>. */
export interface ImportedModel<C extends ModelConfig = LlamaConfig> {
  config: C;
  tensors: ImportedTensor[];
}

/** The shape every tensor of a Llama model must have, in canonical order. */
export function expectedLlamaTensors(config: LlamaConfig): { name: string; shape: number[] }[] {
  const { dim, hiddenDim, nLayers, vocabSize } = config;
  const kv = kvDim(config);
  const out: { name: string; shape: number[] }[] = [{ name: tensorNames.tokenEmbedding, shape: [vocabSize, dim] }];
  for (let l = 0; l < nLayers; l++) {
    const n = tensorNames.layer(l);
    out.push(
      { name: n.attnNorm, shape: [dim] },
      { name: n.wq, shape: [dim, dim] },
      { name: n.wk, shape: [kv, dim] },
      { name: n.wv, shape: [kv, dim] },
      { name: n.wo, shape: [dim, dim] },
      { name: n.ffnNorm, shape: [dim] },
      { name: n.wGate, shape: [hiddenDim, dim] },
      { name: n.wDown, shape: [dim, hiddenDim] },
      { name: n.wUp, shape: [hiddenDim, dim] },
    );
  }
  out.push({ name: tensorNames.outputNorm, shape: [dim] });
  if (!config.tiedEmbeddings) out.push({ name: tensorNames.output, shape: [vocabSize, dim] });
  return out;
}

/**
 * Index a model's tensors by name and check that every tensor the config calls for is there
 * with the right shape and element count. Throws an Error naming the first problem.
 */
export function indexTensors(model: ImportedModel): Map<string, ImportedTensor> {
  const byName = new Map<string, ImportedTensor>();
  for (const t of model.tensors) {
    if (byName.has(t.name)) throw new Error(`duplicate tensor ${t.name}`);
    byName.set(t.name, t);
  }
  for (const want of expectedLlamaTensors(model.config)) {
    const t = byName.get(want.name);
    if (!t) throw new Error(`missing tensor ${want.name} (shape [${want.shape.join(", ")}])`);
    if (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i])) {
      throw new Error(`tensor ${want.name} has shape [${t.shape.join(", ")}], expected [${want.shape.join(", ")}]`);
    }
    const numel = want.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) {
      throw new Error(`tensor ${want.name} holds ${t.data.length} values, its shape needs ${numel}`);
    }
  }
  return byName;
}
