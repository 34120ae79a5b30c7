// `tools`, `tool_choice` and `parallel_tool_calls` of a /v1/chat/completions body, and the
// `tool_calls` of assistant messages, checked field by field. The parameters of a tool that
// may be forced (tool_choice "required" or its name) are compiled here, so a schema outside
// the structured-output subset is a 400 naming the tool and the keyword before anything loads.

import { compileSchema, SchemaError } from "../runtime/constrain/schema";
import type { ToolFunction } from "../runtime/tools";
import { invalidRequest } from "./errors";

export type ToolChoice = "none" | "auto" | "required" | { name: string };

export interface ToolsRequest {
  tools: ToolFunction[];
  choice: ToolChoice;
  /** More than one call per reply (OpenAI's default: true). */
  parallel: boolean;
}

export const TOOL_LIMITS = { tools: 128, nameChars: 64 } as const;

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

type Body = Record<string, unknown>;

const isObject = (v: unknown): v is Body => typeof v === "object" && v !== null && !Array.isArray(v);

/** The request's tools, or null when it offers none. */
export function parseTools(body: Body): ToolsRequest | null {
  const { tools: rawTools, tool_choice: rawChoice, parallel_tool_calls: parallel } = body;
  if (parallel !== undefined && parallel !== null && typeof parallel !== "boolean") throw invalidRequest("'parallel_tool_calls' must be a boolean", "parallel_tool_calls");
  if (rawTools === undefined || rawTools === null) {
    if (rawChoice !== undefined && rawChoice !== null && rawChoice !== "none") throw invalidRequest("'tool_choice' needs 'tools'", "tool_choice");
    return null;
  }
  if (!Array.isArray(rawTools) || rawTools.length === 0) throw invalidRequest("'tools' must be a non-empty array of {\"type\": \"function\", \"function\": {...}}", "tools");
  if (rawTools.length > TOOL_LIMITS.tools) throw invalidRequest(`'tools' has ${rawTools.length} tools; the limit is ${TOOL_LIMITS.tools}`, "tools");
  const names = new Set<string>();
  const tools = rawTools.map((t, i): ToolFunction => {
    const where = `tools[${i}]`;
    if (!isObject(t)) throw invalidRequest(`'${where}' must be an object`, where);
    if (t.type !== "function") throw invalidRequest(`'${where}.type' must be "function"`, `${where}.type`);
    for (const k of Object.keys(t)) if (k !== "type" && k !== "function") throw invalidRequest(`Unrecognized field '${where}.${k}'`, `${where}.${k}`);
    const f = t.function;
    if (!isObject(f)) throw invalidRequest(`'${where}.function' must be an object`, `${where}.function`);
    for (const k of Object.keys(f)) {
      if (!["name", "description", "parameters", "strict"].includes(k)) throw invalidRequest(`Unrecognized field '${where}.function.${k}'`, `${where}.function.${k}`);
    }
    if (typeof f.name !== "string" || !NAME.test(f.name)) throw invalidRequest(`'${where}.function.name' must be 1 to 64 letters, digits, '_' or '-'`, `${where}.function.name`);
    if (names.has(f.name)) throw invalidRequest(`'${where}.function.name': two tools are named ${JSON.stringify(f.name)}`, `${where}.function.name`);
    names.add(f.name);
    if (f.description !== undefined && typeof f.description !== "string") throw invalidRequest(`'${where}.function.description' must be a string`, `${where}.function.description`);
    if (f.strict !== undefined && f.strict !== null && typeof f.strict !== "boolean") throw invalidRequest(`'${where}.function.strict' must be a boolean`, `${where}.function.strict`);
    if (f.parameters !== undefined && !isObject(f.parameters)) throw invalidRequest(`'${where}.function.parameters' must be a JSON Schema object`, `${where}.function.parameters`);
    const parameters = (f.parameters as Body | undefined) ?? { type: "object", properties: {} };
    return { name: f.name, ...(f.description !== undefined ? { description: f.description as string } : {}), parameters };
  });
  const choice = parseChoice(rawChoice, names);
  // Forced calls follow their parameters' schema: it must be one we can enforce.
  if (choice === "required" || typeof choice === "object") {
    tools.forEach((tool, i) => {
      if (typeof choice === "object" && choice.name !== tool.name) return;
      const param = `tools[${i}].function.parameters`;
      try {
        compileSchema(tool.parameters);
      } catch (e) {
        if (e instanceof SchemaError) throw invalidRequest(`'${param}': ${e.message}`, param, "unsupported_schema");
        throw e;
      }
    });
  }
  return { tools, choice, parallel: parallel !== false };
}

function parseChoice(raw: unknown, names: Set<string>): ToolChoice {
  if (raw === undefined || raw === null) return "auto";
  if (raw === "none" || raw === "auto" || raw === "required") return raw;
  if (isObject(raw) && raw.type === "function" && isObject(raw.function) && typeof raw.function.name === "string") {
    const name = raw.function.name;
    if (!names.has(name)) throw invalidRequest(`'tool_choice' names the function ${JSON.stringify(name)}, which is not among 'tools'`, "tool_choice");
    return { name };
  }
  throw invalidRequest(`'tool_choice' must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}`, "tool_choice");
}

/**
 * An assistant message's `tool_calls`, as templates read them: `arguments` parsed into an
 * object (Hugging Face templates write it with `tojson`), ids kept.
 */
export function parseMessageToolCalls(value: unknown, where: string): Array<{ id: string; type: "function"; function: { name: string; arguments: unknown } }> {
  if (!Array.isArray(value)) throw invalidRequest(`'${where}' must be an array`, where);
  return value.map((call, j) => {
    const at = `${where}[${j}]`;
    if (!isObject(call)) throw invalidRequest(`'${at}' must be an object`, at);
    if (typeof call.id !== "string") throw invalidRequest(`'${at}.id' must be a string`, `${at}.id`);
    if (call.type !== "function") throw invalidRequest(`'${at}.type' must be "function"`, `${at}.type`);
    const f = call.function;
    if (!isObject(f) || typeof f.name !== "string") throw invalidRequest(`'${at}.function' must be {"name": string, "arguments": string}`, `${at}.function`);
    if (typeof f.arguments !== "string") throw invalidRequest(`'${at}.function.arguments' must be a string (JSON)`, `${at}.function.arguments`);
    let args: unknown;
    try {
      args = JSON.parse(f.arguments);
    } catch {
      throw invalidRequest(`'${at}.function.arguments' is not valid JSON`, `${at}.function.arguments`);
    }
    return { id: call.id, type: "function", function: { name: f.name, arguments: args } };
  });
}
