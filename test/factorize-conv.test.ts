/**
 * factorizeConv against a direct convolution written in the test (test/factorize-reference.ts): stride 2,
 * dilation, asymmetric pads and groups; the factorized pair Conv k×k (C → r, group g) + Conv 1×1 (r → O, group g)
 * is run with the same direct convolution and compared with the original conv.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { convGeometry, padsFor, type ConvAttributes } from '../src/factorize/conv-geometry.js';
import { ConvStats } from '../src/factorize/conv-stats.js';
import { factorizeConv } from '../src/factorize/factorize-conv.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';
import { bestRankFit, directConv, seedNmse, type DirectConv } from './factorize-reference.js';

type Shape4 = [number, number, number, number];

function randomArray(n: number, r: () => number): Float64Array {
  return Float64Array.from({ length: n }, () => randn(r));
}

function inputs(shape: Shape4, r: () => number): Float32Array {
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.max(0, randn(r) + 0.2));
}

/** The factorized pair run with the direct convolution: 1×1 conv (group g, carrying the bias) of the k×k conv. */
function runPair(x: Float32Array, xs: Shape4, sol: Awaited<ReturnType<typeof factorizeConv>>, geo: DirectConv): Float64Array {
  if (!sol.wb || !sol.wbShape) return directConv(x, xs, sol.wa, sol.waShape, sol.bias, geo).y;
  const mid = directConv(x, xs, sol.wa, sol.waShape, null, geo);
  return directConv(mid.y, mid.shape, sol.wb, sol.wbShape, sol.bias, { strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], group: geo.group }).y;
}

const GEO: DirectConv = { strides: [2, 2], dilations: [2, 1], pads: [1, 0, 2, 1], group: 2 };
const ATTRS: ConvAttributes = { strides: [2, 2], dilations: [2, 1], pads: [1, 0, 2, 1], group: 2 };

test('stride 2, dilation, asymmetric pads and 2 groups: an exactly low-rank conv is recovered and the pair reproduces the direct convolution', async () => {
  const r = rng(11);
  const [o, c, kh, kw] = [8, 6, 3, 3];
  const cg = c / 2;
  const f = cg * kh * kw;
  // Per group, W_g [4, f] = A [4, 2] · B [2, f]: latent rank 2 per group, 4 in all.
  const w = new Float64Array(o * f);
  for (let g = 0; g < 2; g++) {
    const a = randomArray(4 * 2, r);
    const b = randomArray(2 * f, r);
    for (let oo = 0; oo < 4; oo++) for (let col = 0; col < f; col++) w[(g * 4 + oo) * f + col] = a[oo * 2]! * b[col]! + a[oo * 2 + 1]! * b[f + col]!;
  }
  const bias = randomArray(o, r);
  const xs: Shape4 = [5, c, 11, 10];
  const x = inputs(xs, r);
  const stats = new ConvStats(convGeometry('stem.conv', [o, cg, kh, kw], ATTRS));
  await stats.add(x.subarray(0, 2 * c * 110), [2, c, 11, 10]);
  await stats.add(x.subarray(2 * c * 110), [3, c, 11, 10]);
  const sol = await factorizeConv(stats, { w, bias }, 4);
  assert.equal(sol.kind, 'factorized');
  assert.equal(sol.rank, 4);
  assert.equal(sol.groups, 2);
  assert.deepEqual(sol.waShape, [4, cg, kh, kw]);
  assert.deepEqual(sol.wbShape, [o, 2, 1, 1]);
  assert.ok(sol.nmse < 1e-12, `nmse ${sol.nmse}`);
  const ref = directConv(x, xs, w, [o, cg, kh, kw], bias, GEO);
  assert.deepEqual(ref.shape, [5, o, 5, 5]); // floor((11 + 1 + 2 − 2·2 − 1) / 2) + 1, floor((10 + 0 + 1 − 2 − 1) / 2) + 1
  assertAllClose(runPair(x, xs, sol, GEO), ref.y, { rtol: 1e-7, atol: 1e-7, label: 'pair vs direct conv' });
});

