/**
 * Checkpoints: single files and directories, Hugging Face sharded sets (write, read back, index content, every
 * index error), and atomic output (a failing write leaves neither the output nor a temporary file).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DType } from '../src/dtype.js';
import { BasinError } from '../src/errors.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { openCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { FIXTURES, assertAllClose, assertBasinError, rng } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'basin-ck-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let dirNo = 0;
const freshDir = () => {
  const d = path.join(tmp, `d${dirNo++}`);
  mkdirSync(d);
  return d;
};

/** Six F32 tensors of 400, 400, 400, 240, 160 and 4 bytes (in this order), with recognizable values. */
function sample(): TensorToWrite[] {
  const spec: [string, number[]][] = [
    ['embed.weight', [10, 10]],
    ['layers.0.weight', [10, 10]],
    ['layers.1.weight', [10, 10]],
    ['layers.1.bias', [60]],
    ['head.weight', [4, 10]],
    ['step', []],
  ];
  return spec.map(([name, shape], k) => {
    const n = shape.reduce((a, d) => a * d, 1);
    return { name, dtype: 'F32' as DType, shape, data: Float32Array.from({ length: n }, (_, i) => k * 1000 + i) };
  });
}

const listDir = (d: string) => readdirSync(d).sort();

test('single file: open by path and by directory; names in file order; info, reads', async () => {
  const ck = await openCheckpoint(path.join(FIXTURES, 'mlp_small_seed0.safetensors'));
  assert.equal(ck.sharded, false);
  assert.deepEqual(ck.names(), ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'head.weight', 'head.bias']);
  assert.deepEqual(ck.info('layers.0.weight'), { dtype: 'F32', shape: [128, 784] });
  assert.equal((await ck.readRaw('head.bias')).length, 40);
  assert.deepEqual((await ck.readFloat32('head.weight')).shape, [10, 128]);
  await assertBasinError(() => ck.info('nope'), 'tensor_not_found');
  await ck.close();

  const d = freshDir();
  await writeCheckpoint(d, sample(), { metadata: { format: 'pt' } }); // existing directory: d/model.safetensors
  assert.deepEqual(listDir(d), ['model.safetensors']);
  const c2 = await openCheckpoint(d);
  assert.equal(c2.path, path.join(d, 'model.safetensors'));
  assert.deepEqual(c2.metadata, { format: 'pt' });
  assert.equal(c2.names().length, 6);
  await c2.close();
  await assertBasinError(() => openCheckpoint(path.join(tmp, 'missing')), 'file_not_found');
  await assertBasinError(() => openCheckpoint(freshDir()), 'file_not_found');
});

test('one folder, one checkpoint: writing a single file beside a sharded set (or the reverse) is output_conflict naming the folder; a folder holding both is index_invalid when opened', async () => {
  const sharded = freshDir();
  await writeCheckpoint(sharded, sample(), { shardBytes: 800 });
  const before = listDir(sharded);
  assert.ok(before.includes('model.safetensors.index.json'));
  const e1 = await assertBasinError(() => writeCheckpoint(sharded, sample()), 'output_conflict');
  assert.ok(e1.message.includes(`'${path.join(sharded, 'model.safetensors.index.json')}'`), e1.message);
  assert.deepEqual(listDir(sharded), before, 'nothing written');
  const single = freshDir();
  await writeCheckpoint(single, sample());
  const e2 = await assertBasinError(() => writeCheckpoint(single, sample(), { shardBytes: 800 }), 'output_conflict');
  assert.ok(e2.message.includes(`'${path.join(single, 'model.safetensors')}'`), e2.message);
  await assertBasinError(() => writeCheckpoint(path.join(single, 'model.safetensors.index.json'), sample()), 'output_conflict');
  await assertBasinError(() => writeCheckpoint(path.join(single, 'model.safetensors'), sample(), { shardBytes: 800 }), 'output_conflict');
  assert.deepEqual(listDir(single), ['model.safetensors']);
  // both present (made by other tools): opening the folder names the two, never picks one silently
  copyFileSync(path.join(single, 'model.safetensors'), path.join(sharded, 'model.safetensors'));
  const e3 = await assertBasinError(() => openCheckpoint(sharded), 'index_invalid');
  assert.ok(e3.message.includes('model.safetensors and the sharded model.safetensors.index.json'), e3.message);
  // the files themselves still open by name
  const byName = await openCheckpoint(path.join(sharded, 'model.safetensors.index.json'));
  assert.equal(byName.sharded, true);
  await byName.close();
});

