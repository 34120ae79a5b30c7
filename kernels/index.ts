/**
 * TypeScript bindings for kernels.wasm, the numeric core (AssemblyScript sources in
 * kernels/assembly, references with identical semantics in kernels/reference).
 *
 * Memory model
 * ------------
 * - One WebAssembly.Memory per Kernels instance, created by `Kernels.create` at its final size
 *   (heap base + requested bytes, rounded up to 64 KiB pages; maximum = initial) and never grown.
 *   Because it never grows, its ArrayBuffer is never detached: typed-array views returned by
 *   `f32()` / `u8()` stay valid for the lifetime of the instance and can be cached.
 * - [0, heapBase) belongs to the module: static data plus a fixed scratch region the quantized
 *   matmuls use for per-call precomputation. heapBase comes from the "edgeinfer.kernels" custom
 *   section the build script appends (a Worker cannot inspect a Module's memory import).
 * - [heapBase, end) is handed out by a bump allocator (`alloc`), typically once at model load:
 *   weights, KV cache, activations. `mark()` / `release()` rewind it for temporary buffers.
 * - Kernels take byte offsets ("pointers") into this memory, never allocate, and import
 *   nothing but env.memory. They are not re-entrant (shared scratch), which is fine for
 *   single-threaded wasm.
 * - Instantiation uses `new WebAssembly.Instance(module, ...)` only: Workers forbid compiling
 *   wasm at runtime, so the Module must come from the bundle (Worker) or kernels/node.ts (Node).
 *
 * Determinism: results are identical on every engine and CPU. Floating point uses plain IEEE
 * ops (no relaxed_madd, whose fusing is platform-dependent); relaxed SIMD is used only for the
 * 8-bit dot products, always with the second operand in [0, 127] where x86 (unsigned bytes) and
 * ARM (signed) agree and no i16 intermediate can saturate.
 */
import { DTYPE_CODE, QK_K, activationFormat, activationRowBytes, isKQuant, rowBytes, type ActivationFormat, type DType } from "./quant";

export * from "./quant";
export type Ptr = number;

/** Custom section written by scripts/build-kernels.mjs: JSON {"heapBase": number}. */
export const KERNELS_SECTION = "edgeinfer.kernels";

const PAGE = 65536;
const MAX_PAGES = 65536; // wasm32 limit: 4 GiB

