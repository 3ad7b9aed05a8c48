/**
 * Merging ONNX models that share a large frozen tensor (the scale bench's `table` case, small): a 3-layer MLP plus
 * a [ROWS, 4] table gathered into the output, every weight in one external data file. The average leaves a tensor
 * every model stores alike where it is (merge/identical-weights.ts), bit for bit what the float64 average gives;
 * weight matching reads a frozen tensor's objective term once per call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { averageModels } from '../src/merge/interpolate.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { LazyTensors } from '../src/io/lazy-tensors.js';
import { randn, randomPermutation, rng, runBasin } from './helpers.js';

const D = 16;
const COLS = 4;
const ROWS = 1 << 15; // 512 KiB of float32

interface Weights {
  w0: Float32Array; // [8, D]
  w1: Float32Array; // [D, D]
  w2: Float32Array; // [D, COLS]
  table: Float32Array; // [ROWS, COLS]
}

function randomWeights(seed: number): Weights {
  const r = rng(seed);
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => randn(r) * scale);
  return { w0: fill(8 * D, 0.35), w1: fill(D * D, 0.25), w2: fill(D * COLS, 0.25), table: fill(ROWS * COLS, 0.1) };
}

/** The same function with hidden units permuted: h0' = h0[p0], h1' = h1[p1] (MatMul weights are [in, out]). */
function permuted(w: Weights, p0: Int32Array, p1: Int32Array): Weights {
  const w0 = new Float32Array(w.w0.length);
  const w1 = new Float32Array(w.w1.length);
  const w2 = new Float32Array(w.w2.length);
  for (let i = 0; i < 8; i++) for (let j = 0; j < D; j++) w0[i * D + j] = w.w0[i * D + p0[j]!]!;
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) w1[i * D + j] = w.w1[p0[i]! * D + p1[j]!]!;
  for (let i = 0; i < D; i++) for (let j = 0; j < COLS; j++) w2[i * COLS + j] = w.w2[p1[i]! * COLS + j]!;
  return { w0, w1, w2, table: w.table.slice() };
}

/** x[n, 8] → MatMul w0 → Relu → MatMul w1 → Relu → MatMul w2 → + Gather(table, [0]); all four weights in `<name>.data`. */
async function writeModel(dir: string, name: string, w: Weights): Promise<string> {
  const g = new GraphBuilder(17);
  g.input('x', ['n', 8]);
  const parts: [string, number[], Float32Array][] = [['w0', [8, D], w.w0], ['w1', [D, D], w.w1], ['w2', [D, COLS], w.w2], ['table', [ROWS, COLS], w.table]];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [n, shape, data] of parts) {
    g.externalInitializer(n, new Tensor(shape, data), { location: `${name}.data`, offset });
    const padded = new Uint8Array(Math.ceil(data.byteLength / 4096) * 4096);
    padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    chunks.push(padded);
    offset += padded.length;
  }
  g.initializer('row', { dims: [1], int64: [0] });
  g.node('MatMul', ['x', 'w0'], ['m0']).node('Relu', ['m0'], ['h0']);
  g.node('MatMul', ['h0', 'w1'], ['m1']).node('Relu', ['m1'], ['h1']);
  g.node('MatMul', ['h1', 'w2'], ['m2']);
  g.node('Gather', ['table', 'row'], ['t']).node('Add', ['m2', 't'], ['y']);
  g.output('y', ['n', COLS]);
  await writeFile(path.join(dir, `${name}.data`), Buffer.concat(chunks));
  const file = path.join(dir, `${name}.onnx`);
  await writeFile(file, g.encode());
  return file;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'basin-frozen-table-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const bits = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
const f32 = (m: OnnxModel, n: string): Float32Array => m.getFloat32(n).data;

/** Σ c_k·x_k per element in float64 from +0, rounded once to float32: the average's definition, computed here. */
function expectedAverage(xs: readonly Float32Array[], w: readonly number[]): Float32Array {
  const total = w.reduce((s, v) => s + v, 0);
  const c = w.map((v) => v / total);
  return Float32Array.from(xs[0]!, (_, i) => xs.reduce((acc, x, k) => acc + c[k]! * x[i]!, 0));
}

