// Grouped-query attention over the KV cache for one query token (decode) or a causal batch
// (prefill). Cache layout per layer: [position][nKvHeads * headSize], f32 or f16 bits.

import { DTYPE_F16, F16_REBIAS, SCRATCH_BYTES, hmaxf, hsum4f, hsumf, h2fHighExact, scratchBase } from "./common";
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
    // FAST: the sign-extending load puts h in each lane; << 13 lands its bits where
    // shr_s(h << 16, 3) does, and the mask clears the rest (one load, two operations)
    if (sizeof<FAST>() == 1) return v128.and(i32x4.shl(v128.load16x4_s(p), 13), i32x4.splat(0x8fffe000));
    return h2fHighExact(i16x8.shuffle(i16x8.splat(0), v128.load64_zero(p), 0, 8, 1, 9, 2, 10, 3, 11));
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

/** One score q . k * scale (hsumf, then the scalar tail): the positions past the last multiple of 4. */
@inline
function score1<T, FAST>(q: usize, k0: usize, headSize: i32, scale: f32): f32 {
  const es = <usize>sizeof<T>();
  const hs4 = headSize & ~3;
  let a0 = f32x4.splat(0);
  for (let i = 0; i < hs4; i += 4) a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(v128.load(q + (<usize>i << 2)), f32x4.splat(pre<T, FAST>())), load4<T, FAST>(k0 + <usize>i * es)));
  let s = hsumf(a0);
  for (let i = hs4; i < headSize; i++) s += (load<f32>(q + (<usize>i << 2)) * pre<T, FAST>()) * load1<T, FAST>(k0 + <usize>i * es);
  return s * scale;
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
  for (; p < nPos; p++) store<f32>(att + (<usize>p << 2), score1<T, FAST>(q, k + <usize>p * rowBytes, headSize, scale));

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

// Prefill, 4 query tokens at a time: per head, each cache row is loaded (and converted from
// f16) once for the 4 tokens instead of once per token. Every score and every output lane is
// computed with the same operations in the same order as attendHead computes it for one token
// (hsum4f and hsumf reduce a vector in the same order; the value sums run over positions in
// order, lane by lane), so the results are bit-identical to 4 attendAll calls.

/** Query tokens per batched group. */
const QB: i32 = 4;

/** One head's scores for QB tokens (q0 + j*qStride) at positions [0, common) of k, into att[j*attRow + p]. */
@inline
function scoresQB<T, FAST>(att: usize, attRow: usize, q0: usize, qStride: usize, k: usize, headSize: i32, common: i32, rowBytes: usize, scale: f32): void {
  const es = <usize>sizeof<T>();
  const hs4 = headSize & ~3;
  const q1 = q0 + qStride, q2 = q1 + qStride, q3 = q2 + qStride;
  let p = 0;
  for (; p + 2 <= common; p += 2) {
    const k0 = k + <usize>p * rowBytes, k1 = k0 + rowBytes;
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0), a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0), a3 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let i = 0; i < hs4; i += 4) {
      const ko = <usize>i * es, qo = <usize>i << 2;
      const x0 = load4<T, FAST>(k0 + ko), x1 = load4<T, FAST>(k1 + ko);
      const pv = f32x4.splat(pre<T, FAST>());
      let qv = f32x4.mul(v128.load(q0 + qo), pv);
      a0 = f32x4.add(a0, f32x4.mul(qv, x0)); b0 = f32x4.add(b0, f32x4.mul(qv, x1));
      qv = f32x4.mul(v128.load(q1 + qo), pv);
      a1 = f32x4.add(a1, f32x4.mul(qv, x0)); b1 = f32x4.add(b1, f32x4.mul(qv, x1));
      qv = f32x4.mul(v128.load(q2 + qo), pv);
      a2 = f32x4.add(a2, f32x4.mul(qv, x0)); b2 = f32x4.add(b2, f32x4.mul(qv, x1));
      qv = f32x4.mul(v128.load(q3 + qo), pv);
      a3 = f32x4.add(a3, f32x4.mul(qv, x0)); b3 = f32x4.add(b3, f32x4.mul(qv, x1));
    }
    // lanes: [token 0, token 1, token 2, token 3] at position p, then at p + 1
    let s = hsum4f(a0, a1, a2, a3), t = hsum4f(b0, b1, b2, b3);
    for (let i = hs4; i < headSize; i++) {
      const ko = <usize>i * es, qo = <usize>i << 2;
      const y0 = load1<T, FAST>(k0 + ko), y1 = load1<T, FAST>(k1 + ko);
      let u = f32x4.splat((load<f32>(q0 + qo) * pre<T, FAST>()) * y0);
      u = f32x4.replace_lane(u, 1, (load<f32>(q1 + qo) * pre<T, FAST>()) * y0);
      u = f32x4.replace_lane(u, 2, (load<f32>(q2 + qo) * pre<T, FAST>()) * y0);
      u = f32x4.replace_lane(u, 3, (load<f32>(q3 + qo) * pre<T, FAST>()) * y0);
      s = f32x4.add(s, u);
      u = f32x4.splat((load<f32>(q0 + qo) * pre<T, FAST>()) * y1);
      u = f32x4.replace_lane(u, 1, (load<f32>(q1 + qo) * pre<T, FAST>()) * y1);
      u = f32x4.replace_lane(u, 2, (load<f32>(q2 + qo) * pre<T, FAST>()) * y1);
      u = f32x4.replace_lane(u, 3, (load<f32>(q3 + qo) * pre<T, FAST>()) * y1);
      t = f32x4.add(t, u);
    }
    s = f32x4.mul(s, f32x4.splat(scale));
    t = f32x4.mul(t, f32x4.splat(scale));
    const o = att + (<usize>p << 2);
    store<f32>(o, f32x4.extract_lane(s, 0)); store<f32>(o + attRow, f32x4.extract_lane(s, 1));
    store<f32>(o + 2 * attRow, f32x4.extract_lane(s, 2)); store<f32>(o + 3 * attRow, f32x4.extract_lane(s, 3));
    store<f32>(o, f32x4.extract_lane(t, 0), 4); store<f32>(o + attRow, f32x4.extract_lane(t, 1), 4);
    store<f32>(o + 2 * attRow, f32x4.extract_lane(t, 2), 4); store<f32>(o + 3 * attRow, f32x4.extract_lane(t, 3), 4);
  }
  // an odd last common position, and later the positions only some tokens see: one at a time
  for (; p < common; p++) {
    for (let j = 0; j < QB; j++) store<f32>(att + <usize>j * attRow + (<usize>p << 2), score1<T, FAST>(q0 + <usize>j * qStride, k + <usize>p * rowBytes, headSize, scale));
  }
}

