// Reader (and a small writer) for the safetensors format (huggingface/safetensors):
//
//   8 bytes   u64 little-endian N: size of the header
//   N bytes   UTF-8 JSON object: { "<tensor name>": { "dtype": "F32", "shape": [2, 3],
//             "data_offsets": [begin, end] }, ..., "__metadata__": { "<key>": "<string>" } }
//             (writers may pad it with trailing spaces)
//   rest      the byte buffer; data_offsets are relative to its start, end exclusive,
//             values little-endian, row-major (C order).
//
// A sharded checkpoint adds `model.safetensors.index.json`: { "metadata": {...},
// "weight_map": { "<tensor name>": "model-00001-of-00002.safetensors", ... } }.
//
// Files are read through a file handle: only the header is parsed up front, each tensor's
// bytes are read when asked for by name, so a multi-GB checkpoint never becomes one JS buffer.

import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { TextDecoder as NodeTextDecoder } from "node:util";
import { f16BitsToF32, f32ToF16Bits } from "../../kernels/quant";

/** Element sizes of the dtypes the safetensors spec defines. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The dtypes this reader converts to f32. */
export const SUPPORTED_FLOAT_DTYPES = ["F32", "F16", "BF16"] as const;
export type SafetensorsFloatDtype = (typeof SUPPORTED_FLOAT_DTYPES)[number];

/** Headers larger than this are refused (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** [begin, end) relative to the start of the byte buffer (after the header). */
  dataOffsets: [number, number];
}

/** Random-access bytes: a file handle, or memory (tests). */
export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset`; throws if the source is shorter. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;
  constructor(readonly path: string) {
    this.fd = openSync(path, "r");
    this.size = fstatSync(this.fd).size;
  }
  read(offset: number, length: number): Uint8Array {
    if (this.fd === null) throw new Error(`${this.path}: already closed`);
    if (offset < 0 || offset + length > this.size) {
      throw new Error(`${this.path}: read of ${length} bytes at ${offset} is past the end of the file (${this.size} bytes)`);
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n <= 0) throw new Error(`${this.path}: unexpected end of file at ${offset + done}`);
      done += n;
    }
    return out;
  }
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.byteLength;
  }
  read(offset: number, length: number): Uint8Array {
    if (offset < 0 || offset + length > this.size) {
      throw new Error(`read of ${length} bytes at ${offset} is past the end of the data (${this.size} bytes)`);
    }
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {}
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** bf16 bits -> f32 (exact). */
export function bf16BitsToF32(h: number): number {
  const u = new Uint32Array([h << 16]);
  return new Float32Array(u.buffer)[0]!;
}

/** f32 -> bf16 bits, round to nearest even (as torch does); NaN stays a quiet NaN. */
export function f32ToBf16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  const rounded = u + 0x7fff + ((u >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** Little-endian raw values of a float dtype -> f32. */
export function decodeFloats(dtype: string, raw: Uint8Array, count: number, where: string): Float32Array {
  const out = new Float32Array(count);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case "F32":
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case "F16":
      for (let i = 0; i < count; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
      return out;
    case "BF16": {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new Error(`${where}: dtype ${dtype} is not supported (supported: ${SUPPORTED_FLOAT_DTYPES.join(", ")})`);
  }
}

/** f32 values -> little-endian raw bytes of a float dtype. */
export function encodeFloats(dtype: SafetensorsFloatDtype, data: ArrayLike<number>): Uint8Array {
  const size = SAFETENSORS_DTYPE_BYTES[dtype]!;
  const out = new Uint8Array(data.length * size);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (dtype === "F32") dv.setFloat32(4 * i, data[i]!, true);
    else if (dtype === "F16") dv.setUint16(2 * i, f32ToF16Bits(data[i]!), true);
    else dv.setUint16(2 * i, f32ToBf16Bits(data[i]!), true);
  }
  return out;
}

/** Round values as a store in `dtype` would (what a reader will get back). */
export function roundToDtype(dtype: SafetensorsFloatDtype, data: Float32Array): Float32Array {
  return dtype === "F32" ? Float32Array.from(data) : decodeFloats(dtype, encodeFloats(dtype, data), data.length, dtype);
}

/** Parse and validate a header (the JSON text) against the size of the byte buffer that follows it. */
export function parseSafetensorsHeader(
  json: string,
  dataBytes: number,
  where: string,
): { tensors: Map<string, SafetensorsTensorInfo>; metadata: Record<string, string> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new Error(`${where}: bad header: not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${where}: bad header: expected a JSON object, got ${Array.isArray(parsed) ? "an array" : typeof parsed}`);
  }
  const tensors = new Map<string, SafetensorsTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new Error(`${where}: bad header: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") throw new Error(`${where}: bad header: __metadata__.${k} is not a string`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const t = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== "object" || t === null) throw new Error(`${where}: bad header: entry for tensor ${name} is not an object`);
    if (typeof t.dtype !== "string" || !(t.dtype in SAFETENSORS_DTYPE_BYTES)) {
      throw new Error(`${where}: bad header: tensor ${name} has unknown dtype ${JSON.stringify(t.dtype)}`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) {
      throw new Error(`${where}: bad header: tensor ${name} has an invalid shape ${JSON.stringify(t.shape)}`);
    }
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !isNonNegInt(off[0]) || !isNonNegInt(off[1]) || off[1] < off[0]) {
      throw new Error(`${where}: bad header: tensor ${name} has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const shape = t.shape as number[];
    const begin = off[0] as number;
    const end = off[1] as number;
    if (end > dataBytes) {
      throw new Error(
        `${where}: tensor ${name}: data_offsets [${begin}, ${end}] out of range: the data section has ${dataBytes} bytes` +
          ` (file truncated?)`,
      );
    }
    const need = numel(shape) * SAFETENSORS_DTYPE_BYTES[t.dtype]!;
    if (end - begin !== need) {
      throw new Error(
        `${where}: tensor ${name}: ${t.dtype} [${shape.join(", ")}] needs ${need} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    tensors.set(name, { name, dtype: t.dtype, shape: [...shape], dataOffsets: [begin, end] });
  }
  // The spec forbids overlapping tensors (and holes); check overlap, which would mean a corrupt header.
  const sorted = [...tensors.values()].filter((t) => t.dataOffsets[1] > t.dataOffsets[0]).sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.dataOffsets[0] < sorted[i - 1]!.dataOffsets[1]) {
      throw new Error(`${where}: bad header: tensors ${sorted[i - 1]!.name} and ${sorted[i]!.name} overlap`);
    }
  }
  return { tensors, metadata };
}

