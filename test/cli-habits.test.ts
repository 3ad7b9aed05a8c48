/**
 * CLI habits: `--report -` writes the report to stdout (tables move to stderr), `-q/--quiet` anywhere on the line
 * silences progress, `--verbose` prints an internal error's stack, and a model to stdout is refused clearly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FIXTURES, runBasin } from './helpers.js';
import { takeTerminalOptions } from '../src/cli/terminal-options.js';

const A = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const B = path.join(FIXTURES, 'mlp_small_seed1.onnx');

test('--report - puts the JSON report alone on stdout; the table goes to stderr', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-habits-'));
  const r = await runBasin(['interpolate', A, B, '--data', path.join(FIXTURES, 'fmnist_test1k.safetensors'), '--steps', '3', '--report', '-']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Record<string, unknown>; // stdout is exactly one JSON document
  assert.ok(typeof report === 'object' && report !== null);
  assert.match(r.stderr, /barrier/i, 'the human-readable table is still printed, on stderr');
  const both = await runBasin(['merge', A, B, '-o', path.join(d, 'm.onnx'), '--report', '-']);
  assert.equal(both.code, 0, both.stderr);
  assert.ok(Array.isArray((JSON.parse(both.stdout) as { perms: unknown[] }).perms));
  assert.ok(existsSync(path.join(d, 'm.onnx')));
});

test('-o - and --report - together are refused (one stdout); --quiet silences progress but not errors', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-habits-'));
  const r = await runBasin(['merge', A, B, '-o', '-', '--report', '-']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^basin: error \[invalid_argument\]: -o - and --report - both ask for stdout/);
  const loud = await runBasin(['merge', A, B, '-o', path.join(d, 'loud.onnx')]);
  assert.equal(loud.code, 0);
  assert.ok(loud.stderr.length > 0, 'a normal run prints progress');
  for (const args of [['-q', 'merge', A, B, '-o', path.join(d, 'q1.onnx')], ['merge', A, B, '--quiet', '-o', path.join(d, 'q2.onnx')]]) {
    const q = await runBasin(args);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stderr, '', args.join(' '));
  }
  const bad = await runBasin(['merge', A, path.join(d, 'missing.onnx'), '-o', path.join(d, 'x.onnx'), '--quiet']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^basin: error \[file_not_found\].*missing\.onnx/);
});

test('takeTerminalOptions takes -q/--quiet/--verbose anywhere before --, and sees who owns stdout', () => {
  assert.deepEqual(takeTerminalOptions(['merge', '-q', 'a', '--report', '-', '--', '--quiet']), ['merge', 'a', '--report', '-', '--', '--quiet']);
});
