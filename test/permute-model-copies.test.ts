/**
 * Fewer copies in permute (issue 13): permuted tensors are handed to the model without another copy, getFloat32
 * decodes the fresh bytes it read in place, and changedFraction reads tensors that no permutation touches once.
 * None of it may let two holders share one array, nor change the fraction reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomlyPermute } from '../src/align/align-onnx.js';
import { inferPermutationSpec, probeModel } from '../src/graph/index.js';
import { deadUnitsMlp } from './zoo/models.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { randomAssignment } from '../src/spec/apply.js';
import { permuteModel, weightShapes } from '../src/spec/permute-model.js';

test('permute: the changed fraction equals a count over every weight of both models', async () => {
  const model = deadUnitsMlp();
  const spec = inferPermutationSpec(model, await probeModel(model)).spec;
  const r = await randomlyPermute(model, spec, 3);
  let changed = 0;
  let total = 0;
  for (const name of model.weights()) {
    const [x, y] = [model.getFloat32(name).data, r.model.getFloat32(name).data];
    total += x.length;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) changed++;
  }
  assert.ok(changed > 0);
  assert.equal(r.changedFraction, changed / total);
});

test('getFloat32 and setRaw: no two holders share an array', () => {
  const model = deadUnitsMlp();
  const name = 'w1';
  const first = model.getFloat32(name).data;
  const want = first[0]!;
  first[0] = want + 1;
  assert.equal(model.getFloat32(name).data[0], want, 'getFloat32 gave out the model\'s own array');
  const raw = model.getRaw(name);
  model.setRaw(name, raw);
  raw.fill(0);
  assert.equal(model.getFloat32(name).data[0], want, 'setRaw kept the caller\'s array');
  const owned = model.getRaw(name);
  new Float32Array(owned.buffer, owned.byteOffset, 1)[0] = 7;
  model.setRaw(name, owned, { owned: true });
  assert.equal(model.getFloat32(name).data[0], 7);
  const back = model.getFloat32(name).data;
  back[0] = 9;
  assert.equal(model.getFloat32(name).data[0], 7, 'getFloat32 of an edited tensor aliases the edit');
});

test('permuteModel: a spec tensor none of whose axes moves is not edited (it stays where it is stored)', () => {
  const model = deadUnitsMlp();
  const json = { axes_to_perm: { w0: ['P0', null], b0: ['P0'], w1: [null, 'P0'], b1: [null], w2: [null, null] } };
  const spec = PermutationSpec.fromJson(json, weightShapes(model));
  const out = permuteModel(model, spec, randomAssignment(spec, 5));
  assert.deepEqual(out.edited().sort(), ['b0', 'w0', 'w1']);
  for (const name of ['b1', 'w2']) assert.deepEqual([...out.getFloat32(name).data], [...model.getFloat32(name).data], name);
  assert.notDeepEqual([...out.getFloat32('w0').data], [...model.getFloat32('w0').data]);
});
