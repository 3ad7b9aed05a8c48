/**
 * Sharded safetensors aligned out of core (src/io/lazy-tensors.ts, the lazy writer in src/io/safetensors.ts):
 * weight matching reads tensors from disk through a Map-like as it uses them and never reads the tensors no
 * permutation touches; the aligned checkpoint is written shard by shard from per-tensor producers, and equals A
 * bit for bit when B is A with its hidden units shuffled by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { LazyTensors } from '../src/io/lazy-tensors.js';
import { alignCheckpoints } from '../src/align/align-checkpoints.js';
import { checkPair, weightMatching } from '../src/match/weight-matching.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { TensorToWrite } from '../src/io/safetensors.js';
import { assertBasinError, randomPermutation, rng } from './helpers.js';

const IN = 10;
const H = 24;
const OUT = 4;
const SHAPES: Record<string, number[]> = {
  'l0.weight': [H, IN],
  'l0.bias': [H],
  'l1.weight': [H, H],
  'l1.bias': [H],
  'l2.weight': [OUT, H],
  'emb.unused': [7, 5], // no permutation touches it
};
const SPEC = {
  axes_to_perm: {
    'l0.weight': ['P_0', null],
    'l0.bias': ['P_0'],
    'l1.weight': ['P_1', 'P_0'],
    'l1.bias': ['P_1'],
    'l2.weight': [null, 'P_1'],
  },
};

function modelA(): Map<string, Float32Array> {
  const r = rng(5);
  return new Map(Object.entries(SHAPES).map(([n, s]) => [n, Float32Array.from({ length: s.reduce((x, y) => x * y, 1) }, () => r() * 2 - 1)]));
}

/** B = A with hidden units shuffled: B[i] = A[s[i]] along every axis carrying P_0 (s0) or P_1 (s1), by hand. */
function shuffled(a: Map<string, Float32Array>, s0: Int32Array, s1: Int32Array): Map<string, Float32Array> {
  const b = new Map<string, Float32Array>();
  const mat = (w: Float32Array, rows: number, cols: number, sr: Int32Array | null, sc: Int32Array | null) =>
    Float32Array.from({ length: rows * cols }, (_, k) => w[(sr ? sr[Math.floor(k / cols)]! : Math.floor(k / cols)) * cols + (sc ? sc[k % cols]! : k % cols)]!);
  b.set('l0.weight', mat(a.get('l0.weight')!, H, IN, s0, null));
  b.set('l0.bias', Float32Array.from(s0, (i) => a.get('l0.bias')![i]!));
  b.set('l1.weight', mat(a.get('l1.weight')!, H, H, s1, s0));
  b.set('l1.bias', Float32Array.from(s1, (i) => a.get('l1.bias')![i]!));
  b.set('l2.weight', mat(a.get('l2.weight')!, OUT, H, null, s1));
  b.set('emb.unused', a.get('emb.unused')!.map((v) => v + 1));
  return b;
}

const toWrite = (m: Map<string, Float32Array>): TensorToWrite[] => [...m].map(([name, data]) => ({ name, dtype: 'F32', shape: SHAPES[name]!, data }));
const bytesOf = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

async function pair(): Promise<{ dir: string; a: string; b: string; A: Map<string, Float32Array>; B: Map<string, Float32Array> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-lazy-'));
  const r = rng(9);
  const A = modelA();
  const B = shuffled(A, randomPermutation(H, r), randomPermutation(H, r));
  for (const sub of ['a', 'b', 'out']) mkdirSync(path.join(dir, sub));
  // shards of at most 1 KiB: every weight matrix in a shard of its own
  const a = (await writeCheckpoint(path.join(dir, 'a', 'model.safetensors.index.json'), toWrite(A), { shardBytes: 1024 })).path;
  const b = (await writeCheckpoint(path.join(dir, 'b', 'model.safetensors.index.json'), toWrite(B), { shardBytes: 1024 })).path;
  return { dir, a, b, A, B };
}

