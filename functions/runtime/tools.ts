// Tool calls, model-side: which chat templates take tools and in what format their models write
// a call, the JSON schema a forced call follows, and the parser that turns generated text into
// content and calls as it streams.
//
// Two call formats:
// - "hermes", what Qwen2.5/Qwen3 (and the Hermes-style templates that copied them) train on: a
//   call is `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` after the assistant
//   header, one block per call; the template writes `<tool_call>` itself.
// - "llama3-json", Llama 3.1+'s custom tools: the whole reply is one JSON object
//   `{"name": ..., "parameters": {...}}` (after an optional `<|python_tag|>`); the template
//   answers results as the `ipython` role and tells the model to use "parameters".
// A template that takes `tools` in any other format is refused rather than guessed at.

/** A function the caller offers (OpenAI's `tools[].function`). */
export interface ToolFunction {
  name: string;
  description?: string;
  /** A JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

/** How a model writes a call. */
export type ToolCallFormat =
  | {
      name: "hermes";
      /** What opens and closes one call. */
      open: string;
      close: string;
      argumentsKey: "arguments";
    }
  | {
      name: "llama3-json";
      /** What may come before the call's JSON. */
      prefix: string;
      argumentsKey: "parameters";
    };

type HermesFormat = Extract<ToolCallFormat, { name: "hermes" }>;
type Llama3JsonFormat = Extract<ToolCallFormat, { name: "llama3-json" }>;
const HERMES: HermesFormat = { name: "hermes", open: "<tool_call>", close: "</tool_call>", argumentsKey: "arguments" };
const LLAMA3_JSON: Llama3JsonFormat = { name: "llama3-json", prefix: "<|python_tag|>", argumentsKey: "parameters" };

/** Whether the template does anything with a `tools` variable. */
export function templateTakesTools(template: string): boolean {
  return /\btools\b/.test(template);
}

/** The call format of a template that takes tools, or null when it is not one we parse. */
export function toolCallFormat(template: string): ToolCallFormat | null {
  if (!templateTakesTools(template)) return null;
  if (template.includes(HERMES.open) && template.includes(HERMES.close)) return HERMES;
  if (template.includes("ipython") && template.includes('"parameters"')) return LLAMA3_JSON;
  return null;
}

/** What the prompt ends with for a forced call: the call's opening, as the model would write it. */
export function forcedOpening(format: ToolCallFormat): string {
  return format.name === "hermes" ? `${format.open}\n` : "";
}

/** A stop string that ends the reply after its first call (parallel calls off), if the format has one. */
export function afterFirstCall(format: ToolCallFormat): string | null {
  return format.name === "hermes" ? format.close : null;
}

/** Splits a reply in `format` into content and calls as it arrives (see ToolCallParser, JsonReplyParser). */
export function toolCallParser(format: ToolCallFormat, names: ReadonlySet<string>, forced: boolean): ReplyParser {
  return format.name === "hermes" ? new ToolCallParser(format, names, forced) : new JsonReplyParser(format, names, forced);
}

export interface ReplyParser {
  push(text: string): OutputPiece[];
  finish(): OutputPiece[];
}

/**
 * The schema of one call to one of `tools`: `{"name": <one of them>, "arguments": <its
 * parameters>}`, name first. Local `$ref`s inside each tool's parameters are moved under this
 * schema's `$defs` (prefixed per tool), so they still resolve.
 */
export function callSchema(tools: ToolFunction[], argumentsKey: "arguments" | "parameters" = "arguments"): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  const alts = tools.map((tool, i) => {
    const prefix = `tool${i}_`;
    const { arguments: args, defs: own } = relocateRefs(tool.parameters, prefix);
    Object.assign(defs, own);
    return {
      type: "object",
      properties: { name: { const: tool.name }, [argumentsKey]: args },
      required: ["name", argumentsKey],
      additionalProperties: false,
    };
  });
  const root: Record<string, unknown> = alts.length === 1 ? { ...alts[0] } : { anyOf: alts };
  if (Object.keys(defs).length > 0) root.$defs = defs;
  return root;
}

function relocateRefs(parameters: Record<string, unknown>, prefix: string): { arguments: unknown; defs: Record<string, unknown> } {
  const defs: Record<string, unknown> = {};
  let refersToRoot = false;
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (typeof node !== "object" || node === null) return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") {
        if (value === "#") {
          refersToRoot = true;
          out[key] = `#/$defs/${prefix}root`;
        } else {
          const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(value);
          out[key] = m ? `#/$defs/${prefix}${m[2]}` : value;
        }
      } else if ((key === "$defs" || key === "definitions") && node === parameters) {
        continue;
      } else {
        out[key] = rewrite(value);
      }
    }
    return out;
  };
  const args = rewrite(parameters);
  for (const key of ["$defs", "definitions"]) {
    const own = parameters[key];
    if (typeof own === "object" && own !== null) for (const [name, def] of Object.entries(own)) defs[`${prefix}${name}`] = rewrite(def);
  }
  if (refersToRoot) {
    defs[`${prefix}root`] = args;
    return { arguments: { $ref: `#/$defs/${prefix}root` }, defs };
  }
  return { arguments: args, defs };
}

/** A call as the model wrote it. */
export interface ParsedCall {
  name: string;
  /** The arguments object, as JSON text. */
  arguments: string;
}

/** A piece of parsed output: text for `content`, or a whole call. */
export type OutputPiece = { content: string; call?: undefined } | { call: ParsedCall; content?: undefined };

