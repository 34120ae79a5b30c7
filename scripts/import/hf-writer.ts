// Tiny random-weight Hugging Face checkpoints for tests, in each family's real on-disk layout:
// config.json with the field names transformers writes, model.safetensors (or shards plus
// model.safetensors.index.json) with the tensor names and orientations of the real models,
// and generation_config.json. Deterministic for a given seed.
//
// Layouts (transformers):
//  Llama / Mistral / Qwen2 (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM):
//    model.embed_tokens.weight [vocab, hidden]
//    model.layers.N.input_layernorm.weight [hidden]
//    model.layers.N.self_attn.{q,k,v,o}_proj.weight  nn.Linear: [out, in]
//    model.layers.N.self_attn.{q,k,v}_proj.bias      Qwen2 only
//    model.layers.N.post_attention_layernorm.weight [hidden]
//    model.layers.N.mlp.{gate,up}_proj.weight [intermediate, hidden], mlp.down_proj.weight [hidden, intermediate]
//    model.norm.weight [hidden]; lm_head.weight [vocab, hidden] unless tie_word_embeddings
//  GPT-2 (GPT2LMHeadModel; the original openai-community/gpt2 files have no "transformer." prefix):
//    wte.weight [vocab, n_embd], wpe.weight [n_positions, n_embd]
//    h.N.ln_1.{weight,bias}, h.N.attn.c_attn.{weight [n_embd, 3 n_embd], bias}  Conv1D: [in, out]
//    h.N.attn.c_proj.{weight [n_embd, n_embd], bias}, h.N.ln_2.{weight,bias}
//    h.N.mlp.c_fc.{weight [n_embd, n_inner], bias}, h.N.mlp.c_proj.{weight [n_inner, n_embd], bias}
//    h.N.attn.bias: the causal-mask buffer [1, 1, n_positions, n_positions] older checkpoints carry
//    ln_f.{weight,bias}

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeSafetensors, roundToDtype, SAFETENSORS_INDEX, SAFETENSORS_SINGLE, type SafetensorsFloatDtype } from "./safetensors";

export type HfFamily = "llama" | "llama3" | "tinyllama" | "smollm2" | "mistral" | "qwen2" | "gpt2";
export const HF_FAMILIES: readonly HfFamily[] = ["llama", "llama3", "tinyllama", "smollm2", "mistral", "qwen2", "gpt2"];

export type HfConfigJson = Record<string, unknown>;

export interface TinyHfOptions {
  family: HfFamily;
  /** Vocabulary size (pair it with the tokenizer you use). */
  vocabSize: number;
  seed?: number;
  /** Storage dtype of the weights (default F32). */
  dtype?: SafetensorsFloatDtype;
  /** Split the weights over this many files plus model.safetensors.index.json (default 1: a single model.safetensors). */
  shards?: number;
  /** GPT-2 only: prefix tensor names with "transformer." (as later GPT-2 derivatives are saved). Default false, like openai-community/gpt2. */
  gpt2TransformerPrefix?: boolean;
  /** GPT-2 only: include the h.N.attn.bias causal-mask buffers (default true). */
  gpt2MaskBuffers?: boolean;
  /** Extra or replaced config.json fields (applied last). */
  configOverrides?: HfConfigJson;
}

