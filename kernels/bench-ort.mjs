// Baseline for kernels/bench.ts: times onnxruntime-web's wasm backend (1 thread) on the same
// matrix-vector shapes. `node kernels/bench-ort.mjs`. Builds one-node ONNX models by
// hand-encoding protobuf (no onnx tooling needed):
//   int8: MatMulInteger (uint8 x int8 -> int32, ORT's dynamic-quantization path, no scales)
//   q4:   com.microsoft MatMulNBits, 4 bits, block 32 (the q4_0 counterpart)
//   f32:  MatMul
import * as ort from "onnxruntime-web";
const enc = new TextEncoder();
function varint(n) { const o = []; n = BigInt(n); do { let b = Number(n & 0x7fn); n >>= 7n; if (n) b |= 0x80; o.push(b); } while (n); return o; }
function field(num, wire, payload) { return [...varint((num << 3) | wire), ...payload]; }
const vint = (num, v) => field(num, 0, varint(v));
const bytes = (num, b) => field(num, 2, [...varint(b.length), ...b]);
const str = (num, s) => bytes(num, [...enc.encode(s)]);
function tensor(name, dims, dtype, raw) { return [...dims.flatMap((d) => vint(1, d)), ...vint(2, dtype), ...str(8, name), ...bytes(9, [...raw])]; }
function valueInfo(name, dims, et = 1) {
  const shape = dims.flatMap((d) => bytes(1, vint(1, d)));
  const tt = [...vint(1, et), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tt))];
}
const attrInt = (name, v) => [...str(1, name), ...vint(3, v), ...vint(20, 2)];
function model(K, N, kind) {
  let node, inits;
  if (kind === "q4") {
    const nb = K / 32;
    const B = new Uint8Array(N * nb * 16).map((_, i) => (i * 37) & 0xff);
    const S = new Float32Array(N * nb).map((_, i) => 0.01 + (i % 7) * 0.001);
    inits = [bytes(5, tensor("B", [N, nb, 16], 2, B)), bytes(5, tensor("S", [N * nb], 1, new Uint8Array(S.buffer)))];
    node = [...str(1, "A"), ...str(1, "B"), ...str(1, "S"), ...str(2, "Y"), ...str(3, "mm"), ...str(4, "MatMulNBits"), ...str(7, "com.microsoft"),
      ...bytes(5, attrInt("K", K)), ...bytes(5, attrInt("N", N)), ...bytes(5, attrInt("bits", 4)), ...bytes(5, attrInt("block_size", 32))];
  } else if (kind === "int8") {
    const B = new Int8Array(K * N).map((_, i) => ((i * 7919) % 255) - 127);
    const zp = new Uint8Array([128]);
    inits = [bytes(5, tensor("B", [K, N], 3, new Uint8Array(B.buffer))), bytes(5, tensor("azp", [], 2, zp))];
    node = [...str(1, "A"), ...str(1, "B"), ...str(1, "azp"), ...str(2, "Y"), ...str(3, "mm"), ...str(4, "MatMulInteger")];
  } else {
    const B = new Float32Array(K * N).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    inits = [bytes(5, tensor("B", [K, N], 1, new Uint8Array(B.buffer)))];
    node = [...str(1, "A"), ...str(1, "B"), ...str(2, "Y"), ...str(3, "mm"), ...str(4, "MatMul")];
  }
  const graph = [...bytes(1, node), ...str(2, "g"), ...inits.flat(), ...bytes(11, valueInfo("A", [1, K], kind === "int8" ? 2 : 1)), ...bytes(12, valueInfo("Y", [1, N], kind === "int8" ? 6 : 1))];
  const m = [...vint(1, 8), ...bytes(8, [...str(1, ""), ...vint(2, 17)]), ...bytes(8, [...str(1, "com.microsoft"), ...vint(2, 1)]), ...bytes(7, graph)];
  return new Uint8Array(m);
}
ort.env.wasm.numThreads = 1;
ort.env.wasm.simd = true;
for (const [N, K] of [[32000, 288], [768, 2048], [2048, 768], [16384, 4096]]) {
  for (const kind of ["int8", "q4", "f32"]) {
    if (kind === "f32" && N * K > 40e6) continue;
    const sess = await ort.InferenceSession.create(model(K, N, kind), { executionProviders: ["wasm"] });
    const A = kind === "int8" ? new ort.Tensor("uint8", new Uint8Array(K).map((_, i) => (i * 13) & 255), [1, K]) : new ort.Tensor("float32", new Float32Array(K).map((_, i) => Math.sin(i)), [1, K]);
    for (let i = 0; i < 3; i++) await sess.run({ A });
    let best = 1e9;
    const t0 = performance.now();
    while (performance.now() - t0 < 1500) { const s = performance.now(); await sess.run({ A }); best = Math.min(best, performance.now() - s); }
    const wBytes = kind === "q4" ? N * K / 32 * 20 : kind === "int8" ? N * K : N * K * 4;
    console.log(`ort ${kind} N=${N} K=${K}: ${best.toFixed(3)} ms  (${(wBytes / best / 1e6).toFixed(1)} GB/s of its weights)`);
    await sess.release();
  }
}
