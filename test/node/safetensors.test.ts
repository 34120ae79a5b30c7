import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { f16BitsToF32 } from "../../kernels/quant";
import { writeSafetensorsShards } from "../../scripts/import/hf-writer";
import {
  bf16BitsToF32,
  encodeSafetensors,
  f32ToBf16Bits,
  roundToDtype,
  SafetensorsFile,
  SafetensorsModel,
} from "../../scripts/import/safetensors";

const tmp = mkdtempSync(join(tmpdir(), "edgeinfer-st-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A header + buffer built by hand, independent of encodeSafetensors. */
function handMade(header: unknown, data: Uint8Array, pad = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const values = Float32Array.from([1, -2.5, 3.140625, 0, -0, 65504, 1e-8, -7.75]);

describe("safetensors reader", () => {
  it("reads a hand-made file: F32, F16 and BF16 bytes, __metadata__, header padding", () => {
    const f32 = new Uint8Array(values.buffer.slice(0));
    const f16 = new Uint8Array(4);
    new DataView(f16.buffer).setUint16(0, 0x3c00, true); // 1.0
    new DataView(f16.buffer).setUint16(2, 0xc100, true); // -2.5
    const bf16 = new Uint8Array(4);
    new DataView(bf16.buffer).setUint16(0, 0x4049, true); // 3.140625
    new DataView(bf16.buffer).setUint16(2, 0xbf80, true); // -1
    const data = new Uint8Array([...f32, ...f16, ...bf16]);
    const bytes = handMade(
      {
        __metadata__: { format: "pt" },
        a: { dtype: "F32", shape: [2, 4], data_offsets: [0, 32] },
        b: { dtype: "F16", shape: [2], data_offsets: [32, 36] },
        c: { dtype: "BF16", shape: [1, 2], data_offsets: [36, 40] },
      },
      data,
      5,
    );
    const f = SafetensorsFile.fromBytes(bytes, "hand.safetensors");
    expect(f.metadata).toEqual({ format: "pt" });
    expect(f.names().sort()).toEqual(["a", "b", "c"]);
    expect(f.info("a")).toEqual({ name: "a", dtype: "F32", shape: [2, 4], dataOffsets: [0, 32] });
    expect(Array.from(f.readF32("a"))).toEqual(Array.from(values));
    expect(Array.from(f.readF32("b"))).toEqual([1, -2.5]);
    expect(Array.from(f.readF32("c"))).toEqual([3.140625, -1]);
  });

  it("round-trips F32 exactly and F16 / BF16 to the correctly rounded values", () => {
    const rnd = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 3);
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const bytes = encodeSafetensors([{ name: "w", dtype, shape: [10, 100], data: rnd }], { k: "v" });
      const f = SafetensorsFile.fromBytes(bytes);
      expect(f.info("w").dtype).toBe(dtype);
      expect(f.metadata).toEqual({ k: "v" });
      const back = f.readF32("w");
      const want = roundToDtype(dtype, rnd);
      expect(Buffer.from(back.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      if (dtype === "F32") expect(Array.from(back)).toEqual(Array.from(rnd));
      else {
        // relative rounding error within half an ulp of the format
        const ulp = dtype === "F16" ? 2 ** -11 : 2 ** -8;
        for (let i = 0; i < rnd.length; i++) expect(Math.abs(back[i]! - rnd[i]!)).toBeLessThanOrEqual(Math.abs(rnd[i]!) * ulp + 2 ** -24);
      }
      // the data section starts 8-aligned
      expect(f.dataStart % 8).toBe(0);
    }
  });

  it("bf16 conversion rounds to nearest even and keeps NaN a NaN", () => {
    // 1 + 2^-8 is exactly halfway between two bf16 values: ties to even (1.0)
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8))).toBe(1);
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
    expect(bf16BitsToF32(f32ToBf16Bits(-Infinity))).toBe(-Infinity);
    expect(f16BitsToF32(0x3c00)).toBe(1);
  });

  it("reads lazily from a file by name", () => {
    const path = join(tmp, "lazy.safetensors");
    const big = new Float32Array(50_000).map((_, i) => i);
    writeFileSync(path, encodeSafetensors([
      { name: "first", dtype: "F32", shape: [50_000], data: big },
      { name: "second", dtype: "BF16", shape: [2, 2], data: [1, 2, 3, 4] },
    ]));
    const f = SafetensorsFile.open(path);
    try {
      expect(Array.from(f.readF32("second"))).toEqual([1, 2, 3, 4]);
      expect(f.readF32("first")[49_999]).toBe(49_999);
      expect(() => f.readF32("third")).toThrow(/missing tensor third/);
    } finally {
      f.close();
    }
  });

  it("reads a sharded checkpoint through model.safetensors.index.json", () => {
    const dir = join(tmp, "sharded");
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (let i = 0; i < 7; i++) tensors.set(`t${i}`, { shape: [i + 1, 3], data: Float32Array.from({ length: 3 * (i + 1) }, (_, j) => i * 100 + j) });
    mkdirSync(dir);
    const files = writeSafetensorsShards(dir, tensors, "F16", 3);
    expect(files).toEqual(["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"]);
    const m = SafetensorsModel.open(dir);
    try {
      expect(m.sharded).toBe(true);
      expect(m.names().sort()).toEqual([...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        expect(m.info(name).shape).toEqual(t.shape);
        expect(Array.from(m.readF32(name))).toEqual(Array.from(roundToDtype("F16", t.data)));
      }
      expect(() => m.readF32("nope")).toThrow(/missing tensor nope/);
    } finally {
      m.close();
    }
  });

  it("errors clearly when an index names a missing shard or a tensor its shard lacks", () => {
    const dir = join(tmp, "badindex");
    mkdirSync(dir);
    writeFileSync(join(dir, "a.safetensors"), encodeSafetensors([{ name: "x", dtype: "F32", shape: [1], data: [1] }]));
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { x: "a.safetensors", y: "b.safetensors" } }));
    expect(() => SafetensorsModel.open(dir)).toThrow(/shard b\.safetensors .*does not exist/);
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { x: "a.safetensors", z: "a.safetensors" } }));
    expect(() => SafetensorsModel.open(dir)).toThrow(/puts tensor z in a\.safetensors, which has no such tensor/);
    expect(() => SafetensorsModel.open(join(tmp, "nowhere"))).toThrow(/no such file or directory/);
  });
});