/**
 * Splits generated text into content and calls as it arrives. Text that could still be the
 * start of a call is held back; a call is given whole once its closing tag (or, for a forced
 * call, the end) arrives. A block that is not a well-formed call to one of the offered tools
 * is given back as content, as written. Whitespace around calls is dropped.
 */
export class ToolCallParser implements ReplyParser {
  private buffer = "";
  private inCall: boolean;
  /** The opening tag of the call being read, as the output wrote it ("" when the prompt did). */
  private opened: string;
  /** Whitespace held back: it is content only if more content follows. */
  private pendingSpace = "";
  /** Right after a call: the whitespace that follows it is not content. */
  private afterCall = false;
  calls = 0;

  constructor(
    private readonly format: HermesFormat,
    private readonly names: ReadonlySet<string>,
    /** The opening tag was already written (in the prompt): the output starts inside a call. */
    startsInCall = false,
  ) {
    this.inCall = startsInCall;
    this.opened = startsInCall ? "" : format.open;
  }

  push(text: string): OutputPiece[] {
    this.buffer += text;
    const out: OutputPiece[] = [];
    for (;;) {
      if (this.inCall) {
        const end = this.buffer.indexOf(this.format.close);
        if (end < 0) return out;
        this.endCall(this.buffer.slice(0, end), true, out);
        this.buffer = this.buffer.slice(end + this.format.close.length);
        continue;
      }
      const start = this.buffer.indexOf(this.format.open);
      if (start >= 0) {
        this.text(this.buffer.slice(0, start), out);
        this.pendingSpace = "";
        this.buffer = this.buffer.slice(start + this.format.open.length);
        this.inCall = true;
        this.opened = this.format.open;
        continue;
      }
      const keep = partialSuffix(this.buffer, this.format.open);
      this.text(this.buffer.slice(0, this.buffer.length - keep), out);
      this.buffer = this.buffer.slice(this.buffer.length - keep);
      return out;
    }
  }

  /** The generation ended: what is still held. */
  finish(): OutputPiece[] {
    const out: OutputPiece[] = [];
    if (this.inCall) this.endCall(this.buffer, false, out);
    else this.text(this.buffer, out);
    this.buffer = "";
    if (this.calls === 0 && this.pendingSpace) out.push({ content: this.pendingSpace });
    this.pendingSpace = "";
    return out;
  }

  private text(text: string, out: OutputPiece[]): void {
    if (text === "") return;
    let t = this.pendingSpace + text;
    if (this.afterCall) t = t.trimStart();
    const trimmed = t.trimEnd();
    this.pendingSpace = t.slice(trimmed.length);
    if (trimmed !== "") {
      out.push({ content: trimmed });
      this.afterCall = false;
    }
  }

  private endCall(body: string, closed: boolean, out: OutputPiece[]): void {
    this.inCall = false;
    const call = parseCall(body, this.names, this.format.argumentsKey);
    if (call) {
      this.calls++;
      this.pendingSpace = "";
      this.afterCall = true;
      out.push({ call });
    } else {
      this.text(this.opened + body + (closed ? this.format.close : ""), out);
    }
  }
}

/**
 * A reply in llama3-json: one call when the reply is a JSON object (after whitespace and the
 * optional prefix), else content. Text is held only while it may still be such a reply (nothing
 * but whitespace and a prefix of the prefix so far); once it is a call, all of it waits for the
 * end.
 */
export class JsonReplyParser implements ReplyParser {
  private buffer = "";
  private mode: "undecided" | "call" | "text";

  constructor(
    private readonly format: Llama3JsonFormat,
    private readonly names: ReadonlySet<string>,
    forced = false,
  ) {
    this.mode = forced ? "call" : "undecided";
  }

  push(text: string): OutputPiece[] {
    if (this.mode === "text") return text === "" ? [] : [{ content: text }];
    this.buffer += text;
    if (this.mode === "call") return [];
    const rest = this.buffer.trimStart();
    const body = rest.startsWith(this.format.prefix) ? rest.slice(this.format.prefix.length).trimStart() : rest;
    if (body.startsWith("{")) {
      this.mode = "call";
      return [];
    }
    if (body === "" || (body === rest && this.format.prefix.startsWith(rest))) return [];
    this.mode = "text";
    const out = this.buffer;
    this.buffer = "";
    return [{ content: out }];
  }

  finish(): OutputPiece[] {
    const held = this.buffer;
    this.buffer = "";
    if (this.mode === "call") {
      const body = held.trimStart();
      const json = body.startsWith(this.format.prefix) ? body.slice(this.format.prefix.length) : body;
      const call = parseCall(json.trim(), this.names, this.format.argumentsKey);
      if (call) return [{ call }];
    }
    return held === "" ? [] : [{ content: held }];
  }
}

/** `{"name": ..., "arguments": {...}}` (or `"parameters"`) naming an offered tool, or null. */
export function parseCall(body: string, names: ReadonlySet<string>, argumentsKey: "arguments" | "parameters" = "arguments"): ParsedCall | null {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { name, [argumentsKey]: args } = value as Record<string, unknown>;
  if (typeof name !== "string" || !names.has(name)) return null;
  if (typeof args !== "object" || args === null || Array.isArray(args)) return null;
  return { name, arguments: JSON.stringify(args) };
}

/** The length of the longest end of `text` that `tag` starts with (it may be a tag arriving). */
function partialSuffix(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}
