// Every architecture the build and the Worker know, by the manifest's `architecture`, and the one
// check of a model's tensors against its spec (importers, build, manifest).

import { gpt2Spec, type Gpt2Config } from "./gpt2";
import { llamaSpec, type LlamaConfig } from "./llama";
import type { ArchitectureSpec, TensorSpec } from "./spec";

export type ModelConfig = LlamaConfig | Gpt2Config;
export type Architecture = ModelConfig["architecture"];

const SPECS: { [A in Architecture]: ArchitectureSpec<Extract<ModelConfig, { architecture: A }>> } = {
  llama: llamaSpec,
  gpt2: gpt2Spec,
};

export const ARCHITECTURES = Object.keys(SPECS) as Architecture[];

export function isArchitecture(name: unknown): name is Architecture {
  return typeof name === "string" && Object.hasOwn(SPECS, name);
}

/** The spec of a config's architecture. */
export function specFor<C extends ModelConfig>(config: C): ArchitectureSpec<C> {
  const spec = isArchitecture(config.architecture) ? SPECS[config.architecture] : undefined;
  if (!spec) throw new Error(`unknown architecture ${JSON.stringify(config.architecture)} (known: ${ARCHITECTURES.join(", ")})`);
  return spec as unknown as ArchitectureSpec<C>;
}

/** The tensors of `config`'s spec, in storage order. */
export function specTensors(config: ModelConfig): TensorSpec[] {
  return specFor(config).tensors(config);
}

/**
 * Checks that `tensors` are exactly the spec's for `config`: no name twice, none the spec lacks
 * (unless `ignoreExtra`: a writer that takes what it needs), none missing, each of its shape.
 * Throws an Error naming the first problem (prefixed by `where`); returns the spec's tensors by name.
 */
export function checkTensors<T extends { name: string; shape: number[] }>(config: ModelConfig, tensors: readonly T[], where = "", ignoreExtra = false): Map<string, T> {
  const prefix = where ? `${where}: ` : "";
  const expected = new Map(specTensors(config).map((t) => [t.name, t]));
  const byName = new Map<string, T>();
  for (const t of tensors) {
    if (byName.has(t.name)) throw new Error(`${prefix}duplicate tensor ${t.name}`);
    if (!expected.has(t.name)) {
      if (ignoreExtra) continue;
      throw new Error(`${prefix}unexpected tensor ${t.name}: the ${config.architecture} architecture has no such tensor`);
    }
    byName.set(t.name, t);
  }
  for (const want of expected.values()) {
    const t = byName.get(want.name);
    if (!t) throw new Error(`${prefix}missing tensor ${want.name} (shape [${want.shape.join(", ")}])`);
    if (!sameShape(t.shape, want.shape)) throw new Error(`${prefix}tensor ${want.name} has shape [${t.shape.join(", ")}], expected [${want.shape.join(", ")}]`);
  }
  return byName;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export type { ArchitectureSpec, TensorSpec } from "./spec";
