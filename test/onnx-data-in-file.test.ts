/**
 * readOnnx leaves large initializers' raw_data in the model file (loadOnnx does for files of 16 MiB and more): the
 * model holds its protobuf without those bytes, reads each tensor from the file when asked, writes the file's own
 * bytes back, and gives sessions references into the file. Each test compares with the same file read whole
 * (dataInFileFrom: Infinity) or with the file's bytes themselves.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { readOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const WIDTH = 40;
/** Tensors of at least this many bytes are left in the file in these tests (the 40 x 40 weights are 6400). */
const TENSOR_FROM = 4096;
const LAZY = { dataInFileFrom: 0, tensorFrom: TENSOR_FROM };
const WHOLE = { dataInFileFrom: Infinity };

/**
 * A MatMul/Add chain over WIDTH features: weights of 6400 bytes (left in the file) whose names have every length
 * mod 4, so their data sits at every offset mod 4; biases of 160 bytes (kept in the protobuf); a Constant node.
 */
function model(seed: number): Uint8Array {
  const r = rng(seed);
  const g = new GraphBuilder(17).input('x', ['batch', WIDTH]).output('y');
  let prev = 'x';
  for (let k = 0; k < 5; k++) {
    const w = new Tensor([WIDTH, WIDTH], Float32Array.from({ length: WIDTH * WIDTH }, () => randn(r) / Math.sqrt(WIDTH)));
    const b = new Tensor([WIDTH], Float32Array.from({ length: WIDTH }, () => randn(r)));
    const wn = `w${'_'.repeat(k)}`;
    g.initializer(wn, w).initializer(`b${k}`, b);
    g.node('MatMul', [prev, wn], [`m${k}`]).node('Add', [`m${k}`, `b${k}`], [`a${k}`]).node('Relu', [`a${k}`], [`h${k}`]);
    prev = `h${k}`;
  }
  g.node('Constant', [], ['scale'], { value: new Tensor([1], Float32Array.of(0.5)) }).node('Mul', [prev, 'scale'], ['y']);
  return g.encode();
}

