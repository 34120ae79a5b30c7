// Chat messages -> prompt text with the model's own Jinja chat template (@huggingface/jinja, an
// interpreter: no eval). Worker-safe.
//
// Render as Hugging Face's apply_chat_template does: the template gets `messages`, `bos_token`,
// `eos_token`, `add_generation_prompt` (and any extra variables, e.g. `tools`). The text it
// writes already holds the special tokens (BOS included, where the template writes it), so
// encode it with { bos: false }.

import { Template } from "@huggingface/jinja";

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ChatTextPart {
  type: "text";
  text: string;
}

export interface ChatMessage {
  role: string;
  /** A string, or text parts (joined with "\n"); an assistant message with tool_calls may have none. */
  content: string | ChatTextPart[] | null;
  name?: string;
  tool_call_id?: string;
  tool_calls?: unknown[];
}

export interface RenderChatOptions {
  /** tokenizer_config's bos_token: a string or an AddedToken object {content}. */
  bosToken?: string | { content: string } | null;
  eosToken?: string | { content: string } | null;
  /** End with the header of an assistant turn, for the model to write the reply. */
  addGenerationPrompt: boolean;
  /** More template variables (tools, enable_thinking, ...). */
  variables?: Record<string, unknown>;
}

/** The messages are not a conversation we can render (bad role, bad content). */
export class ChatMessageError extends Error {}

/**
 * The template failed. `fromTemplate` is true when the template itself rejected the conversation
 * (raise_exception, e.g. "roles must alternate"): the message is the template's. Otherwise the
 * template could not be parsed or evaluated: a problem of the model, not of the request.
 */
export class ChatTemplateError extends Error {
  constructor(
    message: string,
    readonly fromTemplate: boolean,
  ) {
    super(message);
  }
}

const ROLES = new Set<string>(["system", "user", "assistant", "tool"]);

/** Checks chat messages and puts them in the shape templates expect (content a string). */
export function normalizeChatMessages(messages: unknown): Array<Record<string, unknown> & { role: ChatRole; content: string }> {
  if (!Array.isArray(messages) || messages.length === 0) throw new ChatMessageError("messages must be a non-empty array");
  return messages.map((m, i) => {
    const where = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) throw new ChatMessageError(`${where} must be an object`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw new ChatMessageError(`${where}.role must be one of system, user, assistant, tool; got ${JSON.stringify(role)}`);
    }
    const out: Record<string, unknown> & { role: ChatRole; content: string } = { role: role as ChatRole, content: "" };
    if (typeof content === "string") {
      out.content = content;
    } else if (Array.isArray(content)) {
      out.content = content
        .map((part, j) => {
          const p = part as Partial<ChatTextPart> | null;
          if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
            const type = typeof p === "object" && p !== null ? JSON.stringify(p.type) : typeof p;
            throw new ChatMessageError(`${where}.content[${j}] must be a text part {type: "text", text: string}; got type ${type}`);
          }
          return p.text;
        })
        .join("\n");
    } else if ((content === null || content === undefined) && role === "assistant" && Array.isArray((m as ChatMessage).tool_calls)) {
      out.content = "";
    } else {
      throw new ChatMessageError(`${where}.content must be a string or a list of text parts`);
    }
    const { name, tool_call_id, tool_calls } = m as ChatMessage;
    if (name !== undefined) {
      if (typeof name !== "string") throw new ChatMessageError(`${where}.name must be a string`);
      out.name = name;
    }
    if (tool_call_id !== undefined) {
      if (typeof tool_call_id !== "string") throw new ChatMessageError(`${where}.tool_call_id must be a string`);
      out.tool_call_id = tool_call_id;
    }
    if (tool_calls !== undefined) {
      if (!Array.isArray(tool_calls)) throw new ChatMessageError(`${where}.tool_calls must be a list`);
      out.tool_calls = tool_calls;
    }
    return out;
  });
}

/** Parsed templates, by source text (a Worker serves few models; parsing costs more than rendering). */
const compiled = new Map<string, Template>();
const MAX_COMPILED = 8;

/**
 * The name templates' raise_exception calls are bound to. @huggingface/jinja's own
 * raise_exception throws a plain Error, like any failure of the interpreter; renaming the calls
 * in the parsed template to a function of ours tells the template's own rejections apart.
 */
const RAISE = "__edgeinfer_raise_exception";

function renameRaiseException(node: unknown, seen = new Set<object>()): void {
  if (typeof node !== "object" || node === null || seen.has(node)) return;
  seen.add(node);
  const n = node as { type?: unknown; value?: unknown };
  if (n.type === "Identifier" && n.value === "raise_exception") n.value = RAISE;
  for (const child of Object.values(node)) renameRaiseException(child, seen);
}

function compile(template: string): Template {
  let t = compiled.get(template);
  if (t) return t;
  try {
    t = new Template(template);
  } catch (e) {
    throw new ChatTemplateError(`the model's chat template cannot be parsed: ${(e as Error).message}`, false);
  }
  renameRaiseException(t.parsed);
  if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value as string);
  compiled.set(template, t);
  return t;
}

function tokenText(v: RenderChatOptions["bosToken"]): string {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof v.content === "string") return v.content;
  return "";
}

/** The prompt text for `messages` as the model's chat template writes it. */
export function renderChat(template: string, messages: unknown, opts: RenderChatOptions): string {
  const msgs = normalizeChatMessages(messages);
  const t = compile(template);
  /** Marks errors the template raised itself, to tell them from interpreter failures. */
  class Raised extends Error {}
  let out: unknown;
  try {
    out = t.render({
      ...opts.variables,
      messages: msgs,
      bos_token: tokenText(opts.bosToken),
      eos_token: tokenText(opts.eosToken),
      add_generation_prompt: opts.addGenerationPrompt,
      [RAISE]: (message: unknown) => {
        throw new Raised(typeof message === "string" ? message : String(message));
      },
    });
  } catch (e) {
    if (e instanceof Raised) throw new ChatTemplateError(e.message, true);
    throw new ChatTemplateError(`the model's chat template failed: ${(e as Error).message}`, false);
  }
  if (typeof out !== "string") throw new ChatTemplateError("the model's chat template did not produce text", false);
  return out;
}
