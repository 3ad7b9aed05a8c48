/**
 * The regression zoo (test/zoo/models.ts): for every model, the expected groups and frozen axes of
 * test/zoo/expected/NAME.json are found, random permutations keep the function through onnxruntime (3 seeds), and
 * align(original, permuted) recovers the original weights bit for bit. Field models absent here are skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ZOO } from './zoo/models.js';
import { checkZooModel } from './zoo/check.js';

for (const entry of ZOO) {
  test(`zoo: ${entry.name} (${entry.what})`, async (t) => {
    const r = await checkZooModel(entry);
    if (r.skipped) return t.skip(r.skipped);
    assert.deepEqual(r.problems, [], r.problems.join('\n'));
    r.invariant.forEach((ok, k) => assert.ok(ok, `seed ${k + 1}: a random permutation changed the function`));
    r.differing.forEach((n, k) => assert.equal(n, 0, `seed ${k + 1}: ${n} tensors of align(original, permuted) differ from the original`));
    if (r.expectedGroups > r.missing) assert.equal(r.invariant.length, 3);
  });
}
