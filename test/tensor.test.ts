import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, axisToRows, moveaxis, take, permuteAxisInPlace, transpose } from '../src/tensor/tensor.js';
import { assertAllClose, assertBasinError } from './helpers.js';

// A [2,3,4] tensor whose value encodes its index: v = 100a + 10b + c.
function coded(): Tensor {
  const t = new Tensor([2, 3, 4]);
  for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) t.data[a * 12 + b * 4 + c] = 100 * a + 10 * b + c;
  return t;
}

test('axisToRows matches moveaxis + reshape', () => {
  const r = axisToRows(coded(), 1);
  assert.equal(r.rows, 3);
  assert.equal(r.cols, 8);
  // row b holds (a, c) in order a-major
  assertAllClose(Array.from(r.data.subarray(8, 16)), [10, 11, 12, 13, 110, 111, 112, 113]);
});

test('moveaxis and transpose follow numpy', () => {
  const m = moveaxis(coded(), 2, 0);
  assert.deepEqual(m.shape, [4, 2, 3]);
  assert.equal(m.data[1 * 6 + 1 * 3 + 2], 121);
  const t = transpose(coded(), [2, 0, 1]);
  assert.deepEqual(Array.from(t.data), Array.from(m.data));
});

test('take and permuteAxisInPlace agree', () => {
  const perm = [2, 0, 1];
  const a = take(coded(), 1, perm);
  const b = coded();
  permuteAxisInPlace(b, 1, perm);
  assert.deepEqual(Array.from(a.data), Array.from(b.data));
  assert.equal(a.data[0 * 12 + 0 * 4 + 3], 23);
});

test('bad axis and index give BasinError', async () => {
  await assertBasinError(() => take(coded(), 3, [0]), 'invalid_argument');
  await assertBasinError(() => take(coded(), 1, [3]), 'invalid_argument');
  await assertBasinError(() => permuteAxisInPlace(coded(), 0, [0, 1, 2]), 'shape_mismatch');
  await assertBasinError(() => coded().reshape([5, -1]), 'shape_mismatch');
});
