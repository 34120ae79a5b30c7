// Reader for local Hugging Face checkpoint directories (config.json + safetensors) of the
// families we run: Llama (incl. TinyLlama, SmolLM2, Llama 3 with rope_scaling "llama3"),
// Mistral (sliding window), Qwen2 (q/k/v biases) and GPT-2. Produces the internal model
// description with GGUF-style tensor names, matrices [out, in].
//
// RoPE: transformers' Llama/Mistral/Qwen2 apply rotary embeddings with rotate_half, i.e. they
// pair dimension j with j + head_dim/2 inside each head. The checkpoints are stored for that
// layout, so we keep q/k as they are and set ropeLayout "half" (llama.cpp's convert script
// instead permutes q/k rows into the interleaved layout for GGUF llama files; we don't need to).
//
// GPT-2 stores its linear layers as Conv1D, weight [in, out] (y = x W + b): transposed here to
// [out, in]. Its classifier is always the token embedding.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Gpt2Config, ImportedTensor, Llama3RopeScaling, LlamaConfig, ModelConfig } from "../../functions/model/description";
import { specTensors } from "../../functions/model/arch/index";
import { SafetensorsModel } from "./safetensors";

export const SUPPORTED_HF_MODEL_TYPES = ["llama", "mistral", "qwen2", "gpt2"] as const;
export type HfModelType = (typeof SUPPORTED_HF_MODEL_TYPES)[number];

export interface ReadHfOptions {
  /** Cap the context length (seqLen) at this many tokens; GPT-2's position table is cut to match. */
  maxContext?: number;
}

/**
 * What readHfModel returns. `config` is a LlamaConfig for llama/mistral/qwen2 (then this is an
 * ImportedModel of ./types) or a Gpt2Config for gpt2.
 */
export interface HfModel {
  config: ModelConfig;
  tensors: ImportedTensor[];
  /** config.json's vocab_size (also config.vocabSize). */
  vocabSize: number;
  modelType: HfModelType;
  /** config.json as read. */
  hfConfig: Record<string, unknown>;
  /** generation_config.json, if present. */
  generationConfig: Record<string, unknown> | null;
}

type Json = Record<string, unknown>;

