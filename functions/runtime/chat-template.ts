// Chat messages -> prompt text with the model's own Jinja chat template (@huggingface/jinja, an
// interpreter: no eval). Worker-safe.
//
// Render as Hugging Face's apply_chat_template does: the template gets `messages`, `bos_token`,
// `eos_token`, `add_generation_prompt` (and any extra variables, e.g. `tools`). The text it
// writes already holds the special tokens (BOS included, where the template writes it), so
// encode it with { bos: false }.
//
// Only the template's own markup may become special tokens, never text from the messages (a user
// writing "<|im_end|>\n<|im_start|>system" must not open a system turn). renderChatPrompt says
// where the messages' text lies in the output: it renders the conversation a second time with
// every string from the messages replaced by a sentinel (a private-use code point no tokenizer
// treats specially), and lines that render up with the real one (see alignMasked). The tokenizer
// then recognizes special tokens only outside those spans (HfTokenizer.encodeChat).

import { Template } from "@huggingface/jinja";
import type { ChatPrompt } from "./tokenizer/chat-prompt";

export { ChatContentError, type ChatPrompt } from "./tokenizer/chat-prompt";

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
  return render(compile(template), normalizeChatMessages(messages), opts.variables, opts);
}

/** renderChat's text, with the spans that came from the messages (see ChatPrompt). */
export function renderChatPrompt(template: string, messages: unknown, opts: RenderChatOptions): ChatPrompt {
  const msgs = normalizeChatMessages(messages);
  const t = compile(template);
  const text = render(t, msgs, opts.variables, opts);
  // The sentinels must not occur in what the template writes on its own.
  const masker = new Masker([template, tokenText(opts.bosToken), tokenText(opts.eosToken)]);
  // A normalized message's own keys and its role are ours (checked); everything else is masked.
  const maskedMessages = msgs.map((m, i) => {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(m)) out[key] = key === "role" ? value : masker.mask(value, `messages[${i}].${key}`);
    return out;
  });
  const maskedVariables = opts.variables === undefined ? undefined : (masker.mask(opts.variables, "") as Record<string, unknown>);
  if (!masker.exhausted) {
    let masked: string | null = null;
    try {
      masked = render(t, maskedMessages, maskedVariables, opts);
    } catch {
      // The template treats a sentinel differently from the real text (it raised, or failed):
      // the output cannot be lined up.
    }
    const spans = masked === null ? null : alignMasked(masked, text, masker);
    if (spans) return { text, messageSpans: spans, unplaced: masker.kept };
  }
  return { text, messageSpans: [], unplaced: [...masker.strings, ...masker.kept] };
}

/**
 * Replaces every non-empty string from the messages (and extra variables) by its own sentinel,
 * one code point of the supplementary private use areas (U+F0000..U+10FFFD) that the template
 * does not write itself. What templates test by value stays as it is: keys that are ASCII
 * identifiers ("content", "function", "arguments", a parameter name) and the identifier values
 * of "role" and "type" ("user", "function"); those are listed in `kept` (identifiers spell no
 * special token of the models we know, but the tokenizer checks). Other keys are masked too;
 * numbers, booleans and null are copied.
 */
class Masker {
  /** Each sentinel's string, in the order they were given out. */
  readonly strings: Array<{ where: string; text: string }> = [];
  /** Sentinel code point -> index in `strings`. */
  readonly bySentinel = new Map<number, number>();
  /** Keys left as they are. */
  readonly kept: Array<{ where: string; text: string }> = [];
  /** Ran out of sentinels (over 130,000 strings): nothing can be lined up. */
  exhausted = false;
  private next = FIRST_SENTINEL;
  /** Code points of the sentinel range in the text the template writes on its own. */
  private readonly taken = new Set<number>();

  constructor(templateTexts: string[]) {
    for (const text of templateTexts) {
      for (let i = 0; i < text.length; i++) {
        const cp = text.codePointAt(i)!;
        if (cp > 0xffff) {
          if (cp >= FIRST_SENTINEL) this.taken.add(cp);
          i++;
        }
      }
    }
  }

  mask(value: unknown, where: string): unknown {
    if (typeof value === "string") return this.maskString(value, where);
    if (Array.isArray(value)) return value.map((v, i) => this.mask(v, `${where}[${i}]`));
    if (typeof value === "object" && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        const path = where === "" ? key : `${where}.${key}`;
        let k = key;
        if (IDENTIFIER.test(key)) this.kept.push({ where: path, text: key });
        else k = this.maskString(key, path);
        if ((key === "role" || key === "type") && typeof v === "string" && IDENTIFIER.test(v)) {
          this.kept.push({ where: path, text: v });
          out[k] = v;
        } else {
          out[k] = this.mask(v, path);
        }
      }
      return out;
    }
    return value;
  }

  private maskString(text: string, where: string): string {
    if (text === "") return text;
    this.strings.push({ where, text });
    while (this.next <= LAST_SENTINEL && (this.taken.has(this.next) || (this.next & 0xfffe) === 0xfffe)) this.next++;
    if (this.next > LAST_SENTINEL) {
      this.exhausted = true;
      return text;
    }
    this.bySentinel.set(this.next, this.strings.length - 1);
    return String.fromCodePoint(this.next++);
  }
}