test('weight matching through LazyTensors reads only the tensors permutations touch, and finds what the in-memory maps find', async () => {
  const { a, b, A, B } = await pair();
  const ca = await openCheckpoint(a);
  const cb = await openCheckpoint(b);
  try {
    const shapes = new Map(Object.entries(SHAPES));
    const spec = PermutationSpec.fromJson(SPEC, shapes);
    // every tensor of the checkpoint is in the map; none is kept, so every use is a counted disk read
    const la = new LazyTensors(ca, ca.names(), { keepBytes: 0 });
    const lb = new LazyTensors(cb, cb.names(), { keepBytes: 0 });
    const lazy = await weightMatching(spec, la, lb);
    assert.equal(la.reads.get('emb.unused'), undefined, 'a tensor no permutation touches is never read');
    assert.equal(lb.reads.get('emb.unused'), undefined);
    assert.deepEqual(la.readNames(), Object.keys(SPEC.axes_to_perm).sort());
    const mem = (m: Map<string, Float32Array>) => new Map([...m].map(([n, d]) => [n, new Tensor(SHAPES[n]!, d)]));
    const inMemory = await weightMatching(spec, mem(A), mem(B));
    assert.deepEqual([...lazy.perms].map(([k, v]) => [k, [...v]]), [...inMemory.perms].map(([k, v]) => [k, [...v]]));
    assert.equal(lazy.objectiveAfter, inMemory.objectiveAfter);
  } finally {
    await ca.close();
    await cb.close();
  }
});

test('LazyTensors keeps recent tensors up to keepBytes (one read for repeated gets) and is absent for names it does not hold', async () => {
  const { a } = await pair();
  const ck = await openCheckpoint(a);
  try {
    const lazy = new LazyTensors(ck, ['l0.weight', 'l1.weight'], { keepBytes: H * H * 4 });
    void lazy.get('l1.weight')!.data;
    void lazy.get('l1.weight')!.data;
    assert.equal(lazy.reads.get('l1.weight'), 1, 'kept: read once');
    void lazy.get('l0.weight')!.data; // H·IN·4 bytes more than keepBytes allows beside l1: l1 is dropped
    void lazy.get('l1.weight')!.data;
    assert.equal(lazy.reads.get('l1.weight'), 2);
    assert.equal(lazy.get('l2.weight'), undefined);
    assert.equal(lazy.has('l2.weight'), false);
    assert.equal(lazy.size, 2);
    await assertBasinError(() => new LazyTensors(ck, [], { keepBytes: -1 }), 'invalid_argument');
  } finally {
    await ck.close();
  }
});

test('align of a sharded pair without a graph, read on demand (eagerReadBytes 0) and read whole (small: the default): output written sharded, permuted tensors equal A bit for bit', async () => {
  for (const eagerReadBytes of [0, undefined]) {
    const { dir, a, b, A, B } = await pair();
    const out = path.join(dir, 'out', 'model.safetensors.index.json');
    const report = await alignCheckpoints(a, b, out, { spec: SPEC, shardBytes: 1024, eagerReadBytes });
    assert.equal(report.verified, false);
    const shards = readdirSync(path.dirname(out)).filter((n) => n.endsWith('.safetensors'));
    assert.ok(shards.length >= 3, `sharded output: ${shards.join(', ')}`);
    const ck = await openCheckpoint(out);
    try {
      for (const name of Object.keys(SPEC.axes_to_perm)) assert.ok(bytesOf(A.get(name)!).equals(Buffer.from(await ck.readRaw(name))), `${name} equals A's (eagerReadBytes ${eagerReadBytes})`);
      assert.ok(bytesOf(B.get('emb.unused')!).equals(Buffer.from(await ck.readRaw('emb.unused'))), 'an unpermuted tensor is B\'s, unchanged');
    } finally {
      await ck.close();
    }
  }
});

test('writeCheckpoint takes per-tensor producers: each called once, when its shard is written; a wrong length is tensor_size_mismatch naming the tensor', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-lazy-'));
  const A = modelA();
  const calls: string[] = [];
  const tensors: TensorToWrite[] = [...A].map(([name, d]) => ({
    name,
    dtype: 'F32',
    shape: SHAPES[name]!,
    data: async () => {
      calls.push(name);
      return new Uint8Array(d.buffer.slice(0));
    },
  }));
  const w = await writeCheckpoint(path.join(dir, 'm.safetensors.index.json'), tensors, { shardBytes: 1024 });
  assert.deepEqual([...calls].sort(), [...A.keys()].sort());
  const ck = await openCheckpoint(w.path);
  for (const [name, d] of A) assert.ok(bytesOf(d).equals(Buffer.from(await ck.readRaw(name))));
  await ck.close();
  const bad: TensorToWrite[] = [{ name: 'short', dtype: 'F32', shape: [4], data: async () => new Uint8Array(12) }];
  const e = await assertBasinError(() => writeCheckpoint(path.join(dir, 'bad.safetensors'), bad), 'tensor_size_mismatch');
  assert.match(e.message, /'short'/);
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('bad')), [], 'nothing written');
});