/**
 * out_j += sum over positions [p0, p1) of w_j[p] * v[p] for QB tokens (out_j = o0 + j*oStride,
 * w_j = wts + j*attRow holding the weights already times pre()): lane by lane, in position order.
 */
@inline
function valuesQB<T, FAST>(o0: usize, oStride: usize, wts: usize, attRow: usize, v: usize, p0: i32, p1: i32, headSize: i32, rowBytes: usize): void {
  const es = <usize>sizeof<T>();
  let i = 0;
  for (; i + 8 <= headSize; i += 8) {
    const op = o0 + (<usize>i << 2);
    let c0 = v128.load(op), d0 = v128.load(op, 16);
    let c1 = v128.load(op + oStride), d1 = v128.load(op + oStride, 16);
    let c2 = v128.load(op + 2 * oStride), d2 = v128.load(op + 2 * oStride, 16);
    let c3 = v128.load(op + 3 * oStride), d3 = v128.load(op + 3 * oStride, 16);
    let vp = v + <usize>p0 * rowBytes + <usize>i * es;
    for (let p = p0; p < p1; p++) {
      const x = load4<T, FAST>(vp), y = load4<T, FAST>(vp + 4 * es);
      const w = wts + (<usize>p << 2);
      let a = v128.load32_splat(w);
      c0 = f32x4.add(c0, f32x4.mul(a, x)); d0 = f32x4.add(d0, f32x4.mul(a, y));
      a = v128.load32_splat(w + attRow);
      c1 = f32x4.add(c1, f32x4.mul(a, x)); d1 = f32x4.add(d1, f32x4.mul(a, y));
      a = v128.load32_splat(w + 2 * attRow);
      c2 = f32x4.add(c2, f32x4.mul(a, x)); d2 = f32x4.add(d2, f32x4.mul(a, y));
      a = v128.load32_splat(w + 3 * attRow);
      c3 = f32x4.add(c3, f32x4.mul(a, x)); d3 = f32x4.add(d3, f32x4.mul(a, y));
      vp += rowBytes;
    }
    v128.store(op, c0); v128.store(op, d0, 16);
    v128.store(op + oStride, c1); v128.store(op + oStride, d1, 16);
    v128.store(op + 2 * oStride, c2); v128.store(op + 2 * oStride, d2, 16);
    v128.store(op + 3 * oStride, c3); v128.store(op + 3 * oStride, d3, 16);
  }
  for (; i < headSize; i++) {
    for (let j = 0; j < QB; j++) {
      const op = o0 + <usize>j * oStride + (<usize>i << 2);
      let o = load<f32>(op);
      let vp = v + <usize>p0 * rowBytes + <usize>i * es;
      const w = wts + <usize>j * attRow;
      for (let p = p0; p < p1; p++) {
        o += load<f32>(w + (<usize>p << 2)) * load1<T, FAST>(vp);
        vp += rowBytes;
      }
      store<f32>(op, o);
    }
  }
}

