/**
 * Reused read buffers (src/io/read-buffer-pool.ts) and lazy reads through them (src/io/lazy-tensors.ts): a buffer
 * is never handed out again while its tensor is cached or before the borrowers' release(); after release every old
 * view is detached (never another tensor's values); Tensor objects read again; reads through the pool equal plain
 * reads of a real sharded checkpoint in every float dtype; weight matching through pooled maps finds what the
 * in-memory maps find.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ReadBufferPool } from '../src/io/read-buffer-pool.js';
import { LazyTensors, releaseReads } from '../src/io/lazy-tensors.js';
import { AlignedMeanTensors } from '../src/merge/streaming-consensus.js';
import { openCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { DType } from '../src/dtype.js';
import type { TensorToWrite } from '../src/io/safetensors.js';
import { assertBasinError, randomPermutation, rng } from './helpers.js';

test('ReadBufferPool: a taken buffer is reused only after retire and release, its old views (subarrays too) detached', () => {
  const pool = new ReadBufferPool({ freeBytes: 1 << 20 });
  const x = pool.take(1024);
  const y = pool.take(1024);
  assert.notEqual(x, y, 'two buffers out at once are distinct');
  const view = new Float32Array(x);
  view.fill(7);
  const sub = view.subarray(10, 20);
  pool.retire(x);
  // retired but not released: a borrower may still read it, so a take of the same size gets a fresh buffer
  const z = pool.take(1024);
  assert.notEqual(z, x);
  assert.equal(pool.stats.reused, 0);
  assert.equal(view[3], 7, 'a retired buffer is untouched until release');
  pool.release();
  assert.equal(view.length, 0, 'after release the old view is detached');
  assert.equal(sub.length, 0, 'and so is a subarray of it');
  assert.equal(view[3], undefined);
  const w = pool.take(1000); // fits (1024 <= 2 x 1000)
  assert.equal(pool.stats.reused, 1);
  assert.equal(w.byteLength, 1024);
  new Float32Array(w).fill(-1);
  assert.equal(sub[0], undefined, 'the next owner\'s values never show through an old view');
  // too large for a small request: not handed out for it
  pool.retire(w);
  pool.release();
  assert.equal(pool.take(100).byteLength, 100);
  assert.equal(pool.stats.reused, 1);
});

test('ReadBufferPool: a buffer given back twice or not from this pool is invalid_argument; unused() frees at once; caps drop the oldest', async () => {
  const pool = new ReadBufferPool({ freeBytes: 3000, retiredBytes: 2048 });
  const x = pool.take(1024);
  pool.retire(x);
  await assertBasinError(() => pool.retire(x), 'invalid_argument');
  await assertBasinError(() => pool.unused(x), 'invalid_argument');
  await assertBasinError(() => pool.retire(new ArrayBuffer(8)), 'invalid_argument');
  // unused: never seen by anyone, free without a release
  const u = pool.take(512);
  pool.unused(u);
  assert.equal(pool.take(512), u);
  // retiredBytes 2048: the third 1024-byte buffer pushes the oldest out; it is never handed out again
  const b2 = pool.take(1024);
  const b3 = pool.take(1024);
  pool.retire(b2);
  pool.retire(b3);
  assert.equal(pool.stats.dropped, 1, 'x dropped');
  pool.release();
  const got = [pool.take(1024), pool.take(1024), pool.take(1024)];
  assert.equal(pool.stats.reused, 3, 'u once, then b2 and b3 (transferred)');
  assert.ok(!got.includes(x), 'a dropped buffer is not reused');
  assert.equal(got[2]!.byteLength, 1024);
  assert.equal(pool.stats.fresh, 5);
  await assertBasinError(() => new ReadBufferPool({ freeBytes: -1 }), 'invalid_argument');
  await assertBasinError(() => new ReadBufferPool({ retiredBytes: 1.5 }), 'invalid_argument');
});

/** A sharded checkpoint holding one tensor of every float dtype and a few F32 ones of one size (buffers to share). */
async function mixedCheckpoint(): Promise<{ path: string; values: Map<string, Float32Array>; dtypes: Map<string, DType> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-pool-'));
  const r = rng(3);
  const shapes: [string, DType, number[]][] = [
    ['a.f32', 'F32', [16, 8]],
    ['b.f32', 'F32', [16, 8]],
    ['c.f32', 'F32', [16, 8]],
    ['d.f16', 'F16', [16, 8]],
    ['e.bf16', 'BF16', [8, 16]],
    ['f.f64', 'F64', [128]],
    ['g.f32', 'F32', [5]],
  ];
  const values = new Map<string, Float32Array>();
  const dtypes = new Map<string, DType>();
  const tensors: TensorToWrite[] = shapes.map(([name, dtype, shape]) => {
    // values exactly representable in every dtype (multiples of 1/8 below 16): the expectation needs no rounding
    const data = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => Math.round((r() * 2 - 1) * 100) / 8);
    values.set(name, data);
    dtypes.set(name, dtype);
    return { name, dtype, shape, data };
  });
  const written = await writeCheckpoint(path.join(dir, 'model.safetensors.index.json'), tensors, { shardBytes: 600 });
  assert.ok(written.files.length > 2, 'really sharded');
  return { path: written.path, values, dtypes };
}

