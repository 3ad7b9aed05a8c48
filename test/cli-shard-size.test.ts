/**
 * `--shard-size SIZE` on commands that write safetensors: the output really is sharded (an index plus shards of at
 * most SIZE bytes of tensor data, a larger tensor alone in its shard), and it loads back equal to the one-file
 * output of the same command. Bad sizes and non-safetensors outputs are refused before any work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { parseSize } from '../src/cli/common.js';
import { assertBasinError, FIXTURES, runBasin } from './helpers.js';

const A = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
const B = path.join(FIXTURES, 'mlp_small_seed1.safetensors');

/**
 * mlp_small's tensors in file order, in bytes: layers.0.weight 401408, layers.0.bias 512, layers.1.weight 65536,
 * layers.1.bias 512, head.weight 5120, head.bias 40. With 64 KiB shards: layers.0.weight alone (larger than a
 * shard), layers.0.bias alone (adding layers.1.weight would pass 65536), layers.1.weight alone (exactly 65536), then
 * the last three (5672 bytes).
 */
const EXPECTED_SHARDS = [['layers.0.weight'], ['layers.0.bias'], ['layers.1.weight'], ['head.bias', 'head.weight', 'layers.1.bias']]; // names sorted within a shard

async function assertSameTensors(shardedIndex: string, single: string): Promise<void> {
  const s = await openCheckpoint(shardedIndex);
  const one = await openCheckpoint(single);
  try {
    assert.equal(s.sharded, true);
    assert.deepEqual([...s.names()].sort(), [...one.names()].sort());
    for (const name of one.names()) {
      assert.deepEqual(s.info(name).shape, one.info(name).shape, name);
      assert.ok(Buffer.from(await s.readRaw(name)).equals(Buffer.from(await one.readRaw(name))), `${name} differs between the sharded and the one-file output`);
    }
  } finally {
    await s.close();
    await one.close();
  }
}

function shardsOf(indexPath: string): string[][] {
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
  const byFile = new Map<string, string[]>();
  for (const [tensor, file] of Object.entries(index.weight_map)) byFile.set(file, [...(byFile.get(file) ?? []), tensor]);
  return [...byFile.keys()].sort().map((f) => byFile.get(f)!.sort());
}

test('parseSize: decimal and binary units, plain bytes; anything else is invalid_argument naming the option', async () => {
  const p = parseSize('--shard-size');
  assert.equal(p('5GB'), 5_000_000_000);
  assert.equal(p('500MB'), 500_000_000);
  assert.equal(p('1GiB'), 2 ** 30);
  assert.equal(p('64kib'), 65536);
  assert.equal(p('1.5KB'), 1500);
  assert.equal(p('4096'), 4096);
  for (const bad of ['0', '0.5', '5XB', '-1GB', 'GB', '', '1e9']) {
    const e = await assertBasinError(() => p(bad), 'invalid_argument');
    assert.match(e.message, /--shard-size/);
  }
});

test('cli: align --shard-size 64KiB writes 4 shards and an index that load back equal to the one-file output', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-shards-'));
  const one = await runBasin(['align', A, B, '--arch', 'mlp', '-o', path.join(dir, 'one.safetensors'), '-q']);
  assert.equal(one.code, 0, one.stderr);
  const r = await runBasin(['align', A, B, '--arch', 'mlp', '-o', path.join(dir, 'al.safetensors'), '--shard-size', '64KiB', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const index = path.join(dir, 'al.safetensors.index.json');
  assert.ok(existsSync(index));
  assert.ok(!existsSync(path.join(dir, 'al.safetensors')), 'a sharded output writes no single file');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('al-')).sort(), ['al-00001-of-00004.safetensors', 'al-00002-of-00004.safetensors', 'al-00003-of-00004.safetensors', 'al-00004-of-00004.safetensors']);
  assert.deepEqual(shardsOf(index), EXPECTED_SHARDS);
  await assertSameTensors(index, path.join(dir, 'one.safetensors'));
});

test('cli: merge --shard-size into a folder writes model.safetensors.index.json with shards equal to the one-file merge', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-shards-'));
  const one = await runBasin(['merge', A, B, '--arch', 'mlp', '-o', path.join(dir, 'one.safetensors'), '-q']);
  assert.equal(one.code, 0, one.stderr);
  const r = await runBasin(['merge', A, B, '--arch', 'mlp', '-o', path.join(dir, 'm.index.json'), '--shard-size', '65536', '-q']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(shardsOf(path.join(dir, 'm.index.json')), EXPECTED_SHARDS);
  await assertSameTensors(path.join(dir, 'm.index.json'), path.join(dir, 'one.safetensors'));
});

test('cli: --shard-size with an ONNX output, or a size that is not one, is refused before any work, naming the option', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-shards-'));
  const onnxA = path.join(FIXTURES, 'mlp_small_seed0.onnx');
  const onnxB = path.join(FIXTURES, 'mlp_small_seed1.onnx');
  for (const args of [
    ['align', onnxA, onnxB, '-o', path.join(dir, 'x.onnx'), '--shard-size', '1MB'],
    ['align', A, B, '--arch', 'mlp', '-o', path.join(dir, 'x.safetensors'), '--shard-size', '12 parsecs'],
    ['merge', A, B, '--arch', 'mlp', '-o', path.join(dir, 'x.safetensors'), '--shard-size', '0'],
  ]) {
    const r = await runBasin(args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^basin: error \[invalid_argument\]: .*--shard-size/m);
    assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
  }
  assert.deepEqual(readdirSync(dir), [], 'nothing written');
});