/** QB tokens (the first at position first; token j sees [0, first + j]) over every head. */
function attendQB<T, FAST>(out: usize, q: usize, k: usize, v: usize, nHeads: i32, nKvHeads: i32, headSize: i32, first: i32): void {
  const group = nHeads / nKvHeads;
  const rowBytes = <usize>(nKvHeads * headSize) * <usize>sizeof<T>();
  const headBytes = <usize>headSize * <usize>sizeof<T>();
  const rowF = (<usize>nHeads * <usize>headSize) << 2;
  const scale: f32 = <f32>1.0 / Mathf.sqrt(<f32>headSize);
  const nLast = first + QB; // positions the last token sees
  const attRow = <usize>nLast << 2;
  const att = scratchBase();
  memory.fill(out, 0, rowF * <usize>QB);
  for (let h = 0; h < nHeads; h++) {
    const qh = q + ((<usize>h * <usize>headSize) << 2), oh = out + ((<usize>h * <usize>headSize) << 2);
    const kh = k + <usize>(h / group) * headBytes, vh = v + <usize>(h / group) * headBytes;
    const common = first + 1; // positions every token of the group sees
    scoresQB<T, FAST>(att, attRow, qh, rowF, kh, headSize, common, rowBytes, scale);
    for (let j = 1; j < QB; j++) {
      for (let p = common; p < common + j; p++) store<f32>(att + <usize>j * attRow + (<usize>p << 2), score1<T, FAST>(qh + <usize>j * rowF, kh + <usize>p * rowBytes, headSize, scale));
    }
    for (let j = 0; j < QB; j++) {
      const a = att + <usize>j * attRow, n = common + j;
      softmax(a, n);
      // the weights times pre(), as attendHead multiplies them before each use (same f32 values)
      if (pre<T, FAST>() != <f32>1.0) for (let p = 0; p < n; p++) store<f32>(a + (<usize>p << 2), load<f32>(a + (<usize>p << 2)) * pre<T, FAST>());
    }
    valuesQB<T, FAST>(oh, rowF, att, attRow, vh, 0, common, headSize, rowBytes);
    // then each token's own later positions, continuing its sums in position order
    for (let j = 1; j < QB; j++) valuesOne<T, FAST>(oh + <usize>j * rowF, att + <usize>j * attRow, vh, common, common + j, headSize, rowBytes);
  }
}

/** out += sum over positions [p0, p1) of w[p] * v[p] for one token (w already times pre()). */
@inline
function valuesOne<T, FAST>(out: usize, w: usize, v: usize, p0: i32, p1: i32, headSize: i32, rowBytes: usize): void {
  const es = <usize>sizeof<T>();
  let i = 0;
  for (; i + 4 <= headSize; i += 4) {
    const op = out + (<usize>i << 2);
    let o = v128.load(op);
    let vp = v + <usize>p0 * rowBytes + <usize>i * es;
    for (let p = p0; p < p1; p++) {
      o = f32x4.add(o, f32x4.mul(v128.load32_splat(w + (<usize>p << 2)), load4<T, FAST>(vp)));
      vp += rowBytes;
    }
    v128.store(op, o);
  }
  for (; i < headSize; i++) {
    const op = out + (<usize>i << 2);
    let o = load<f32>(op);
    let vp = v + <usize>p0 * rowBytes + <usize>i * es;
    for (let p = p0; p < p1; p++) {
      o += load<f32>(w + (<usize>p << 2)) * load1<T, FAST>(vp);
      vp += rowBytes;
    }
    store<f32>(op, o);
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
  let t = 0;
  // groups of QB tokens while their attention weights fit the scratch
  if ((<usize>QB * <usize>(startPos + nTok)) << 2 <= <usize>SCRATCH_BYTES) {
    for (; t + QB <= nTok; t += QB) {
      const o = out + <usize>t * rowF, qt = q + <usize>t * rowF;
      if (fast) attendQB<u16, u8>(o, qt, kCache, vCache, nHeads, nKvHeads, headSize, startPos + t);
      else if (isF16) attendQB<u16, u16>(o, qt, kCache, vCache, nHeads, nKvHeads, headSize, startPos + t);
      else attendQB<f32, u16>(o, qt, kCache, vCache, nHeads, nKvHeads, headSize, startPos + t);
    }
  }
  for (; t < nTok; t++) {
    attendAll(out + <usize>t * rowF, q + <usize>t * rowF, kCache, vCache, att, nHeads, nKvHeads, headSize, startPos + t + 1, isF16, fast);
  }
}
