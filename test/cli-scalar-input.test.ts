/**
 * A rank-0 model input (Silero VAD's sample rate 'sr', int64 []) is fed from a rank-0 tensor with
 * `--input sr=FILE`: one value for every sample of every batch (issue 12 F2). A tensor of another rank is refused
 * naming the input and the shape, and a named samples dim ('batch') sizes the inputs drawn at random (h, c: [2, batch, 64]).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeSafetensors } from '../src/io/safetensors.js';
import { rng, runBasin } from './helpers.js';

const SILERO = new URL('../../../shared/field/zoo-silero-vad.onnx', import.meta.url).pathname;
const tmp = () => mkdtempSync(path.join(tmpdir(), 'basin-scalar-input-'));

async function feeds(dir: string): Promise<{ sr: string; sr1: string; audio: string }> {
  const sr = path.join(dir, 'sr.safetensors');
  const sr1 = path.join(dir, 'sr1.safetensors');
  const audio = path.join(dir, 'audio.safetensors');
  await writeSafetensors(sr, [{ name: 'sr', dtype: 'I64', shape: [], data: new Uint8Array(BigInt64Array.from([16000n]).buffer) }]);
  await writeSafetensors(sr1, [{ name: 'sr', dtype: 'I64', shape: [1], data: new Uint8Array(BigInt64Array.from([16000n]).buffer) }]);
  const r = rng(5);
  await writeSafetensors(audio, [{ name: 'input', dtype: 'F32', shape: [2, 512], data: new Float32Array(2 * 512).map(() => (r() - 0.5) * 0.2) }]);
  return { sr, sr1, audio };
}

test('Silero VAD: inspect, permute and verify with a scalar sr fed by --input', { skip: !existsSync(SILERO) && 'field model absent' }, async () => {
  const dir = tmp();
  const f = await feeds(dir);
  const inputs = ['--input', `sr=${f.sr}`, '--input', `input=${f.audio}`];
  const ins = await runBasin(['inspect', SILERO, ...inputs]);
  assert.equal(ins.code, 0, ins.stderr);
  assert.match(ins.stdout, /input 'sr': I64 \[\]/);
  assert.match(ins.stdout, /[1-9]\d* permutation group\(s\)/, 'the probe ran and groups were found');
  const out = path.join(dir, 'P.onnx');
  const perm = await runBasin(['permute', SILERO, '-o', out, ...inputs, '--seed', '1']);
  assert.equal(perm.code, 0, perm.stderr);
  assert.match(perm.stderr, /permuted [1-9]\d* group\(s\)/);
  const ver = await runBasin(['verify', SILERO, out, ...inputs]);
  assert.equal(ver.code, 0, ver.stderr);
  assert.match(ver.stdout + ver.stderr, /equivalent/);
});

test('a rank-0 model input fed a tensor of shape [1] is refused naming the input and the shape', { skip: !existsSync(SILERO) && 'field model absent' }, async () => {
  const dir = tmp();
  const f = await feeds(dir);
  const r = await runBasin(['inspect', SILERO, '--input', `sr=${f.sr1}`, '--input', `input=${f.audio}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[data_shape_mismatch\]/);
  assert.match(r.stderr, /'sr' is a scalar \(rank 0\)/);
  assert.match(r.stderr, /shape \[1\]/);
});