test('sharded: three shards written, index content exact, read back bit-exact', async () => {
  const d = freshDir();
  const tensors = sample();
  // 800-byte shards: [embed 400 + layers.0 400] [layers.1.weight 400 + layers.1.bias 240 + head 160] [step 4]
  const written = await writeCheckpoint(path.join(d, 'model.safetensors.index.json'), tensors, { metadata: { format: 'pt' }, shardBytes: 800 });
  const shards = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
  assert.deepEqual(listDir(d), [...shards, 'model.safetensors.index.json']);
  assert.deepEqual(written.files, [...shards.map((s) => path.join(d, s)), path.join(d, 'model.safetensors.index.json')]);

  const index = JSON.parse(readFileSync(path.join(d, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(index, {
    metadata: { format: 'pt', total_size: 400 + 400 + 400 + 240 + 160 + 4 },
    weight_map: {
      'embed.weight': shards[0],
      'head.weight': shards[1],
      'layers.0.weight': shards[0],
      'layers.1.bias': shards[1],
      'layers.1.weight': shards[1],
      step: shards[2],
    },
  });
  assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort(), 'weight_map sorted by name');
  // laid out as python's json.dumps(index, indent=2, sort_keys=True) + newline, which JSON.stringify matches here
  assert.equal(readFileSync(path.join(d, 'model.safetensors.index.json'), 'utf8'), JSON.stringify(index, null, 2) + '\n');

  for (const open of [path.join(d, 'model.safetensors.index.json'), d]) {
    const ck = await openCheckpoint(open);
    assert.equal(ck.sharded, true);
    assert.equal(ck.path, path.join(d, 'model.safetensors.index.json'));
    assert.deepEqual(ck.metadata, { format: 'pt' });
    // shard by shard, each in data (= name, all F32) order
    assert.deepEqual(ck.names(), ['embed.weight', 'layers.0.weight', 'head.weight', 'layers.1.bias', 'layers.1.weight', 'step']);
    for (const t of tensors) {
      assert.deepEqual(ck.info(t.name), { dtype: 'F32', shape: t.shape });
      assert.deepEqual(new Uint8Array(await ck.readRaw(t.name)), new Uint8Array((t.data as Float32Array).buffer));
      assertAllClose((await ck.readFloat32(t.name)).data, t.data as Float32Array, { rtol: 0, atol: 0 });
    }
    await assertBasinError(() => ck.readRaw('missing'), 'tensor_not_found');
    await ck.close();
  }
});

test('sharded: path forms, oversized tensors get their own shard, mixed dtypes', async () => {
  const d = freshDir();
  const r = rng(1);
  const tensors: TensorToWrite[] = [
    { name: 'a', dtype: 'BF16', shape: [3], data: new Float32Array([1, 2, 3]) },
    { name: 'big', dtype: 'F64', shape: [100], data: Float32Array.from({ length: 100 }, () => r()) },
    { name: 'c', dtype: 'I64', shape: [], data: new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0]) },
  ];
  const w = await writeCheckpoint(path.join(d, 'out.safetensors'), tensors, { shardBytes: 64 });
  assert.equal(w.path, path.join(d, 'out.safetensors.index.json'));
  assert.deepEqual(listDir(d), ['out-00001-of-00003.safetensors', 'out-00002-of-00003.safetensors', 'out-00003-of-00003.safetensors', 'out.safetensors.index.json']);
  const ck = await openCheckpoint(w.path);
  assert.deepEqual(ck.metadata, undefined);
  assert.deepEqual([...(await ck.readFloat32('c')).data], [5]);
  assertAllClose((await ck.readFloat32('big')).data, tensors[1]!.data as Float32Array, { rtol: 0, atol: 0 });
  await ck.close();
  // directory form
  const sub = path.join(d, 'sub');
  const w2 = await writeCheckpoint(sub, tensors, { shardBytes: 1 << 20 });
  assert.equal(w2.path, path.join(sub, 'model.safetensors.index.json'));
  assert.deepEqual(listDir(sub), ['model-00001-of-00001.safetensors', 'model.safetensors.index.json']);
  await assertBasinError(() => writeCheckpoint(sub, tensors, { shardBytes: 0 }), 'invalid_argument');
  await assertBasinError(() => writeCheckpoint(sub, [...tensors, tensors[0]!], { shardBytes: 8 }), 'duplicate_tensor');
});

