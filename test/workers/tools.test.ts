// Tool calls on /v1/chat/completions inside workerd, on a random-weight model with Qwen's real
// tokenizer and chat template (which takes tools and writes <tool_call> blocks). A random model
// never calls a tool of its own accord, so what is checked here end to end is: the tools reach
// the template, forced calls (tool_choice "required" or a function) always parse and validate
// against the function's parameters, streamed and not, tool results go back into the prompt,
// and every misuse is a 400 naming the field. Parsing what a model writes in "auto" mode is held
// in test/node/tools.test.ts.

import { beforeAll, describe, expect, it } from "vitest";
import { SCHEMAS, validationError } from "../support/schemas";
import { call, seed, sseEvents } from "./support";

beforeAll(async () => {
  await seed("aidreams");
  await seed("hf");
});

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather in a city (the forecast service's own words).",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 30 }, unit: { enum: ["c", "f"] } }, required: ["city"], additionalProperties: false },
  },
};
const lookup = {
  type: "function",
  function: { name: "lookup_person", description: "Find a person's record.", parameters: SCHEMAS.extraction },
};
// local $refs (and recursion) inside parameters: they must still resolve inside the call's schema
const tree = {
  type: "function",
  function: { name: "save_tree", parameters: { type: "object", properties: { root: { $ref: "#/$defs/node" } }, required: ["root"], additionalProperties: false, $defs: SCHEMAS.tree.$defs } },
};
const tools = [weather, lookup, tree];
const byName = new Map(tools.map((t) => [t.function.name, t.function.parameters as Record<string, unknown>]));
const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const base = { model: "tiny-qwen2", messages, tools, max_tokens: 160 };

async function chat(body: Record<string, unknown>): Promise<{ status: number; json: any }> {
  const res = await call("/v1/chat/completions", body);
  return { status: res.status, json: await res.json() };
}