/** The patches a conv sees, by convolving with one-hot kernels (independent of im2col): [B·Ho·Wo, C/g·kh·kw] for group g. */
function patches(x: Float32Array, xs: Shape4, ws: Shape4, geo: DirectConv, group: number): { rows: number; cols: Float64Array } {
  const [, c] = xs;
  const [, cg, kh, kw] = ws;
  const f = cg * kh * kw;
  // One conv with f output channels per group slot: channel (ci, i, j) of group `group` picks x at that tap.
  const onehot = new Float64Array(f * geo.group * cg * kh * kw);
  // Output channel `group·f + t` (group `group` of a conv with group count geo.group and f outputs per group).
  for (let t = 0; t < f; t++) onehot[(group * f + t) * f + t] = 1;
  const out = directConv(x, xs, onehot, [f * geo.group, cg, kh, kw], null, geo);
  const [b, , ho, wo] = out.shape;
  const rows = b * ho * wo;
  const cols = new Float64Array(rows * f);
  for (let n = 0; n < b; n++) for (let t = 0; t < f; t++) for (let p = 0; p < ho * wo; p++) cols[(n * ho * wo + p) * f + t] = out.y[(n * geo.group * f + group * f + t) * ho * wo + p]!;
  void c;
  return { rows, cols };
}

test('a full-rank grouped strided conv: nmse equals the sample nmse of the pair, and the pair is the best per-group rank-r fit', async () => {
  const r = rng(12);
  const [o, c, kh, kw] = [6, 4, 3, 2];
  const cg = c / 2;
  const og = o / 2;
  const w = randomArray(o * cg * kh * kw, r);
  const bias = randomArray(o, r);
  const xs: Shape4 = [4, c, 9, 8];
  const x = inputs(xs, r);
  const stats = new ConvStats(convGeometry('block.conv', [o, cg, kh, kw], ATTRS));
  await stats.add(x, xs);
  const sol = await factorizeConv(stats, { w, bias }, 2, { iters: 2 });
  assert.equal(sol.rank, 2);
  const ref = directConv(x, xs, w, [o, cg, kh, kw], bias, GEO);
  const pairOut = runPair(x, xs, sol, GEO);
  assertAllClose(sol.nmse, seedNmse(ref.y, pairOut), { rtol: 1e-7, label: 'nmse vs direct convolutions' });
  // Best rank-1 fit per group, from one-hot patches: pool the per-group residuals, as the conv output pools channels.
  const [, , ho, wo] = ref.shape;
  const best = new Float64Array(ref.y.length);
  for (let g = 0; g < 2; g++) {
    const { rows, cols } = patches(x, xs, [o, cg, kh, kw], GEO, g);
    const y = new Float64Array(rows * og);
    for (let n = 0; n < xs[0]; n++) for (let oo = 0; oo < og; oo++) for (let p = 0; p < ho * wo; p++) y[(n * ho * wo + p) * og + oo] = ref.y[(n * o + g * og + oo) * ho * wo + p]!;
    const fit = bestRankFit(cols, rows, cg * kh * kw, y, og, 1);
    for (let n = 0; n < xs[0]; n++) for (let oo = 0; oo < og; oo++) for (let p = 0; p < ho * wo; p++) best[(n * o + g * og + oo) * ho * wo + p] = fit[(n * ho * wo + p) * og + oo]!;
  }
  assertAllClose(pairOut, best, { rtol: 1e-6, atol: 1e-6, label: 'pair vs best per-group rank-1 fit' });
});

test('auto_pad SAME_UPPER / SAME_LOWER resolve as ONNX does, and the factorized pair matches the direct conv with those pads', async () => {
  const g = convGeometry('c', [4, 3, 3, 3], { auto_pad: 'SAME_UPPER', strides: [2, 2] });
  // Input 8: out 4, total pad (4−1)·2 + 3 − 8 = 1 → upper puts it at the end.
  assert.deepEqual(padsFor(g, 8, 7), [0, 1, 1, 1]);
  assert.deepEqual(padsFor(convGeometry('c', [4, 3, 3, 3], { auto_pad: 'SAME_LOWER', strides: [2, 2] }), 8, 7), [1, 1, 0, 1]);
  assert.deepEqual(padsFor(convGeometry('c', [4, 3, 3, 3], { auto_pad: 'VALID', pads: [1, 1, 1, 1] }), 8, 7), [0, 0, 0, 0]);
  const r = rng(13);
  const w = randomArray(4 * 3 * 9, r);
  const xs: Shape4 = [3, 3, 8, 7];
  const x = inputs(xs, r);
  const stats = new ConvStats(g);
  await stats.add(x, xs);
  const sol = await factorizeConv(stats, { w }, 2);
  const geo: DirectConv = { strides: [2, 2], dilations: [1, 1], pads: [0, 1, 1, 1], group: 1 };
  const ref = directConv(x, xs, w, [4, 3, 3, 3], null, geo);
  assertAllClose(sol.nmse, seedNmse(ref.y, runPair(x, xs, sol, geo)), { rtol: 1e-7, label: 'SAME_UPPER nmse' });
});