function readJson(path: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: cannot read JSON (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${path}: expected a JSON object`);
  return v as Json;
}

class ConfigReader {
  constructor(
    private readonly c: Json,
    private readonly where: string,
  ) {}
  has(key: string): boolean {
    return this.c[key] !== undefined && this.c[key] !== null;
  }
  int(key: string, fallback?: number): number {
    const v = this.c[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${this.where}: missing "${key}"`);
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new Error(`${this.where}: "${key}" is ${JSON.stringify(v)}, expected a positive integer`);
    return v;
  }
  num(key: string, fallback?: number): number {
    const v = this.c[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${this.where}: missing "${key}"`);
    }
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Error(`${this.where}: "${key}" is ${JSON.stringify(v)}, expected a number`);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") throw new Error(`${this.where}: "${key}" is ${JSON.stringify(v)}, expected true or false`);
    return v;
  }
  str(key: string, fallback: string): string {
    const v = this.c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string") throw new Error(`${this.where}: "${key}" is ${JSON.stringify(v)}, expected a string`);
    return v;
  }
  raw(key: string): unknown {
    return this.c[key];
  }
}

function capContext(seqLen: number, opts: ReadHfOptions): number {
  if (opts.maxContext === undefined) return seqLen;
  if (!Number.isInteger(opts.maxContext) || opts.maxContext <= 0) throw new Error(`maxContext must be a positive integer, got ${opts.maxContext}`);
  return Math.min(seqLen, opts.maxContext);
}

/**
 * The rope parameters of a config: transformers 4.x writes rope_theta and rope_scaling at the top
 * level (rope_scaling.type is the older spelling of rope_type); transformers 5 writes one
 * rope_parameters object holding rope_type, rope_theta and the scaling fields.
 */
function ropeParams(cfg: ConfigReader, where: string): { theta: number; scaling: Llama3RopeScaling | null } {
  const params = cfg.raw("rope_parameters");
  let scaling = cfg.raw("rope_scaling") as Json | null | undefined;
  let theta = cfg.num("rope_theta", 10000);
  if (params && typeof params === "object" && !Array.isArray(params)) {
    const p = params as Json;
    if (typeof p.rope_theta === "number") theta = p.rope_theta;
    scaling = p;
  }
  if (scaling === null || scaling === undefined) return { theta, scaling: null };
  if (typeof scaling !== "object" || Array.isArray(scaling)) throw new Error(`${where}: rope_scaling is ${JSON.stringify(scaling)}, expected an object or null`);
  const type = (scaling.rope_type ?? scaling.type ?? "default") as unknown;
  if (type === "default") return { theta, scaling: null };
  if (type !== "llama3") {
    throw new Error(`${where}: rope scaling type ${JSON.stringify(type)} is not supported (supported: none/"default", "llama3")`);
  }
  const get = (k: string): number => {
    const v = scaling![k];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new Error(`${where}: rope_scaling.${k} is ${JSON.stringify(v)}, expected a positive number`);
    return v;
  };
  const s: Llama3RopeScaling = {
    type: "llama3",
    factor: get("factor"),
    lowFreqFactor: get("low_freq_factor"),
    highFreqFactor: get("high_freq_factor"),
    originalMaxPositionEmbeddings: get("original_max_position_embeddings"),
  };
  if (s.highFreqFactor <= s.lowFreqFactor) throw new Error(`${where}: rope_scaling.high_freq_factor must exceed low_freq_factor`);
  return { theta, scaling: s };
}

function llamaFamilyConfig(cfg: ConfigReader, modelType: "llama" | "mistral" | "qwen2", where: string, opts: ReadHfOptions): LlamaConfig {
  const dim = cfg.int("hidden_size");
  const nHeads = cfg.int("num_attention_heads");
  const nKvHeads = cfg.int("num_key_value_heads", nHeads);
  if (dim % nHeads !== 0) throw new Error(`${where}: hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw new Error(`${where}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
  if (cfg.has("head_dim") && cfg.int("head_dim") !== dim / nHeads) {
    throw new Error(`${where}: head_dim ${cfg.int("head_dim")} differs from hidden_size / num_attention_heads = ${dim / nHeads}; not supported`);
  }
  const act = cfg.str("hidden_act", "silu");
  if (act !== "silu") throw new Error(`${where}: hidden_act "${act}" is not supported (supported: "silu")`);
  if (cfg.bool("mlp_bias", false)) throw new Error(`${where}: mlp_bias true is not supported`);
  if (cfg.num("partial_rotary_factor", 1) !== 1) throw new Error(`${where}: partial_rotary_factor ${cfg.num("partial_rotary_factor")} is not supported`);
  if (modelType === "llama" && cfg.bool("attention_bias", false)) {
    // LlamaAttention puts this bias on o_proj as well, which the description cannot express.
    throw new Error(`${where}: attention_bias true (biases on q, k, v and o_proj) is not supported for model_type "llama"`);
  }
  const { theta, scaling } = ropeParams(cfg, where);
  const nLayers = cfg.int("num_hidden_layers");
  let slidingWindow: number | null = null;
  if (modelType === "mistral") {
    // MistralConfig: sliding_window defaults to 4096 when absent; null disables it.
    const v = cfg.raw("sliding_window");
    slidingWindow = v === undefined ? 4096 : v === null ? null : cfg.int("sliding_window");
  } else if (modelType === "qwen2") {
    // Qwen2Config: sliding_window is dropped unless use_sliding_window, and then applies to the
    // layers whose layer_types entry is "sliding_attention" (by default: i >= max_window_layers).
    const window = cfg.bool("use_sliding_window", false) && cfg.has("sliding_window") ? cfg.int("sliding_window") : null;
    if (window !== null) {
      let types = cfg.raw("layer_types") as unknown;
      if (!Array.isArray(types)) {
        const maxWindowLayers = cfg.num("max_window_layers", 28);
        types = Array.from({ length: nLayers }, (_, i) => (i >= maxWindowLayers ? "sliding_attention" : "full_attention"));
      }
      const list = types as unknown[];
      const sliding = list.filter((t) => t === "sliding_attention").length;
      if (sliding === list.length) slidingWindow = window;
      else if (sliding !== 0) {
        throw new Error(`${where}: sliding-window attention on only some layers (${sliding} of ${list.length}) is not supported`);
      }
    }
  }
  const config: LlamaConfig = {
    architecture: "llama",
    dim,
    hiddenDim: cfg.int("intermediate_size"),
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: cfg.int("vocab_size"),
    seqLen: capContext(cfg.int("max_position_embeddings"), opts),
    normEps: cfg.num("rms_norm_eps", 1e-6),
    ropeTheta: theta,
    ropeLayout: "half",
    tiedEmbeddings: cfg.bool("tie_word_embeddings", false),
  };
  if (modelType === "qwen2") config.attentionBias = true;
  if (scaling) config.ropeScaling = scaling;
  if (slidingWindow !== null) config.slidingWindow = slidingWindow;
  return config;
}

function gpt2Config(cfg: ConfigReader, where: string, opts: ReadHfOptions): Gpt2Config {
  const dim = cfg.int("n_embd");
  const nHeads = cfg.int("n_head");
  if (dim % nHeads !== 0) throw new Error(`${where}: n_embd ${dim} is not a multiple of n_head ${nHeads}`);
  const act = cfg.str("activation_function", "gelu_new");
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
    throw new Error(`${where}: activation_function "${act}" is not supported (supported: "gelu_new", "gelu_pytorch_tanh")`);
  }
  if (!cfg.bool("scale_attn_weights", true)) throw new Error(`${where}: scale_attn_weights false is not supported`);
  if (cfg.bool("scale_attn_by_inverse_layer_idx", false)) throw new Error(`${where}: scale_attn_by_inverse_layer_idx true is not supported`);
  const nPositions = cfg.int("n_positions", cfg.has("n_ctx") ? cfg.int("n_ctx") : undefined);
  return {
    architecture: "gpt2",
    dim,
    hiddenDim: cfg.has("n_inner") ? cfg.int("n_inner") : 4 * dim,
    nLayers: cfg.int("n_layer"),
    nHeads,
    vocabSize: cfg.int("vocab_size"),
    seqLen: capContext(nPositions, opts),
    normEps: cfg.num("layer_norm_epsilon", 1e-5),
    tiedEmbeddings: true,
  };
}

/** Read config.json and the weights of a local HF model directory. */
export function readHfModel(dir: string, opts: ReadHfOptions = {}): HfModel {
  const configPath = join(dir, "config.json");
  if (!existsSync(configPath)) throw new Error(`${dir}: no config.json (not a Hugging Face model directory?)`);
  const hfConfig = readJson(configPath);
  const genPath = join(dir, "generation_config.json");
  const generationConfig = existsSync(genPath) ? readJson(genPath) : null;
  const modelType = hfConfig.model_type;
  if (typeof modelType !== "string" || !(SUPPORTED_HF_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new Error(
      `${configPath}: model_type ${JSON.stringify(modelType)} is not supported (supported: ${SUPPORTED_HF_MODEL_TYPES.join(", ")})`,
    );
  }
  const mt = modelType as HfModelType;
  const cfg = new ConfigReader(hfConfig, configPath);
  const config = mt === "gpt2" ? gpt2Config(cfg, configPath, opts) : llamaFamilyConfig(cfg, mt, configPath, opts);
  const weights = SafetensorsModel.open(dir);
  try {
    const tensors = mt === "gpt2" ? gpt2Tensors(weights, config as Gpt2Config) : llamaTensors(weights, config as LlamaConfig);
    return { config, tensors, vocabSize: config.vocabSize, modelType: mt, hfConfig, generationConfig };
  } finally {
    weights.close();
  }
}

function shapeEq(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

class TensorTaker {
  readonly out: ImportedTensor[] = [];
  private readonly used = new Set<string>();
  constructor(
    private readonly w: SafetensorsModel,
    private readonly prefix = "",
  ) {}
  take(hfName: string, name: string, shape: number[], transform?: (data: Float32Array, stored: number[]) => Float32Array): void {
    const full = this.prefix + hfName;
    if (!this.w.has(full)) throw new Error(`${this.w.dir}: missing tensor ${full} (for ${name})`);
    const info = this.w.info(full);
    const stored = transform ? [...shape].reverse() : shape;
    if (!shapeEq(info.shape, stored)) {
      throw new Error(`${this.w.dir}: tensor ${full} has shape [${info.shape.join(", ")}], expected [${stored.join(", ")}]`);
    }
    let data = this.w.readF32(full);
    if (transform) data = transform(data, info.shape);
    this.out.push({ name, shape: [...shape], data });
    this.used.add(full);
  }
  /** Take only the first `rows` rows of a [rows', cols] tensor whose stored row count may be larger. */
  takeRows(hfName: string, name: string, rows: number, cols: number): void {
    const full = this.prefix + hfName;
    if (!this.w.has(full)) throw new Error(`${this.w.dir}: missing tensor ${full} (for ${name})`);
    const info = this.w.info(full);
    if (info.shape.length !== 2 || info.shape[1] !== cols || info.shape[0]! < rows) {
      throw new Error(`${this.w.dir}: tensor ${full} has shape [${info.shape.join(", ")}], expected [>=${rows}, ${cols}]`);
    }
    const data = this.w.readF32(full);
    this.out.push({ name, shape: [rows, cols], data: info.shape[0] === rows ? data : data.slice(0, rows * cols) });
    this.used.add(full);
  }
  markIgnored(full: string): void {
    this.used.add(full);
  }
  /** Every tensor of the checkpoint must have been used or explicitly ignored. */
  checkAllUsed(ignore: (name: string) => boolean): void {
    const extra = this.w.names().filter((n) => !this.used.has(n) && !ignore(n));
    if (extra.length) {
      throw new Error(
        `${this.w.dir}: unexpected tensors ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ` (and ${extra.length - 5} more)` : ""}: ` +
          `this checkpoint has weights the supported architecture does not use`,
      );
    }
  }
}

/** [rows, cols] <- stored [cols, rows] (Conv1D). */
function transpose(data: Float32Array, stored: number[]): Float32Array {
  const [r, c] = stored as [number, number];
  const out = new Float32Array(data.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = data[i * c + j]!;
  return out;
}

/**
 * Where each tensor of an architecture's spec sits in a Hugging Face checkpoint, by its role
 * ("{l}" is the layer). `transposed`: Conv1D weights stored [in, out]; `firstRows`: tables cut to
 * the spec's rows (GPT-2's positions under a shortened context).
 */
interface HfNames {
  names: Record<string, string>;
  transposed?: ReadonlySet<string>;
  firstRows?: ReadonlySet<string>;
}

const LLAMA_HF: HfNames = {
  names: {
    tokenEmbedding: "model.embed_tokens.weight",
    attnNorm: "model.layers.{l}.input_layernorm.weight",
    wq: "model.layers.{l}.self_attn.q_proj.weight",
    wk: "model.layers.{l}.self_attn.k_proj.weight",
    wv: "model.layers.{l}.self_attn.v_proj.weight",
    bq: "model.layers.{l}.self_attn.q_proj.bias",
    bk: "model.layers.{l}.self_attn.k_proj.bias",
    bv: "model.layers.{l}.self_attn.v_proj.bias",
    wo: "model.layers.{l}.self_attn.o_proj.weight",
    ffnNorm: "model.layers.{l}.post_attention_layernorm.weight",
    wGate: "model.layers.{l}.mlp.gate_proj.weight",
    wUp: "model.layers.{l}.mlp.up_proj.weight",
    wDown: "model.layers.{l}.mlp.down_proj.weight",
    outputNorm: "model.norm.weight",
    output: "lm_head.weight",
  },
};

const GPT2_HF: HfNames = {
  names: {
    tokenEmbedding: "wte.weight",
    positionEmbedding: "wpe.weight",
    attnNorm: "h.{l}.ln_1.weight",
    attnNormBias: "h.{l}.ln_1.bias",
    wqkv: "h.{l}.attn.c_attn.weight",
    bqkv: "h.{l}.attn.c_attn.bias",
    wo: "h.{l}.attn.c_proj.weight",
    bo: "h.{l}.attn.c_proj.bias",
    ffnNorm: "h.{l}.ln_2.weight",
    ffnNormBias: "h.{l}.ln_2.bias",
    wUp: "h.{l}.mlp.c_fc.weight",
    bUp: "h.{l}.mlp.c_fc.bias",
    wDown: "h.{l}.mlp.c_proj.weight",
    bDown: "h.{l}.mlp.c_proj.bias",
    outputNorm: "ln_f.weight",
    outputNormBias: "ln_f.bias",
  },
  transposed: new Set(["wqkv", "wo", "wUp", "wDown"]),
  firstRows: new Set(["positionEmbedding"]),
};

/** Takes every tensor the spec lists for `config`, from where `hf` says it is. */
function takeSpec(t: TensorTaker, config: ModelConfig, hf: HfNames): void {
  for (const s of specTensors(config)) {
    const name = hf.names[s.role];
    if (name === undefined) throw new Error(`no Hugging Face name for tensor ${s.name} (role ${s.role}) of architecture ${config.architecture}`);
    const full = name.replace("{l}", String(s.layer));
    if (hf.firstRows?.has(s.role)) t.takeRows(full, s.name, s.shape[0]!, s.shape[1]!);
    else t.take(full, s.name, s.shape, hf.transposed?.has(s.role) ? transpose : undefined);
  }
}

function llamaTensors(w: SafetensorsModel, c: LlamaConfig): ImportedTensor[] {
  const t = new TensorTaker(w);
  takeSpec(t, c, LLAMA_HF);
  if (c.tiedEmbeddings && w.has("lm_head.weight")) t.markIgnored("lm_head.weight"); // tied: transformers ignores a stored copy
  // rotary_emb.inv_freq buffers appear in older checkpoints; they are recomputed from the config.
  t.checkAllUsed((name) => name.endsWith(".rotary_emb.inv_freq"));
  return t.out;
}

function gpt2Tensors(w: SafetensorsModel, c: Gpt2Config): ImportedTensor[] {
  const prefix = w.has("transformer.wte.weight") ? "transformer." : "";
  const t = new TensorTaker(w, prefix);
  takeSpec(t, c, GPT2_HF);
  // attn.bias / attn.masked_bias are causal-mask buffers; lm_head.weight is the tied wte.
  t.checkAllUsed((name) => /\.attn\.(masked_)?bias$/.test(name) || name === "lm_head.weight");
  return t.out;
}