async function streamed(body: Record<string, unknown>) {
  const events = await sseEvents(await call("/v1/chat/completions", { ...body, stream: true }));
  expect(events.at(-1)).toBe("[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const choices = chunks.flatMap((c) => c.choices);
  const calls: any[] = [];
  for (const c of choices) {
    for (const tc of c.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { id: tc.id, type: tc.type, function: { name: "", arguments: "" } };
      calls[tc.index].function.name += tc.function?.name ?? "";
      calls[tc.index].function.arguments += tc.function?.arguments ?? "";
    }
  }
  const content = choices.map((c) => c.delta?.content ?? "").join("");
  return { calls, content, finish: choices.at(-1).finish_reason };
}

function expectValidCall(call: any, allowed: string[]) {
  expect(call.type).toBe("function");
  expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
  expect(allowed).toContain(call.function.name);
  expect(typeof call.function.arguments).toBe("string");
  expect(validationError(byName.get(call.function.name)!, call.function.arguments)).toBeNull();
}

describe("forced tool calls always parse and validate", () => {
  it("a named function, across seeds and temperatures, streamed and not", async () => {
    for (const [name, seedValue, temperature] of [["get_weather", 1, 1], ["lookup_person", 2, 0.7], ["save_tree", 3, 1.3], ["get_weather", 4, 0]] as const) {
      const body = { ...base, tool_choice: { type: "function", function: { name } }, seed: seedValue, temperature };
      const { status, json } = await chat(body);
      expect(status, JSON.stringify(json)).toBe(200);
      const choice = json.choices[0];
      expect(choice.finish_reason).toBe("tool_calls");
      expect(choice.message.content).toBeNull();
      expect(choice.message.tool_calls).toHaveLength(1);
      expectValidCall(choice.message.tool_calls[0], [name]);
      const s = await streamed(body);
      expect(s.finish).toBe("tool_calls");
      expect(s.content).toBe("");
      expect(s.calls.map((c) => c.function)).toEqual([choice.message.tool_calls[0].function]);
    }
  });

  it('"required": one of the tools, each choice of n its own call', async () => {
    const { status, json } = await chat({ ...base, tool_choice: "required", n: 3, seed: 9, temperature: 1.2 });
    expect(status, JSON.stringify(json)).toBe(200);
    for (const choice of json.choices) {
      expect(choice.finish_reason).toBe("tool_calls");
      expectValidCall(choice.message.tool_calls[0], tools.map((t) => t.function.name));
    }
  });

  it("the prompt holds the tools as the template writes them, and the call is opened for the model", async () => {
    const { json } = await chat({ ...base, tool_choice: { type: "function", function: { name: "get_weather" } }, return_token_ids: true, max_tokens: 40 });
    const { json: plain } = await chat({ model: "tiny-qwen2", messages, max_tokens: 1, return_token_ids: true });
    const withTools = json.prompt_token_ids as number[];
    expect(withTools.length).toBeGreaterThan(plain.prompt_token_ids.length + 100);
    // Qwen's template opens a system turn listing the tools; the forced call ends the prompt with "<tool_call>\n"
    expect(withTools.slice(-2)).toEqual([151657, 198]);
    expect(withTools).toContain(151644);
  });

  it("arguments cut short by max_tokens: finish_reason length, no call", async () => {
    const { json } = await chat({ ...base, tool_choice: { type: "function", function: { name: "lookup_person" } }, max_tokens: 3, seed: 1 });
    expect(json.choices[0].finish_reason).toBe("length");
    expect(json.choices[0].message.tool_calls).toBeUndefined();
    expect(typeof json.choices[0].message.content).toBe("string");
  });
});

describe("auto and none", () => {
  it("auto: a reply without a call is content, finish_reason as usual", async () => {
    const { status, json } = await chat({ ...base, seed: 5, max_tokens: 12, logit_bias: { 151657: -100 } });
    expect(status).toBe(200);
    expect(json.choices[0].message.tool_calls).toBeUndefined();
    expect(typeof json.choices[0].message.content).toBe("string");
    expect(json.choices[0].finish_reason).not.toBe("tool_calls");
  });

  it("auto: an opened block that is not a call comes back as content, as written", async () => {
    // +100 on <tool_call>: the model writes only that token; the block never closes
    const { json } = await chat({ ...base, seed: 5, max_tokens: 3, logit_bias: { 151657: 100 } });
    expect(json.choices[0].message.content).toBe("<tool_call>".repeat(3));
    expect(json.choices[0].message.tool_calls).toBeUndefined();
    expect(json.choices[0].finish_reason).toBe("length");
    const s = await streamed({ ...base, seed: 5, max_tokens: 3, logit_bias: { 151657: 100 } });
    expect(s.content).toBe("<tool_call>".repeat(3));
  });

  it("parallel_tool_calls false: the reply ends where a call's block closes", async () => {
    // +100 on </tool_call>: the model writes only that token
    const bias = { logit_bias: { 151658: 100 }, max_tokens: 3, seed: 5 };
    const one = await chat({ ...base, ...bias, parallel_tool_calls: false });
    expect(one.json.choices[0].message.content).toBe("");
    expect(one.json.choices[0].finish_reason).toBe("stop");
    expect(one.json.usage.completion_tokens).toBe(1);
    const many = await chat({ ...base, ...bias });
    expect(many.json.choices[0].message.content).toBe("</tool_call>".repeat(3));
    expect(many.json.choices[0].finish_reason).toBe("length");
  });

  it("none: the tools are not shown to the model", async () => {
    const { json } = await chat({ ...base, tool_choice: "none", max_tokens: 1, return_token_ids: true });
    const { json: plain } = await chat({ model: "tiny-qwen2", messages, max_tokens: 1, return_token_ids: true });
    expect(json.prompt_token_ids).toEqual(plain.prompt_token_ids);
  });
});

describe("tool results go back to the model", () => {
  it("an assistant turn with tool_calls and a tool message render through the template", async () => {
    const history = [
      ...messages,
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: "18 C, sunny" },
    ];
    const { status, json } = await chat({ ...base, messages: history, max_tokens: 1, return_token_ids: true });
    expect(status, JSON.stringify(json)).toBe(200);
    // the prompt, decoded through a completion of zero tokens with echo
    const echo = (await (await call("/v1/completions", { model: "tiny-qwen2", prompt: json.prompt_token_ids, max_tokens: 0, echo: true })).json()) as any;
    const text: string = echo.choices[0].text;
    expect(text).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(text).toContain("<tool_response>\n18 C, sunny\n</tool_response>");
    expect(text).toContain(weather.function.description);
  });
});

