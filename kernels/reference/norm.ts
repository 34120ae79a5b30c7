// Reference normalization (see kernels/assembly/norm.ts); sums in double.
const fr = Math.fround;

export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, n: number, eps: number): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[i]! * x[i]!;
  const s = fr(1 / Math.sqrt(fr(fr(ss / n) + fr(eps))));
  for (let i = 0; i < n; i++) out[i] = fr(weight[i]! * fr(s * x[i]!));
}

export function layernorm(out: Float32Array, x: Float32Array, weight: Float32Array, bias: Float32Array, n: number, eps: number): void {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i]!;
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i]! - mean) ** 2;
  const rstd = 1 / Math.sqrt(v / n + fr(eps));
  for (let i = 0; i < n; i++) out[i] = (x[i]! - mean) * rstd * weight[i]! + bias[i]!;
}
