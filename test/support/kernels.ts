// A kernel instance for the kernel tests: plain data copied in, and work whose allocations are
// released when it returns.

import { Kernels, type Ptr } from "../../kernels/index";
import { loadKernelsModuleForNode } from "../../kernels/node";

export interface TestKernels {
  /** The instance (created on first use). */
  readonly K: Kernels;
  /** Copies `data` into wasm memory (aligned to `align` bytes). */
  put(data: ArrayBufferView, align?: number): Ptr;
  /** Runs `fn`; everything it allocated is released afterwards. */
  scoped<T>(fn: () => T): T;
}

export function testKernels(bytes: number): TestKernels {
  let instance: Kernels | null = null;
  const k = () => (instance ??= Kernels.create(loadKernelsModuleForNode(), bytes));
  return {
    get K() {
      return k();
    },
    put(data, align = 16) {
      const p = k().alloc(data.byteLength, align);
      k().write(p, data);
      return p;
    },
    scoped(fn) {
      const m = k().mark();
      try {
        return fn();
      } finally {
        k().release(m);
      }
    },
  };
}
