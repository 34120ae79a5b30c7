// Grouped-query attention over the KV cache for one query token (decode) or a causal batch
// (prefill). Cache layout per layer: [position][nKvHeads * headSize], f32 or f16 bits.

import { DTYPE_F16, F16_REBIAS, hmaxf, hsum4f, hsumf, h2fHighExact } from "./common";
import { softmax } from "./activation";

/**
 * 4 cache values at p as f32x4; f16 entries are converted exactly (inf stays inf). With FAST
 * (f16 only, no inf/NaN in the cache) they come out times 2^-112: the f16 bits moved into f32
 * position, sign kept, exponent not rebiased (exact for normals and subnormals); the other
 * operand is then taken times 2^112, so every product is the same real number rounded once.
 */
@inline
function load4<T, FAST>(p: usize): v128 {
  if (sizeof<T>() == 2) {
    const s = i16x8.shuffle(i16x8.splat(0), v128.load64_zero(p), 0, 8, 1, 9, 2, 10, 3, 11);
    if (sizeof<FAST>() == 1) return v128.and(i32x4.shr_s(s, 3), i32x4.splat(0x8fffe000));
    return h2fHighExact(s);
  }
  return v128.load(p);
}

@inline
function load1<T, FAST>(p: usize): f32 {
  if (sizeof<T>() == 2) {
    const s = i32x4.splat(<i32>load<u16>(p) << 16);
    if (sizeof<FAST>() == 1) return f32x4.extract_lane(v128.and(i32x4.shr_s(s, 3), i32x4.splat(0x8fffe000)), 0);
    return f32x4.extract_lane(h2fHighExact(s), 0);
  }
  return load<f32>(p);
}

/** Operand scale that pairs with load4<T, FAST>: 2^112 on the fast f16 path, else 1. */
@inline
function pre<T, FAST>(): f32 {
  return sizeof<T>() == 2 && sizeof<FAST>() == 1 ? F16_REBIAS : <f32>1.0;
}