const FIRST_SENTINEL = 0xf0000;
const LAST_SENTINEL = 0x10fffd;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Lines the masked render up with the real one: the masked render is template text with
 * sentinels between; the real render must be the same template text with, at each sentinel, its
 * string as the template may have written it: as is, with whitespace trimmed at either end
 * (`| trim`, `.strip('\n')`), or JSON-escaped (`| tojson`). Returns the spans of those strings
 * in the real text, or null when no such reading exists (the template does something else with
 * a string: slices it, tests what it holds, ...). Searches depth first over the few readings
 * each string has, within a step budget.
 */
function alignMasked(masked: string, real: string, masker: Masker): Array<[number, number]> | null {
  // The masked render as template pieces and slots: pieces[0] slot[0] pieces[1] ... pieces[n].
  const pieces: string[] = [];
  const slots: number[] = [];
  let from = 0;
  for (let i = 0; i < masked.length; i++) {
    const c = masked.charCodeAt(i);
    if (c < 0xdb80 || c > 0xdbff) continue;
    const index = masker.bySentinel.get(masked.codePointAt(i)!);
    if (index === undefined) continue;
    pieces.push(masked.slice(from, i));
    slots.push(index);
    from = i + 2;
    i++;
  }
  pieces.push(masked.slice(from));
  if (!real.startsWith(pieces[0])) return null;

  interface State {
    slot: number;
    at: number;
    readings: Array<[number, number]>;
    next: number;
  }
  const spans: Array<[number, number]> = [];
  const stack: State[] = [];
  const open = (slot: number, at: number): State => ({
    slot,
    at,
    readings: slot < slots.length ? readings(masker.strings[slots[slot]].text, real, at) : [],
    next: 0,
  });
  let state = open(0, pieces[0].length);
  let budget = 20_000 + 8 * slots.length;
  for (;;) {
    if (state.slot === slots.length) {
      if (state.at === real.length) return spans.filter(([s, e]) => e > s);
    } else {
      let advanced = false;
      while (state.next < state.readings.length) {
        if (--budget < 0) return null;
        const [start, end] = state.readings[state.next++];
        const after = pieces[state.slot + 1];
        if (!real.startsWith(after, end)) continue;
        stack.push(state);
        spans.push([start, end]);
        state = open(state.slot + 1, end + after.length);
        advanced = true;
        break;
      }
      if (advanced) continue;
    }
    const back = stack.pop();
    if (!back) return null;
    spans.pop();
    state = back;
  }
}

/**
 * The readings of string `s` at offset `at` of `text`: [at, end) for each way the template may
 * have written it that `text` holds there: as is, with whitespace (or only newlines, or only
 * spaces) dropped at the start, the end or both, or JSON-escaped.
 */
function readings(s: string, text: string, at: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const seen = new Set<string>();
  const starts = [0, s.length - s.trimStart().length, leading(s, "\n"), leading(s, " ")];
  const ends = [s.length, s.trimEnd().length, s.length - trailing(s, "\n"), s.length - trailing(s, " ")];
  for (const a of starts) {
    for (const b of ends) {
      if (b < a || seen.has(`${a},${b}`)) continue;
      seen.add(`${a},${b}`);
      const piece = a === 0 && b === s.length ? s : s.slice(a, b);
      if (text.startsWith(piece, at) && !out.some(([, e]) => e === at + piece.length)) out.push([at, at + piece.length]);
    }
  }
  const json = JSON.stringify(s).slice(1, -1);
  if (json !== s && text.startsWith(json, at) && !out.some(([, e]) => e === at + json.length)) out.push([at, at + json.length]);
  return out;
}

function leading(s: string, c: string): number {
  let n = 0;
  while (n < s.length && s[n] === c) n++;
  return n;
}

function trailing(s: string, c: string): number {
  let n = 0;
  while (n < s.length && s[s.length - 1 - n] === c) n++;
  return n;
}

function render(t: Template, messages: Array<Record<string, unknown>>, variables: Record<string, unknown> | undefined, opts: RenderChatOptions): string {
  /** Marks errors the template raised itself, to tell them from interpreter failures. */
  class Raised extends Error {}
  let out: unknown;
  try {
    out = t.render({
      ...variables,
      messages,
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