describe("safetensors errors", () => {
  const good = encodeSafetensors([
    { name: "a", dtype: "F32", shape: [4], data: [1, 2, 3, 4] },
    { name: "b", dtype: "F32", shape: [2], data: [5, 6] },
  ]);

  it("truncated before the header length", () => {
    expect(() => SafetensorsFile.fromBytes(good.subarray(0, 5), "t.st")).toThrow(/t\.st: truncated: 5 bytes, too short/);
  });

  it("truncated inside the header", () => {
    expect(() => SafetensorsFile.fromBytes(good.subarray(0, 20), "t.st")).toThrow(/truncated: the header says \d+ bytes of JSON but only 12 bytes follow/);
  });

  it("truncated inside the data: offsets out of range", () => {
    expect(() => SafetensorsFile.fromBytes(good.subarray(0, good.length - 4), "t.st")).toThrow(
      /tensor b: data_offsets \[16, 24\] out of range: the data section has 20 bytes/,
    );
  });

  it("header length absurdly large (not a safetensors file)", () => {
    const bytes = new Uint8Array(16).fill(0xff);
    expect(() => SafetensorsFile.fromBytes(bytes)).toThrow(/header length .* exceeds/);
  });

  it("header that is not JSON, not an object, or has bad entries", () => {
    expect(() => SafetensorsFile.fromBytes(handMade("oops", new Uint8Array()))).toThrow(/expected a JSON object/);
    const notJson = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7b, 0x7d, 0x7d]);
    expect(() => SafetensorsFile.fromBytes(notJson)).toThrow(/bad header: not valid JSON/);
    const d = new Uint8Array(8);
    expect(() => SafetensorsFile.fromBytes(handMade({ a: { dtype: "F33", shape: [2], data_offsets: [0, 8] } }, d))).toThrow(/unknown dtype "F33"/);
    expect(() => SafetensorsFile.fromBytes(handMade({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, d))).toThrow(/invalid shape/);
    expect(() => SafetensorsFile.fromBytes(handMade({ a: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, d))).toThrow(/invalid data_offsets/);
    expect(() => SafetensorsFile.fromBytes(handMade({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, d))).toThrow(
      /needs 12 bytes but data_offsets \[0, 8\] span 8/,
    );
    expect(() =>
      SafetensorsFile.fromBytes(handMade({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, b: { dtype: "F32", shape: [1], data_offsets: [2, 6] } }, d)),
    ).toThrow(/overlap/);
    expect(() => SafetensorsFile.fromBytes(handMade({ __metadata__: { n: 1 } }, d))).toThrow(/__metadata__\.n is not a string/);
  });

  it("unsupported dtype is reported when the tensor is read", () => {
    const f = SafetensorsFile.fromBytes(handMade({ ids: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), "i.st");
    expect(f.info("ids").dtype).toBe("I64");
    expect(() => f.readF32("ids")).toThrow(/i\.st: tensor ids: dtype I64 is not supported \(supported: F32, F16, BF16\)/);
  });
});
