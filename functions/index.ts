import { Hono } from "hono";
import kernelsModule from "../kernels/build/kernels.wasm";
const app = new Hono<{ Bindings: { MODELS: KVNamespace } }>();
app.get("/healthz", (c) => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const inst = new WebAssembly.Instance(kernelsModule, { env: { memory } });
  const f = new Float32Array(memory.buffer, 1024, 7); f.set([1,2,3,4,5,6,7]);
  const a = new Int8Array(memory.buffer, 2048, 32); a.fill(2);
  return c.json({ ok: true, s: (inst.exports.sumF32 as any)(1024, 7), d: (inst.exports.dotRelaxed as any)(2048, 2064) });
});
export default app;
