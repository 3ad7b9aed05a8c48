/** The test helpers are the yardstick of every other test: they must fail where they should. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { assertAllClose } from './helpers.js';

const fails = (actual: ArrayLike<number> | number, expected: ArrayLike<number> | number, what: RegExp) =>
  assert.throws(() => assertAllClose(actual, expected), (e: unknown) => e instanceof assert.AssertionError && what.test(e.message));

test('assertAllClose fails when the expected value is infinite and the actual is finite', () => {
  fails(5, Infinity, /5 vs expected Infinity/);
  fails([0, 1e300], [0, Infinity], /value\[1\]/);
  fails(-3, -Infinity, /-3 vs expected -Infinity/);
});

test('assertAllClose fails when the actual value is infinite and the expected is finite or the other infinity', () => {
  fails(Infinity, 1e38, /Infinity vs expected 1e\+38/);
  fails(-Infinity, Infinity, /-Infinity vs expected Infinity/);
  fails([1, Infinity], [1, -Infinity], /value\[1\]/);
});

test('assertAllClose accepts an infinity only against the same infinity', () => {
  assertAllClose([Infinity, -Infinity, 1], [Infinity, -Infinity, 1 + 1e-9]);
});

test('assertAllClose treats NaN as matching only NaN', () => {
  assertAllClose([NaN, 2], [NaN, 2]);
  fails(NaN, 0, /NaN vs expected 0/);
  fails(0, NaN, /0 vs expected NaN/);
  fails(Infinity, NaN, /Infinity vs expected NaN/);
});

test('assertAllClose applies rtol and atol to finite values', () => {
  assertAllClose(1.00001, 1, { rtol: 2e-5, atol: 0 });
  assert.throws(() => assertAllClose(1.00001, 1, { rtol: 5e-6, atol: 0 }), assert.AssertionError);
  assertAllClose(1e-9, 0, { rtol: 0, atol: 1e-8 });
  assert.throws(() => assertAllClose(1e-7, 0, { rtol: 0.5, atol: 1e-8 }), assert.AssertionError);
  assert.throws(() => assertAllClose([1, 2], [1, 2, 3]), /length 2 != expected 3/);
});