export interface WrittenHfCheckpoint {
  dir: string;
  config: HfConfigJson;
  /** Every tensor as stored (values already rounded to the storage dtype), by HF name. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  files: string[];
}

/**
 * config.json of a tiny model with each family's real field names and characteristic settings:
 *  llama      Llama 2 style (MHA, rms_norm_eps 1e-5, rope_theta 10000, untied)
 *  llama3     Llama 3.1/3.2 style rope_scaling {rope_type: "llama3", factor, low_freq_factor,
 *             high_freq_factor, original_max_position_embeddings}, GQA, explicit head_dim; the
 *             numbers are scaled down so all three frequency bands occur at head_dim 16
 *  tinyllama  TinyLlama-1.1B settings: GQA (n_kv < n_heads), untied
 *  smollm2    SmolLM2 settings: GQA, tied embeddings, rope_theta 100000, head_dim 32
 *  mistral    MistralForCausalLM: GQA, head_dim field, a small sliding_window
 *  qwen2      Qwen2ForCausalLM: q/k/v biases, tied embeddings, rope_theta 1e6, use_sliding_window false
 *  gpt2       GPT2LMHeadModel: n_embd / n_layer / n_head / n_positions, n_inner null, gelu_new
 */
export function tinyHfConfig(family: HfFamily, vocabSize: number): HfConfigJson {
  const llamaBase = {
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 1,
    eos_token_id: 2,
    hidden_act: "silu",
    hidden_size: 64,
    initializer_range: 0.02,
    intermediate_size: 128,
    max_position_embeddings: 64,
    mlp_bias: false,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    num_key_value_heads: 4,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: "float32",
    transformers_version: "4.46.0",
    use_cache: true,
    vocab_size: vocabSize,
  };
  switch (family) {
    case "llama":
      return { architectures: ["LlamaForCausalLM"], model_type: "llama", ...llamaBase };
    case "llama3":
      return {
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        ...llamaBase,
        num_key_value_heads: 2,
        bos_token_id: 0,
        eos_token_id: 1,
        rms_norm_eps: 1e-5,
        // Real Llama 3.2: theta 500000, factor 32, low 1, high 4, original 8192. Scaled down so that at
        // head_dim 16 some frequencies are left alone, some smoothed and some divided by the factor.
        rope_theta: 10000.0,
        rope_scaling: { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 32, rope_type: "llama3" },
        max_position_embeddings: 256,
        head_dim: 16,
      };
    case "tinyllama":
      return { architectures: ["LlamaForCausalLM"], model_type: "llama", ...llamaBase, num_key_value_heads: 2, max_position_embeddings: 2048 };
    case "smollm2":
      return {
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        ...llamaBase,
        bos_token_id: 0,
        eos_token_id: 0,
        hidden_size: 96,
        num_attention_heads: 3,
        num_key_value_heads: 1,
        head_dim: 32,
        rope_theta: 100000.0,
        tie_word_embeddings: true,
        max_position_embeddings: 8192,
      };
    case "mistral":
      return {
        architectures: ["MistralForCausalLM"],
        model_type: "mistral",
        attention_dropout: 0.0,
        bos_token_id: 1,
        eos_token_id: 2,
        head_dim: 16,
        hidden_act: "silu",
        hidden_size: 64,
        initializer_range: 0.02,
        intermediate_size: 128,
        max_position_embeddings: 128,
        num_attention_heads: 4,
        num_hidden_layers: 2,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-5,
        rope_theta: 1000000.0,
        sliding_window: 4,
        tie_word_embeddings: false,
        torch_dtype: "float32",
        transformers_version: "4.46.0",
        use_cache: true,
        vocab_size: vocabSize,
      };
    case "qwen2":
      return {
        architectures: ["Qwen2ForCausalLM"],
        model_type: "qwen2",
        attention_dropout: 0.0,
        bos_token_id: vocabSize - 1,
        eos_token_id: vocabSize - 1,
        hidden_act: "silu",
        hidden_size: 64,
        initializer_range: 0.02,
        intermediate_size: 128,
        max_position_embeddings: 32768,
        max_window_layers: 2,
        num_attention_heads: 4,
        num_hidden_layers: 2,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-6,
        rope_scaling: null,
        rope_theta: 1000000.0,
        sliding_window: 32768,
        tie_word_embeddings: true,
        torch_dtype: "float32",
        transformers_version: "4.46.0",
        use_cache: true,
        use_sliding_window: false,
        vocab_size: vocabSize,
      };
    case "gpt2":
      return {
        activation_function: "gelu_new",
        architectures: ["GPT2LMHeadModel"],
        attn_pdrop: 0.1,
        bos_token_id: vocabSize - 1,
        embd_pdrop: 0.1,
        eos_token_id: vocabSize - 1,
        initializer_range: 0.02,
        layer_norm_epsilon: 1e-5,
        model_type: "gpt2",
        n_ctx: 64,
        n_embd: 64,
        n_head: 4,
        n_inner: null,
        n_layer: 2,
        n_positions: 64,
        reorder_and_upcast_attn: false,
        resid_pdrop: 0.1,
        scale_attn_by_inverse_layer_idx: false,
        scale_attn_weights: true,
        summary_activation: null,
        summary_first_dropout: 0.1,
        summary_proj_to_labels: true,
        summary_type: "cls_index",
        summary_use_proj: true,
        transformers_version: "4.46.0",
        use_cache: true,
        vocab_size: vocabSize,
      };
  }
}

/** xorshift32-based deterministic uniform [-1, 1) generator. */
export function seededUniform(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 0x100000000) * 2 - 1;
  };
}