describe("misuse is a 400 naming the field", () => {
  const cases: Array<[string, Record<string, unknown>, string, string?]> = [
    ["tools on a template without tool support", { ...base, model: "tiny-llama3" }, "tools", "tools_not_supported"],
    ["tools on a model without a chat template", { ...base, model: "aidreams260K" }, "model", "no_chat_template"],
    ["an empty tools list", { ...base, tools: [] }, "tools"],
    ["a tool that is not a function", { ...base, tools: [{ type: "retrieval" }] }, "tools[0].type"],
    ["a function name with spaces", { ...base, tools: [{ type: "function", function: { name: "get weather" } }] }, "tools[0].function.name"],
    ["two tools of one name", { ...base, tools: [weather, weather] }, "tools[1].function.name"],
    ["parameters not an object", { ...base, tools: [{ type: "function", function: { name: "f", parameters: [] } }] }, "tools[0].function.parameters"],
    ["tool_choice naming an unknown function", { ...base, tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice"],
    ["tool_choice of another spelling", { ...base, tool_choice: "any" }, "tool_choice"],
    ["tool_choice without tools", { model: "tiny-qwen2", messages, tool_choice: "required" }, "tool_choice"],
    ["parallel_tool_calls not a boolean", { ...base, parallel_tool_calls: "yes" }, "parallel_tool_calls"],
    [
      "a forced function whose parameters use a keyword structured output cannot enforce",
      { ...base, tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { x: { type: "string", pattern: "^a" } } } } }], tool_choice: "required" },
      "tools[0].function.parameters",
      "unsupported_schema",
    ],
    ["response_format with a forced call", { ...base, tool_choice: "required", response_format: { type: "json_object" } }, "response_format"],
    [
      "an assistant tool call whose arguments are not JSON",
      { ...base, messages: [...messages, { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "get_weather", arguments: "{city" } }] }] },
      "messages[1].tool_calls[0].function.arguments",
    ],
    ["a tool message without tool_call_id", { ...base, messages: [...messages, { role: "tool", content: "18 C" }] }, "messages[1].tool_call_id"],
    ["tool_calls on a user message", { ...base, messages: [{ role: "user", content: "x", tool_calls: [] }] }, "messages[0].tool_calls"],
  ];
  for (const [name, body, param, code] of cases) {
    it(name, async () => {
      const { status, json } = await chat(body);
      expect(status, JSON.stringify(json)).toBe(400);
      expect(json.error.param).toBe(param);
      if (code) expect(json.error.code).toBe(code);
    });
  }

  it("auto mode takes parameters forced calls could not enforce (nothing is constrained)", async () => {
    const { status } = await chat({ ...base, tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { x: { type: "string", pattern: "^a" } } } } }], max_tokens: 2 });
    expect(status).toBe(200);
  });
});

describe("Llama 3.1-style JSON calls (a template that answers results as ipython and asks for \"parameters\")", () => {
  // its context is 256 tokens: one tool
  const llama = { ...base, model: "tiny-llama3-tools", tools: [weather], max_tokens: 60 };

  it("a forced call is the whole reply, parses and validates, streamed and not", async () => {
    for (const [toolChoice, seedValue] of [[{ type: "function", function: { name: "get_weather" } }, 1], ["required", 2]] as const) {
      const name = "get_weather";
      const body = { ...llama, tool_choice: toolChoice, seed: seedValue, temperature: 1 };
      const { status, json } = await chat(body);
      expect(status, JSON.stringify(json)).toBe(200);
      const choice = json.choices[0];
      expect(choice.finish_reason).toBe("tool_calls");
      expect(choice.message.content).toBeNull();
      expectValidCall(choice.message.tool_calls[0], [name]);
      const s = await streamed(body);
      expect(s.calls.map((c) => c.function)).toEqual([choice.message.tool_calls[0].function]);
      expect(s.content).toBe("");
    }
  });

  it("the tools and earlier calls and results reach the prompt as the template writes them; no opening is added", async () => {
    const history = [
      ...messages,
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: "18 C, sunny" },
    ];
    const { status, json } = await chat({ ...llama, messages: history, tool_choice: "required", max_tokens: 20, return_token_ids: true });
    expect(status, JSON.stringify(json)).toBe(200);
    const echo = (await (await call("/v1/completions", { model: "tiny-llama3-tools", prompt: json.prompt_token_ids, max_tokens: 0, echo: true })).json()) as any;
    const text: string = echo.choices[0].text;
    expect(text).toContain(weather.function.description);
    expect(text).toContain('{"name": "get_weather", "parameters": {"city": "Paris"}}');
    expect(text).toContain("ipython");
    expect(text).toContain("18 C, sunny");
    // the prompt ends with the assistant header the template writes, nothing after it
    expect(text.endsWith("assistant\n\n")).toBe(true);
  });

  it("auto: a reply that is not a call is content", async () => {
    const { json } = await chat({ ...llama, seed: 3, max_tokens: 10, logit_bias: { 90: -100 } }); // 90: "{"
    expect(json.choices[0].message.tool_calls).toBeUndefined();
    expect(typeof json.choices[0].message.content).toBe("string");
  });
});
