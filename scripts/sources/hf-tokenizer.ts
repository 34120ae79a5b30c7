// A Hugging Face model directory's tokenizer -> the one JSON object the runtime reads for
// tokenizer kind "hf" (functions/runtime/tokenizer/hf.ts). Build time, Node.
//
// Files read: tokenizer.json (required), tokenizer_config.json, generation_config.json,
// config.json and chat_template.jinja (all optional).
//
// Decided here, once, so the Worker only follows the bundle:
//  - eosTokenIds: the union of generation_config's eos_token_id (number or list), config.json's
//    eos_token_id and tokenizer_config's eos_token, plus the end-of-turn tokens the chat template
//    writes (<|eot_id|>, <|eom_id|>, <|im_end|>, <|end|>, <end_of_turn>) and <|endoftext|>, the
//    end-of-document token of GPT-2-style vocabularies, whenever it is a special token.
//  - bosTokenId and addBosToken: whether a prompt starts with BOS, as the tokenizer itself would
//    do it. tokenizer_config's add_bos_token decides when it is set; otherwise the post-processor
//    does (a TemplateProcessing that puts a special token before the text); otherwise a model
//    whose chat template writes bos_token expects it (the first Llama 3 release shipped a
//    tokenizer.json whose post-processor adds nothing, although the model was trained with it).
//  - chatTemplate: chat_template.jinja, else tokenizer_config's chat_template (a string, or a list
//    of {name, template} of which "default" is taken).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  HF_TOKENIZER_FORMAT,
  HF_TOKENIZER_VERSION,
  hfTokenizerFromBytes,
  tokenContent,
  type HfTokenizerBundle,
} from "../../functions/runtime/tokenizer/hf";

export interface HfTokenizerSources {
  /** tokenizer.json */
  tokenizer: unknown;
  /** tokenizer_config.json */
  tokenizerConfig?: unknown;
  /** generation_config.json */
  generationConfig?: unknown;
  /** config.json */
  config?: unknown;
  /** chat_template.jinja (newer repositories keep the template there); overrides tokenizer_config's. */
  chatTemplateFile?: string | null;
}

export interface PackedHfTokenizer {
  /** The bundle as UTF-8 JSON: the tokenizer entry's bytes. */
  bytes: Uint8Array;
  bosId: number | null;
  /** The first stop token: generation_config's / config.json's EOS, else tokenizer_config's. */
  eosId: number | null;
  /** config.json's vocab_size when given (the embedding's rows), else the tokenizer's id space. */
  vocabSize: number;
  eosTokenIds: number[];
  addBosToken: boolean;
  chatTemplate: string | null;
}

/** Tokens chat templates end a turn with, in the families we know. */
const END_OF_TURN_TOKENS = ["<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>"];
const END_OF_DOCUMENT_TOKEN = "<|endoftext|>";

export function packHfTokenizer(dir: string): PackedHfTokenizer {
  const path = (name: string) => join(dir, name);
  const json = (name: string, required: boolean): unknown => {
    if (!existsSync(path(name))) {
      if (required) throw new Error(`${dir} has no ${name}`);
      return undefined;
    }
    try {
      return JSON.parse(readFileSync(path(name), "utf8"));
    } catch (e) {
      throw new Error(`${path(name)} is not valid JSON: ${(e as Error).message}`);
    }
  };
  return packHfTokenizerFromObjects({
    tokenizer: json("tokenizer.json", true),
    tokenizerConfig: json("tokenizer_config.json", false),
    generationConfig: json("generation_config.json", false),
    config: json("config.json", false),
    chatTemplateFile: existsSync(path("chat_template.jinja")) ? readFileSync(path("chat_template.jinja"), "utf8") : null,
  });
}

