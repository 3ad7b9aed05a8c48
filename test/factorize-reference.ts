/**
 * Independent references for the factorize tests, computed from the samples themselves in float64 and sharing no
 * code with src/factorize: predictions, the seed's nmse, the reduced-rank optimum by Gram–Schmidt QR of the centred
 * samples plus a Jacobi eigensolver, and a direct (nested-loop) 2-D convolution.
 */

/** Ŷ = X·Wa·Wb + bias (Wb undefined: X·Wa + bias), all row-major. */
export function predict(x: ArrayLike<number>, rows: number, d: number, wa: ArrayLike<number>, r: number, wb: ArrayLike<number> | null, m: number, bias: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows * m);
  const h = new Float64Array(r);
  for (let n = 0; n < rows; n++) {
    if (wb) {
      h.fill(0);
      for (let j = 0; j < d; j++) {
        const v = x[n * d + j]!;
        if (v === 0) continue;
        for (let k = 0; k < r; k++) h[k] = h[k]! + v * wa[j * r + k]!;
      }
      for (let c = 0; c < m; c++) {
        let s = bias[c]!;
        for (let k = 0; k < r; k++) s += h[k]! * wb[k * m + c]!;
        out[n * m + c] = s;
      }
    } else {
      for (let c = 0; c < m; c++) {
        let s = bias[c]!;
        for (let j = 0; j < d; j++) s += x[n * d + j]! * wa[j * m + c]!;
        out[n * m + c] = s;
      }
    }
  }
  return out;
}

/** The seed's nmse: mean((Y − Ŷ)²) / Y.var() (unbiased, all values pooled). */
export function seedNmse(y: ArrayLike<number>, yHat: ArrayLike<number>): number {
  const n = y.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i]!;
  mean /= n;
  let v = 0;
  let e = 0;
  for (let i = 0; i < n; i++) {
    v += (y[i]! - mean) ** 2;
    e += (y[i]! - yHat[i]!) ** 2;
  }
  return e / n / (v / (n - 1));
}

/** Symmetric eigendecomposition by cyclic Jacobi rotations (small n): values descending, vectors as columns. */
export function jacobiEigen(a: Float64Array, n: number): { values: number[]; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let qq = p + 1; qq < n; qq++) off += m[p * n + qq]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let qq = p + 1; qq < n; qq++) {
        const apq = m[p * n + qq]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[qq * n + qq]! - m[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!, mkq = m[k * n + qq]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + qq] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!, mqk = m[qq * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[qq * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!, vkq = v[k * n + qq]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + qq] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[j * n + j]! - m[i * n + i]!);
  const vectors = new Float64Array(n * n);
  order.forEach((src, j) => {
    for (let k = 0; k < n; k++) vectors[k * n + j] = v[k * n + src]!;
  });
  return { values: order.map((i) => m[i * n + i]!), vectors };
}

/**
 * The best rank-r affine fit of Y by X, from the samples: centre both, orthonormalize the columns of Xc by
 * modified Gram–Schmidt (dropping columns whose remaining norm is below 1e-9 of their original one), project
 * Z = QᵀYc, keep Z's top r right singular directions (Jacobi on ZᵀZ): Ŷ = Q·Z·V_r·V_rᵀ + ȳ. Returns Ŷ.
 */
