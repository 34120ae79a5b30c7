// A minimal ONNX protobuf encoder: just the messages a single-operator benchmark graph needs
// (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto, AttributeProto and the
// small messages they hold). Field numbers follow onnx/onnx.proto; everything is written in
// protobuf's wire format by hand (varints, length-delimited fields, packed repeated scalars),
// so onnxruntime-web can be handed the bytes directly.

/** TensorProto.DataType values used here. */
export const OnnxType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  FLOAT16: 10,
  /** Two values per byte, the first in the low nibble. */
  INT4: 22,
} as const;
export type OnnxDataType = (typeof OnnxType)[keyof typeof OnnxType];

/** AttributeProto.AttributeType values used here. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** Protobuf writer: appends fields to a growing byte buffer. */
class Pb {
  private buf = new Uint8Array(256);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  /** Unsigned varint of a non-negative integer up to 2^53, or a negative int64 (two's complement, 10 bytes). */
  varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      this.byte(b);
    } while (x !== 0n);
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, WIRE_I32);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.byteLength);
    this.ensure(data.byteLength);
    this.buf.set(data, this.len);
    this.len += data.byteLength;
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, inner: Pb): void {
    this.bytes(field, inner.finish());
  }

  /** Packed repeated int64 (proto3 default encoding for repeated scalars). */
  packedInts(field: number, values: readonly (number | bigint)[]): void {
    const inner = new Pb();
    for (const v of values) inner.varint(v);
    this.bytes(field, inner.finish());
  }

  packedFloats(field: number, values: ArrayLike<number>): void {
    const data = new Uint8Array(4 * values.length);
    const view = new DataView(data.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
    this.bytes(field, data);
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

// ------------------------------------------------------------------------------------------
// Plain descriptions of the messages

export interface OnnxTensor {
  name: string;
  dataType: OnnxDataType;
  dims: number[];
  /** Little-endian element bytes (TensorProto.raw_data). */
  raw: Uint8Array;
}

export type OnnxAttribute =
  | { name: string; int: number }
  | { name: string; float: number }
  | { name: string; string: string }
  | { name: string; ints: number[] }
  | { name: string; floats: number[] }
  | { name: string; tensor: OnnxTensor };

export interface OnnxNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** "" (default ONNX domain) or e.g. "com.microsoft". */
  domain?: string;
  attributes?: OnnxAttribute[];
}

export interface OnnxValueInfo {
  name: string;
  elemType: OnnxDataType;
  /** A number is a fixed dimension, a string a symbolic one. */
  shape: Array<number | string>;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  /** Opset per domain, e.g. [{domain: "", version: 21}, {domain: "com.microsoft", version: 1}]. */
  opsets: Array<{ domain: string; version: number }>;
  irVersion?: number;
  producerName?: string;
}

// ------------------------------------------------------------------------------------------
// Encoders (field numbers from onnx.proto)

function tensorProto(t: OnnxTensor): Pb {
  const p = new Pb();
  p.packedInts(1, t.dims); // dims
  p.int(2, t.dataType); // data_type
  p.string(8, t.name); // name
  p.bytes(9, t.raw); // raw_data
  return p;
}

function attributeProto(a: OnnxAttribute): Pb {
  const p = new Pb();
  p.string(1, a.name);
  if ("int" in a) {
    p.int(20, AttrType.INT);
    p.int(3, a.int);
  } else if ("float" in a) {
    p.int(20, AttrType.FLOAT);
    p.float(2, a.float);
  } else if ("string" in a) {
    p.int(20, AttrType.STRING);
    p.bytes(4, new TextEncoder().encode(a.string));
  } else if ("ints" in a) {
    p.int(20, AttrType.INTS);
    p.packedInts(8, a.ints);
  } else if ("floats" in a) {
    p.int(20, AttrType.FLOATS);
    p.packedFloats(7, a.floats);
  } else {
    p.int(20, AttrType.TENSOR);
    p.message(5, tensorProto(a.tensor));
  }
  return p;
}

function nodeProto(n: OnnxNode): Pb {
  const p = new Pb();
  for (const i of n.inputs) p.string(1, i);
  for (const o of n.outputs) p.string(2, o);
  if (n.name) p.string(3, n.name);
  p.string(4, n.opType);
  for (const a of n.attributes ?? []) p.message(5, attributeProto(a));
  if (n.domain) p.string(7, n.domain);
  return p;
}

function valueInfoProto(v: OnnxValueInfo): Pb {
  const shape = new Pb(); // TensorShapeProto
  for (const d of v.shape) {
    const dim = new Pb(); // TensorShapeProto.Dimension
    if (typeof d === "number") dim.int(1, d); // dim_value
    else dim.string(2, d); // dim_param
    shape.message(1, dim);
  }
  const tensorType = new Pb(); // TypeProto.Tensor
  tensorType.int(1, v.elemType);
  tensorType.message(2, shape);
  const type = new Pb(); // TypeProto
  type.message(1, tensorType);
  const p = new Pb();
  p.string(1, v.name);
  p.message(2, type);
  return p;
}

function graphProto(g: OnnxGraph): Pb {
  const p = new Pb();
  for (const n of g.nodes) p.message(1, nodeProto(n));
  p.string(2, g.name);
  for (const t of g.initializers) p.message(5, tensorProto(t));
  for (const i of g.inputs) p.message(11, valueInfoProto(i));
  for (const o of g.outputs) p.message(12, valueInfoProto(o));
  return p;
}

/** Serialized ModelProto, ready for `InferenceSession.create(bytes)`. */
export function encodeModel(m: OnnxModel): Uint8Array {
  const p = new Pb();
  p.int(1, m.irVersion ?? 10); // ir_version
  p.string(2, m.producerName ?? "edgeinfer-bench"); // producer_name
  p.message(7, graphProto(m.graph)); // graph
  for (const o of m.opsets) {
    const op = new Pb(); // OperatorSetIdProto
    op.string(1, o.domain);
    op.int(2, o.version);
    p.message(8, op);
  }
  return p.finish();
}

// ------------------------------------------------------------------------------------------
// Helpers for tensors

export function floatTensor(name: string, dims: number[], data: Float32Array): OnnxTensor {
  return { name, dataType: OnnxType.FLOAT, dims, raw: littleEndianBytes(data) };
}

export function bytesTensor(name: string, dataType: typeof OnnxType.UINT8 | typeof OnnxType.INT8 | typeof OnnxType.INT4, dims: number[], data: Uint8Array | Int8Array): OnnxTensor {
  return { name, dataType, dims, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** Typed-array bytes (this code only runs on little-endian hosts, as wasm does). */
function littleEndianBytes(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
