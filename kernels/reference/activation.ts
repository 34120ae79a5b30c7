// Reference elementwise ops (see kernels/assembly/activation.ts): computed in double, rounded
// to f32 once, i.e. the ideal results the wasm versions approximate within a few ulp.
const fr = Math.fround;

export function softmax(x: Float32Array, n: number): void {
  if (n <= 0) return;
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, x[i]!);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[i]! - m);
  for (let i = 0; i < n; i++) x[i] = Math.exp(x[i]! - m) / s;
}

export function swiglu(h: Float32Array, g: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) h[i] = (h[i]! / (1 + Math.exp(-h[i]!))) * g[i]!;
}

export function silu(x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] = x[i]! / (1 + Math.exp(-x[i]!));
}

/** GPT-2 tanh GELU 0.5x(1 + tanh(u)), written as x / (1 + e^(-2u)) which is the same function
 *  but does not cancel to 0 for very negative x (1 + tanh(u) loses all digits in double). */
export function gelu(x: Float32Array, n: number): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    x[i] = v / (1 + Math.exp(-2 * c * (v + 0.044715 * v * v * v)));
  }
}

export function addInPlace(a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) a[i] = a[i]! + b[i]!;
}

export function addBias(x: Float32Array, bias: Float32Array, n: number, nTok: number): void {
  for (let t = 0; t < nTok; t++) for (let i = 0; i < n; i++) x[t * n + i] = x[t * n + i]! + bias[i]!;
}

export function mulInPlace(a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) a[i] = a[i]! * b[i]!;
}

export function scale(x: Float32Array, n: number, s: number): void {
  const sf = fr(s);
  for (let i = 0; i < n; i++) x[i] = x[i]! * sf;
}

export function argmax(x: Float32Array, n: number): number {
  if (n <= 0) return -1;
  let best = 0;
  for (let i = 1; i < n; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
