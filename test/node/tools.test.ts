// Tool calls, model-side: the parser that splits what a model writes into content and calls
// (however the text is cut into tokens), and the schema a forced call follows (ajv holds it to
// the tools' own parameter schemas, local $refs included).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileSchema } from "../../functions/runtime/constrain/schema";
import { callSchema, templateTakesTools, toolCallFormat, toolCallParser, ToolCallParser, type OutputPiece, type ToolCallFormat } from "../../functions/runtime/tools";
import { LLAMA31_STYLE_TEMPLATE } from "../support/chat-templates";
import { SCHEMAS, validationError } from "../support/schemas";
import { familyTokenizerObjects } from "../support/hf-fixtures";

const format = toolCallFormat("{% if tools %}<tool_call></tool_call>{% endif %}") as Extract<ToolCallFormat, { name: "hermes" }>;
const names = new Set(["get_weather", "add"]);

/** The text cut at `cuts`, pushed piece by piece (a reply in `fmt`); content joined, calls listed. */
function parse(text: string, cuts: number[] = [], forced = false, fmt: ToolCallFormat = format) {
  const parser = toolCallParser(fmt, names, forced);
  const pieces: OutputPiece[] = [];
  let from = 0;
  for (const at of [...cuts].sort((a, b) => a - b)) {
    pieces.push(...parser.push(text.slice(from, at)));
    from = at;
  }
  pieces.push(...parser.push(text.slice(from)), ...parser.finish());
  return { content: pieces.map((p) => p.content ?? "").join(""), calls: pieces.flatMap((p) => (p.call ? [p.call] : [])) };
}

const CASES: Array<[string, string, Array<{ name: string; arguments: string }>, string]> = [
  ["plain text", "Hello, world.\n", [], "Hello, world.\n"],
  ["one call", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', [{ name: "get_weather", arguments: '{"city":"Paris"}' }], ""],
  [
    "text, then two calls",
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>\n',
    [{ name: "get_weather", arguments: '{"city":"Oslo"}' }, { name: "add", arguments: '{"a":1,"b":2}' }],
    "Let me check.",
  ],
  ["a block naming no offered tool is content", '<tool_call>\n{"name": "rm", "arguments": {}}\n</tool_call>', [], '<tool_call>\n{"name": "rm", "arguments": {}}\n</tool_call>'],
  ["a block that is not JSON is content", "<tool_call>\nget_weather(Paris)\n</tool_call> ok", [], "<tool_call>\nget_weather(Paris)\n</tool_call> ok"],
  ["arguments must be an object", '<tool_call>{"name": "add", "arguments": "1,2"}</tool_call>', [], '<tool_call>{"name": "add", "arguments": "1,2"}</tool_call>'],
  ["a block never closed is content", '<tool_call>\n{"name": "add", "arguments": {"a"', [], '<tool_call>\n{"name": "add", "arguments": {"a"'],
  ["something like a tag is content", "a <tool that calls> b <tool_cal", [], "a <tool that calls> b <tool_cal"],
  ["text after a call", '<tool_call>{"name": "add", "arguments": {}}</tool_call>\n\nDone.', [{ name: "add", arguments: "{}" }], "Done."],
];

describe("ToolCallParser", () => {
  it.each(CASES)("%s", (_, text, calls, content) => {
    expect(parse(text)).toEqual({ content, calls });
  });

  it("gives the same content and calls however the text is cut into pieces", () => {
    fc.assert(
      fc.property(fc.constantFrom(...CASES), fc.array(fc.nat(), { maxLength: 12 }), ([, text, calls, content], raw) => {
        expect(parse(text, raw.map((n) => n % (text.length + 1)))).toEqual({ content, calls });
      }),
      { numRuns: 600 },
    );
  });

  it("holds back only what may still become a tag: content streams as it comes", () => {
    const parser = new ToolCallParser(format, names);
    expect(parser.push("Hello <")).toEqual([{ content: "Hello" }]);
    expect(parser.push("b>")).toEqual([{ content: " <b>" }]);
    expect(parser.push(" <tool_")).toEqual([]);
    expect(parser.push("x")).toEqual([{ content: " <tool_x" }]);
  });

  it("a forced call: the output starts inside the call, which ends with the output", () => {
    expect(parse('{"name": "get_weather", "arguments": {"city": "Rome"}}', [5, 20], true)).toEqual({ content: "", calls: [{ name: "get_weather", arguments: '{"city":"Rome"}' }] });
    // cut short: what was written comes back as content, without a tag the model never wrote
    expect(parse('{"name": "get_weather", "argu', [], true)).toEqual({ content: '{"name": "get_weather", "argu', calls: [] });
  });
});

describe("callSchema", () => {
  const tools = [
    { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false } },
    { name: "save_tree", parameters: { type: "object", properties: { root: { $ref: "#/$defs/node" } }, required: ["root"], $defs: (SCHEMAS.tree as any).$defs } },
    { name: "nest", parameters: { type: "object", properties: { inner: { $ref: "#" } }, additionalProperties: false } },
  ];
  const schema = callSchema(tools);

  it("compiles, and accepts exactly the calls the tools' own schemas accept", () => {
    expect(() => compileSchema(schema)).not.toThrow();
    const ok = [
      { name: "get_weather", arguments: { city: "Paris" } },
      { name: "save_tree", arguments: { root: { value: 1, children: [{ value: 2, children: [] }] } } },
      { name: "nest", arguments: { inner: { inner: {} } } },
    ];
    for (const call of ok) {
      expect(validationError(schema, JSON.stringify(call))).toBeNull();
      const own = tools.find((t) => t.name === call.name)!.parameters;
      expect(validationError(own, JSON.stringify(call.arguments))).toBeNull();
    }
    const bad = [
      { name: "get_weather", arguments: { town: "Paris" } },
      { name: "other", arguments: {} },
      { name: "save_tree", arguments: { root: { value: "x" } } },
      { name: "nest", arguments: { inner: { other: 1 } } },
      { name: "get_weather" },
    ];
    for (const call of bad) expect(validationError(schema, JSON.stringify(call)), JSON.stringify(call)).not.toBeNull();
  });
});