export function packHfTokenizerFromObjects(sources: HfTokenizerSources): PackedHfTokenizer {
  const tokenizer = asObject(sources.tokenizer, "tokenizer.json");
  const tokenizerConfig = sources.tokenizerConfig === undefined || sources.tokenizerConfig === null ? {} : asObject(sources.tokenizerConfig, "tokenizer_config.json");
  const generationConfig = sources.generationConfig == null ? {} : asObject(sources.generationConfig, "generation_config.json");
  const config = sources.config == null ? {} : asObject(sources.config, "config.json");

  const tokens = tokenTable(tokenizer);
  const idOf = (token: string | null): number | null => (token === null ? null : tokens.ids.get(token) ?? null);
  const requireToken = (id: unknown, where: string): number => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) throw new Error(`${where} is ${JSON.stringify(id)}, not a token id`);
    if (!tokens.all.has(id)) throw new Error(`${where} is ${id}, which tokenizer.json does not have`);
    return id;
  };
  const configToken = (key: "bos_token" | "eos_token"): number | null => {
    const content = tokenContent(tokenizerConfig[key]);
    if (content === null) return null;
    const id = idOf(content);
    if (id === null) throw new Error(`tokenizer_config.json ${key} ${JSON.stringify(content)} is not a token of tokenizer.json`);
    return id;
  };

  const chatTemplate = sources.chatTemplateFile ?? chatTemplateOf(tokenizerConfig.chat_template);

  // Stop tokens.
  const eos: number[] = [];
  const addEos = (id: number) => {
    if (!eos.includes(id)) eos.push(id);
  };
  for (const [source, where] of [
    [generationConfig.eos_token_id, "generation_config.json eos_token_id"],
    [config.eos_token_id, "config.json eos_token_id"],
  ] as const) {
    if (source === undefined || source === null) continue;
    for (const id of Array.isArray(source) ? source : [source]) addEos(requireToken(id, where));
  }
  const configEos = configToken("eos_token");
  if (configEos !== null) addEos(configEos);
  for (const t of END_OF_TURN_TOKENS) {
    const id = idOf(t);
    if (id !== null && tokens.special.has(id) && chatTemplate !== null && chatTemplate.includes(t)) addEos(id);
  }
  const endOfDocument = idOf(END_OF_DOCUMENT_TOKEN);
  if (endOfDocument !== null && tokens.special.has(endOfDocument)) addEos(endOfDocument);

  // BOS.
  const prefix = postProcessorPrefix(tokenizer.post_processor, idOf);
  let bosTokenId: number | null = prefix[0] ?? configToken("bos_token");
  for (const [source, where] of [
    [generationConfig.bos_token_id, "generation_config.json bos_token_id"],
    [config.bos_token_id, "config.json bos_token_id"],
  ] as const) {
    if (bosTokenId === null && source !== undefined && source !== null) bosTokenId = requireToken(source, where);
  }
  let addBosToken: boolean;
  const addBosSetting = tokenizerConfig.add_bos_token;
  if (typeof addBosSetting === "boolean") addBosToken = addBosSetting;
  else if (prefix.length > 0) addBosToken = true;
  else addBosToken = chatTemplate !== null && /\bbos_token\b/.test(chatTemplate) && bosTokenId !== null && !eos.includes(bosTokenId);
  if (addBosToken && bosTokenId === null) {
    throw new Error("tokenizer_config.json sets add_bos_token but the model names no BOS token");
  }

  let vocabSize = tokens.size;
  if (config.vocab_size !== undefined) {
    const v = config.vocab_size;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new Error(`config.json vocab_size is ${JSON.stringify(v)}`);
    if (v < tokens.size) {
      throw new Error(`config.json vocab_size ${v} is smaller than the tokenizer's ${tokens.size} ids: the model could not embed all its tokens`);
    }
    vocabSize = v;
  }

  const bundle: HfTokenizerBundle = {
    format: HF_TOKENIZER_FORMAT,
    version: HF_TOKENIZER_VERSION,
    tokenizer,
    config: tokenizerConfig,
    eosTokenIds: eos,
    bosTokenId,
    addBosToken,
    chatTemplate,
  };
  const bytes = new TextEncoder().encode(JSON.stringify(bundle));
  // What the Worker will do with these bytes, now: a tokenizer it cannot load fails the build.
  hfTokenizerFromBytes(bytes);
  return { bytes, bosId: bosTokenId, eosId: eos[0] ?? null, vocabSize, eosTokenIds: eos, addBosToken, chatTemplate };
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function chatTemplateOf(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (const entry of value) {
      if (entry && typeof entry === "object" && entry.name === "default" && typeof entry.template === "string") return entry.template;
    }
    return null;
  }
  if (value === undefined || value === null) return null;
  throw new Error("tokenizer_config.json chat_template is neither a string nor a list of {name, template}");
}

