// The schema compiler and the byte-level automaton of structured output: schemas outside the
// subset are refused naming the keyword; random walks over the bytes the automaton allows always
// end in JSON that the schema validates (ajv); known good texts are accepted and known bad ones
// refused at the byte where they go wrong.

import { describe, expect, it } from "vitest";
import { JsonAutomaton, type State } from "../../functions/runtime/constrain/automaton";
import { compileSchema, SchemaError } from "../../functions/runtime/constrain/schema";
import { XorShift64Star } from "../../functions/runtime/sampler";
import { SCHEMAS, validationError } from "../support/schemas";

const enc = new TextEncoder();

function feed(a: JsonAutomaton, text: string): { state: State; failedAt: number } {
  let s = a.initial();
  const bytes = enc.encode(text);
  for (let i = 0; i < bytes.length; i++) {
    const next = a.step(s, bytes[i]);
    if (next.length === 0) return { state: s, failedAt: i };
    s = next;
  }
  return { state: s, failedAt: -1 };
}

/** A random walk over allowed bytes; after `soft` bytes it heads for the end by minRest. */
function randomWalk(a: JsonAutomaton, rng: XorShift64Star, soft: number): string {
  let s = a.initial();
  const out: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const options: Array<[number, State]> = [];
    for (let b = 0; b < 256; b++) {
      const n = a.step(s, b);
      if (n.length > 0) options.push([b, n]);
    }
    if (a.canEnd(s) && (options.length === 0 || rng.nextF32() < (out.length > soft ? 1 : 0.1))) break;
    expect(options.length, `a dead end after ${JSON.stringify(new TextDecoder().decode(Uint8Array.from(out)))}`).toBeGreaterThan(0);
    let pick: [number, State];
    if (out.length > soft) {
      const best = Math.min(...options.map(([, n]) => a.minRest(n)));
      const near = options.filter(([, n]) => a.minRest(n) === best);
      pick = near[rng.nextU32() % near.length];
    } else {
      // favour printable bytes so texts look like JSON, but try everything
      const printable = options.filter(([b]) => b >= 0x20 && b < 0x7f);
      const pool = printable.length > 0 && rng.nextF32() < 0.9 ? printable : options;
      pick = pool[rng.nextU32() % pool.length];
    }
    out.push(pick[0]);
    s = pick[1];
  }
  expect(a.canEnd(s)).toBe(true);
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Uint8Array.from(out));
}

describe("schema compiler", () => {
  it.each([
    [{ type: "string", pattern: "a+" }, "pattern"],
    [{ type: "string", format: "email" }, "format"],
    [{ type: "object", properties: { a: { type: "string", minLength: 1, foo: 2 } } }, "foo"],
    [{ type: "array", uniqueItems: true }, "uniqueItems"],
    [{ type: "number", multipleOf: 2 }, "multipleOf"],
    [{ type: "number", exclusiveMinimum: 0 }, "exclusiveMinimum"],
    [{ not: { type: "string" } }, "not"],
    [{ allOf: [{ type: "string" }] }, "allOf"],
    [{ type: "object", minProperties: 1 }, "minProperties"],
    [{ type: "object", patternProperties: {} }, "patternProperties"],
    [{ $ref: "https://example.com/s.json" }, "$ref"],
    [{ $ref: "#/$defs/missing" }, "$ref"],
    [{ type: "strin" }, "type"],
    [{ type: "string", minLength: 5, maxLength: 2 }, "minLength"],
    [{ type: "integer", minimum: 1.2, maximum: 1.8 }, "minimum"],
    [{ type: "string", minimum: 3 }, "minimum"],
    [{ type: "object", required: ["a"], additionalProperties: false }, "required"],
    [false, "false"],
  ])("refuses %j naming '%s'", (schema, keyword) => {
    expect(() => compileSchema(schema)).toThrow(SchemaError);
    expect(() => compileSchema(schema)).toThrow(keyword);
  });

  it("compiles every test schema", () => {
    for (const schema of Object.values(SCHEMAS)) expect(compileSchema(schema).nodes.length).toBeGreaterThan(0);
  });
});

describe("automaton", () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`${name}: random walks over the allowed bytes end in valid JSON`, () => {
      const a = new JsonAutomaton(compileSchema(schema));
      for (let seed = 0; seed < 40; seed++) {
        const text = randomWalk(a, new XorShift64Star(seed + 1), seed % 2 ? 60 : 15);
        expect(validationError(schema, text)).toBeNull();
      }
    });
  }

  it("accepts valid texts whole (whitespace included) and refuses invalid ones where they go wrong", () => {
    const a = new JsonAutomaton(compileSchema(SCHEMAS.extraction));
    const good = ['{"name": "Ann", "age": 41}', '{\n  "name": "",\n  "age": 0,\n  "tags": ["x", "y"]\n}', '{"name":"\\u00e9\\n","age":120,"email":"a@b"}'];
    for (const t of good) {
      const { state, failedAt } = feed(a, t);
      expect(failedAt, t).toBe(-1);
      expect(a.canEnd(state), t).toBe(true);
    }
    const bad: Array<[string, number]> = [
      ['{"name": "Ann", "age": 121}', 25], // past maximum: "12" can still be 12, "121" cannot
      ['{"name": "Ann", "age": -1}', 24], // "-0" is 0, so "-" may come
      ['{"name": "Ann", "name": "Bo"}', 17], // a key twice
      ['{"nom": "Ann"}', 3],
      ['{"age": 3}', 2], // keys in the schema's order: the required name first
      ['{"name": "A", "age": 3}', -1],
      ['{"name": "A", "age": 3.5', 22],
      ['{"name": "A", "age": 3, "tags": [], "email": "x"}', 34], // email comes before tags: after tags no key is left
      ['{"name": "A"}', 12], // "}" before the required age
      ['{"name": "\\ud800"}', 13], // a lone surrogate
      ['{"name": "a\u0001"}', 11],
      ['{"name": "", "age": 1, "tags": ["a", "b", "c", "d"]', 45], // no comma after the third of maxItems 3
      ['{"name": "Ann", "age": 3} x', 25], // nothing after the value
    ];
    for (const [t, at] of bad) expect(feed(a, t).failedAt, t).toBe(at);
  });

  it("numbers: bounds, leading zeros, exponents, where a number may end", () => {
    const int = new JsonAutomaton(compileSchema({ type: "integer", minimum: -20, maximum: 300 }));
    for (const t of ["0", "-20", "300", "-0", "7", "299"]) expect(int.canEnd(feed(int, t).state) && feed(int, t).failedAt === -1, t).toBe(true);
    for (const t of ["01", "301", "-21", "1.0", "1e2", "3000"]) expect(feed(int, t).failedAt, t).toBeGreaterThanOrEqual(0);
    const any = new JsonAutomaton(compileSchema({ type: "number" }));
    for (const t of ["1e5", "-0.25E-3", "12.5", "0"]) expect(any.canEnd(feed(any, t).state), t).toBe(true);
    for (const t of ["1.", "-", "1e", "1e+"]) expect(any.canEnd(feed(any, t).state), t).toBe(false);
  });

  it("minRest is the length of the shortest completion", () => {
    const a = new JsonAutomaton(compileSchema(SCHEMAS.extraction));
    expect(a.minRest(a.initial())).toBe('{"name":"","age":0}'.length);
    expect(a.minRest(feed(a, '{"name": "Ann"').state)).toBe(',"age":0}'.length);
    const r = new JsonAutomaton(compileSchema(SCHEMAS.records));
    expect(r.minRest(r.initial())).toBe('[{"id":0,"ok":true}]'.length);
  });
});