export function bestRankFit(x: ArrayLike<number>, rows: number, d: number, y: ArrayLike<number>, m: number, r: number): Float64Array {
  const mx = new Float64Array(d);
  const my = new Float64Array(m);
  for (let n = 0; n < rows; n++) {
    for (let j = 0; j < d; j++) mx[j] = mx[j]! + x[n * d + j]! / rows;
    for (let c = 0; c < m; c++) my[c] = my[c]! + y[n * m + c]! / rows;
  }
  const qs: Float64Array[] = [];
  for (let j = 0; j < d; j++) {
    const col = new Float64Array(rows);
    for (let n = 0; n < rows; n++) col[n] = x[n * d + j]! - mx[j]!;
    let n0 = 0;
    for (const v of col) n0 += v * v;
    for (let pass = 0; pass < 2; pass++) {
      for (const qv of qs) {
        let s = 0;
        for (let n = 0; n < rows; n++) s += qv[n]! * col[n]!;
        for (let n = 0; n < rows; n++) col[n] = col[n]! - (s * qv[n]!);
      }
    }
    let n1 = 0;
    for (const v of col) n1 += v * v;
    if (n0 === 0 || n1 <= 1e-18 * n0) continue;
    const inv = 1 / Math.sqrt(n1);
    for (let n = 0; n < rows; n++) col[n] = col[n]! * (inv);
    qs.push(col);
  }
  const p = qs.length;
  const z = new Float64Array(p * m);
  for (let i = 0; i < p; i++) {
    for (let c = 0; c < m; c++) {
      let s = 0;
      for (let n = 0; n < rows; n++) s += qs[i]![n]! * (y[n * m + c]! - my[c]!);
      z[i * m + c] = s;
    }
  }
  const ztz = new Float64Array(m * m);
  for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) for (let i = 0; i < p; i++) ztz[a * m + b] = ztz[a * m + b]! + z[i * m + a]! * z[i * m + b]!;
  const { vectors } = jacobiEigen(ztz, m);
  // Z_r = Z·V_r·V_rᵀ
  const proj = new Float64Array(m * m);
  for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) for (let k = 0; k < Math.min(r, m); k++) proj[a * m + b] = proj[a * m + b]! + vectors[a * m + k]! * vectors[b * m + k]!;
  const zr = new Float64Array(p * m);
  for (let i = 0; i < p; i++) for (let c = 0; c < m; c++) for (let a = 0; a < m; a++) zr[i * m + c] = zr[i * m + c]! + z[i * m + a]! * proj[a * m + c]!;
  const out = new Float64Array(rows * m);
  for (let n = 0; n < rows; n++) {
    for (let c = 0; c < m; c++) {
      let s = my[c]!;
      for (let i = 0; i < p; i++) s += qs[i]![n]! * zr[i * m + c]!;
      out[n * m + c] = s;
    }
  }
  return out;
}

export interface DirectConv {
  strides: [number, number];
  dilations: [number, number];
  pads: [number, number, number, number];
  group: number;
}

/**
 * Direct 2-D convolution (ONNX semantics, NCHW, cross-correlation): y[b, o, oh, ow] = bias[o] +
 * Σ_{c in o's group, i, j} w[o, c, i, j] · x[b, g·C/g + c, oh·s − pad + i·dil, ow·s − pad + j·dil] (0 outside).
 * Returns y and its shape.
 */
export function directConv(
  x: ArrayLike<number>,
  xs: readonly [number, number, number, number],
  w: ArrayLike<number>,
  ws: readonly [number, number, number, number],
  bias: ArrayLike<number> | null,
  geo: DirectConv,
): { y: Float64Array; shape: [number, number, number, number] } {
  const [b, c, h, wd] = xs;
  const [o, cg, kh, kw] = ws;
  const [sh, sw] = geo.strides;
  const [dh, dw] = geo.dilations;
  const [pt, pl, pb, pr] = geo.pads;
  const ho = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const wo = Math.floor((wd + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const og = o / geo.group;
  const y = new Float64Array(b * o * ho * wo);
  for (let n = 0; n < b; n++) {
    for (let oc = 0; oc < o; oc++) {
      const grp = Math.floor(oc / og);
      for (let oh = 0; oh < ho; oh++) {
        for (let ow = 0; ow < wo; ow++) {
          let s = bias ? bias[oc]! : 0;
          for (let ci = 0; ci < cg; ci++) {
            const ch = grp * cg + ci;
            for (let i = 0; i < kh; i++) {
              const ih = oh * sh - pt + i * dh;
              if (ih < 0 || ih >= h) continue;
              for (let j = 0; j < kw; j++) {
                const iw = ow * sw - pl + j * dw;
                if (iw < 0 || iw >= wd) continue;
                s += w[((oc * cg + ci) * kh + i) * kw + j]! * x[((n * c + ch) * h + ih) * wd + iw]!;
              }
            }
          }
          y[((n * o + oc) * ho + oh) * wo + ow] = s;
        }
      }
    }
  }
  return { y, shape: [b, o, ho, wo] };
}