/** A valid 2-shard set to break: weight_map {a: s1, b: s1, c: s2}. */
async function twoShards(): Promise<{ d: string; index: string; s1: string; s2: string; meta: any }> {
  const d = freshDir();
  const f = (name: string, v: number): TensorToWrite => ({ name, dtype: 'F32', shape: [1], data: new Float32Array([v]) });
  await writeSafetensors(path.join(d, 's1.safetensors'), [f('a', 1), f('b', 2)]);
  await writeSafetensors(path.join(d, 's2.safetensors'), [f('c', 3)]);
  const meta = { metadata: { total_size: 12 }, weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } };
  const index = path.join(d, 'model.safetensors.index.json');
  writeFileSync(index, JSON.stringify(meta));
  return { d, index, s1: path.join(d, 's1.safetensors'), s2: path.join(d, 's2.safetensors'), meta };
}

async function expectIndexError(index: string, tensor?: string, code: 'index_invalid' | 'unsafe_path' = 'index_invalid'): Promise<BasinError> {
  const e = await assertBasinError(() => openCheckpoint(index), code);
  assert.equal(e.details.file, index);
  assert.ok(e.message.includes(`'${index}'`), e.message);
  if (tensor !== undefined) {
    assert.equal(e.details.tensor, tensor);
    assert.ok(e.message.includes(`'${tensor}'`), e.message);
  }
  return e;
}

test('sharded metadata: shard __metadata__ merged, overlaid by the index metadata less total_size', async () => {
  const { index, s1, meta } = await twoShards();
  await writeSafetensors(s1, [
    { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([1]) },
    { name: 'b', dtype: 'F32', shape: [1], data: new Float32Array([2]) },
  ], { format: 'pt', origin: 'shard' });
  meta.metadata = { total_size: 12, origin: 'index', n: 3 };
  writeFileSync(index, JSON.stringify(meta));
  const ck = await openCheckpoint(index);
  assert.deepEqual(ck.metadata, { format: 'pt', origin: 'index', n: '3' });
  await ck.close();
});

test('index baseline opens', async () => {
  const { index } = await twoShards();
  const ck = await openCheckpoint(index);
  assert.deepEqual(ck.names(), ['a', 'b', 'c']);
  assert.equal(ck.metadata, undefined, 'total_size alone is not model metadata');
  await ck.close();
});

test('index_invalid: missing shard file', async () => {
  const { index, s2 } = await twoShards();
  rmSync(s2);
  const e = await expectIndexError(index, 'c');
  assert.ok(e.message.includes('s2.safetensors'));
});

test('index_invalid: tensor in weight_map but absent from its shard', async () => {
  const { index, meta } = await twoShards();
  meta.weight_map.ghost = 's2.safetensors';
  writeFileSync(index, JSON.stringify(meta));
  await expectIndexError(index, 'ghost');
});

test('index_invalid: tensor in a shard but not in weight_map', async () => {
  const { index, meta } = await twoShards();
  delete meta.weight_map.b;
  writeFileSync(index, JSON.stringify(meta));
  await expectIndexError(index, 'b');
});