test('a depthwise conv takes the "rank >= outputs" exit in every group; re-factorizing a grouped pair to a lower rank', async () => {
  const r = rng(14);
  const xs: Shape4 = [2, 4, 6, 6];
  const x = inputs(xs, r);
  const dw = new ConvStats(convGeometry('dw', [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1] }));
  await dw.add(x, xs);
  const w = randomArray(4 * 9, r);
  const sol = await factorizeConv(dw, { w }, 0.5);
  assert.equal(sol.kind, 'full');
  assert.equal(sol.wb, null);
  assertAllClose(sol.wa, w, { rtol: 1e-6, atol: 1e-8, label: 'depthwise least squares = W' });
  // A grouped pair of latent 4 (2 per group), taken down to 2 (1 per group); 4 → 'unchanged'.
  const geo = convGeometry('pw', [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1] });
  const stats = new ConvStats(geo);
  await stats.add(x, xs);
  const wa = randomArray(4 * 2 * 9, r);
  const wb = randomArray(6 * 2, r);
  const bias = randomArray(6, r);
  const same = await factorizeConv(stats, { wa, wb, latent: 4, bias }, 4);
  assert.equal(same.kind, 'unchanged');
  assert.ok(same.nmse < 1e-12, `unchanged nmse ${same.nmse}`);
  const lower = await factorizeConv(stats, { wa, wb, latent: 4, bias }, 2);
  assert.equal(lower.kind, 'factorized');
  assert.deepEqual(lower.waShape, [2, 2, 3, 3]);
  assert.deepEqual(lower.wbShape, [6, 1, 1, 1]);
  const direct: DirectConv = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1], group: 2 };
  const original = runPair(x, xs, { ...same, wa, wb, bias }, direct);
  assertAllClose(lower.nmse, seedNmse(original, runPair(x, xs, lower, direct)), { rtol: 1e-7, label: 'pair → lower rank nmse' });
});

test('conv errors are BasinErrors naming the layer, raised before any work', async () => {
  const named = (e: { message: string }): void => assert.match(e.message, /'layer1\.0\.conv2'/);
  named(await assertBasinError(() => convGeometry('layer1.0.conv2', [4, 3, 3]), 'invalid_argument'));
  named(await assertBasinError(() => convGeometry('layer1.0.conv2', [6, 2, 3, 3], { group: 4 }), 'invalid_argument'));
  named(await assertBasinError(() => convGeometry('layer1.0.conv2', [6, 2, 3, 3], { strides: [0, 1] }), 'invalid_argument'));
  named(await assertBasinError(() => convGeometry('layer1.0.conv2', [6, 2, 3, 3], { pads: [1, 1] }), 'invalid_argument'));
  named(await assertBasinError(() => convGeometry('layer1.0.conv2', [6, 2, 3, 3], { auto_pad: 'SAME' }), 'invalid_argument'));
  const stats = new ConvStats(convGeometry('layer1.0.conv2', [6, 2, 3, 3], { group: 2, dilations: [3, 3] }));
  named(await assertBasinError(() => stats.add(new Float32Array(2 * 3 * 8 * 8), [2, 3, 8, 8]), 'shape_mismatch'));
  named(await assertBasinError(() => stats.add(new Float32Array(10), [2, 4, 8, 8]), 'shape_mismatch'));
  // A dilated 3×3 (span 7) does not fit a 5×5 input.
  named(await assertBasinError(() => stats.add(new Float32Array(2 * 4 * 25), [2, 4, 5, 5]), 'shape_mismatch'));
  const w = new Float64Array(6 * 2 * 9);
  named(await assertBasinError(() => factorizeConv(stats, { w }, 2), 'data_required'));
  await stats.add(new Float32Array(2 * 4 * 64).map((_, i) => Math.sin(i)), [2, 4, 8, 8]);
  named(await assertBasinError(() => factorizeConv(stats, { w }, 3), 'invalid_argument'));
  named(await assertBasinError(() => factorizeConv(stats, { w: new Float64Array(7) }, 2), 'shape_mismatch'));
  named(await assertBasinError(() => factorizeConv(stats, { w, bias: new Float64Array(5) }, 2), 'shape_mismatch'));
  named(await assertBasinError(() => factorizeConv(stats, { wa: new Float64Array(36), wb: new Float64Array(12), latent: 3 }, 2), 'invalid_argument'));
  named(await assertBasinError(() => factorizeConv(stats, { wa: new Float64Array(35), wb: new Float64Array(12), latent: 2 }, 2), 'shape_mismatch'));
});