function num(c: HfConfigJson, key: string): number {
  const v = c[key];
  if (typeof v !== "number") throw new Error(`config.${key} is ${JSON.stringify(v)}, expected a number`);
  return v;
}

/**
 * Random tensors for a config (HF names and HF shapes). Matrices are scaled by 1/sqrt(fan_in),
 * norm weights are around 1, biases small, so logits stay in a sensible range.
 */
export function randomHfTensors(config: HfConfigJson, seed = 1, opts: { gpt2TransformerPrefix?: boolean; gpt2MaskBuffers?: boolean } = {}) {
  const rnd = seededUniform(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const matrix = (name: string, rows: number, cols: number, fanIn: number) => {
    const data = new Float32Array(rows * cols);
    const s = 1.5 / Math.sqrt(fanIn);
    for (let i = 0; i < data.length; i++) data[i] = rnd() * s;
    out.set(name, { shape: [rows, cols], data });
  };
  const vector = (name: string, n: number, center: number, spread: number) => {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = center + rnd() * spread;
    out.set(name, { shape: [n], data });
  };
  if (config.model_type === "gpt2") {
    const p = opts.gpt2TransformerPrefix ? "transformer." : "";
    const d = num(config, "n_embd");
    const nPos = num(config, "n_positions");
    const inner = typeof config.n_inner === "number" ? config.n_inner : 4 * d;
    const vocab = num(config, "vocab_size");
    matrix(`${p}wte.weight`, vocab, d, 4);
    matrix(`${p}wpe.weight`, nPos, d, 16);
    for (let l = 0; l < num(config, "n_layer"); l++) {
      const h = `${p}h.${l}`;
      vector(`${h}.ln_1.weight`, d, 1, 0.2);
      vector(`${h}.ln_1.bias`, d, 0, 0.1);
      if (opts.gpt2MaskBuffers !== false) {
        const mask = new Float32Array(nPos * nPos);
        for (let i = 0; i < nPos; i++) for (let j = 0; j <= i; j++) mask[i * nPos + j] = 1;
        out.set(`${h}.attn.bias`, { shape: [1, 1, nPos, nPos], data: mask });
      }
      matrix(`${h}.attn.c_attn.weight`, d, 3 * d, d); // Conv1D [in, out]
      vector(`${h}.attn.c_attn.bias`, 3 * d, 0, 0.1);
      matrix(`${h}.attn.c_proj.weight`, d, d, d);
      vector(`${h}.attn.c_proj.bias`, d, 0, 0.1);
      vector(`${h}.ln_2.weight`, d, 1, 0.2);
      vector(`${h}.ln_2.bias`, d, 0, 0.1);
      matrix(`${h}.mlp.c_fc.weight`, d, inner, d);
      vector(`${h}.mlp.c_fc.bias`, inner, 0, 0.1);
      matrix(`${h}.mlp.c_proj.weight`, inner, d, inner);
      vector(`${h}.mlp.c_proj.bias`, d, 0, 0.1);
    }
    vector(`${p}ln_f.weight`, d, 1, 0.2);
    vector(`${p}ln_f.bias`, d, 0, 0.1);
    return out;
  }
  const d = num(config, "hidden_size");
  const nH = num(config, "num_attention_heads");
  const nKv = typeof config.num_key_value_heads === "number" ? config.num_key_value_heads : nH;
  const hs = typeof config.head_dim === "number" ? config.head_dim : d / nH;
  const ff = num(config, "intermediate_size");
  const vocab = num(config, "vocab_size");
  const qkvBias = config.model_type === "qwen2" || config.attention_bias === true;
  matrix("model.embed_tokens.weight", vocab, d, 4);
  for (let l = 0; l < num(config, "num_hidden_layers"); l++) {
    const b = `model.layers.${l}`;
    vector(`${b}.input_layernorm.weight`, d, 1, 0.2);
    matrix(`${b}.self_attn.q_proj.weight`, nH * hs, d, d);
    matrix(`${b}.self_attn.k_proj.weight`, nKv * hs, d, d);
    matrix(`${b}.self_attn.v_proj.weight`, nKv * hs, d, d);
    if (qkvBias) {
      vector(`${b}.self_attn.q_proj.bias`, nH * hs, 0, 0.3);
      vector(`${b}.self_attn.k_proj.bias`, nKv * hs, 0, 0.3);
      vector(`${b}.self_attn.v_proj.bias`, nKv * hs, 0, 0.3);
    }
    matrix(`${b}.self_attn.o_proj.weight`, d, nH * hs, nH * hs);
    vector(`${b}.post_attention_layernorm.weight`, d, 1, 0.2);
    matrix(`${b}.mlp.gate_proj.weight`, ff, d, d);
    matrix(`${b}.mlp.up_proj.weight`, ff, d, d);
    matrix(`${b}.mlp.down_proj.weight`, d, ff, ff);
  }
  vector("model.norm.weight", d, 1, 0.2);
  if (config.tie_word_embeddings !== true) matrix("lm_head.weight", vocab, d, d);
  return out;
}

/** generation_config.json as transformers writes it. */
export function generationConfigFor(config: HfConfigJson): HfConfigJson {
  return { _from_model_config: true, bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id, transformers_version: config.transformers_version };
}

/** Write a tiny random checkpoint into `dir` (created if needed). */
export function writeTinyHfCheckpoint(dir: string, opts: TinyHfOptions): WrittenHfCheckpoint {
  const dtype = opts.dtype ?? "F32";
  const config: HfConfigJson = { ...tinyHfConfig(opts.family, opts.vocabSize), ...(opts.configOverrides ?? {}) };
  if (dtype !== "F32") config.torch_dtype = dtype === "BF16" ? "bfloat16" : "float16";
  const raw = randomHfTensors(config, opts.seed ?? 1, opts);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of raw) tensors.set(name, { shape: t.shape, data: roundToDtype(dtype, t.data) });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify(generationConfigFor(config), null, 2) + "\n");
  const files = writeSafetensorsShards(dir, tensors, dtype, opts.shards ?? 1);
  return { dir, config, tensors, files };
}