test('LazyTensors through a pool: reads equal plain reads in every float dtype, pass after pass, buffers reused after release', async () => {
  const { path: p, values } = await mixedCheckpoint();
  const ck = await openCheckpoint(p);
  try {
    const pool = new ReadBufferPool();
    // keepBytes 600: about one 512-byte tensor kept, the others retired as soon as the next is read
    const lazy = new LazyTensors(ck, values.keys(), { keepBytes: 600, pool });
    for (let pass = 0; pass < 3; pass++) {
      for (const name of values.keys()) {
        const got = lazy.get(name)!.data;
        const plain = (await ck.readFloat32(name)).data;
        assert.deepEqual(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength), `${name}, pass ${pass}`);
        assert.deepEqual(Array.from(got), Array.from(values.get(name)!), `${name} holds the values written`);
        lazy.release();
      }
      if (pass === 0) assert.ok(pool.stats.reused > 0, 'the first pass already reuses retired buffers');
    }
    // after the first pass every size has a buffer: later passes allocate nothing
    const fresh = pool.stats.fresh;
    for (const name of values.keys()) {
      void lazy.get(name)!.data;
      lazy.release();
    }
    assert.equal(pool.stats.fresh, fresh);
    assert.equal(lazy.reads.get('a.f32'), 4, 'every pass read from disk (keepBytes too small to keep them all)');
  } finally {
    await ck.close();
  }
});

test('LazyTensors through a pool: a held Tensor reads again after its buffer was reused; a kept tensor\'s buffer is never handed out; no reuse without release', async () => {
  const { path: p, values } = await mixedCheckpoint();
  const ck = await openCheckpoint(p);
  try {
    const pool = new ReadBufferPool();
    const lazy = new LazyTensors(ck, values.keys(), { keepBytes: 0, pool });
    const a = lazy.get('a.f32')!;
    const raw = a.data; // a Float32Array held against the rule across release
    assert.deepEqual(Array.from(raw), Array.from(values.get('a.f32')!));
    // without release, reading the other 512-byte tensors may not reuse a's buffer: a's values stay in place
    void lazy.get('b.f32')!.data;
    void lazy.get('c.f32')!.data;
    assert.equal(pool.stats.reused, 0);
    assert.deepEqual(Array.from(raw), Array.from(values.get('a.f32')!));
    releaseReads(lazy);
    const b = lazy.get('b.f32')!.data; // reuses a retired buffer (a's, b's or c's)
    assert.equal(pool.stats.reused, 1);
    assert.equal(raw.length, 0, 'a stale view is detached: it never shows the values read into its buffer next');
    assert.deepEqual(Array.from(b), Array.from(values.get('b.f32')!));
    // the Tensor object `a` is still good: its data is read again
    assert.deepEqual(Array.from(a.data), Array.from(values.get('a.f32')!));
    assert.equal(lazy.reads.get('a.f32'), 2);

    // a kept tensor (keepBytes covers it) keeps its buffer through any number of releases and reads
    const keeper = new LazyTensors(ck, values.keys(), { keepBytes: 512, pool });
    const kept = keeper.get('c.f32')!.data;
    for (const name of ['a.f32', 'b.f32', 'a.f32', 'd.f16']) {
      void lazy.get(name)!.data; // same size as c's buffer, through the same pool
      releaseReads(keeper, lazy);
    }
    assert.equal(kept.length, 128, 'still attached: its buffer never went back');
    assert.deepEqual(Array.from(kept), Array.from(values.get('c.f32')!));
    assert.equal(keeper.reads.get('c.f32'), 1);
  } finally {
    await ck.close();
  }
});

