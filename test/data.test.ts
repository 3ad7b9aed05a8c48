import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { openDataset } from '../src/data/open.js';
import type { Batch, Dataset } from '../src/data/dataset.js';
import { FIXTURES, assertBasinError, rng } from './helpers.js';

const FMNIST = '/usr/share/datasets/fashion-mnist';

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'basin-data-'));
}

async function collect(ds: Dataset, batchSize: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of ds.batches(batchSize)) out.push(b);
  return out;
}

function joined(batches: Batch[]): { x: number[]; y: number[] } {
  return { x: batches.flatMap((b) => Array.from(b.input.data)), y: batches.flatMap((b) => Array.from(b.labels)) };
}

// --- .npy files written byte by byte, independently of the reader ---

function npy(descr: string, shape: number[], data: Uint8Array, { fortran = false, version = 1 } = {}): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const pre = version === 1 ? 10 : 12;
  const total = Math.ceil((pre + header.length + 1) / 64) * 64;
  header = header.padEnd(total - pre - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), pre);
  out.set(data, total);
  return out;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('safetensors: streams the fixture in batches, equal to the whole tensors', async () => {
  const file = path.join(FIXTURES, 'fmnist_test1k.safetensors');
  const ds = await openDataset(file);
  assert.equal(ds.format, 'safetensors');
  assert.equal(ds.size, 1000);
  assert.deepEqual(ds.inputShape, [784]);
  assert.equal(ds.inputDType, 'F32');
  const batches = await collect(ds, 300);
  assert.deepEqual(batches.map((b) => b.count), [300, 300, 300, 100]);
  assert.deepEqual(batches.map((b) => b.input.shape), [[300, 784], [300, 784], [300, 784], [100, 784]]);
  const st = await SafetensorsFile.open(file);
  const x = await st.readFloat32('input');
  const y = await st.readFloat32('label');
  await st.close();
  const all = joined(batches);
  assert.deepEqual(all.x, Array.from(x.data));
  assert.deepEqual(all.y, Array.from(y.data));

  const first = await openDataset(file, { limit: 250 });
  assert.equal(first.size, 250);
  const lim = joined(await collect(first, 100));
  assert.deepEqual(lim.y, Array.from(y.data.subarray(0, 250)));
  assert.equal(lim.x.length, 250 * 784);
});