/** One .safetensors file, header parsed, tensors read on demand. */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** File offset of the byte buffer. */
  readonly dataStart: number;

  private constructor(
    private readonly source: ByteSource,
    readonly name: string,
  ) {
    if (source.size < 8) {
      throw new Error(`${name}: truncated: ${source.size} bytes, too short for the 8-byte header length`);
    }
    const lenBytes = source.read(0, 8);
    const headerLen = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new Error(`${name}: bad header: header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
    }
    const n = Number(headerLen);
    if (8 + n > source.size) {
      throw new Error(`${name}: truncated: the header says ${n} bytes of JSON but only ${source.size - 8} bytes follow the length`);
    }
    const headerBytes = source.read(8, n);
    let json: string;
    try {
      json = new NodeTextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch {
      throw new Error(`${name}: bad header: not valid UTF-8`);
    }
    this.dataStart = 8 + n;
    const { tensors, metadata } = parseSafetensorsHeader(json, source.size - this.dataStart, name);
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    const source = new FileSource(path);
    try {
      return new SafetensorsFile(source, path);
    } catch (e) {
      source.close();
      throw e;
    }
  }

  static fromBytes(bytes: Uint8Array, name = "<memory>"): SafetensorsFile {
    return new SafetensorsFile(new MemorySource(bytes), name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.name}: missing tensor ${name}`);
    return t;
  }

  /** The tensor's stored bytes (little-endian, its own dtype). */
  readRaw(name: string): Uint8Array {
    const t = this.info(name);
    return this.source.read(this.dataStart + t.dataOffsets[0], t.dataOffsets[1] - t.dataOffsets[0]);
  }

  /** The tensor as f32 (F32, F16 and BF16 tensors). */
  readF32(name: string): Float32Array {
    const t = this.info(name);
    return decodeFloats(t.dtype, this.readRaw(name), numel(t.shape), `${this.name}: tensor ${name}`);
  }

  close(): void {
    this.source.close();
  }
}