test('LazyTensors through a pool: a read that fails (non_finite) names file and tensor and gives its buffer back', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-pool-nan-'));
  const bad = new Float32Array(64).fill(1);
  bad[9] = NaN;
  const p = (await writeCheckpoint(path.join(dir, 'm.safetensors'), [{ name: 'w.bad', dtype: 'F32', shape: [64], data: bad }, { name: 'w.ok', dtype: 'F32', shape: [64], data: new Float32Array(64).fill(2) }])).path;
  const ck = await openCheckpoint(p);
  try {
    const pool = new ReadBufferPool();
    const lazy = new LazyTensors(ck, ['w.bad', 'w.ok'], { keepBytes: 0, pool });
    const e = await assertBasinError(() => lazy.get('w.bad')!.data, 'non_finite');
    assert.match(e.message, /w\.bad/);
    assert.match(e.message, /m\.safetensors/);
    assert.deepEqual(Array.from(lazy.get('w.ok')!.data), new Array(64).fill(2));
    assert.equal(pool.stats.reused, 1, 'the failed read\'s buffer served the next read without a release');
  } finally {
    await ck.close();
  }
});

test('weight matching through pooled LazyTensors (nothing kept: every buffer retired and reused) finds the in-memory result', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-pool-wm-'));
  const r = rng(21);
  const H = 20;
  const shapes: Record<string, number[]> = { 'l0.weight': [H, 6], 'l0.bias': [H], 'l1.weight': [H, H], 'l1.bias': [H], 'l2.weight': [3, H] };
  const axes = { 'l0.weight': ['P_0', null], 'l0.bias': ['P_0'], 'l1.weight': ['P_1', 'P_0'], 'l1.bias': ['P_1'], 'l2.weight': [null, 'P_1'] };
  const rand = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => r() * 2 - 1));
  const A = new Map(Object.entries(shapes).map(([n, s]) => [n, rand(s)]));
  const B = new Map(Object.entries(shapes).map(([n, s]) => [n, rand(s)])); // independent: a real search, several sweeps
  const write = async (m: Map<string, Tensor>, sub: string) =>
    (await writeCheckpoint(path.join(dir, sub), [...m].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data })), { shardBytes: 1000 })).path;
  const [pa, pb] = [await write(A, 'a'), await write(B, 'b')];
  const spec = PermutationSpec.fromJson({ axes_to_perm: axes }, new Map(Object.entries(shapes)));
  const want = await weightMatching(spec, A, B, { init: 'identity', seed: 4 });
  const [ca, cb] = [await openCheckpoint(pa), await openCheckpoint(pb)];
  try {
    const pool = new ReadBufferPool();
    const la = new LazyTensors(ca, spec.tensors(), { keepBytes: 0, pool });
    const lb = new LazyTensors(cb, spec.tensors(), { keepBytes: 0, pool });
    const got = await weightMatching(spec, la, lb, { init: 'identity', seed: 4 });
    assert.ok(pool.stats.reused > pool.stats.fresh, `buffers reused (${pool.stats.reused} reused, ${pool.stats.fresh} fresh)`);
    assert.equal(got.objectiveAfter, want.objectiveAfter);
    assert.deepEqual(got.sweeps, want.sweeps);
    for (const [p, v] of want.perms) assert.deepEqual(Array.from(got.perms.get(p)!), Array.from(v), p);
  } finally {
    await ca.close();
    await cb.close();
  }
});

