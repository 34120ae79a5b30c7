// `response_format` on both completion routes: {"type": "text"} (the default),
// {"type": "json_object"} (any JSON object), or {"type": "json_schema", "json_schema": {"name",
// "schema", "strict", "description"}} (the schema may also stand directly under json_schema).
// The schema is compiled here, once per distinct schema in this isolate; anything outside the
// supported subset is a 400 naming the keyword and where it is.

import { compileSchema, JSON_OBJECT_SCHEMA, SchemaError, type CompiledSchema } from "../runtime/constrain/schema";
import { invalidRequest } from "./errors";

export interface ResponseFormat {
  /** Names the schema in caches (its JSON text). */
  key: string;
  schema: CompiledSchema;
}

/** Distinct schemas compiled in this isolate, least recently used dropped first. */
const COMPILED_SCHEMAS = 64;
const compiled = new Map<string, CompiledSchema>();

export function parseResponseFormat(value: unknown): ResponseFormat | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) throw invalidRequest("'response_format' must be an object", "response_format");
  const rf = value as Record<string, unknown>;
  const type = rf.type;
  const allowed = type === "json_schema" ? ["type", "json_schema"] : ["type"];
  for (const k of Object.keys(rf)) {
    if (!allowed.includes(k)) throw invalidRequest(`'response_format.${k}' is not a field of a ${JSON.stringify(type)} response format`, `response_format.${k}`);
  }
  if (type === "text") return null;
  if (type === "json_object") return compile(JSON_OBJECT_SCHEMA, "response_format");
  if (type !== "json_schema") throw invalidRequest("'response_format.type' must be one of text, json_object, json_schema", "response_format.type");
  const js = rf.json_schema;
  if (typeof js !== "object" || js === null || Array.isArray(js)) throw invalidRequest("'response_format.json_schema' must be an object", "response_format.json_schema");
  const j = js as Record<string, unknown>;
  if (!("schema" in j)) return compile(j, "response_format.json_schema"); // the schema itself
  for (const k of Object.keys(j)) {
    if (!["name", "schema", "strict", "description"].includes(k)) throw invalidRequest(`Unrecognized field 'response_format.json_schema.${k}'`, `response_format.json_schema.${k}`);
  }
  if (j.name !== undefined && (typeof j.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(j.name))) {
    throw invalidRequest("'response_format.json_schema.name' must be 1 to 64 letters, digits, '_' or '-'", "response_format.json_schema.name");
  }
  if (j.strict !== undefined && j.strict !== null && typeof j.strict !== "boolean") throw invalidRequest("'response_format.json_schema.strict' must be a boolean", "response_format.json_schema.strict");
  if (j.description !== undefined && typeof j.description !== "string") throw invalidRequest("'response_format.json_schema.description' must be a string", "response_format.json_schema.description");
  return compile(j.schema, "response_format.json_schema.schema");
}

/** A schema compiled (or found compiled) for structured output; a SchemaError is a 400 naming `param`. */
export function compileFormat(schema: unknown, param: string): ResponseFormat {
  return compile(schema, param);
}

function compile(schema: unknown, param: string): ResponseFormat {
  const key = JSON.stringify(schema);
  let c = compiled.get(key);
  if (c) {
    compiled.delete(key);
  } else {
    try {
      c = compileSchema(schema);
    } catch (e) {
      if (e instanceof SchemaError) throw invalidRequest(`'${param}': ${e.message}`, param, "unsupported_schema");
      throw e;
    }
    if (compiled.size >= COMPILED_SCHEMAS) compiled.delete(compiled.keys().next().value!);
  }
  compiled.set(key, c);
  return { key, schema: c };
}