interface TokenTable {
  /** token string -> id; added tokens take precedence over the model vocabulary. */
  ids: Map<string, number>;
  all: Set<number>;
  special: Set<number>;
  /** max id + 1 */
  size: number;
}

function tokenTable(tokenizer: Record<string, unknown>): TokenTable {
  const model = tokenizer.model as { vocab?: unknown } | undefined;
  if (!model || typeof model !== "object") throw new Error("tokenizer.json has no model");
  const ids = new Map<string, number>();
  const all = new Set<number>();
  const special = new Set<number>();
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    // Unigram: [[piece, score], ...] with the index as id.
    vocab.forEach((entry, id) => {
      const piece = Array.isArray(entry) ? entry[0] : entry;
      if (typeof piece === "string" && !ids.has(piece)) ids.set(piece, id);
      all.add(id);
    });
  } else if (vocab && typeof vocab === "object") {
    for (const [piece, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0) throw new Error(`tokenizer.json vocab entry ${JSON.stringify(piece)} has id ${JSON.stringify(id)}`);
      ids.set(piece, id);
      all.add(id);
    }
  } else {
    throw new Error("tokenizer.json model has no vocab");
  }
  const added = tokenizer.added_tokens ?? [];
  if (!Array.isArray(added)) throw new Error("tokenizer.json added_tokens is not a list");
  for (const t of added as Array<{ id?: unknown; content?: unknown; special?: unknown }>) {
    if (typeof t?.id !== "number" || typeof t.content !== "string") throw new Error(`tokenizer.json has a malformed added token ${JSON.stringify(t)}`);
    ids.set(t.content, t.id);
    all.add(t.id);
    if (t.special === true) special.add(t.id);
  }
  let size = 0;
  for (const id of all) size = Math.max(size, id + 1);
  return { ids, all, special, size };
}

/**
 * Ids of the special tokens the post-processor puts before the text of a single sequence
 * (TemplateProcessing, directly or inside a Sequence; Bert/Roberta's CLS).
 */
function postProcessorPrefix(pp: unknown, idOf: (token: string) => number | null): number[] {
  if (!pp || typeof pp !== "object") return [];
  const p = pp as Record<string, unknown>;
  switch (p.type) {
    case "Sequence": {
      const out: number[] = [];
      for (const q of (p.processors as unknown[]) ?? []) out.push(...postProcessorPrefix(q, idOf));
      return out;
    }
    case "TemplateProcessing": {
      const out: number[] = [];
      const specials = (p.special_tokens ?? {}) as Record<string, { ids?: number[] }>;
      for (const item of (p.single as Array<Record<string, { id: string }>>) ?? []) {
        if ("Sequence" in item) break;
        const name = item.SpecialToken?.id;
        if (name === undefined) continue;
        const ids = specials[name]?.ids ?? [idOf(name)];
        for (const id of ids) {
          if (typeof id !== "number") throw new Error(`tokenizer.json post_processor adds ${JSON.stringify(name)}, which is not a token`);
          out.push(id);
        }
      }
      return out;
    }
    case "BertProcessing":
    case "RobertaProcessing": {
      const cls = p.cls as [string, number] | undefined;
      return Array.isArray(cls) && typeof cls[1] === "number" ? [cls[1]] : [];
    }
    default:
      return [];
  }
}