describe("which templates take tools", () => {
  it("Qwen's template takes tools in <tool_call> blocks; Llama 3's takes none", () => {
    const qwen = familyTokenizerObjects("qwen").tokenizerConfig.chat_template as string;
    const llama3 = familyTokenizerObjects("llama3").tokenizerConfig.chat_template as string;
    expect(toolCallFormat(qwen)).toEqual(format);
    expect(templateTakesTools(llama3)).toBe(false);
    expect(toolCallFormat(llama3)).toBeNull();
    // a template that takes tools in some other format is not guessed at
    expect(toolCallFormat("{% for t in tools %}{{ t | tojson }}{% endfor %}")).toBeNull();
  });
});

describe("Llama 3.1's JSON calls (llama3-json)", () => {
  const llama = toolCallFormat(LLAMA31_STYLE_TEMPLATE)!;
  const run = (text: string, cuts: number[] = [], forced = false) => parse(text, cuts, forced, llama);
  const JSON_CASES: Array<[string, string, Array<{ name: string; arguments: string }>, string]> = [
    ["a reply that is a call", '{"name": "get_weather", "parameters": {"city": "Paris"}}', [{ name: "get_weather", arguments: '{"city":"Paris"}' }], ""],
    ["after <|python_tag|> and whitespace", '\n<|python_tag|>{"name": "add", "parameters": {"a": 1, "b": 2}}', [{ name: "add", arguments: '{"a":1,"b":2}' }], ""],
    ["text", "It is sunny in Paris.", [], "It is sunny in Paris."],
    ["text that starts like the prefix", "<|python is not here", [], "<|python is not here"],
    ["JSON that is not a call", '{"city": "Paris"}', [], '{"city": "Paris"}'],
    ["a call with \"arguments\" instead", '{"name": "add", "arguments": {}}', [], '{"name": "add", "arguments": {}}'],
  ];

  it("is what a template that answers results as ipython and asks for \"parameters\" writes", () => {
    expect(llama).toMatchObject({ name: "llama3-json", argumentsKey: "parameters" });
  });

  it.each(JSON_CASES)("%s", (_, text, calls, content) => {
    expect(run(text)).toEqual({ content, calls });
  });

  it("gives the same content and calls however the text is cut into pieces", () => {
    fc.assert(
      fc.property(fc.constantFrom(...JSON_CASES), fc.array(fc.nat(), { maxLength: 10 }), ([, text, calls, content], raw) => {
        expect(run(text, raw.map((n) => n % (text.length + 1)))).toEqual({ content, calls });
      }),
      { numRuns: 400 },
    );
  });

  it("streams text at once once it cannot be a call; a forced call needs no opening", () => {
    const parser = toolCallParser(llama, names, false);
    expect(parser.push("  ")).toEqual([]);
    expect(parser.push("Sure")).toEqual([{ content: "  Sure" }]);
    expect(parser.push(", here")).toEqual([{ content: ", here" }]);
    expect(run('{"name": "add", "parameters": {}}', [3], true).calls).toEqual([{ name: "add", arguments: "{}" }]);
  });

  it("a forced call's schema uses \"parameters\"", () => {
    const schema = callSchema([{ name: "add", parameters: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] } }], "parameters");
    expect(() => compileSchema(schema)).not.toThrow();
    expect(validationError(schema, '{"name": "add", "parameters": {"a": 1}}')).toBeNull();
    expect(validationError(schema, '{"name": "add", "arguments": {"a": 1}}')).not.toBeNull();
  });
});