test('index_invalid: the same name in two shards', async () => {
  const { index, s2 } = await twoShards();
  await writeSafetensors(s2, [
    { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array([9]) },
    { name: 'c', dtype: 'F32', shape: [1], data: new Float32Array([3]) },
  ]);
  const e = await expectIndexError(index, 'a');
  assert.ok(e.message.includes('s1.safetensors') && e.message.includes('s2.safetensors'), e.message);
});

test('index_invalid: a name listed twice in weight_map, bad JSON, bad structure, shard outside the directory', async () => {
  const { index } = await twoShards();
  writeFileSync(index, '{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors","a":"s2.safetensors"}}');
  await expectIndexError(index, 'a');
  writeFileSync(index, '{"weight_map":');
  await expectIndexError(index);
  writeFileSync(index, '{"metadata":{}}');
  await expectIndexError(index);
  writeFileSync(index, '{"weight_map":{"a":7}}');
  await expectIndexError(index, 'a');
  writeFileSync(index, '{"weight_map":{"a":"../s1.safetensors"}}');
  await expectIndexError(index, 'a', 'unsafe_path');
  writeFileSync(index, '{"weight_map":{"a":"/etc/passwd"}}');
  await expectIndexError(index, 'a', 'unsafe_path');
});

test('a broken shard reports its own error naming the shard', async () => {
  const { index, s1 } = await twoShards();
  writeFileSync(s1, Buffer.alloc(4));
  const e = await assertBasinError(() => openCheckpoint(index), 'file_truncated');
  assert.equal(e.details.file, s1);
});

// --- atomic output ---------------------------------------------------------------------------------------------

test('writeFileAtomic: a source that throws midway leaves neither the output nor a temporary file', async () => {
  const d = freshDir();
  const out = path.join(d, 'out.bin');
  const boom = new Error('source failed');
  await assert.rejects(
    writeFileAtomic(out, async (write) => {
      await write(new Uint8Array(1000).fill(1));
      throw boom;
    }),
    (e) => e === boom,
  );
  assert.deepEqual(listDir(d), []);
  // an existing output is left untouched
  writeFileSync(out, 'old');
  await assert.rejects(
    writeFileAtomic(out, async (write) => {
      await write(new Uint8Array([1, 2, 3]));
      throw boom;
    }),
  );
  assert.deepEqual(listDir(d), ['out.bin']);
  assert.equal(readFileSync(out, 'utf8'), 'old');
  await writeFileAtomic(out, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  assert.deepEqual([...readFileSync(out)], [1, 2, 3]);
  assert.deepEqual(listDir(d), ['out.bin']);
});

test('writeSafetensors: a conversion failing after the header and first tensor were streamed leaves nothing', async () => {
  const d = freshDir();
  const out = path.join(d, 'x.safetensors');
  // 'a' (F32, written first) streams fine; 'b' (I8) holds 300, found only while converting
  const tensors: TensorToWrite[] = [
    { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'b', dtype: 'I8', shape: [2], data: new Float32Array([1, 300]) },
  ];
  await assertBasinError(() => writeSafetensors(out, tensors), 'invalid_argument');
  assert.deepEqual(listDir(d), []);
});

test('writeCheckpoint sharded: a failure in the last shard leaves no shard, index or temporary file', async () => {
  const d = freshDir();
  // keep an older checkpoint there: it must survive unchanged
  copyFileSync(path.join(FIXTURES, 'mlp_small_seed0.safetensors'), path.join(d, 'keep.safetensors'));
  const tensors = sample();
  tensors[5] = { name: 'step', dtype: 'U8', shape: [], data: new Float32Array([-3]) };
  await assertBasinError(() => writeCheckpoint(path.join(d, 'model.safetensors.index.json'), tensors, { shardBytes: 800 }), 'invalid_argument');
  assert.deepEqual(listDir(d), ['keep.safetensors']);
  assert.ok(!existsSync(path.join(d, 'model-00001-of-00003.safetensors')));
});