test('basin merge of A and a permuted A sharing an external frozen table gives A back bit for bit', async () => {
  await withDir(async (dir) => {
    const r = rng(7);
    const wa = randomWeights(1);
    const a = await writeModel(dir, 'a', wa);
    const b = await writeModel(dir, 'b', permuted(wa, randomPermutation(D, r), randomPermutation(D, r)));
    const out = path.join(dir, 'merged.onnx');
    const res = await runBasin(['merge', a, b, '-o', out, '-q']);
    assert.equal(res.code, 0, res.stderr);
    const merged = await loadOnnx(out);
    // B is A with its hidden units shuffled: aligned, it is A, and the average of A with itself is A
    for (const [n, x] of Object.entries(wa)) assert.ok(bits(f32(merged, n)).equals(bits(x as Float32Array)), `${n} differs from A's`);
  });
});

test('averageModels leaves a tensor both models store alike in the first model’s data file, equal to the float64 average', async () => {
  await withDir(async (dir) => {
    const wa = randomWeights(1);
    const wb = { ...randomWeights(2), table: wa.table.slice() };
    const [a, b] = [await loadOnnx(await writeModel(dir, 'a', wa)), await loadOnnx(await writeModel(dir, 'b', wb))];
    for (const w of [[1, 1], [0.3, 0.7]]) {
      const out = averageModels([a, b], w);
      assert.ok(!out.edited().includes('table'), 'the identical table was copied into an edit');
      assert.equal(out.fileRef('table')?.file, a.fileRef('table')?.file, 'the table is not read from A’s data file');
      for (const n of ['w0', 'w1', 'w2', 'table'] as const) {
        assert.ok(bits(f32(out, n)).equals(bits(expectedAverage([wa[n], wb[n]], w))), `${n} is not the float64 average (weights ${w.join(', ')})`);
      }
    }
  });
});

test('averageModels averages identical tables that hold -0: +0 + (-0) is +0, as the float64 sum gives', async () => {
  await withDir(async (dir) => {
    const wa = randomWeights(3);
    for (let i = 0; i < wa.table.length; i += 1001) wa.table[i] = -0;
    const [a, b] = [await loadOnnx(await writeModel(dir, 'a', wa)), await loadOnnx(await writeModel(dir, 'b', { ...randomWeights(4), table: wa.table.slice() }))];
    const out = averageModels([a, b]);
    const table = f32(out, 'table');
    assert.equal(Object.is(table[0], 0), true, 'a -0 of both tables is +0 in the average (0 + 0.5·(-0) + 0.5·(-0))');
    assert.ok(bits(table).equals(bits(expectedAverage([wa.table, wa.table], [1, 1]))));
  });
});

test('averageModels averages tables that differ in one element only (the comparison reads every chunk)', async () => {
  await withDir(async (dir) => {
    const wa = randomWeights(5);
    const tb = wa.table.slice();
    tb[tb.length - 1] = tb[tb.length - 1]! + 1;
    const [a, b] = [await loadOnnx(await writeModel(dir, 'a', wa)), await loadOnnx(await writeModel(dir, 'b', { ...wa, table: tb }))];
    const out = averageModels([a, b]);
    assert.ok(out.edited().includes('table'));
    assert.ok(bits(f32(out, 'table')).equals(bits(expectedAverage([wa.table, tb], [1, 1]))));
  });
});

test('weight matching reads a tensor with no permuted axis once for the objective, not at every evaluation', async () => {
  const r = rng(11);
  const wa = randomWeights(6);
  const wb = permuted(wa, randomPermutation(D, r), randomPermutation(D, r));
  wb.w1[3] = wb.w1[3]! + 0.5; // not an exact copy: the exact-copy pass gives up at w1, before the table
  const shapes = new Map<string, number[]>([['w0', [8, D]], ['w1', [D, D]], ['w2', [D, COLS]], ['table', [ROWS, COLS]]]);
  const spec = PermutationSpec.fromJson({ axes_to_perm: { w0: [null, 'P0'], w1: ['P0', 'P1'], w2: ['P1', null], table: [null, null] } }, shapes);
  const lazy = (w: Weights, label: string) =>
    new LazyTensors(
      { path: label, readFloat32Sync: (n) => new Tensor(shapes.get(n)!, (w as unknown as Record<string, Float32Array>)[n]!.slice()), info: (n) => ({ shape: shapes.get(n)! }) },
      shapes.keys(),
      { keepBytes: 0 }, // nothing kept: every use of a tensor's values is a read
    );
  const [a, b] = [lazy(wa, 'a'), lazy(wb, 'b')];
  const res = await weightMatching(spec, a, b, { seed: 0 });
  assert.ok(res.sweeps.length >= 1);
  // objective evaluations: before matching, at the start of descent, after it; the table's term is read once for them
  assert.equal(a.reads.get('table'), 1, `A's table read ${a.reads.get('table')} times`);
  assert.equal(b.reads.get('table'), 1, `B's table read ${b.reads.get('table')} times`);
});
