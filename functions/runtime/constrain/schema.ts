// JSON Schema (the subset structured output supports) -> a graph of value nodes the automaton
// walks. Every keyword is either enforced, an annotation (ignored by validators too), or
// refused with a SchemaError naming it: nothing is silently dropped.
//
// Supported: type (one or a list), properties, required, additionalProperties (false, true or a
// schema), enum, const, items, prefixItems, minItems, maxItems, minLength, maxLength, anyOf,
// oneOf (taken as anyOf: its branches should not overlap), minimum, maximum, local $ref
// ("#", "#/$defs/...", "#/definitions/..."), $defs / definitions. Values are written in a
// fixed form: enum and const values exactly as JSON.stringify writes them, declared object keys
// in the schema's order (as OpenAI's structured outputs write them; optional ones may be left
// out), undeclared keys (where allowed) without escapes, numbers without exponents when bounded.

export class SchemaError extends Error {
  constructor(
    message: string,
    /** JSON pointer of the offending place in the schema. */
    readonly path: string,
  ) {
    super(`${message} (at ${path || "#"})`);
  }
}

export interface ObjectAlt {
  kind: "object";
  /** Declared properties: key -> node, and each key's JSON-encoded bytes (quotes included). */
  props: Map<string, number>;
  keyBytes: Map<string, Uint8Array>;
  required: string[];
  /** Node of undeclared keys' values, or -1 when none may appear. */
  additional: number;
  /** Declared keys in the order they are written (the schema's), and each one's place in it. */
  order: string[];
  index: Map<string, number>;
  /** From place p, the last place a key may come from: the first required key at or after p. */
  reach: Int32Array;
  /** Place of the last required key (-1: none). */
  lastRequired: number;
}

export interface ArrayAlt {
  kind: "array";
  prefix: number[];
  /** Node of items past the prefix, or -1 when none may follow it. */
  items: number;
  minItems: number;
  maxItems: number;
}

export interface StringAlt {
  kind: "string";
  minLength: number;
  maxLength: number;
}

export interface NumberAlt {
  kind: "number";
  integer: boolean;
  minimum: number;
  maximum: number;
}

/** enum / const / true / false / null: the exact bytes of each allowed value. */
export interface LiteralAlt {
  kind: "literal";
  values: Uint8Array[];
}

/** While compiling only: the alternatives of another node ($ref, anyOf / oneOf branches). */
interface RefAlt {
  kind: "ref";
  node: number;
}

export type Alt = ObjectAlt | ArrayAlt | StringAlt | NumberAlt | LiteralAlt | RefAlt;

/** A value: any one of its alternatives. */
export interface ValueNode {
  alts: Alt[];
}

export interface CompiledSchema {
  nodes: ValueNode[];
  root: number;
}

/** Containers nested deeper than this are not generated (bounds recursive and free-form values). */
export const MAX_DEPTH = 16;

const ANNOTATIONS = new Set(["title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"]);
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"] as const;
type TypeName = (typeof TYPES)[number];
const KEYWORDS_BY_TYPE: Record<string, TypeName[]> = {
  properties: ["object"],
  required: ["object"],
  additionalProperties: ["object"],
  items: ["array"],
  prefixItems: ["array"],
  minItems: ["array"],
  maxItems: ["array"],
  minLength: ["string"],
  maxLength: ["string"],
  minimum: ["number", "integer"],
  maximum: ["number", "integer"],
};
const utf8 = new TextEncoder();

/** The schema for `{"type": "json_object"}`: any object. */
export const JSON_OBJECT_SCHEMA = { type: "object" };