test('safetensors: U8 inputs are pixels (/ 255, the one input rule), I64 labels, custom names; errors name file and field', async () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'd.safetensors');
    const px = Uint8Array.from({ length: 6 * 4 }, (_, i) => (i * 37) % 256);
    await writeSafetensors(file, [
      { name: 'pixels', dtype: 'U8', shape: [6, 2, 2], data: px },
      { name: 'y', dtype: 'I64', shape: [6], data: bytesOf(BigInt64Array.of(0n, 1n, 2n, 3n, 4n, 9n)) },
      { name: 'short', dtype: 'I32', shape: [5], data: bytesOf(Int32Array.of(0, 1, 2, 3, 4)) },
      { name: 'frac', dtype: 'F32', shape: [6], data: bytesOf(Float32Array.of(0, 1, 2.5, 3, 4, 5)) },
      { name: 'neg', dtype: 'F32', shape: [6], data: bytesOf(Float32Array.of(0, 1, 2, 3, 4, -1)) },
    ]);
    const ds = await openDataset(file, { inputName: 'pixels', labelName: 'y' });
    assert.deepEqual(ds.inputShape, [2, 2]);
    assert.equal(ds.inputDType, 'U8');
    const b = await collect(ds, 4);
    assert.deepEqual(b[0]!.input.shape, [4, 2, 2]);
    assert.deepEqual(joined(b).x, Array.from(px, (p) => Math.fround(p / 255)));
    assert.deepEqual(Array.from(b[0]!.stored.bytes), Array.from(px.subarray(0, 16)), 'stored bytes kept as they are');
    assert.deepEqual(joined(b).y, [0, 1, 2, 3, 4, 9]);

    let e = await assertBasinError(() => openDataset(file, { inputName: 'pixels' }), 'data_invalid'); // no 'label'
    assert.equal(e.details.tensor, 'label');
    assert.equal(e.details.file, file);
    e = await assertBasinError(() => openDataset(file, { inputName: 'nope', labelName: 'y' }), 'data_invalid');
    assert.equal(e.details.tensor, 'nope');
    e = await assertBasinError(() => openDataset(file, { inputName: 'pixels', labelName: 'short' }), 'data_invalid');
    assert.equal(e.details.found, 5);
    await assertBasinError(() => openDataset(file, { inputName: 'pixels', labelName: 'pixels' }), 'data_invalid'); // [6,2,2] labels
    for (const labelName of ['frac', 'neg']) {
      const bad = await openDataset(file, { inputName: 'pixels', labelName });
      e = await assertBasinError(() => collect(bad, 6), 'data_invalid');
      assert.equal(e.details.tensor, labelName);
    }
    await assertBasinError(() => collect(ds, 0), 'invalid_argument');
    await assertBasinError(() => openDataset(path.join(dir, 'missing.safetensors')), 'file_not_found');
    await assertBasinError(() => openDataset(file, { inputName: 'pixels', labelName: 'y', limit: -1 }), 'invalid_argument');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npy: dtypes <f4 <f8 |u1 inputs, <i8 labels; folder, comma pair and labels option', async () => {
  const dir = tmp();
  try {
    const r = rng(5);
    const x = Float32Array.from({ length: 7 * 3 }, () => r());
    const y = BigInt64Array.from({ length: 7 }, (_, i) => BigInt(i % 3));
    writeFileSync(path.join(dir, 'x.npy'), npy('<f4', [7, 3], bytesOf(x)));
    writeFileSync(path.join(dir, 'y.npy'), npy('<i8', [7], bytesOf(y)));
    const viaDir = await openDataset(dir);
    assert.equal(viaDir.format, 'npy');
    assert.equal(viaDir.size, 7);
    assert.deepEqual(viaDir.inputShape, [3]);
    const b = await collect(viaDir, 3);
    assert.deepEqual(b.map((t) => t.count), [3, 3, 1]);
    assert.deepEqual(joined(b).x, Array.from(x));
    assert.deepEqual(joined(b).y, [0, 1, 2, 0, 1, 2, 0]);

    const pair = await openDataset(`${path.join(dir, 'x.npy')},${path.join(dir, 'y.npy')}`, { limit: 4 });
    assert.deepEqual(joined(await collect(pair, 10)).y, [0, 1, 2, 0]);
    const single = await openDataset(path.join(dir, 'x.npy'), { labels: path.join(dir, 'y.npy') });
    assert.equal(single.size, 7);
    await assertBasinError(() => openDataset(path.join(dir, 'x.npy')), 'data_invalid'); // no labels given

    // float64, uint8 images, version-2 header
    const x64 = Float64Array.from({ length: 7 * 2 }, (_, i) => i / 4);
    writeFileSync(path.join(dir, 'x64.npy'), npy('<f8', [7, 2], bytesOf(x64), { version: 2 }));
    assert.deepEqual(joined(await collect(await openDataset(path.join(dir, 'x64.npy'), { labels: path.join(dir, 'y.npy') }), 5)).x, Array.from(x64));
    const u8 = Uint8Array.from({ length: 7 * 4 }, (_, i) => 255 - i);
    writeFileSync(path.join(dir, 'u8.npy'), npy('|u1', [7, 2, 2], u8));
    const du8 = await openDataset(path.join(dir, 'u8.npy'), { labels: path.join(dir, 'y.npy') });
    assert.deepEqual(du8.inputShape, [2, 2]);
    assert.deepEqual(joined(await collect(du8, 7)).x, Array.from(u8, (p) => Math.fround(p / 255)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npy errors: fortran order, big-endian, bad magic, truncated, label count', async () => {
  const dir = tmp();
  try {
    const y = path.join(dir, 'y.npy');
    writeFileSync(y, npy('<i8', [2], bytesOf(BigInt64Array.of(0n, 1n))));
    const cases: [string, Uint8Array][] = [
      ['fortran', npy('<f4', [2, 2], new Uint8Array(16), { fortran: true })],
      ['bigendian', npy('>f4', [2, 2], new Uint8Array(16))],
      ['structured', npy('V8', [2, 2], new Uint8Array(32))],
      ['magic', Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0])],
      ['truncated', npy('<f4', [2, 2], new Uint8Array(15))],
      ['count', npy('<f4', [3, 2], new Uint8Array(24))],
    ];
    for (const [name, bytes] of cases) {
      const f = path.join(dir, `${name}.npy`);
      writeFileSync(f, bytes);
      const e = await assertBasinError(() => openDataset(`${f},${y}`), 'data_invalid');
      assert.equal(e.details.file, name === 'count' ? y : f, name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** idx bytes: magic 00 00 08 rank, big-endian dims, data. */
function idx(dims: number[], data: Uint8Array, magicType = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, magicType, dims.length]);
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

test('idx: gzipped and plain files, pixels / 255, split, errors', async () => {
  const dir = tmp();
  try {
    const px = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 53) % 256);
    const labels = Uint8Array.of(3, 1, 4, 1, 5);
    writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(idx([5, 3, 3], px)));
    writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte.gz'), gzipSync(idx([5], labels)));
    writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), idx([2, 3, 3], px.subarray(0, 18)));
    writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idx([2], labels.subarray(0, 2)));
    const test10k = await openDataset(dir);
    assert.equal(test10k.format, 'idx');
    assert.equal(test10k.size, 5);
    assert.deepEqual(test10k.inputShape, [9]);
    const b = await collect(test10k, 2);
    assert.deepEqual(b.map((t) => t.count), [2, 2, 1]);
    assert.deepEqual(joined(b).x, Array.from(px, (p) => Math.fround(p / 255)));
    assert.deepEqual(joined(b).y, [3, 1, 4, 1, 5]);
    const train = await openDataset(dir, { split: 'train' });
    assert.equal(train.size, 2);
    assert.deepEqual(joined(await collect(train, 8)).y, [3, 1]);
    const direct = await openDataset(path.join(dir, 't10k-images-idx3-ubyte.gz'), { limit: 3 });
    assert.deepEqual(joined(await collect(direct, 8)).y, [3, 1, 4]);

    // bad magic, count mismatch, truncated data
    const bad = path.join(dir, 'bad');
    const write = (images: Uint8Array, lbls: Uint8Array): void => {
      rmSync(bad, { recursive: true, force: true });
      writeFileSync(path.join(tmpMk(bad), 't10k-images-idx3-ubyte'), images);
      writeFileSync(path.join(bad, 't10k-labels-idx1-ubyte'), lbls);
    };
    write(idx([5, 3, 3], px, 0x0d), idx([5], labels));
    let e = await assertBasinError(() => openDataset(bad), 'data_invalid');
    assert.equal(e.details.file, path.join(bad, 't10k-images-idx3-ubyte'));
    write(idx([5, 3, 3], px), idx([5, 1], labels));
    e = await assertBasinError(() => openDataset(bad), 'data_invalid');
    assert.equal(e.details.file, path.join(bad, 't10k-labels-idx1-ubyte'));
    write(idx([5, 3, 3], px), idx([4], labels.subarray(0, 4)));
    await assertBasinError(() => openDataset(bad), 'data_invalid');
    write(idx([5, 3, 3], px.subarray(0, 40)), idx([5], labels));
    const truncated = await openDataset(bad);
    await assertBasinError(() => collect(truncated, 2), 'data_invalid');
    // a corrupt gzip stream
    rmSync(bad, { recursive: true, force: true });
    const gz = gzipSync(idx([5, 3, 3], px));
    gz[gz.length - 20] = gz[gz.length - 20]! ^ 0xff;
    writeFileSync(path.join(tmpMk(bad), 't10k-images-idx3-ubyte.gz'), gz);
    writeFileSync(path.join(bad, 't10k-labels-idx1-ubyte.gz'), gzipSync(idx([5], labels)));
    await assertBasinError(async () => collect(await openDataset(bad), 5), 'data_invalid');

    await assertBasinError(() => openDataset(path.join(dir, 'nothing-here')), 'file_not_found');
    const empty = path.join(dir, 'empty');
    tmpMk(empty);
    await assertBasinError(() => openDataset(empty), 'data_invalid');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function tmpMk(d: string): string {
  mkdirSync(d, { recursive: true });
  return d;
}