export const SAFETENSORS_INDEX = "model.safetensors.index.json";
export const SAFETENSORS_SINGLE = "model.safetensors";

/**
 * A checkpoint's tensors across one or more .safetensors files: a directory with
 * model.safetensors.index.json (sharded) or model.safetensors, or a path to either file.
 */
export class SafetensorsModel {
  private readonly files = new Map<string, SafetensorsFile>();
  /** tensor name -> file name (relative to dir). */
  private readonly where = new Map<string, string>();
  readonly dir: string;
  /** The index's "metadata" (sharded) or the single file's __metadata__. */
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly sharded: boolean;

  private constructor(dir: string, sharded: boolean, metadata: Record<string, unknown>) {
    this.dir = dir;
    this.sharded = sharded;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsModel {
    if (!existsSync(path)) throw new Error(`${path}: no such file or directory`);
    let indexPath: string | null = null;
    let single: string | null = null;
    if (statSync(path).isDirectory()) {
      if (existsSync(join(path, SAFETENSORS_INDEX))) indexPath = join(path, SAFETENSORS_INDEX);
      else if (existsSync(join(path, SAFETENSORS_SINGLE))) single = join(path, SAFETENSORS_SINGLE);
      else throw new Error(`${path}: no ${SAFETENSORS_INDEX} or ${SAFETENSORS_SINGLE} in this directory`);
    } else if (path.endsWith(".json")) indexPath = path;
    else single = path;

    if (single) {
      const file = SafetensorsFile.open(single);
      const m = new SafetensorsModel(dirname(single), false, { ...file.metadata });
      const name = basename(single);
      m.files.set(name, file);
      for (const t of file.names()) m.where.set(t, name);
      return m;
    }
    const ip = indexPath!;
    let index: { metadata?: unknown; weight_map?: unknown };
    try {
      index = JSON.parse(readFileSync(ip, "utf8"));
    } catch (e) {
      throw new Error(`${ip}: not valid JSON (${(e as Error).message})`);
    }
    const map = index.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) throw new Error(`${ip}: no weight_map object`);
    const m = new SafetensorsModel(dirname(ip), true, (index.metadata as Record<string, unknown>) ?? {});
    try {
      for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
        if (typeof file !== "string" || file.includes("..") || file.includes("/") || file.includes("\\")) {
          throw new Error(`${ip}: weight_map entry for ${tensor} is not a plain file name: ${JSON.stringify(file)}`);
        }
        let f = m.files.get(file);
        if (!f) {
          const p = join(m.dir, file);
          if (!existsSync(p)) throw new Error(`${ip}: weight_map names shard ${file} for tensor ${tensor}, but ${p} does not exist`);
          f = SafetensorsFile.open(p);
          m.files.set(file, f);
        }
        if (!f.has(tensor)) throw new Error(`${ip}: weight_map puts tensor ${tensor} in ${file}, which has no such tensor`);
        m.where.set(tensor, file);
      }
    } catch (e) {
      m.close();
      throw e;
    }
    return m;
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  private file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (f === undefined) {
      throw new Error(`${this.dir}: missing tensor ${name} (the checkpoint has ${this.where.size} tensors${this.sharded ? ", per its index" : ""})`);
    }
    return this.files.get(f)!;
  }

  info(name: string): SafetensorsTensorInfo {
    return this.file(name).info(name);
  }

  readF32(name: string): Float32Array {
    return this.file(name).readF32(name);
  }

  readRaw(name: string): Uint8Array {
    return this.file(name).readRaw(name);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsFloatDtype;
  shape: number[];
  data: ArrayLike<number>;
}

/**
 * Serialize tensors as one .safetensors file (in the order given), header padded with spaces
 * so the byte buffer starts 8-aligned, as the reference writer does.
 */
export function encodeSafetensors(entries: SafetensorsEntry[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) throw new Error(`duplicate tensor ${e.name}`);
    seen.add(e.name);
    if (e.data.length !== numel(e.shape)) throw new Error(`tensor ${e.name}: ${e.data.length} values for shape [${e.shape.join(", ")}]`);
    const blob = encodeFloats(e.dtype, e.data);
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + blob.length] };
    blobs.push(blob);
    offset += blob.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const b of blobs) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}