/** Compiles a schema; throws SchemaError for anything outside the subset. */
export function compileSchema(schema: unknown): CompiledSchema {
  const nodes: ValueNode[] = [];
  const byObject = new Map<object, number>();
  let anyNode = -1;

  const fail = (message: string, path: string): never => {
    throw new SchemaError(message, path);
  };

  const resolveRef = (ref: unknown, path: string): { target: unknown; path: string } => {
    if (typeof ref !== "string") fail("'$ref' must be a string", path);
    const r = ref as string;
    if (r === "#") return { target: schema, path: "" };
    if (!r.startsWith("#/")) fail(`'$ref' ${JSON.stringify(r)} is not a local reference (only "#/..." is supported)`, path);
    let target: unknown = schema;
    for (const raw of r.slice(2).split("/")) {
      const part = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
      if (typeof target !== "object" || target === null || !(part in target)) fail(`'$ref' ${JSON.stringify(r)} does not resolve`, path);
      target = (target as Record<string, unknown>)[part];
    }
    return { target, path: r.slice(1) };
  };

  const any = (): number => {
    if (anyNode >= 0) return anyNode;
    anyNode = nodes.length;
    nodes.push({ alts: [] });
    nodes[anyNode].alts = [
      { kind: "object", props: new Map(), keyBytes: new Map(), required: [], additional: anyNode, order: [], index: new Map(), reach: Int32Array.of(-1), lastRequired: -1 },
      { kind: "array", prefix: [], items: anyNode, minItems: 0, maxItems: Infinity },
      { kind: "string", minLength: 0, maxLength: Infinity },
      { kind: "number", integer: false, minimum: -Infinity, maximum: Infinity },
      { kind: "literal", values: ["true", "false", "null"].map((v) => utf8.encode(v)) },
    ];
    return anyNode;
  };

  const nonNegative = (s: Record<string, unknown>, key: string, path: string, fallback: number): number => {
    const v = s[key];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) fail(`'${key}' must be a non-negative integer`, `${path}/${key}`);
    return v as number;
  };

  const compile = (s: unknown, path: string, refDepth = 0): number => {
    if (s === true) return any();
    if (s === false) fail("the schema false allows no value", path);
    if (typeof s !== "object" || s === null || Array.isArray(s)) fail("a schema must be an object or a boolean", path);
    const known = byObject.get(s as object);
    if (known !== undefined) return known;
    const o = s as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => !ANNOTATIONS.has(k));
    if (keys.length === 0) {
      byObject.set(o, any());
      return any();
    }
    const id = nodes.length;
    nodes.push({ alts: [] });
    byObject.set(o, id);
    nodes[id].alts = alternatives(o, path, refDepth);
    return id;
  };

  const alternatives = (o: Record<string, unknown>, path: string, refDepth: number): Alt[] => {
    for (const k of Object.keys(o)) {
      if (ANNOTATIONS.has(k) || k === "type" || k === "enum" || k === "const" || k === "anyOf" || k === "oneOf" || k === "$ref" || k in KEYWORDS_BY_TYPE) continue;
      fail(`the JSON Schema keyword '${k}' is not supported in structured output`, `${path}/${k}`);
    }
    const sets = ["enum", "const", "anyOf", "oneOf", "$ref"].filter((k) => k in o);
    if (sets.length > 1) fail(`'${sets[0]}' and '${sets[1]}' together are not supported`, path);
    const constraints = Object.keys(o).filter((k) => k in KEYWORDS_BY_TYPE);
    if (sets.length === 1) {
      const k = sets[0];
      if (constraints.length > 0) fail(`'${constraints[0]}' beside '${k}' is not supported`, `${path}/${constraints[0]}`);
      if (k === "$ref") {
        if ("type" in o) fail("'type' beside '$ref' is not supported", `${path}/type`);
        if (refDepth > 64) fail("'$ref' chain too long", path);
        const { target, path: p } = resolveRef(o.$ref, `${path}/$ref`);
        return [{ kind: "ref", node: compile(target, p, refDepth + 1) }];
      }
      if (k === "anyOf" || k === "oneOf") {
        if ("type" in o) fail(`'type' beside '${k}' is not supported (put it in each branch)`, `${path}/type`);
        const branches = o[k];
        if (!Array.isArray(branches) || branches.length === 0) fail(`'${k}' must be a non-empty array of schemas`, `${path}/${k}`);
        return (branches as unknown[]).map((b, i) => ({ kind: "ref", node: compile(b, `${path}/${k}/${i}`, refDepth) }));
      }
      const values = k === "const" ? [o.const] : o.enum;
      if (!Array.isArray(values) || values.length === 0) fail("'enum' must be a non-empty array", `${path}/enum`);
      const types = typeList(o, path);
      const kept = (values as unknown[]).filter((v) => types === null || types.includes(jsonType(v)) || (types.includes("number") && jsonType(v) === "integer"));
      if (kept.length === 0) fail(`no '${k}' value has the schema's 'type'`, `${path}/${k}`);
      return [{ kind: "literal", values: [...new Set(kept.map((v) => JSON.stringify(v)))].map((t) => utf8.encode(t)) }];
    }
    const types = typeList(o, path) ?? inferTypes(constraints);
    for (const c of constraints) {
      if (!KEYWORDS_BY_TYPE[c].some((t) => types.includes(t))) fail(`'${c}' does not apply to type ${types.join(", ")}`, `${path}/${c}`);
    }
    const alts: Alt[] = [];
    const literals: string[] = [];
    for (const t of types) {
      if (t === "boolean") literals.push("true", "false");
      else if (t === "null") literals.push("null");
      else if (t === "string") {
        const minLength = nonNegative(o, "minLength", path, 0);
        const maxLength = nonNegative(o, "maxLength", path, Infinity);
        if (minLength > maxLength) fail("'minLength' is larger than 'maxLength'", `${path}/minLength`);
        alts.push({ kind: "string", minLength, maxLength });
      } else if (t === "number" || t === "integer") {
        if (types.includes("number") && t === "integer") continue; // number covers it
        const bound = (k: string) => {
          const v = o[k];
          if (v === undefined) return k === "minimum" ? -Infinity : Infinity;
          if (typeof v !== "number" || !Number.isFinite(v)) fail(`'${k}' must be a finite number`, `${path}/${k}`);
          if (Math.abs(v as number) > 1e15) fail(`'${k}' must be within ±1e15`, `${path}/${k}`);
          return v as number;
        };
        let minimum = bound("minimum");
        let maximum = bound("maximum");
        if (t === "integer") {
          minimum = Math.ceil(minimum);
          maximum = Math.floor(maximum);
        }
        if (minimum > maximum) fail(`no ${t} lies between 'minimum' and 'maximum'`, `${path}/minimum`);
        alts.push({ kind: "number", integer: t === "integer", minimum, maximum });
      } else if (t === "array") alts.push(arrayAlt(o, path, refDepth));
      else alts.push(objectAlt(o, path, refDepth));
    }
    if (literals.length > 0) alts.push({ kind: "literal", values: literals.map((v) => utf8.encode(v)) });
    return alts;
  };

  const arrayAlt = (o: Record<string, unknown>, path: string, refDepth: number): ArrayAlt => {
    const prefixRaw = o.prefixItems;
    if (prefixRaw !== undefined && !Array.isArray(prefixRaw)) fail("'prefixItems' must be an array of schemas", `${path}/prefixItems`);
    const prefix = ((prefixRaw as unknown[] | undefined) ?? []).map((s, i) => compile(s, `${path}/prefixItems/${i}`, refDepth));
    if (Array.isArray(o.items)) fail("'items' as an array is not supported (use 'prefixItems')", `${path}/items`);
    const items = o.items === false ? -1 : o.items === undefined ? any() : compile(o.items, `${path}/items`, refDepth);
    const minItems = nonNegative(o, "minItems", path, 0);
    let maxItems = nonNegative(o, "maxItems", path, Infinity);
    if (items < 0) maxItems = Math.min(maxItems, prefix.length);
    if (minItems > maxItems) fail("'minItems' is larger than the items allowed", `${path}/minItems`);
    return { kind: "array", prefix, items, minItems, maxItems };
  };

  const objectAlt = (o: Record<string, unknown>, path: string, refDepth: number): ObjectAlt => {
    const propsRaw = o.properties ?? {};
    if (typeof propsRaw !== "object" || propsRaw === null || Array.isArray(propsRaw)) fail("'properties' must be an object", `${path}/properties`);
    const props = new Map<string, number>();
    const keyBytes = new Map<string, Uint8Array>();
    for (const [k, v] of Object.entries(propsRaw as Record<string, unknown>)) {
      props.set(k, compile(v, `${path}/properties/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`, refDepth));
      keyBytes.set(k, utf8.encode(JSON.stringify(k)));
    }
    const add = o.additionalProperties;
    const additional = add === false ? -1 : add === undefined || add === true ? any() : compile(add, `${path}/additionalProperties`, refDepth);
    const requiredRaw = o.required ?? [];
    if (!Array.isArray(requiredRaw) || !requiredRaw.every((r) => typeof r === "string")) fail("'required' must be an array of strings", `${path}/required`);
    const required = [...new Set(requiredRaw as string[])];
    for (const r of required) {
      if (props.has(r)) continue;
      if (additional < 0) fail(`'required' names '${r}', which 'properties' does not declare and additionalProperties forbids`, `${path}/required`);
      props.set(r, additional); // required but undeclared: a declared key with the additional schema
      keyBytes.set(r, utf8.encode(JSON.stringify(r)));
    }
    const order = [...props.keys()];
    const index = new Map(order.map((k, i) => [k, i]));
    const reach = new Int32Array(order.length + 1);
    let lastRequired = -1;
    for (let i = order.length - 1, r = order.length - 1; i >= 0; i--) {
      if (required.includes(order[i])) r = i;
      reach[i] = r;
    }
    reach[order.length] = order.length - 1;
    for (let i = 0; i < order.length; i++) if (required.includes(order[i])) lastRequired = i;
    return { kind: "object", props, keyBytes, required, additional, order, index, reach, lastRequired };
  };

  const root = compile(schema, "");
  // $ref and anyOf branches point at other nodes while compiling (they may still be under way);
  // now every node gets its concrete alternatives. A cycle of references alone adds nothing.
  const flatten = (id: number, visiting: Set<number>): Alt[] => {
    if (visiting.has(id)) return [];
    visiting.add(id);
    const out = nodes[id].alts.flatMap((a) => (a.kind === "ref" ? flatten(a.node, visiting) : [a]));
    visiting.delete(id);
    return out;
  };
  const flat = nodes.map((_, id) => flatten(id, new Set()));
  nodes.forEach((n, id) => (n.alts = flat[id]));
  if (nodes[root].alts.length === 0) fail("the schema allows no value", "");
  return { nodes, root };
}

function typeList(o: Record<string, unknown>, path: string): TypeName[] | null {
  const t = o.type;
  if (t === undefined) return null;
  const list = Array.isArray(t) ? t : [t];
  if (list.length === 0) throw new SchemaError("'type' must not be empty", `${path}/type`);
  for (const x of list) {
    if (!TYPES.includes(x as TypeName)) throw new SchemaError(`'type' ${JSON.stringify(x)} is not a JSON Schema type`, `${path}/type`);
  }
  return [...new Set(list as TypeName[])];
}

/** Without 'type', the types its keywords speak of (none: any value). */
function inferTypes(constraints: string[]): TypeName[] {
  if (constraints.length === 0) return [...TYPES].filter((t) => t !== "integer");
  const set = new Set<TypeName>();
  for (const c of constraints) for (const t of KEYWORDS_BY_TYPE[c]) if (t !== "integer") set.add(t);
  return [...set];
}

function jsonType(v: unknown): TypeName {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v as TypeName;
}