/** Raw exports of kernels.wasm (numbers are byte offsets or counts). */
export interface KernelExports {
  heapBase(): number;
  maxQuantCols(): number;
  f16ToF32Row(dst: Ptr, src: Ptr, n: number): void;
  f32ToF16Row(dst: Ptr, src: Ptr, n: number): void;
  quantizeRowQ8_0(dst: Ptr, src: Ptr, n: number): void;
  quantizeRowsQ8_0(dst: Ptr, src: Ptr, n: number, nRows: number): void;
  dequantizeRowQ8_0(dst: Ptr, src: Ptr, n: number): void;
  dequantizeRowQ4_0(dst: Ptr, src: Ptr, n: number): void;
  matmulF32(out: Ptr, w: Ptr, x: Ptr, rows: number, cols: number, nTok: number): void;
  matmulF16(out: Ptr, w: Ptr, x: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ8_0(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ4_0(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ8_0x4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  repackQ8_0x4(w: Ptr, rows: number, cols: number): number;
  dequantizeRowQ8_0x4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void;
  matmulQ4_0x4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  repackQ4_0x4(w: Ptr, rows: number, cols: number): number;
  dequantizeRowQ4_0x4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void;
  matmulQ4_Kx4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  repackQ4_Kx4(w: Ptr, rows: number, cols: number): number;
  dequantizeRowQ4_Kx4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void;
  matmulQ6_Kx4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  repackQ6_Kx4(w: Ptr, rows: number, cols: number): number;
  dequantizeRowQ6_Kx4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void;
  quantizeRowsQ8_K(dst: Ptr, src: Ptr, n: number, nRows: number): void;
  quantizeRowsQ8_1(dst: Ptr, src: Ptr, n: number, nRows: number): void;
  matmulQ4_K(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ5_K(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ6_K(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ5_0(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ4_1(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  matmulQ5_1(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok: number): void;
  dequantizeRowQ4_K(dst: Ptr, src: Ptr, n: number): void;
  dequantizeRowQ5_K(dst: Ptr, src: Ptr, n: number): void;
  dequantizeRowQ6_K(dst: Ptr, src: Ptr, n: number): void;
  dequantizeRowQ5_0(dst: Ptr, src: Ptr, n: number): void;
  dequantizeRowQ4_1(dst: Ptr, src: Ptr, n: number): void;
  dequantizeRowQ5_1(dst: Ptr, src: Ptr, n: number): void;
  rmsnorm(out: Ptr, x: Ptr, weight: Ptr, n: number, eps: number): void;
  layernorm(out: Ptr, x: Ptr, weight: Ptr, bias: Ptr, n: number, eps: number): void;
  softmax(x: Ptr, n: number): void;
  swiglu(h: Ptr, g: Ptr, n: number): void;
  silu(x: Ptr, n: number): void;
  gelu(x: Ptr, n: number): void;
  addInPlace(a: Ptr, b: Ptr, n: number): void;
  addBias(x: Ptr, bias: Ptr, n: number, nTok: number): void;
  mulInPlace(a: Ptr, b: Ptr, n: number): void;
  scale(x: Ptr, n: number, s: number): void;
  argmax(x: Ptr, n: number): number;
  rope(vec: Ptr, nHeads: number, headSize: number, cosSin: Ptr, layout: number): void;
  attention(out: Ptr, q: Ptr, kCache: Ptr, vCache: Ptr, att: Ptr, nHeads: number, nKvHeads: number, headSize: number, nPos: number, cacheDtype: number): void;
  attentionBatch(out: Ptr, q: Ptr, kCache: Ptr, vCache: Ptr, att: Ptr, nHeads: number, nKvHeads: number, headSize: number, startPos: number, nTok: number, cacheDtype: number): void;
}

/** RoPE pair layout: 0 = interleaved (2i, 2i+1) as llama2.c/GGUF; 1 = rotate-half (i, i+d/2) as HF. */
export type RopeLayout = 0 | 1;
/** KV cache element type. */
export type CacheDType = "f32" | "f16";

/** Heap base recorded by the build script in the module's custom section. */
export function moduleHeapBase(module: WebAssembly.Module): number {
  const sections = WebAssembly.Module.customSections(module, KERNELS_SECTION);
  if (sections.length === 0) {
    throw new Error(`kernels.wasm has no "${KERNELS_SECTION}" section; build it with npm run build:kernels`);
  }
  const meta = JSON.parse(new TextDecoder().decode(sections[0]!)) as { heapBase?: unknown };
  if (typeof meta.heapBase !== "number" || !(meta.heapBase >= 0)) throw new Error(`bad ${KERNELS_SECTION} section`);
  return meta.heapBase;
}

/**
 * cos/sin table for one position, as `rope` expects: pair i = (cos, sin) of pos * theta^(-2i/headSize),
 * computed in double and rounded once (more accurate than f32 angle arithmetic at large pos).
 */
export function ropeCosSin(pos: number, headSize: number, theta = 10000, out = new Float32Array(headSize)): Float32Array {
  const half = headSize >> 1;
  for (let i = 0; i < half; i++) {
    const angle = pos * Math.pow(theta, (-2 * i) / headSize);
    out[2 * i] = Math.cos(angle);
    out[2 * i + 1] = Math.sin(angle);
  }
  return out;
}

function isCount(n: number): boolean {
  return (n | 0) === n && n >= 0; // an integer in [0, 2^31)
}

export class Kernels {
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  /** First byte of the host-managed heap. */
  readonly heapBase: number;
  /** Largest `cols` accepted by the quantized matmuls. */
  readonly maxQuantCols: number;
  private top: number;
  private readonly end: number;

  private constructor(memory: WebAssembly.Memory, exports: KernelExports, heapBase: number) {
    this.memory = memory;
    this.exports = exports;
    this.heapBase = heapBase;
    this.top = heapBase;
    this.end = memory.buffer.byteLength;
    this.maxQuantCols = exports.maxQuantCols();
  }

  /**
   * Instantiate with a memory holding the module's static area plus `bytes` for the host heap.
   * `module` must be a precompiled WebAssembly.Module (Workers: the bundled .wasm import).
   */
  static create(module: WebAssembly.Module, bytes: number): Kernels {
    if (!Number.isInteger(bytes) || bytes < 0) throw new Error(`Kernels.create: bad heap size ${bytes}`);
    const heapBase = moduleHeapBase(module);
    const pages = Math.ceil((heapBase + bytes) / PAGE);
    if (pages > MAX_PAGES) throw new Error(`Kernels.create: ${bytes} bytes exceed the 4 GiB wasm32 limit`);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    const exports = instance.exports as unknown as KernelExports;
    if (exports.heapBase() !== heapBase) {
      throw new Error(`kernels.wasm heap base ${exports.heapBase()} != recorded ${heapBase}; rebuild the kernels`);
    }
    return new Kernels(memory, exports, heapBase);
  }

  /** Bytes available to `alloc` in total. */
  get capacityBytes(): number {
    return this.end - this.heapBase;
  }

  /** Bytes handed out by `alloc` so far (including alignment padding). */
  get usedBytes(): number {
    return this.top - this.heapBase;
  }

  /** Bump-allocate `bytes` aligned to `align` (a power of two). Throws when memory is exhausted. */
  alloc(bytes: number, align = 16): Ptr {
    if (!Number.isInteger(bytes) || bytes < 0) throw new Error(`alloc: bad size ${bytes}`);
    if (!Number.isInteger(align) || align <= 0 || (align & (align - 1)) !== 0) throw new Error(`alloc: alignment ${align} is not a power of two`);
    const ptr = Math.ceil(this.top / align) * align;
    if (ptr + bytes > this.end) {
      throw new Error(
        `Kernels out of memory: need ${bytes} bytes (align ${align}), ${this.end - this.top} free of ${this.capacityBytes}; ` +
        `pass a larger size to Kernels.create`,
      );
    }
    this.top = ptr + bytes;
    return ptr;
  }

  /** Current allocation mark, for `release`. */
  mark(): number {
    return this.top;
  }

  /** Free everything allocated since `mark` (temporary buffers). */
  release(mark: number): void {
    if (!Number.isInteger(mark) || mark < this.heapBase || mark > this.top) throw new Error(`release: bad mark ${mark}`);
    this.top = mark;
  }

  f32(ptr: Ptr, n: number): Float32Array {
    this.check(ptr, 4 * n, 4);
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  u8(ptr: Ptr, n: number): Uint8Array {
    this.check(ptr, n, 1);
    return new Uint8Array(this.memory.buffer, ptr, n);
  }

  u16(ptr: Ptr, n: number): Uint16Array {
    this.check(ptr, 2 * n, 2);
    return new Uint16Array(this.memory.buffer, ptr, n);
  }

  /** Copy host data into wasm memory at ptr. */
  write(ptr: Ptr, data: ArrayBufferView): void {
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.u8(ptr, src.length).set(src);
  }

  private check(ptr: Ptr, bytes: number, align: number): void {
    if (!Number.isInteger(ptr) || !Number.isInteger(bytes) || ptr < 0 || bytes < 0 || ptr + bytes > this.end) {
      throw new RangeError(`range [${ptr}, ${ptr + bytes}) outside wasm memory of ${this.end} bytes`);
    }
    if (ptr % align !== 0) throw new RangeError(`pointer ${ptr} is not ${align}-byte aligned`);
  }

  /** Cheap bounds check for kernel arguments: corrupting a neighbour buffer is silent otherwise. */
  private range(name: string, ptr: Ptr, bytes: number): void {
    if (!(ptr >= 0 && bytes >= 0 && ptr + bytes <= this.end)) {
      throw new RangeError(`${name}: [${ptr}, ${ptr + bytes}) outside wasm memory of ${this.end} bytes`);
    }
  }

  /** Fixed arity (no rest array): these checks run on every kernel call. */
  private shape(name: string, a: number, b = 0, c = 0, d = 0, e = 0): void {
    if (isCount(a) && isCount(b) && isCount(c) && isCount(d) && isCount(e)) return;
    const bad = [a, b, c, d, e].find((n) => !isCount(n));
    throw new RangeError(`${name}: bad size ${bad}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Kernels

  /**
   * out[t*rows + r] = sum_c W[r, c] * x[t, c] for t < nTok. For f32/f16 weights `x` is f32
   * activations; for quantized weights it must be activations quantized to the dtype's
   * activationFormat (q8_0 for q8_0 / q4_0 / q5_0, q8_1 for q4_1 / q5_1, q8_K for the K-quants;
   * see `quantizeActivations` / `linear`). nTok > 1 (prefill) tiles tokens so each weight row is read once per 4 tokens.
   * `out` must not overlap the inputs (rows are written while x is still being read).
   */
  matmul(dtype: DType, out: Ptr, w: Ptr, x: Ptr, rows: number, cols: number, nTok = 1): void {
    this.shape("matmul", rows, cols, nTok);
    this.range("matmul out", out, 4 * rows * nTok);
    this.range("matmul w", w, rowBytes(dtype, cols) * rows);
    const e = this.exports;
    switch (dtype) {
      case "f32":
        this.range("matmul x", x, 4 * cols * nTok);
        e.matmulF32(out, w, x, rows, cols, nTok);
        return;
      case "f16":
        this.range("matmul x", x, 4 * cols * nTok);
        e.matmulF16(out, w, x, rows, cols, nTok);
        return;
      case "q8_0":
      case "q4_0":
        if (cols > this.maxQuantCols) throw new RangeError(`matmul: cols ${cols} > ${this.maxQuantCols} supported for ${dtype}`);
        this.range("matmul xq", x, rowBytes("q8_0", cols) * nTok);
        if (dtype === "q8_0") e.matmulQ8_0(out, w, x, rows, cols, nTok);
        else e.matmulQ4_0(out, w, x, rows, cols, nTok);
        return;
      case "q4_1":
      case "q5_0":
      case "q5_1":
      case "q4_k":
      case "q5_k":
      case "q6_k": {
        if (isKQuant(dtype) && cols % QK_K !== 0) throw new RangeError(`matmul: ${dtype} needs cols a multiple of ${QK_K}, got ${cols}`);
        if (cols > this.maxQuantCols) throw new RangeError(`matmul: cols ${cols} > ${this.maxQuantCols} supported for ${dtype}`);
        this.range("matmul xq", x, activationRowBytes(activationFormat(dtype)!, cols) * nTok);
        const fn = { q4_1: e.matmulQ4_1, q5_0: e.matmulQ5_0, q5_1: e.matmulQ5_1, q4_k: e.matmulQ4_K, q5_k: e.matmulQ5_K, q6_k: e.matmulQ6_K }[dtype];
        fn(out, w, x, rows, cols, nTok);
        return;
      }
    }
    throw new Error(`matmul: unsupported dtype ${String(dtype)}`);
  }

  /**
   * Repack a q8_0 matrix in place (same bytes) into the 4-row-interleaved layout that
   * `matmulQ8_0x4` reads: per 4 rows and block index, the 4 f16 scales then the 4 rows' quants;
   * the last rows % 4 rows stay plain. Returns false (memory untouched) if the rows are too wide
   * for the kernels' scratch. The repacked matrix must only be used through the *Q8_0x4 methods.
   */
  repackQ8_0x4(w: Ptr, rows: number, cols: number): boolean {
    this.shape("repackQ8_0x4", rows, cols);
    this.range("repackQ8_0x4 w", w, rowBytes("q8_0", cols) * rows);
    return this.exports.repackQ8_0x4(w, rows, cols) !== 0;
  }

  /** matmul("q8_0", ...) for a matrix repacked by `repackQ8_0x4`; bit-identical results. */
  matmulQ8_0x4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok = 1): void {
    this.shape("matmulQ8_0x4", rows, cols, nTok);
    if (cols > this.maxQuantCols) throw new RangeError(`matmulQ8_0x4: cols ${cols} > ${this.maxQuantCols} supported`);
    this.range("matmulQ8_0x4 out", out, 4 * rows * nTok);
    this.range("matmulQ8_0x4 w", w, rowBytes("q8_0", cols) * rows);
    this.range("matmulQ8_0x4 xq", xq, rowBytes("q8_0", cols) * nTok);
    this.exports.matmulQ8_0x4(out, w, xq, rows, cols, nTok);
  }

  /** Row `row` of a `repackQ8_0x4` matrix as f32 (same values as dequantizeRow of the plain row). */
  dequantizeRowQ8_0x4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void {
    this.shape("dequantizeRowQ8_0x4", rows, cols);
    if (!(Number.isInteger(row) && row >= 0 && row < rows)) throw new RangeError(`dequantizeRowQ8_0x4: row ${row} outside ${rows}`);
    this.range("dequantizeRowQ8_0x4 dst", dst, 4 * cols);
    this.range("dequantizeRowQ8_0x4 w", w, rowBytes("q8_0", cols) * rows);
    this.exports.dequantizeRowQ8_0x4(dst, w, rows, cols, row);
  }

  /**
   * Repack a q4_0 matrix in place (same bytes) into the 4-row-interleaved layout that
   * `matmulQ4_0x4` reads: per 4 rows and block index, the 4 f16 scales then the 4 rows' nibbles
   * transposed in 4-byte units; the last rows % 4 rows stay plain. Returns false (memory
   * untouched) if the rows are too wide for the kernels' scratch. The repacked matrix must only
   * be used through the *Q4_0x4 methods.
   */
  repackQ4_0x4(w: Ptr, rows: number, cols: number): boolean {
    this.shape("repackQ4_0x4", rows, cols);
    this.range("repackQ4_0x4 w", w, rowBytes("q4_0", cols) * rows);
    return this.exports.repackQ4_0x4(w, rows, cols) !== 0;
  }

  /** matmul("q4_0", ...) for a matrix repacked by `repackQ4_0x4`; bit-identical results. */
  matmulQ4_0x4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok = 1): void {
    this.shape("matmulQ4_0x4", rows, cols, nTok);
    if (cols > this.maxQuantCols) throw new RangeError(`matmulQ4_0x4: cols ${cols} > ${this.maxQuantCols} supported`);
    this.range("matmulQ4_0x4 out", out, 4 * rows * nTok);
    this.range("matmulQ4_0x4 w", w, rowBytes("q4_0", cols) * rows);
    this.range("matmulQ4_0x4 xq", xq, rowBytes("q8_0", cols) * nTok);
    this.exports.matmulQ4_0x4(out, w, xq, rows, cols, nTok);
  }

  /** Row `row` of a `repackQ4_0x4` matrix as f32 (same values as dequantizeRow of the plain row). */
  dequantizeRowQ4_0x4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void {
    this.shape("dequantizeRowQ4_0x4", rows, cols);
    if (!(Number.isInteger(row) && row >= 0 && row < rows)) throw new RangeError(`dequantizeRowQ4_0x4: row ${row} outside ${rows}`);
    this.range("dequantizeRowQ4_0x4 dst", dst, 4 * cols);
    this.range("dequantizeRowQ4_0x4 w", w, rowBytes("q4_0", cols) * rows);
    this.exports.dequantizeRowQ4_0x4(dst, w, rows, cols, row);
  }

  /**
   * Repack a q4_K matrix in place (same bytes) into the 4-row-interleaved layout that
   * `matmulQ4_Kx4` reads: per 4 rows and block index, the 4 rows' d and dmin, their 6-bit
   * scales and mins decoded into byte tables, then their nibbles transposed in 4-byte units; the
   * last rows % 4 rows stay plain. Returns false (memory untouched) if the rows are too wide for
   * the kernels' scratch. The repacked matrix must only be used through the *Q4_Kx4 methods.
   */
  repackQ4_Kx4(w: Ptr, rows: number, cols: number): boolean {
    this.shape("repackQ4_Kx4", rows, cols);
    if (cols % QK_K !== 0) throw new RangeError(`repackQ4_Kx4: cols must be a multiple of ${QK_K}, got ${cols}`);
    this.range("repackQ4_Kx4 w", w, rowBytes("q4_k", cols) * rows);
    return this.exports.repackQ4_Kx4(w, rows, cols) !== 0;
  }

  /** matmul("q4_k", ...) for a matrix repacked by `repackQ4_Kx4`; bit-identical results. */
  matmulQ4_Kx4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok = 1): void {
    this.shape("matmulQ4_Kx4", rows, cols, nTok);
    if (cols % QK_K !== 0) throw new RangeError(`matmulQ4_Kx4: cols must be a multiple of ${QK_K}, got ${cols}`);
    if (cols > this.maxQuantCols) throw new RangeError(`matmulQ4_Kx4: cols ${cols} > ${this.maxQuantCols} supported`);
    this.range("matmulQ4_Kx4 out", out, 4 * rows * nTok);
    this.range("matmulQ4_Kx4 w", w, rowBytes("q4_k", cols) * rows);
    this.range("matmulQ4_Kx4 xq", xq, activationRowBytes("q8_k", cols) * nTok);
    this.exports.matmulQ4_Kx4(out, w, xq, rows, cols, nTok);
  }

  /** Row `row` of a `repackQ4_Kx4` matrix as f32 (same values as dequantizeRow of the plain row). */
  dequantizeRowQ4_Kx4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void {
    this.shape("dequantizeRowQ4_Kx4", rows, cols);
    if (cols % QK_K !== 0) throw new RangeError(`dequantizeRowQ4_Kx4: cols must be a multiple of ${QK_K}, got ${cols}`);
    if (!(Number.isInteger(row) && row >= 0 && row < rows)) throw new RangeError(`dequantizeRowQ4_Kx4: row ${row} outside ${rows}`);
    this.range("dequantizeRowQ4_Kx4 dst", dst, 4 * cols);
    this.range("dequantizeRowQ4_Kx4 w", w, rowBytes("q4_k", cols) * rows);
    this.exports.dequantizeRowQ4_Kx4(dst, w, rows, cols, row);
  }

  /**
   * Repack a q6_K matrix in place (same bytes) into the 4-row-interleaved layout that
   * `matmulQ6_Kx4` reads: per 4 rows and block index, the 4 rows' d, their scales as tables by
   * 16-value group, then their 6-bit codes regrouped so that 4 values of each row come out of
   * one mask (or a few shifts); the last rows % 4 rows stay plain. Returns false (memory untouched) if the rows are too wide for the kernels'
   * scratch. The repacked matrix must only be used through the *Q6_Kx4 methods.
   */
  repackQ6_Kx4(w: Ptr, rows: number, cols: number): boolean {
    this.shape("repackQ6_Kx4", rows, cols);
    if (cols % QK_K !== 0) throw new RangeError(`repackQ6_Kx4: cols must be a multiple of ${QK_K}, got ${cols}`);
    this.range("repackQ6_Kx4 w", w, rowBytes("q6_k", cols) * rows);
    return this.exports.repackQ6_Kx4(w, rows, cols) !== 0;
  }

  /** matmul("q6_k", ...) for a matrix repacked by `repackQ6_Kx4`; bit-identical results. */
  matmulQ6_Kx4(out: Ptr, w: Ptr, xq: Ptr, rows: number, cols: number, nTok = 1): void {
    this.shape("matmulQ6_Kx4", rows, cols, nTok);
    if (cols % QK_K !== 0) throw new RangeError(`matmulQ6_Kx4: cols must be a multiple of ${QK_K}, got ${cols}`);
    if (cols > this.maxQuantCols) throw new RangeError(`matmulQ6_Kx4: cols ${cols} > ${this.maxQuantCols} supported`);
    this.range("matmulQ6_Kx4 out", out, 4 * rows * nTok);
    this.range("matmulQ6_Kx4 w", w, rowBytes("q6_k", cols) * rows);
    this.range("matmulQ6_Kx4 xq", xq, activationRowBytes("q8_k", cols) * nTok);
    this.exports.matmulQ6_Kx4(out, w, xq, rows, cols, nTok);
  }

  /** Row `row` of a `repackQ6_Kx4` matrix as f32 (same values as dequantizeRow of the plain row). */
  dequantizeRowQ6_Kx4(dst: Ptr, w: Ptr, rows: number, cols: number, row: number): void {
    this.shape("dequantizeRowQ6_Kx4", rows, cols);
    if (cols % QK_K !== 0) throw new RangeError(`dequantizeRowQ6_Kx4: cols must be a multiple of ${QK_K}, got ${cols}`);
    if (!(Number.isInteger(row) && row >= 0 && row < rows)) throw new RangeError(`dequantizeRowQ6_Kx4: row ${row} outside ${rows}`);
    this.range("dequantizeRowQ6_Kx4 dst", dst, 4 * cols);
    this.range("dequantizeRowQ6_Kx4 w", w, rowBytes("q6_k", cols) * rows);
    this.exports.dequantizeRowQ6_Kx4(dst, w, rows, cols, row);
  }

  /**
   * A linear layer on f32 activations for any weight dtype: quantizes x into `xqScratch`
   * (activationRowBytes(activationFormat(dtype), cols) * nTok bytes) first when the weights are
   * quantized.
   */
  linear(dtype: DType, out: Ptr, w: Ptr, x: Ptr, xqScratch: Ptr, rows: number, cols: number, nTok = 1): void {
    const format = activationFormat(dtype);
    if (format) {
      this.quantizeActivations(format, xqScratch, x, cols, nTok);
      this.matmul(dtype, out, w, xqScratch, rows, cols, nTok);
    } else {
      this.matmul(dtype, out, w, x, rows, cols, nTok);
    }
  }

  /** f32 rows -> q8_0 rows (ceil(n/32) blocks each), byte-identical to quantizeQ8_0 in TS. */
  quantizeRows(dst: Ptr, src: Ptr, n: number, nRows = 1): void {
    this.shape("quantizeRows", n, nRows);
    this.range("quantizeRows dst", dst, rowBytes("q8_0", n) * nRows);
    this.range("quantizeRows src", src, 4 * n * nRows);
    this.exports.quantizeRowsQ8_0(dst, src, n, nRows);
  }

  /**
   * f32 rows -> activations in `format` (q8_0, q8_1 or q8_K; see activationFormat), byte-identical
   * to quantizeActivations in kernels/quant.ts.
   */
  quantizeActivations(format: ActivationFormat, dst: Ptr, src: Ptr, n: number, nRows = 1): void {
    if (format === "q8_0") return this.quantizeRows(dst, src, n, nRows);
    this.shape("quantizeActivations", n, nRows);
    this.range("quantizeActivations dst", dst, activationRowBytes(format, n) * nRows);
    this.range("quantizeActivations src", src, 4 * n * nRows);
    if (format === "q8_1") this.exports.quantizeRowsQ8_1(dst, src, n, nRows);
    else this.exports.quantizeRowsQ8_K(dst, src, n, nRows);
  }

  /** One row of `dtype` values at src -> f32 (embedding lookup of any dtype). */
  dequantizeRow(dtype: DType, dst: Ptr, src: Ptr, n: number): void {
    this.shape("dequantizeRow", n);
    this.range("dequantizeRow dst", dst, 4 * n);
    this.range("dequantizeRow src", src, rowBytes(dtype, n));
    const e = this.exports;
    switch (dtype) {
      case "f32": new Float32Array(this.memory.buffer).copyWithin(dst >>> 2, src >>> 2, (src >>> 2) + n); return;
      case "f16": e.f16ToF32Row(dst, src, n); return;
      case "q8_0": e.dequantizeRowQ8_0(dst, src, n); return;
      case "q4_0": e.dequantizeRowQ4_0(dst, src, n); return;
      case "q4_1": e.dequantizeRowQ4_1(dst, src, n); return;
      case "q5_0": e.dequantizeRowQ5_0(dst, src, n); return;
      case "q5_1": e.dequantizeRowQ5_1(dst, src, n); return;
    }
    if (n % QK_K !== 0) throw new RangeError(`dequantizeRow: ${dtype} needs n a multiple of ${QK_K}, got ${n}`);
    if (dtype === "q4_k") e.dequantizeRowQ4_K(dst, src, n);
    else if (dtype === "q5_k") e.dequantizeRowQ5_K(dst, src, n);
    else if (dtype === "q6_k") e.dequantizeRowQ6_K(dst, src, n);
  }

  f16ToF32Row(dst: Ptr, src: Ptr, n: number): void {
    this.range("f16ToF32Row", dst, 4 * n);
    this.exports.f16ToF32Row(dst, src, n);
  }

  /** Round-to-nearest-even f32 -> f16 (e.g. appending to an f16 KV cache). */
  f32ToF16Row(dst: Ptr, src: Ptr, n: number): void {
    this.range("f32ToF16Row", dst, 2 * n);
    this.exports.f32ToF16Row(dst, src, n);
  }

  rmsnorm(out: Ptr, x: Ptr, weight: Ptr, n: number, eps = 1e-5): void {
    this.range("rmsnorm", out, 4 * n);
    this.exports.rmsnorm(out, x, weight, n, eps);
  }

  layernorm(out: Ptr, x: Ptr, weight: Ptr, bias: Ptr, n: number, eps = 1e-5): void {
    this.range("layernorm", out, 4 * n);
    this.exports.layernorm(out, x, weight, bias, n, eps);
  }

  softmax(x: Ptr, n: number): void {
    this.range("softmax", x, 4 * n);
    this.exports.softmax(x, n);
  }

  swiglu(h: Ptr, g: Ptr, n: number): void {
    this.range("swiglu", h, 4 * n);
    this.exports.swiglu(h, g, n);
  }

  silu(x: Ptr, n: number): void {
    this.range("silu", x, 4 * n);
    this.exports.silu(x, n);
  }

  gelu(x: Ptr, n: number): void {
    this.range("gelu", x, 4 * n);
    this.exports.gelu(x, n);
  }

  addInPlace(a: Ptr, b: Ptr, n: number): void {
    this.range("addInPlace", a, 4 * n);
    this.exports.addInPlace(a, b, n);
  }

  /** x[t, i] += bias[i] for t < nTok. */
  addBias(x: Ptr, bias: Ptr, n: number, nTok = 1): void {
    this.range("addBias", x, 4 * n * nTok);
    this.exports.addBias(x, bias, n, nTok);
  }

  mulInPlace(a: Ptr, b: Ptr, n: number): void {
    this.range("mulInPlace", a, 4 * n);
    this.exports.mulInPlace(a, b, n);
  }

  scale(x: Ptr, n: number, s: number): void {
    this.range("scale", x, 4 * n);
    this.exports.scale(x, n, s);
  }

  argmax(x: Ptr, n: number): number {
    this.range("argmax", x, 4 * n);
    return this.exports.argmax(x, n);
  }

  /** Rotate all heads of vec in place; cosSin from `ropeCosSin` copied into wasm memory. */
  rope(vec: Ptr, nHeads: number, headSize: number, cosSin: Ptr, layout: RopeLayout = 0): void {
    this.range("rope", vec, 4 * nHeads * headSize);
    this.exports.rope(vec, nHeads, headSize, cosSin, layout);
  }

  /**
   * Attention of one query token over cache positions [0, nPos). att: nHeads*nPos f32 scratch.
   * kCache/vCache point at this layer's [position][nKvHeads*headSize] cache.
   */
  attention(out: Ptr, q: Ptr, kCache: Ptr, vCache: Ptr, att: Ptr, nHeads: number, nKvHeads: number, headSize: number, nPos: number, cacheDtype: CacheDType = "f32"): void {
    this.shape("attention", nHeads, nKvHeads, headSize, nPos);
    if (nKvHeads === 0 || nHeads % nKvHeads !== 0) throw new RangeError(`attention: nHeads ${nHeads} not a multiple of nKvHeads ${nKvHeads}`);
    const es = cacheDtype === "f16" ? 2 : 4;
    this.range("attention out", out, 4 * nHeads * headSize);
    this.range("attention att", att, 4 * nHeads * nPos);
    this.range("attention kCache", kCache, es * nKvHeads * headSize * nPos);
    this.range("attention vCache", vCache, es * nKvHeads * headSize * nPos);
    this.exports.attention(out, q, kCache, vCache, att, nHeads, nKvHeads, headSize, nPos, DTYPE_CODE[cacheDtype]);
  }

  /** Causal attention for nTok tokens at positions startPos..; att: nHeads*(startPos+nTok) f32. */
  attentionBatch(out: Ptr, q: Ptr, kCache: Ptr, vCache: Ptr, att: Ptr, nHeads: number, nKvHeads: number, headSize: number, startPos: number, nTok: number, cacheDtype: CacheDType = "f32"): void {
    this.shape("attentionBatch", nHeads, nKvHeads, headSize, startPos, nTok);
    if (nKvHeads === 0 || nHeads % nKvHeads !== 0) throw new RangeError(`attentionBatch: nHeads ${nHeads} not a multiple of nKvHeads ${nKvHeads}`);
    const es = cacheDtype === "f16" ? 2 : 4;
    const nPos = startPos + nTok;
    this.range("attentionBatch out", out, 4 * nHeads * headSize * nTok);
    this.range("attentionBatch att", att, 4 * nHeads * nPos);
    this.range("attentionBatch kCache", kCache, es * nKvHeads * headSize * nPos);
    this.range("attentionBatch vCache", vCache, es * nKvHeads * headSize * nPos);
    this.exports.attentionBatch(out, q, kCache, vCache, att, nHeads, nKvHeads, headSize, startPos, nTok, DTYPE_CODE[cacheDtype]);
  }
}
