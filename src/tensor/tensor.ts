/**
 * A dense float32 tensor in row-major (C) order. basin computes in float32 whatever the stored dtype; the
 * original dtype travels beside the tensor (see io/) so outputs are written back in it.
 */
import { BasinError, shapeStr } from '../errors.js';

/**
 * A dense float32 tensor: `shape` (row-major, C order) and `data` of numel(shape) values. Every computation in
 * basin runs on these; the stored dtype travels beside it (src/dtype.ts).
 * @throws BasinError shape_mismatch from the constructor when `data` does not hold numel(shape) values
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;

  constructor(shape: readonly number[], data?: Float32Array) {
    const n = numel(shape);
    if (data && data.length !== n) {
      throw new BasinError('shape_mismatch', `tensor data has ${data.length} elements but shape ${shapeStr(shape)} needs ${n}`, {
        shape,
        found: data.length,
      });
    }
    this.shape = Object.freeze([...shape]);
    this.data = data ?? new Float32Array(n);
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.data.length;
  }

  clone(): Tensor {
    return new Tensor(this.shape, this.data.slice());
  }

  /** Same data, new shape (no copy). */
  reshape(shape: readonly number[]): Tensor {
    const resolved = resolveShape(shape, this.data.length);
    return new Tensor(resolved, this.data);
  }
}

/** Element count with an overflow check: untrusted shapes must not silently lose precision. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new BasinError('shape_mismatch', `invalid dimension ${d} in shape ${shapeStr(shape)}`, { shape });
    }
    n *= d;
    if (!Number.isSafeInteger(n)) {
      throw new BasinError('shape_mismatch', `shape ${shapeStr(shape)} has more elements than can be addressed`, { shape });
    }
  }
  return n;
}

function resolveShape(shape: readonly number[], size: number): number[] {
  const out = [...shape];
  const inferred = out.indexOf(-1);
  if (inferred >= 0) {
    const rest = out.reduce((a, d, i) => (i === inferred ? a : a * d), 1);
    if (rest === 0 || size % rest !== 0) {
      throw new BasinError('shape_mismatch', `cannot reshape ${size} elements to ${shapeStr(shape)}`, { shape, found: size });
    }
    out[inferred] = size / rest;
  }
  if (numel(out) !== size) {
    throw new BasinError('shape_mismatch', `cannot reshape ${size} elements to ${shapeStr(shape)}`, { shape, found: size });
  }
  return out;
}

function checkAxis(t: { shape: readonly number[] }, axis: number): number {
  const r = t.shape.length;
  const a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) {
    throw new BasinError('invalid_argument', `axis ${axis} is out of range for a tensor of shape ${shapeStr(t.shape)}`, {
      axis,
      shape: t.shape,
    });
  }
  return a;
}

/** Sizes of the axes before `axis`, at `axis`, and after it: the view [outer, n, inner] every axis op uses. */
export function axisView(shape: readonly number[], axis: number): { outer: number; n: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return { outer, n: shape[axis]!, inner };
}

/**
 * moveaxis(t, axis, 0).reshape(n, -1) as one copy: row i holds every element whose index along `axis` is i,
 * in the order the seeds' jnp.moveaxis + reshape produces.
 */
export function axisToRows(t: Tensor, axis: number): { rows: number; cols: number; data: Float32Array } {
  const a = checkAxis(t, axis);
  const { outer, n, inner } = axisView(t.shape, a);
  const cols = outer * inner;
  if (a === 0) return { rows: n, cols, data: t.data };
  const out = new Float32Array(t.data.length);
  const src = t.data;
  if (inner === 1) {
    // a transpose of [outer, n]: walk it in tiles so both sides stay in cache
    const B = 32;
    for (let o0 = 0; o0 < outer; o0 += B) {
      const o1 = Math.min(o0 + B, outer);
      for (let i0 = 0; i0 < n; i0 += B) {
        const i1 = Math.min(i0 + B, n);
        for (let o = o0; o < o1; o++) for (let i = i0; i < i1; i++) out[i * cols + o] = src[o * n + i]!;
      }
    }
    return { rows: n, cols, data: out };
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      const s = (o * n + i) * inner;
      const d = i * cols + o * inner;
      out.set(src.subarray(s, s + inner), d);
    }
  }
  return { rows: n, cols, data: out };
}

/**
 * moveaxis(t, from, to) for any rank (a copy).
 * @throws BasinError invalid_argument for an axis out of range
 */
export function moveaxis(t: Tensor, from: number, to: number): Tensor {
  const f = checkAxis(t, from);
  const tt = checkAxis(t, to);
  const order = t.shape.map((_, i) => i).filter((i) => i !== f);
  order.splice(tt, 0, f);
  return transpose(t, order);
}

/**
 * General axis permutation (numpy.transpose).
 * @throws BasinError invalid_argument when `order` is not a permutation of the axes
 */
export function transpose(t: Tensor, order: readonly number[]): Tensor {
  const r = t.rank;
  if (order.length !== r || new Set(order).size !== r || order.some((o) => o < 0 || o >= r)) {
    throw new BasinError('invalid_argument', `invalid axis order [${order.join(', ')}] for rank ${r}`, { shape: t.shape });
  }
  const outShape = order.map((o) => t.shape[o]!);
  const inStrides = strides(t.shape);
  const s = order.map((o) => inStrides[o]!);
  const out = new Float32Array(t.size);
  const idx = new Array<number>(r).fill(0);
  let src = 0;
  for (let k = 0; k < out.length; k++) {
    out[k] = t.data[src]!;
    for (let d = r - 1; d >= 0; d--) {
      idx[d]!++;
      src += s[d]!;
      if (idx[d]! < outShape[d]!) break;
      src -= s[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
  return new Tensor(outShape, out);
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** out[..., i, ...] = t[..., index[i], ...] along `axis` (numpy.take / torch.index_select). */
export function take(t: Tensor, axis: number, index: ArrayLike<number>): Tensor {
  const a = checkAxis(t, axis);
  const { outer, n, inner } = axisView(t.shape, a);
  const m = index.length;
  for (let i = 0; i < m; i++) {
    const j = index[i]!;
    if (!(j >= 0 && j < n && Number.isInteger(j))) {
      throw new BasinError('invalid_argument', `index ${j} out of range for axis ${a} of size ${n}`, { axis: a, shape: t.shape });
    }
  }
  const shape = [...t.shape];
  shape[a] = m;
  const out = new Float32Array(outer * m * inner);
  const src = t.data;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const s = (o * n + index[i]!) * inner;
      out.set(src.subarray(s, s + inner), (o * m + i) * inner);
    }
  }
  return new Tensor(shape, out);
}

/** Permute `axis` of `t` in place by `perm` (new slice i = old slice perm[i]); `scratch` avoids reallocating. */
export function permuteAxisInPlace(t: Tensor, axis: number, perm: ArrayLike<number>): void {
  const a = checkAxis(t, axis);
  const { outer, n, inner } = axisView(t.shape, a);
  if (perm.length !== n) {
    throw new BasinError('shape_mismatch', `permutation of size ${perm.length} applied to axis ${a} of size ${n}`, {
      axis: a,
      shape: t.shape,
    });
  }
  const block = new Float32Array(n * inner);
  for (let o = 0; o < outer; o++) {
    const base = o * n * inner;
    block.set(t.data.subarray(base, base + n * inner));
    for (let i = 0; i < n; i++) {
      const s = perm[i]! * inner;
      t.data.set(block.subarray(s, s + inner), base + i * inner);
    }
  }
}
