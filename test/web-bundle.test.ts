/**
 * The browser build (dist/web/basin-web.js, made by `npm run build:web`) run in Node on onnxruntime-web's wasm
 * backend, checked against what does not depend on it: onnxruntime-node running the models, a permutation built
 * here by hand, the Node library's evaluator and merge, and the bundle's own text (no Node-only module in it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { FIXTURES, assertAllClose, onnxWithoutProvenance, rng, randomPermutation } from './helpers.js';
import { decodeModel } from '../src/onnx/proto.js';
import type { BasinError, BasinErrorCode } from '../src/errors.js';
import { OnnxModel, loadOnnx } from '../src/onnx/model.js';
import { openDataset } from '../src/data/open.js';
import { evaluate } from '../src/eval/evaluate.js';
import { mergeMethod } from '../src/merge/methods/index.js';
import { mergeTensors } from '../src/merge/methods/merge-tensors.js';
import { interpolateModels } from '../src/merge/interpolate.js';

type Web = typeof import('../src/web/index.js');

const BUNDLE = new URL('../web/basin-web.js', import.meta.url);
const web = (await import(BUNDLE.href)) as Web;
await web.initRuntime();

const A_PATH = `${FIXTURES}mlp_small_seed0.onnx`;
const B_PATH = `${FIXTURES}mlp_small_seed1.onnx`;
const DATA_PATH = `${FIXTURES}fmnist_test1k.safetensors`;
const aBytes = new Uint8Array(readFileSync(A_PATH));
const bBytes = new Uint8Array(readFileSync(B_PATH));
const dataBytes = new Uint8Array(readFileSync(DATA_PATH));

/** The first `n` test images as a float32 [n, 784] tensor for onnxruntime-node (read straight from the file's header). */
function testImages(n: number): ort.Tensor {
  const len = Number(new DataView(dataBytes.buffer, dataBytes.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(dataBytes.subarray(8, 8 + len))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const e = header['input']!;
  assert.equal(e.dtype, 'F32');
  const start = 8 + len + e.data_offsets[0];
  const x = new Float32Array(dataBytes.slice(start, start + n * 784 * 4).buffer);
  return new ort.Tensor('float32', x, [n, 784]);
}

/** Logits of ONNX `bytes` on the first 64 test images, by onnxruntime-node. */
async function nodeLogits(bytes: Uint8Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ input: testImages(64) });
    return out['logits']!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** assertBasinError for the bundle's own BasinError class (a copy of src/errors.ts inside the bundle). */
async function assertWebError(fn: () => unknown, code: BasinErrorCode): Promise<BasinError> {
  try {
    await fn();
  } catch (e) {
    assert.ok(web.isBasinError(e), `expected the bundle's BasinError '${code}', got ${String(e)}`);
    assert.equal(e.code, code, `expected code '${code}', got '${e.code}': ${e.message}`);
    return e as unknown as BasinError;
  }
  assert.fail(`expected BasinError '${code}', but nothing was thrown`);
}

function floats(model: OnnxModel, name: string): Float32Array {
  const raw = model.getRaw(name);
  return new Float32Array(raw.slice().buffer);
}

test('the bundle names no node: module, no onnxruntime-node and no resvg, and ships its wasm next to it', () => {
  const text = readFileSync(BUNDLE, 'utf8');
  assert.ok(text.length > 10_000, 'the bundle is built');
  assert.doesNotMatch(text, /["'`]node:[a-z_/]+["'`]/, 'a node: module specifier in the bundle');
  assert.doesNotMatch(text, /["'`]onnxruntime-node["'`/]/, 'onnxruntime-node in the bundle');
  assert.doesNotMatch(text, /["'`]@resvg\/resvg-js["'`/]/, 'resvg in the bundle');
  assert.doesNotMatch(text, /\brequire\(["'`](fs|path|os|crypto)["'`]\)/, 'a require of a Node built-in in the bundle');
  for (const f of ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs']) assert.ok(existsSync(new URL(f, BUNDLE)), `${f} next to the bundle`);
});

test('alignOnnx: aligned B computes what B computes (onnxruntime-node, 64 test images) and the report says how it was checked', async () => {
  const stages: string[] = [];
  const { model, report } = await web.alignOnnx(aBytes, bBytes, { onProgress: (s) => stages.push(s), names: ['seed0.onnx', 'seed1.onnx'] });
  const [aligned, original] = await Promise.all([nodeLogits(model), nodeLogits(bBytes)]);
  assertAllClose(aligned, original, { rtol: 0, atol: 1e-5, label: 'aligned B logits vs B logits' });
  assert.ok(report.objective_after > report.objective_before, `weight matching raised the objective (${report.objective_before} -> ${report.objective_after})`);
  assert.equal(report.verified, true);
  assert.ok(report.verify.samples > 0 && report.verify.max_abs <= 1e-4, `verified on ${report.verify.samples} samples, max abs ${report.verify.max_abs}`);
  assert.deepEqual(Object.keys(report.perms).sort(), ['P_0', 'P_1']);
  for (const p of Object.values(report.perms)) assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 128 }, (_, i) => i), 'each perm is a permutation of 0..127');
  assert.equal(report.b, 'seed1.onnx');
  assert.ok(stages.includes('match') && stages.includes('verify'), `progress stages ${stages.join(', ')}`);
  // B's weights are permuted, not changed: the same multiset of values per tensor
  const a0 = floats(OnnxModel.fromBytes(model), 'layers.0.bias').slice().sort();
  const b0 = floats(OnnxModel.fromBytes(bBytes), 'layers.0.bias').slice().sort();
  assert.deepEqual(a0, b0);
});

test('alignOnnx recovers a known permutation: B = A with its hidden units shuffled here by hand', async () => {
  const r = rng(7);
  const p0 = randomPermutation(128, r);
  const p1 = randomPermutation(128, r);
  const a = OnnxModel.fromBytes(aBytes);
  const b = a.clone();
  const put = (name: string, v: Float32Array) => b.setRaw(name, new Uint8Array(v.buffer));
  // torch layout [out, in]: new row i = old row p[i]; the next layer's columns follow
  const w0 = floats(a, 'layers.0.weight');
  const w1 = floats(a, 'layers.1.weight');
  const wh = floats(a, 'head.weight');
  const b0 = floats(a, 'layers.0.bias');
  const b1 = floats(a, 'layers.1.bias');
  const nw0 = new Float32Array(w0.length);
  const nw1 = new Float32Array(w1.length);
  const nwh = new Float32Array(wh.length);
  for (let i = 0; i < 128; i++) nw0.set(w0.subarray(p0[i]! * 784, p0[i]! * 784 + 784), i * 784);
  for (let i = 0; i < 128; i++) for (let j = 0; j < 128; j++) nw1[i * 128 + j] = w1[p1[i]! * 128 + p0[j]!]!;
  for (let k = 0; k < 10; k++) for (let j = 0; j < 128; j++) nwh[k * 128 + j] = wh[k * 128 + p1[j]!]!;
  put('layers.0.weight', nw0);
  put('layers.1.weight', nw1);
  put('head.weight', nwh);
  put('layers.0.bias', Float32Array.from(p0, (k) => b0[k]!));
  put('layers.1.bias', Float32Array.from(p1, (k) => b1[k]!));
  const shuffled = b.toBytes();

  const { model, report } = await web.alignOnnx(aBytes, shuffled);
  // aligned slice i = shuffled slice q[i] = A slice p[q[i]], so q is p's inverse
  const inverse = (p: Int32Array) => {
    const q = new Array<number>(p.length);
    p.forEach((v, i) => (q[v] = i));
    return q;
  };
  const rowPerm = (tensor: string) => {
    const name = report.spec.axes_to_perm[tensor]?.[0];
    assert.ok(typeof name === 'string', `${tensor} rows carry a permutation`);
    return report.perms[name]!;
  };
  assert.deepEqual(rowPerm('layers.0.weight'), inverse(p0));
  assert.deepEqual(rowPerm('layers.1.weight'), inverse(p1));
  const out = OnnxModel.fromBytes(model);
  for (const n of a.weights()) assert.deepEqual(out.getRaw(n), a.getRaw(n), `${n}: aligned weights are A's, bit for bit`);
});

test('interpolateOnnx: end-point losses equal the Node library evaluator on the same data, and the barrier is the rise above the chord', async () => {
  const { points, barrier } = await web.interpolateOnnx(aBytes, bBytes, dataBytes, { steps: 3 });
  assert.deepEqual(points.map((p) => p.t), [0, 0.5, 1]);
  const data = await openDataset(DATA_PATH);
  const a = await loadOnnx(A_PATH);
  const b = await loadOnnx(B_PATH);
  const [ea, eb, em] = [await evaluate(a, data), await evaluate(b, data), await evaluate(interpolateModels(a, b, 0.5), data)];
  assertAllClose([points[0]!.loss, points[2]!.loss, points[1]!.loss], [ea.loss, eb.loss, em.loss], { rtol: 1e-5, label: 'loss at t = 0, 1, 0.5' });
  assert.deepEqual([points[0]!.accuracy, points[2]!.accuracy, points[1]!.accuracy], [ea.accuracy, eb.accuracy, em.accuracy]);
  const rise = points[1]!.loss - (points[0]!.loss + points[2]!.loss) / 2;
  assertAllClose(barrier, Math.max(0, rise), { rtol: 1e-9, label: 'barrier' });
  assert.ok(rise > 0, 'unaligned seeds have a barrier');
});

test('mergeOnnx gives the Node library merge bit for bit (average, linear t, slerp t, ties with a base), and average is (a + b) / 2', async () => {
  const a = await loadOnnx(A_PATH);
  const b = await loadOnnx(B_PATH);
  const node = (name: string, opts: object, base?: OnnxModel) => {
    const m = mergeMethod(name);
    return Buffer.from(onnxWithoutProvenance(mergeTensors([a, b], base, m, m.resolve(opts, 2)).merged.toBytes()));
  };
  const web_ = async (opts?: Parameters<typeof web.mergeOnnx>[2]) => Buffer.from(onnxWithoutProvenance(await web.mergeOnnx(aBytes, bBytes, opts)));
  assert.deepEqual(await web_(), node('average', {}));
  assert.deepEqual(await web_({ t: 0.25 }), node('linear', { weights: [0.75, 0.25] }));
  assert.deepEqual(await web_({ method: 'slerp', t: 0.3 }), node('slerp', { t: 0.3 }));
  const base = await loadOnnx(`${FIXTURES}mlp_small_seed0.onnx`);
  assert.deepEqual(await web_({ method: 'ties', density: 0.5, base: aBytes }), node('ties', { density: 0.5 }, base));
  // the page's outputs record what made them, as the CLI's do: producer basin, basin.version, basin.command
  const stamped = decodeModel(await web.mergeOnnx(aBytes, bBytes, { method: 'slerp', t: 0.3, names: ['a.onnx', 'b.onnx'] }));
  const props = new Map(stamped.metadataProps.map((p) => [p.key, p.value]));
  assert.equal(stamped.producerName, 'basin');
  assert.match(props.get('basin.version') ?? '', /^\d+\.\d+\.\d+/);
  assert.deepEqual(JSON.parse(props.get('basin.command') ?? 'null'), ['web', 'merge', 'a.onnx', 'b.onnx', '--merge', 'slerp', '--t', '0.3']);
  const aligned = decodeModel((await web.alignOnnx(aBytes, bBytes, { names: ['a.onnx', 'b.onnx'] })).model);
  assert.deepEqual(JSON.parse(aligned.metadataProps.find((p) => p.key === 'basin.command')?.value ?? 'null'), ['web', 'align', 'a.onnx', 'b.onnx']);
  const avg = await web.mergeOnnx(aBytes, bBytes);
  const x = floats(a, 'layers.1.weight');
  const y = floats(b, 'layers.1.weight');
  const z = floats(OnnxModel.fromBytes(avg), 'layers.1.weight');
  assert.deepEqual(z, Float32Array.from(x, (v, i) => (v + y[i]!) / 2));
});

test('inspectOnnx lists the MLP groups with their member tensors, the inputs and outputs', async () => {
  const s = await web.inspectOnnx(aBytes, 'seed0.onnx');
  assert.deepEqual(s.inputs, [{ name: 'input', type: 'F32', shape: ['batch', 784] }]);
  assert.deepEqual(s.outputs.map((o) => o.name), ['logits']);
  assert.deepEqual(s.groups.map((g) => g.size), [128, 128]);
  const members = s.groups.map((g) => g.members.map((m) => `${m.tensor}:${m.axis}`).sort());
  assert.deepEqual(members, [
    ['layers.0.bias:0', 'layers.0.weight:0', 'layers.1.weight:1'],
    ['head.weight:1', 'layers.1.bias:0', 'layers.1.weight:0'],
  ]);
});

test('interpolationChartSvg draws the curves with their barriers; curves on other t grids are refused', async () => {
  const svg = web.interpolationChartSvg([
    { label: 'naive', points: [{ t: 0, loss: 0.4 }, { t: 0.5, loss: 1.4 }, { t: 1, loss: 0.4 }] },
    { label: 'aligned', points: [{ t: 0, loss: 0.4 }, { t: 0.5, loss: 0.5 }, { t: 1, loss: 0.4 }] },
  ]);
  assert.match(svg, /<svg[\s>]/);
  // barriers: 1.4 − 0.4 = 1 nat for naive, 0.5 − 0.4 = 0.1 nat aligned
  assert.match(svg, /naive — barrier 1\.00 nats/);
  assert.match(svg, /aligned — barrier 0\.100 nats/);
  await assertWebError(() => web.interpolationChartSvg([{ label: 'x', points: [{ t: 0, loss: 1 }, { t: 1, loss: 1 }] }, { label: 'y', points: [{ t: 0, loss: 1 }, { t: 0.5, loss: 1 }] }]), 'invalid_argument');
});

test('bad bytes are BasinErrors naming what was given, before any run', async () => {
  const e1 = await assertWebError(() => web.inspectOnnx(new Uint8Array([8, 1, 0xff, 0xff, 0xff]), 'broken.onnx'), 'onnx_invalid');
  assert.match(e1.message, /broken\.onnx/);
  const e2 = await assertWebError(() => web.alignOnnx(aBytes, new Uint8Array(readFileSync(`${FIXTURES}vit_small_seed1.onnx`)), { names: ['mlp.onnx', 'vit.onnx'] }), 'models_mismatch');
  assert.match(e2.message, /vit\.onnx|mlp\.onnx/);
  const e3 = await assertWebError(() => web.interpolateOnnx(aBytes, bBytes, new Uint8Array(5), { names: ['a', 'b', 'labels.safetensors'] }), 'file_truncated');
  assert.match(e3.message, /labels\.safetensors/);
  const e4 = await assertWebError(() => web.interpolateOnnx(aBytes, bBytes, dataBytes, { labelName: 'y', names: ['a', 'b', 'd.safetensors'] }), 'data_invalid');
  assert.match(e4.message, /'y'/);
  await assertWebError(() => web.mergeOnnx(aBytes, bBytes, { method: 'median' }), 'invalid_argument');
  await assertWebError(() => web.mergeOnnx(aBytes, bBytes, { method: 'ties' }), 'invalid_argument');
  await assertWebError(() => web.initRuntime({ numThreads: 0 }), 'invalid_argument');
});

test("the browser functions do not use Node's Buffer global (a page has none)", async () => {
  const saved = globalThis.Buffer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (globalThis as any).Buffer = undefined;
  try {
    const { model } = await web.alignOnnx(aBytes, bBytes);
    const merged = await web.mergeOnnx(aBytes, model, { t: 0.5 });
    const { points } = await web.interpolateOnnx(aBytes, model, dataBytes, { steps: 2, limit: 100 });
    assert.equal(points.length, 2);
    assert.ok(merged.length > 0);
  } finally {
    globalThis.Buffer = saved;
  }
  assert.equal(typeof Buffer.from, 'function');
});

test("package.json exports: 'basin-ml/web' and the browser condition of 'basin-ml' resolve to the bundle", () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string };
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-web-exports-'));
  try {
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(root, path.join(dir, 'node_modules', pkg.name), 'dir');
    const resolveIn = (spec: string, conditions: string[]) => {
      const r = spawnSync(process.execPath, [...conditions.map((c) => `--conditions=${c}`), '--input-type=module', '-e', `console.log(import.meta.resolve(${JSON.stringify(spec)}))`], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return fileURLToPath(r.stdout.trim());
    };
    const bundle = fileURLToPath(BUNDLE);
    assert.equal(realpathSync(resolveIn(`${pkg.name}/web`, [])), realpathSync(bundle));
    assert.equal(realpathSync(resolveIn(pkg.name, ['browser'])), realpathSync(bundle));
    assert.equal(realpathSync(resolveIn(pkg.name, [])), realpathSync(path.join(root, 'dist/src/index.js')), 'Node gets the Node library');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