test('weight matching through pooled LazyTensors with tied heads (cost sums awaited together) finds the in-memory result', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-pool-heads-'));
  const r = rng(31);
  const shapes: Record<string, number[]> = { q: [12, 8], k: [12, 8], v: [9, 8], o: [8, 9] };
  const json = {
    axes_to_perm: { q: ['QK', null], k: ['QK', null], v: ['VO', null], o: [null, 'VO'] },
    perms: { QK: { size: 12, heads: { count: 3, tie: 'attn' } }, VO: { size: 9, heads: { count: 3, tie: 'attn' } } },
  };
  const rand = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => r() * 2 - 1));
  const A = new Map(Object.entries(shapes).map(([n, s]) => [n, rand(s)]));
  const B = new Map(Object.entries(shapes).map(([n, s]) => [n, rand(s)]));
  const write = async (m: Map<string, Tensor>, sub: string) =>
    (await writeCheckpoint(path.join(dir, sub), [...m].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: t.data })), { shardBytes: 400 })).path;
  const [pa, pb] = [await write(A, 'a'), await write(B, 'b')];
  const spec = PermutationSpec.fromJson(json, new Map(Object.entries(shapes)));
  const want = await weightMatching(spec, A, B, { init: 'identity', seed: 2 });
  const [ca, cb] = [await openCheckpoint(pa), await openCheckpoint(pb)];
  try {
    const pool = new ReadBufferPool();
    const got = await weightMatching(spec, new LazyTensors(ca, spec.tensors(), { keepBytes: 0, pool }), new LazyTensors(cb, spec.tensors(), { keepBytes: 0, pool }), { init: 'identity', seed: 2 });
    assert.ok(pool.stats.reused > 0);
    assert.equal(got.objectiveAfter, want.objectiveAfter);
    for (const [p, v] of want.perms) assert.deepEqual(Array.from(got.perms.get(p)!), Array.from(v), p);
  } finally {
    await ca.close();
    await cb.close();
  }
});

test('LazyTensors through a pool: a Tensor handed out from the recent ones (no read) also reads again once its buffer went back to the pool', async () => {
  const { path: p, values } = await mixedCheckpoint();
  const ck = await openCheckpoint(p);
  try {
    const pool = new ReadBufferPool();
    const lazy = new LazyTensors(ck, values.keys(), { keepBytes: 512, pool });
    void lazy.get('a.f32')!.data; // read and kept
    const hit = lazy.get('a.f32')!; // from the recent ones
    assert.equal(lazy.reads.get('a.f32'), 1);
    void lazy.get('b.f32')!.data; // evicts a (retired)
    lazy.release(); // a's buffer free, its views detached
    void lazy.get('c.f32')!.data; // reuses it
    assert.deepEqual(Array.from(hit.data), Array.from(values.get('a.f32')!));
    assert.equal(lazy.reads.get('a.f32'), 2);
  } finally {
    await ck.close();
  }
});

test('AlignedMeanTensors computing into a pool: the same bytes as without one (weighted mean of three; one model at weight 1, -0 as +0), buffers reused after release, held Tensors computed again', async () => {
  const r = rng(41);
  const shapes: Record<string, number[]> = { conv: [6, 4, 3, 3], bias: [6], lin: [5, 6] };
  const spec = PermutationSpec.fromJson({ axes_to_perm: { conv: ['P', 'Q', null, null], bias: ['P'], lin: [null, 'P'] } }, new Map(Object.entries(shapes)));
  const model = () => ({ tensors: new Map(Object.entries(shapes).map(([n, sh]) => [n, new Tensor(sh, Float32Array.from({ length: sh.reduce((x, y) => x * y, 1) }, () => (r() < 0.1 ? -0 : r() * 2 - 1)))])) });
  const models = [model(), model(), model()];
  const perms = models.map(() => new Map([['P', randomPermutation(6, r)], ['Q', randomPermutation(4, r)]]));
  for (const c of [[0, 0.25, 0.75], [0, 1, 0]]) {
    const plain = new AlignedMeanTensors(spec, models, perms, c, 0);
    const pool = new ReadBufferPool();
    const pooled = new AlignedMeanTensors(spec, models, perms, c, 0, pool);
    const held = pooled.get('conv')!;
    const first = Array.from(held.data);
    for (let pass = 0; pass < 2; pass++) {
      for (const name of Object.keys(shapes)) {
        const want = plain.get(name)!.data;
        const got = pooled.get(name)!.data;
        assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)), `${name}, c = ${c.join(',')}`);
        releaseReads(pooled);
      }
    }
    assert.ok(pool.stats.reused > 0, 'means computed into reused buffers');
    assert.deepEqual(Array.from(held.data), first, 'a held Tensor computes its mean again once its buffer went back');
    assert.ok(pooled.computed.get('conv')! >= 3);
  }
});