function attendHead<T, FAST>(out: usize, q: usize, k: usize, v: usize, att: usize, headSize: i32, nPos: i32, rowBytes: usize, scale: f32): void {
  const es = <usize>sizeof<T>();
  const hs4 = headSize & ~3;
  // scores, 4 positions at a time so one horizontal reduction serves 4 dots
  let p = 0;
  for (; p + 4 <= nPos; p += 4) {
    const k0 = k + <usize>p * rowBytes, k1 = k0 + rowBytes, k2 = k1 + rowBytes, k3 = k2 + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let i = 0; i < hs4; i += 4) {
      const qv = f32x4.mul(v128.load(q + (<usize>i << 2)), f32x4.splat(pre<T, FAST>()));
      const ko = <usize>i * es;
      a0 = f32x4.add(a0, f32x4.mul(qv, load4<T, FAST>(k0 + ko)));
      a1 = f32x4.add(a1, f32x4.mul(qv, load4<T, FAST>(k1 + ko)));
      a2 = f32x4.add(a2, f32x4.mul(qv, load4<T, FAST>(k2 + ko)));
      a3 = f32x4.add(a3, f32x4.mul(qv, load4<T, FAST>(k3 + ko)));
    }
    let s = hsum4f(a0, a1, a2, a3);
    for (let i = hs4; i < headSize; i++) {
      const qs = load<f32>(q + (<usize>i << 2)) * pre<T, FAST>();
      const ko = <usize>i * es;
      let t = f32x4.splat(qs * load1<T, FAST>(k0 + ko));
      t = f32x4.replace_lane(t, 1, qs * load1<T, FAST>(k1 + ko));
      t = f32x4.replace_lane(t, 2, qs * load1<T, FAST>(k2 + ko));
      t = f32x4.replace_lane(t, 3, qs * load1<T, FAST>(k3 + ko));
      s = f32x4.add(s, t);
    }
    v128.store(att + (<usize>p << 2), f32x4.mul(s, f32x4.splat(scale)));
  }
  for (; p < nPos; p++) {
    const k0 = k + <usize>p * rowBytes;
    let a0 = f32x4.splat(0);
    for (let i = 0; i < hs4; i += 4) a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(v128.load(q + (<usize>i << 2)), f32x4.splat(pre<T, FAST>())), load4<T, FAST>(k0 + <usize>i * es)));
    let s = hsumf(a0);
    for (let i = hs4; i < headSize; i++) s += (load<f32>(q + (<usize>i << 2)) * pre<T, FAST>()) * load1<T, FAST>(k0 + <usize>i * es);
    store<f32>(att + (<usize>p << 2), s * scale);
  }

  softmax(att, nPos);

  // out = sum_p att[p] * v[p]; 16 output lanes stay in registers across all positions
  let i = 0;
  for (; i + 16 <= headSize; i += 16) {
    let o0 = f32x4.splat(0), o1 = f32x4.splat(0), o2 = f32x4.splat(0), o3 = f32x4.splat(0);
    let vp = v + <usize>i * es;
    for (let p = 0; p < nPos; p++) {
      const a = f32x4.mul(v128.load32_splat(att + (<usize>p << 2)), f32x4.splat(pre<T, FAST>()));
      o0 = f32x4.add(o0, f32x4.mul(a, load4<T, FAST>(vp)));
      o1 = f32x4.add(o1, f32x4.mul(a, load4<T, FAST>(vp + 4 * es)));
      o2 = f32x4.add(o2, f32x4.mul(a, load4<T, FAST>(vp + 8 * es)));
      o3 = f32x4.add(o3, f32x4.mul(a, load4<T, FAST>(vp + 12 * es)));
      vp += rowBytes;
    }
    const op = out + (<usize>i << 2);
    v128.store(op, o0);
    v128.store(op, o1, 16);
    v128.store(op, o2, 32);
    v128.store(op, o3, 48);
  }
  for (; i + 4 <= headSize; i += 4) {
    let o0 = f32x4.splat(0);
    let vp = v + <usize>i * es;
    for (let p = 0; p < nPos; p++) {
      o0 = f32x4.add(o0, f32x4.mul(f32x4.mul(v128.load32_splat(att + (<usize>p << 2)), f32x4.splat(pre<T, FAST>())), load4<T, FAST>(vp)));
      vp += rowBytes;
    }
    v128.store(out + (<usize>i << 2), o0);
  }
  for (; i < headSize; i++) {
    let o: f32 = 0;
    let vp = v + <usize>i * es;
    for (let p = 0; p < nPos; p++) {
      o += (load<f32>(att + (<usize>p << 2)) * pre<T, FAST>()) * load1<T, FAST>(vp);
      vp += rowBytes;
    }
    store<f32>(out + (<usize>i << 2), o);
  }
}

/** No inf/NaN among n f16 values at p (exponent field 31): (h << 1) < 0xf800 unsigned. */
function f16Finite(p: usize, n: i32): bool {
  let m = i16x8.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) m = i16x8.max_u(m, i16x8.shl(v128.load(p + (<usize>i << 1)), 1));
  let worst = max<u32>(max<u32>(max<u32>(i16x8.extract_lane_u(m, 0), i16x8.extract_lane_u(m, 1)), max<u32>(i16x8.extract_lane_u(m, 2), i16x8.extract_lane_u(m, 3))),
    max<u32>(max<u32>(i16x8.extract_lane_u(m, 4), i16x8.extract_lane_u(m, 5)), max<u32>(i16x8.extract_lane_u(m, 6), i16x8.extract_lane_u(m, 7))));
  for (; i < n; i++) worst = max<u32>(worst, (<u32>load<u16>(p + (<usize>i << 1)) << 1) & 0xffff);
  return worst < 0xf800;
}

