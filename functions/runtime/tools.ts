// Tool calls, model-side: which chat templates take tools and in what format their models write
// a call, the JSON schema a forced call follows, and the parser that turns generated text into
// content and calls as it streams.
//
// One call format today, the one Qwen2.5/Qwen3 (and the Hermes-style templates that copied it)
// train on: a call is `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` after the
// assistant header, one block per call, and a template that takes tools says so by writing
// `<tool_call>` itself. A template that takes `tools` in another format is refused rather
// than guessed at.

/** A function the caller offers (OpenAI's `tools[].function`). */
export interface ToolFunction {
  name: string;
  description?: string;
  /** A JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

/** How a model writes a call. */
export interface ToolCallFormat {
  name: "hermes";
  /** What opens and closes one call. */
  open: string;
  close: string;
}

const HERMES: ToolCallFormat = { name: "hermes", open: "<tool_call>", close: "</tool_call>" };

/** Whether the template does anything with a `tools` variable. */
export function templateTakesTools(template: string): boolean {
  return /\btools\b/.test(template);
}

/** The call format of a template that takes tools, or null when it is not one we parse. */
export function toolCallFormat(template: string): ToolCallFormat | null {
  if (!templateTakesTools(template)) return null;
  return template.includes(HERMES.open) && template.includes(HERMES.close) ? HERMES : null;
}

/**
 * The schema of one call to one of `tools`: `{"name": <one of them>, "arguments": <its
 * parameters>}`, name first. Local `$ref`s inside each tool's parameters are moved under this
 * schema's `$defs` (prefixed per tool), so they still resolve.
 */
export function callSchema(tools: ToolFunction[]): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  const alts = tools.map((tool, i) => {
    const prefix = `tool${i}_`;
    const { arguments: args, defs: own } = relocateRefs(tool.parameters, prefix);
    Object.assign(defs, own);
    return {
      type: "object",
      properties: { name: { const: tool.name }, arguments: args },
      required: ["name", "arguments"],
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
export class ToolCallParser {
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
    private readonly format: ToolCallFormat,
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
    const call = parseCall(body, this.names);
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

/** `{"name": ..., "arguments": {...}}` naming an offered tool, or null. */
export function parseCall(body: string, names: ReadonlySet<string>): ParsedCall | null {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { name, arguments: args } = value as Record<string, unknown>;
  if (typeof name !== "string" || !names.has(name)) return null;
  if (typeof args !== "object" || args === null || Array.isArray(args)) return null;
  return { name, arguments: JSON.stringify(args) };
}

/** The length of the longest end of `text` that `tag` starts with (it may be a tag arriving). */
function partialSuffix(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}