test('Fashion-MNIST idx files from the Debian package: first sample and label match the raw bytes', async (t) => {
  if (!existsSync(path.join(FMNIST, 't10k-images-idx3-ubyte.gz'))) {
    t.skip(`${FMNIST} is missing (apt-get install dataset-fashion-mnist)`);
    return;
  }
  const images = gunzipSync(readFileSync(path.join(FMNIST, 't10k-images-idx3-ubyte.gz')));
  const labels = gunzipSync(readFileSync(path.join(FMNIST, 't10k-labels-idx1-ubyte.gz')));
  const ds = await openDataset(FMNIST, { limit: 3 });
  const full = await openDataset(FMNIST);
  assert.equal(full.size, labels.length - 8);
  assert.deepEqual(full.inputShape, [784]);
  const [b] = await collect(ds, 3);
  // idx: 16 header bytes for images, 8 for labels; then one byte per pixel / label
  for (let s = 0; s < 3; s++) {
    assert.equal(b!.labels[s], labels[8 + s]);
    for (let i = 0; i < 784; i++) assert.equal(b!.input.data[s * 784 + i], Math.fround(images[16 + s * 784 + i]! / 255));
  }
  const train = await openDataset(FMNIST, { split: 'train', limit: 10 });
  assert.equal(train.size, 10);
  assert.equal((await collect(train, 10))[0]!.count, 10);
});