/** |q| < 2^15 everywhere (and no NaN), so q * 2^112 stays finite. */
function qSmall(q: usize, n: i32): bool {
  let m = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, f32x4.abs(v128.load(q + (<usize>i << 2))));
  let a = hmaxf(m);
  for (; i < n; i++) a = max<f32>(a, Mathf.abs(load<f32>(q + (<usize>i << 2))));
  return a < <f32>32768.0;
}

/**
 * One query token against positions [0, nPos): for head h (kv head h / (nHeads/nKvHeads)),
 * scores q.k / sqrt(headSize), softmax, then the weighted sum of values into
 * out[h*headSize ..]. att: scratch of nHeads*nPos f32, left holding the attention weights.
 * cacheDtype 0 = f32, 1 = f16.
 */
export function attention(out: usize, q: usize, kCache: usize, vCache: usize, att: usize, nHeads: i32, nKvHeads: i32, headSize: i32, nPos: i32, cacheDtype: i32): void {
  if (nHeads <= 0 || nKvHeads <= 0 || nPos <= 0) return;
  const isF16 = cacheDtype == DTYPE_F16;
  const fast = isF16 && f16Finite(kCache, nPos * nKvHeads * headSize) && f16Finite(vCache, nPos * nKvHeads * headSize) && qSmall(q, nHeads * headSize);
  attendAll(out, q, kCache, vCache, att, nHeads, nKvHeads, headSize, nPos, isF16, fast);
}

/** Every head of one query token; `fast` as decided by the callers (see load4). */
function attendAll(out: usize, q: usize, kCache: usize, vCache: usize, att: usize, nHeads: i32, nKvHeads: i32, headSize: i32, nPos: i32, isF16: bool, fast: bool): void {
  const group = nHeads / nKvHeads;
  const es: usize = isF16 ? 2 : 4;
  const rowBytes = <usize>(nKvHeads * headSize) * es;
  const scale: f32 = <f32>1.0 / Mathf.sqrt(<f32>headSize);
  for (let h = 0; h < nHeads; h++) {
    const qo = (<usize>h * <usize>headSize) << 2;
    const kvo = <usize>((h / group) * headSize) * es;
    const a = att + ((<usize>h * <usize>nPos) << 2);
    if (fast) attendHead<u16, u8>(out + qo, q + qo, kCache + kvo, vCache + kvo, a, headSize, nPos, rowBytes, scale);
    else if (isF16) attendHead<u16, u16>(out + qo, q + qo, kCache + kvo, vCache + kvo, a, headSize, nPos, rowBytes, scale);
    else attendHead<f32, u16>(out + qo, q + qo, kCache + kvo, vCache + kvo, a, headSize, nPos, rowBytes, scale);
  }
}

/**
 * Causal attention for nTok consecutive query tokens at positions startPos.. (prefill): token t
 * sees positions [0, startPos + t]. q/out are [nTok][nHeads*headSize]; the cache must already
 * hold all nTok new positions. att: scratch of nHeads*(startPos+nTok) f32.
 */
export function attentionBatch(out: usize, q: usize, kCache: usize, vCache: usize, att: usize, nHeads: i32, nKvHeads: i32, headSize: i32, startPos: i32, nTok: i32, cacheDtype: i32): void {
  if (nHeads <= 0 || nKvHeads <= 0 || nTok <= 0) return;
  const rowF = (<usize>nHeads * <usize>headSize) << 2;
  // the fast f16 path's preconditions checked once for the whole batch (not per token: that
  // rescanned the cache every time); both paths give bit-identical results
  const isF16 = cacheDtype == DTYPE_F16;
  const n = (startPos + nTok) * nKvHeads * headSize;
  const fast = isF16 && f16Finite(kCache, n) && f16Finite(vCache, n) && qSmall(q, nTok * nHeads * headSize);
  for (let t = 0; t < nTok; t++) {
    attendAll(out + <usize>t * rowF, q + <usize>t * rowF, kCache, vCache, att, nHeads, nKvHeads, headSize, startPos + t + 1, isF16, fast);
  }
}