/**
 * Write tensors as model.safetensors, or as `shards` files model-0000i-of-0000n.safetensors plus
 * model.safetensors.index.json (tensors split in order, about evenly by bytes).
 */
export function writeSafetensorsShards(
  dir: string,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  dtype: SafetensorsFloatDtype,
  shards: number,
): string[] {
  const entries = [...tensors].map(([name, t]) => ({ name, dtype, shape: t.shape, data: t.data }));
  const metadata = { format: "pt" };
  if (shards <= 1) {
    writeFileSync(join(dir, SAFETENSORS_SINGLE), encodeSafetensors(entries, metadata));
    return [SAFETENSORS_SINGLE];
  }
  const total = entries.reduce((n, e) => n + e.data.length, 0);
  const groups: (typeof entries)[] = Array.from({ length: shards }, () => []);
  let acc = 0;
  for (const e of entries) {
    const g = Math.min(shards - 1, Math.floor((acc / total) * shards));
    groups[g]!.push(e);
    acc += e.data.length;
  }
  const pad = (n: number) => String(n).padStart(5, "0");
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  const bytesPer = dtype === "F32" ? 4 : 2;
  groups.forEach((g, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(shards)}.safetensors`;
    writeFileSync(join(dir, file), encodeSafetensors(g, metadata));
    for (const e of g) weightMap[e.name] = file;
    files.push(file);
  });
  const index = { metadata: { total_size: total * bytesPer }, weight_map: weightMap };
  writeFileSync(join(dir, SAFETENSORS_INDEX), JSON.stringify(index, null, 2) + "\n");
  return [...files, SAFETENSORS_INDEX];
}
