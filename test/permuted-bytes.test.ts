/**
 * One-pass permuted copies of stored bytes (src/align/permuted-bytes.ts), as the out-of-core align writes B: every
 * element lands where the spec's permutations put it (checked element by element against the multi-index rule
 * out[i0, i1, …] = src[p0[i0], p1[i1], …]), for every element size and run length; readRaw into a caller's buffer
 * and the writer's `written` hook, on a real sharded checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { permuteBytesInto } from '../src/align/permuted-bytes.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { openCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { assertBasinError, randomPermutation, rng } from './helpers.js';

const SHAPES: Record<string, number[]> = {
  conv: [6, 4, 3, 3], // both leading axes permuted, runs of 9 elements
  bias: [6],
  lin: [5, 6], // last axis permuted: runs of 1
  mid: [4, 6, 2], // middle axis: runs of 2
  frozen: [3, 2],
};
const AXES = { conv: ['P_a', 'P_b', null, null], bias: ['P_a'], lin: [null, 'P_a'], mid: [null, 'P_a', null] };

/** out[i0, i1, …] = src[p0[i0], p1[i1], …], element by element (`eb` bytes each). */
function expected(src: Uint8Array, shape: number[], axes: (Int32Array | null)[], eb: number): Uint8Array {
  const out = new Uint8Array(src.length);
  const n = shape.reduce((a, d) => a * d, 1);
  for (let flat = 0; flat < n; flat++) {
    let rest = flat;
    const idx = new Array<number>(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rest % shape[d]!;
      rest = Math.floor(rest / shape[d]!);
    }
    let from = 0;
    for (let d = 0; d < shape.length; d++) from = from * shape[d]! + (axes[d] ? axes[d]![idx[d]!]! : idx[d]!);
    out.set(src.subarray(from * eb, from * eb + eb), flat * eb);
  }
  return out;
}

test('permuteBytesInto: every tensor, every element size (1, 2, 4, 8 bytes), equals the multi-index rule', () => {
  const r = rng(17);
  const spec = PermutationSpec.fromJson({ axes_to_perm: AXES }, new Map(Object.entries(SHAPES)));
  const perms = new Map([['P_a', randomPermutation(6, r)], ['P_b', randomPermutation(4, r)]]);
  for (const eb of [1, 2, 4, 8]) {
    for (const [name, shape] of Object.entries(SHAPES)) {
      const n = shape.reduce((a, d) => a * d, 1);
      const src = Uint8Array.from({ length: n * eb }, () => Math.floor(r() * 256));
      const out = new Uint8Array(src.length).fill(0xee);
      permuteBytesInto(spec, perms, name, shape, eb, src, out);
      const axes = (AXES as Record<string, (string | null)[]>)[name]?.map((p) => (p ? perms.get(p)! : null)) ?? shape.map(() => null);
      assert.deepEqual(out, expected(src, shape, axes, eb), `${name}, ${eb}-byte elements`);
    }
  }
  // a view at an odd offset takes the byte path and gives the same bytes
  const n = 6 * 4 * 9 * 4;
  const backing = Uint8Array.from({ length: n + 1 }, () => Math.floor(r() * 256));
  const src = backing.subarray(1);
  const out = new Uint8Array(n);
  permuteBytesInto(spec, perms, 'conv', SHAPES['conv']!, 4, src, out);
  assert.deepEqual(out, expected(src, SHAPES['conv']!, [perms.get('P_a')!, perms.get('P_b')!, null, null], 4));
});

test('permuteBytesInto: lengths that disagree with the shape are shape_mismatch naming the tensor', async () => {
  const spec = PermutationSpec.fromJson({ axes_to_perm: AXES }, new Map(Object.entries(SHAPES)));
  const perms = new Map([['P_a', Int32Array.from({ length: 6 }, (_, i) => i)], ['P_b', Int32Array.from({ length: 4 }, (_, i) => i)]]);
  const e = await assertBasinError(() => permuteBytesInto(spec, perms, 'bias', [6], 4, new Uint8Array(24), new Uint8Array(20)), 'shape_mismatch');
  assert.match(e.message, /'bias'/);
  await assertBasinError(() => permuteBytesInto(spec, perms, 'bias', [6], 4, new Uint8Array(20), new Uint8Array(20)), 'shape_mismatch');
});

test('readRaw into a caller\'s buffer reads the stored bytes there (a wrong length is shape_mismatch naming the tensor); the writer calls written() once per produced tensor, after writing it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-rawinto-'));
  const values = [Float32Array.from([1, 2, 3, 4]), Float32Array.from([5, 6, 7])];
  const events: string[] = [];
  const p = (
    await writeCheckpoint(
      path.join(dir, 'model.safetensors.index.json'),
      values.map((v, k) => ({
        name: `t${k}`,
        dtype: 'F32' as const,
        shape: [v.length],
        data: async () => {
          events.push(`make t${k}`);
          return new Uint8Array(v.buffer);
        },
        written: (d: Uint8Array) => events.push(`written t${k} ${d.length}`),
      })),
      { shardBytes: 16 },
    )
  ).path;
  assert.deepEqual(events, ['make t0', 'written t0 16', 'make t1', 'written t1 12']);
  const ck = await openCheckpoint(p);
  try {
    const into = new Uint8Array(16).fill(9);
    const got = await ck.readRaw('t0', into);
    assert.equal(got, into);
    assert.deepEqual(Array.from(new Float32Array(into.buffer)), [1, 2, 3, 4]);
    const e = await assertBasinError(() => ck.readRaw('t1', new Uint8Array(16)), 'shape_mismatch');
    assert.match(e.message, /'t1'/);
    await assertBasinError(() => ck.readFloat32Sync('t1', { into: new Float32Array(4) }), 'shape_mismatch');
  } finally {
    await ck.close();
  }
});