async function withFile<T>(bytes: Uint8Array, fn: (file: string, dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'basin-data-in-file-'));
  try {
    const file = path.join(dir, 'm.onnx');
    await writeFile(file, bytes);
    return await fn(file, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const x = (seed: number) => {
  const r = rng(seed);
  return new Tensor([3, WIDTH], Float32Array.from({ length: 3 * WIDTH }, () => randn(r)));
};

async function run(m: OnnxModel, input: Tensor): Promise<Tensor> {
  const s = await createSession(m, { prepack: false });
  try {
    return (await s.run({ x: input }))['y']!;
  } finally {
    await s.release();
  }
}

test('a model with its data left in the file writes back the file byte for byte and reads every tensor as the whole file does', async () => {
  await withFile(model(1), async (file) => {
    const lazy = await readOnnx(file, LAZY);
    const whole = await readOnnx(file, WHOLE);
    assert.ok(Buffer.from(lazy.toBytes()).equals(await readFile(file)), 'toBytes is the file');
    // the protobuf it holds lacks the five weights' bytes (5 x 6400) and keeps the rest
    const held = (lazy as unknown as { bytes: Uint8Array }).bytes.length;
    assert.ok(held < (await readFile(file)).length - 5 * WIDTH * WIDTH * 4 + 200, `holds ${held} bytes`);
    for (const n of whole.constants()) {
      assert.deepEqual(lazy.weightInfo(n), whole.weightInfo(n), n);
      assert.deepEqual(Array.from(lazy.getRaw(n)), Array.from(whole.getRaw(n)), n);
      assert.deepEqual(Array.from(lazy.viewFloat32(n).data), Array.from(whole.getFloat32(n).data), n);
    }
    assert.equal(lazy.fileRef('w')?.offset, (await readFile(file)).indexOf(Buffer.from(whole.getRaw('w'))));
    assert.equal(lazy.fileRef('b0'), undefined, 'a small tensor stays in the protobuf');
  });
});

test('edits of a model with data in the file give the bytes and the outputs of the same edits on the whole file', async () => {
  await withFile(model(2), async (file) => {
    const lazy = await readOnnx(file, LAZY);
    const whole = await readOnnx(file, WHOLE);
    const input = x(3);
    const y0 = await run(whole, input);
    assertAllClose((await run(lazy, input)).data, y0.data, { atol: 0, rtol: 0 });
    for (const m of [lazy, whole]) {
      const w = m.getFloat32('w__');
      for (let i = 0; i < w.data.length; i++) w.data[i] = -w.data[i]!;
      m.setFloat32('w__', w);
      m.setFloat32('b1', new Tensor([WIDTH], new Float32Array(WIDTH).fill(0.25)));
    }
    assert.ok(Buffer.from(lazy.toBytes()).equals(whole.toBytes()), 'the same bytes after the same edits');
    assert.ok(Buffer.from(lazy.clone().toBytes()).equals(whole.toBytes()), 'a clone too');
    const [yl, yw] = [await run(lazy, input), await run(whole, input)];
    assertAllClose(yl.data, yw.data, { atol: 0, rtol: 0 });
    // and the edits changed what the model computes (the session read the edited weight, not the file's)
    assert.ok(yl.data.some((v, i) => v !== y0.data[i]), 'the edited model computes something else');
  });
});

test('a model with data in the file saved over that file keeps reading its data, and the file holds the edit', async () => {
  await withFile(model(4), async (file, dir) => {
    const lazy = await readOnnx(file, LAZY);
    const before = await readOnnx(file, WHOLE);
    const w = new Tensor([WIDTH, WIDTH], new Float32Array(WIDTH * WIDTH).fill(0.125));
    lazy.setFloat32('w_', w);
    await lazy.save(file);
    const after = await readOnnx(file, WHOLE);
    assert.deepEqual(Array.from(after.getFloat32('w_').data), Array.from(w.data));
    for (const n of ['w', 'w__', 'w___', 'b2']) assert.deepEqual(Array.from(after.getRaw(n)), Array.from(before.getRaw(n)), n);
    // the model still reads (and writes) its unedited data, now from memory: the file it was loaded from is gone
    assert.deepEqual(Array.from(lazy.getRaw('w___')), Array.from(before.getRaw('w___')));
    const again = path.join(dir, 'again.onnx');
    await lazy.save(again);
    assert.ok((await readFile(again)).equals(await readFile(file)), 'saved again: the same model');
    assertAllClose((await run(lazy, x(5))).data, (await run(after, x(5))).data, { atol: 0, rtol: 0 });
  });
});

test('a model file changed after loading is refused by name when a tensor left in it is read (io_error)', async () => {
  await withFile(model(6), async (file) => {
    const lazy = await readOnnx(file, LAZY);
    await writeFile(file, model(7)); // the same layout, other values: read now, they would be silently wrong
    const e = await assertBasinError(() => lazy.getFloat32('w_'), 'io_error');
    assert.ok(e.message.includes(`'${file}'`) && e.message.includes("'w_'"), e.message);
    assert.ok(lazy.getFloat32('b0').data.length === WIDTH, 'tensors in the protobuf still read');
    await rm(file);
    await assertBasinError(() => lazy.toBytes(), 'io_error');
  });
});

test('a file whose length prefixes are not minimal is read whole, and still written back byte for byte', async () => {
  const bytes = model(8);
  // re-encode the graph field's length (field 7, the first length-delimited field over 127 bytes) with one padding byte
  let at = 0;
  const varint = (p: number): [number, number] => {
    let v = 0;
    let s = 0;
    for (;;) {
      const b = bytes[p++]!;
      v += (b & 0x7f) * 2 ** s;
      s += 7;
      if (!(b & 0x80)) return [v, p];
    }
  };
  let padded: Uint8Array | undefined;
  while (at < bytes.length) {
    const [tag, p1] = varint(at);
    assert.ok((tag & 7) === 0 || (tag & 7) === 2, 'top-level fields before the graph are varints or length-delimited');
    const [len, p2] = varint(p1);
    if (tag === ((7 << 3) | 2)) {
      const lenBytes = Array.from(bytes.subarray(p1, p2));
      lenBytes[lenBytes.length - 1]! |= 0x80;
      padded = Buffer.concat([bytes.subarray(0, p1), Uint8Array.from([...lenBytes, 0]), bytes.subarray(p2)]);
      break;
    }
    at = (tag & 7) === 0 ? p2 : p2 + len; // a varint field: p2 is past its value
  }
  await withFile(padded!, async (file) => {
    const m = await readOnnx(file, LAZY);
    assert.equal(m.fileRef('w'), undefined, 'the data stays in memory');
    assert.ok(Buffer.from(m.toBytes()).equals(padded!), 'toBytes is the file');
  });
});
