// What an architecture is, said once: its tensors (names, shapes, the order the weights blob
// stores them), the matrices decode multiplies as one, and the forward pass's working buffers.
// The importers, the build's storage order, the manifest check, the memory plan and the
// runtime's forward pass all read the spec (index.ts lists them); a new architecture is one
// spec file here plus its forward pass in functions/runtime/.

import type { ScratchBuffer } from "../memory";

/** One tensor of a model. Matrices are [rows, cols] with rows = output features (y = W x). */
export interface TensorSpec {
  /** The manifest's name, after GGUF's conventions (description.ts tensorNames). */
  name: string;
  /** The forward pass's name for it: a key of the model's weights, or of its layer's. */
  role: string;
  /** The layer it belongs to, null for the model's own (embeddings, final norm, classifier). */
  layer: number | null;
  shape: number[];
}

export interface ArchitectureSpec<C extends { architecture: string }> {
  readonly architecture: C["architecture"];
  /**
   * Every tensor a model of `config` has, in the order the weights blob stores them, whatever
   * order a source had: the model's first tensors, then layer by layer (each fusion group back
   * to back), then the final norm and classifier.
   */
  tensors(config: C): TensorSpec[];
  /**
   * Per-layer matrices, by role, that the build stores back to back so decode multiplies by
   * them as one matrix (functions/runtime/weights.ts fuseMatrices), by the name the forward
   * pass asks for the fused matrix by.
   */
  readonly fusions: Readonly<Record<string, readonly string[]>>;
  /** The forward pass's working buffers beyond those every architecture has (memory.ts scratchBuffers), for `chunk` tokens a step. */
  scratch(config: C, chunk: number): ScratchBuffer[];
}

/** Builds a spec's tensor list: `model(...)` for the model's own tensors, `layer(l, ...)` for a layer's. */
export function tensorList() {
  const out: TensorSpec[] = [];
  return {
    out,
    model(role: string, name: string, shape: number[]) {
      out.push({ name, role, layer: null, shape });
    },
    layer(layer: number, role: string, name: string, shape: number[]) {
      out.push({ name, role, layer, shape });
    },
  };
}