test('LazyTensors scans a tensor for NaN on its first read only: a NaN is non_finite naming file and tensor, re-reads skip the scan', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-lazy-nan-'));
  const w = Float32Array.from({ length: 12 }, (_, i) => i / 7);
  const bad = w.slice();
  bad[5] = NaN;
  const file = (await writeCheckpoint(path.join(dir, 'm.safetensors'), [
    { name: 'good', dtype: 'F32', shape: [3, 4], data: w },
    { name: 'bad', dtype: 'F32', shape: [3, 4], data: bad },
  ])).path;
  const ck = await openCheckpoint(file);
  try {
    // the real checkpoint underneath; the wrapper records what each read asked for
    const asked: { name: string; checkFinite: boolean | undefined }[] = [];
    const source = { path: ck.path, info: (name: string) => ck.info(name), readFloat32Sync: (name: string, opts?: { checkFinite?: boolean }) => (asked.push({ name, checkFinite: opts?.checkFinite }), ck.readFloat32Sync(name, opts)) };
    const lazy = new LazyTensors(source, ['good', 'bad'], { keepBytes: 0 });
    const e = await assertBasinError(() => lazy.get('bad')!.data, 'non_finite');
    assert.match(e.message, /bad/);
    assert.ok(e.message.includes('m.safetensors'), e.message);
    for (let k = 0; k < 3; k++) assert.deepEqual([...lazy.get('good')!.data], [...w]);
    assert.equal(lazy.reads.get('good'), 3, 'keepBytes 0: every get reads');
    assert.deepEqual(asked.filter((x) => x.name === 'good').map((x) => x.checkFinite), [true, false, false]);
  } finally {
    await ck.close();
  }
});

test('LazyTensors.get reads nothing until data is used: shape and size come from the header, data is read once per tensor object', async () => {
  const { a, b, A } = await pair();
  const [ca, cb] = [await openCheckpoint(a), await openCheckpoint(b)];
  try {
    const spec = PermutationSpec.fromJson(SPEC, new Map(Object.entries(SHAPES)));
    const la = new LazyTensors(ca, ca.names(), { keepBytes: 0 });
    const lb = new LazyTensors(cb, cb.names(), { keepBytes: 0 });
    const t = la.get('l1.weight')!;
    assert.ok(t instanceof Tensor);
    assert.deepEqual(t.shape, [H, H]);
    assert.equal(t.size, H * H);
    assert.equal(t.rank, 2);
    assert.equal(la.reads.size, 0, 'shape, size and rank read nothing');
    // weight matching's pair check only compares shapes: no weight is read
    checkPair(spec, la, lb);
    assert.equal(la.reads.size + lb.reads.size, 0, `read: ${la.readNames().join(', ')} ${lb.readNames().join(', ')}`);
    assert.deepEqual(bytesOf(t.data), bytesOf(A.get('l1.weight')!));
    void t.data;
    assert.equal(la.reads.get('l1.weight'), 1, 'the object keeps its data: one read for repeated uses');
    void la.get('l1.weight')!.data; // keepBytes 0: a new object reads again
    assert.equal(la.reads.get('l1.weight'), 2);
    // a tensor B's map does not hold is missing for the pair check: models_mismatch naming it, nothing read
    const partial = new LazyTensors(cb, cb.names().filter((n) => n !== 'l1.weight'), { keepBytes: 0 });
    const e = await assertBasinError(() => checkPair(spec, la, partial), 'models_mismatch');
    assert.match(e.message, /l1\.weight/);
    assert.equal(partial.reads.size, 0);
  } finally {
    await ca.close();
    await cb.close();
  }
});
