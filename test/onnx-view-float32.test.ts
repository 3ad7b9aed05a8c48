import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertBasinError } from './helpers.js';

// OnnxModel.viewFloat32: weight matching reads F32 raw_data in place when it sits 4-byte aligned in the file's
// bytes (no second copy of the model), and a copy otherwise; the values are getFloat32's either way.

/** A model with weights whose names have every length mod 4, so their raw_data lands at every offset mod 4. */
function model(values: (i: number) => number) {
  const g = new GraphBuilder().input('x', [1, 3]).output('y');
  let prev = 'x';
  for (let k = 0; k < 8; k++) {
    const w = new Tensor([3, 3]);
    for (let i = 0; i < 9; i++) w.data[i] = values(k * 9 + i);
    const name = `w${'_'.repeat(k)}`;
    g.initializer(name, w).node('MatMul', [prev, name], [k === 7 ? 'y' : `h${k}`]);
    prev = `h${k}`;
  }
  return g.build();
}

test('viewFloat32 equals getFloat32 for every weight, and views the model bytes in place exactly when 4-byte aligned', () => {
  const m = model((i) => i * 0.25 - 3);
  let views = 0;
  let copies = 0;
  for (const t of m.proto.graph!.initializer!) {
    const raw = t.rawData!;
    const v = m.viewFloat32(t.name!);
    assert.deepEqual(Array.from(v.data), Array.from(m.getFloat32(t.name!).data), t.name!);
    assert.deepEqual(v.shape, [3, 3]);
    const inPlace = v.data.buffer === raw.buffer && v.data.byteOffset === raw.byteOffset;
    assert.equal(inPlace, raw.byteOffset % 4 === 0, `${t.name}: at offset ${raw.byteOffset}`);
    if (inPlace) views++;
    else copies++;
  }
  // the names' lengths spread the offsets: both paths ran
  assert.ok(views > 0 && copies > 0, `${views} views, ${copies} copies`);
});

test('viewFloat32 refuses a NaN weight by name, aligned or not, as getFloat32 does', async () => {
  const m = model((i) => (i % 9 === 4 ? NaN : 1));
  for (const t of m.proto.graph!.initializer!) {
    const e = await assertBasinError(() => m.viewFloat32(t.name!), 'non_finite');
    assert.ok(e.message.includes(`'${t.name!}'`), e.message);
  }
});

test('viewFloat32 of an edited weight reads the edit', () => {
  const m = model(() => 1);
  const w = new Tensor([3, 3]);
  w.data.fill(2);
  m.setFloat32('w', w);
  assert.deepEqual(Array.from(m.viewFloat32('w').data), new Array(9).fill(2));
});
