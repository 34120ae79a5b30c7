// JSON Schemas the structured-output tests generate against (each within the supported subset),
// and a validator for them (ajv, JSON Schema 2020-12).

import Ajv2020 from "ajv/dist/2020.js";

export const SCHEMAS: Record<string, Record<string, unknown>> = {
  extraction: {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 20 },
      age: { type: "integer", minimum: 0, maximum: 120 },
      email: { type: "string" },
      tags: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 3 },
    },
    required: ["name", "age"],
    additionalProperties: false,
  },
  classification: {
    type: "object",
    properties: { label: { enum: ["positive", "negative", "neutral"] }, confidence: { type: "number", minimum: 0, maximum: 1 } },
    required: ["label", "confidence"],
    additionalProperties: false,
  },
  enumRoot: { enum: ["a", 1, null, true, { x: [1, 2] }, 12, "ab"] },
  anyOf: { anyOf: [{ type: "string", minLength: 2 }, { type: "integer", minimum: -5, maximum: 5 }, { type: "null" }] },
  tree: {
    $ref: "#/$defs/node",
    $defs: {
      node: {
        type: "object",
        properties: { value: { type: "integer" }, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } },
        required: ["value"],
        additionalProperties: false,
      },
    },
  },
  tuple: { type: "array", prefixItems: [{ type: "string" }, { type: "number" }, { type: "boolean" }], items: false, minItems: 2 },
  anyObject: { type: "object" },
  typeList: { type: ["string", "null", "number"] },
  unicode: {
    type: "object",
    properties: { 'naïve "q"': { const: "é😀" }, n: { type: "string", minLength: 1, maxLength: 3 } },
    required: ['naïve "q"', "n"],
    additionalProperties: false,
  },
  records: {
    type: "array",
    items: { type: "object", properties: { id: { type: "integer" }, ok: { type: "boolean" } }, required: ["id", "ok"], additionalProperties: false },
    minItems: 1,
    maxItems: 4,
  },
  boundedNumber: { type: "number", minimum: -2.5, maximum: 3.75 },
  shortString: { type: "string", minLength: 3, maxLength: 5 },
  tagged: {
    oneOf: [
      { type: "object", properties: { kind: { const: "a" }, x: { type: "integer" } }, required: ["kind", "x"], additionalProperties: false },
      { type: "object", properties: { kind: { const: "b" }, y: { type: "string", maxLength: 10 } }, required: ["kind", "y"], additionalProperties: false },
    ],
  },
  openObject: { type: "object", properties: { id: { type: "integer", minimum: 1, maximum: 9 } }, required: ["id"], additionalProperties: { type: "boolean" } },
};

const ajv = new Ajv2020({ strict: false, allErrors: true });

/** Parses and validates; returns the reason it fails, or null. */
export function validationError(schema: Record<string, unknown>, text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}: ${JSON.stringify(text)}`;
  }
  const validate = ajv.compile(schema);
  return validate(value) ? null : `${ajv.errorsText(validate.errors)}: ${JSON.stringify(text)}`;
}
