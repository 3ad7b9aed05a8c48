/**
 * Loud no-ops: an alignment that can permute nothing (every hidden axis frozen, here by onnxruntime's
 * `com.microsoft` FusedGemm, an op without a rule) warns on stderr naming the op and node, says so in the report, and fails with --strict;
 * one that leaves part of the weights unpermuted says how much and why.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { alignmentCoverage, coverageWarnings } from '../src/align/coverage.js';
import { FIXTURES, assertBasinError, randn, rng, runBasin } from './helpers.js';
import { fusedGemmMlp } from './zoo/models.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';

const FIELD = path.join(FIXTURES, '../field');
const unruledDir = mkdtempSync(path.join(tmpdir(), 'basin-fused-gemm-'));
const unruled = (seed: number) => {
  const file = path.join(unruledDir, `fused-gemm-seed${seed}.onnx`);
  if (!existsSync(file)) writeFileSync(file, fusedGemmMlp(seed).encode());
  return file;
};

test('align of a com.microsoft FusedGemm pair warns that nothing can be permuted, naming op and node; --strict refuses and writes nothing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-noop-'));
  const out = path.join(dir, 'b.onnx');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['align', unruled(0), unruled(1), '-o', out, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING: nothing to align: .*'com\.microsoft\.FusedGemm'.*node 'fused_fc0'/);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.warnings.length, 1);
  assert.match(rep.warnings[0], /nothing to align/);
  assert.equal(rep.coverage.permuted_params, 0);
  assert.equal(rep.coverage.params, 16 * 6 + 16 + 3 * 16);

  const strictOut = path.join(dir, 'strict.onnx');
  const s = await runBasin(['align', unruled(0), unruled(1), '-o', strictOut, '--strict']);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /\[nothing_to_align\].*'com\.microsoft\.FusedGemm'/);
  assert.ok(!existsSync(strictOut));
});

test('merge of a com.microsoft FusedGemm pair warns that it is a plain average; --strict refuses before writing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-noop-merge-'));
  const r = await runBasin(['merge', unruled(0), unruled(1), '-o', path.join(dir, 'm.onnx')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING: nothing to align/);
  const s = await runBasin(['merge', unruled(0), unruled(1), '-o', path.join(dir, 'm2.onnx'), '--strict']);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /\[nothing_to_align\]/);
  assert.ok(!existsSync(path.join(dir, 'm2.onnx')));
});

test('align says how much stays unpermuted when a grouped ConvTranspose freezes part of a net, and stays quiet on a plain MLP and on a ResNeXt', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-partial-'));
  const r0 = rng(5);
  const w = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r0)));
  const up = path.join(dir, 'up.onnx');
  const net = new GraphBuilder(17)
    .input('x', ['batch', 3, 4, 4])
    .initializer('c1', w([8, 3, 1, 1]))
    .initializer('ct', w([8, 2, 2, 2]))
    .initializer('c2', w([4, 16, 1, 1]))
    .initializer('c3', w([5, 4, 1, 1]))
    .node('Conv', ['x', 'c1'], ['h'])
    .node('Relu', ['h'], ['a'])
    .node('ConvTranspose', ['a', 'ct'], ['u'], { group: 8, strides: [2, 2] }, { name: 'up' }) // one input channel per group: frozen
    .node('Relu', ['u'], ['b'])
    .node('Conv', ['b', 'c2'], ['v'])
    .node('Relu', ['v'], ['c'])
    .node('Conv', ['c', 'c3'], ['y'])
    .output('y', ['batch', 5, 8, 8])
    .build();
  writeFileSync(up, net.toBytes());
  const r = await runBasin(['align', up, up, '-o', path.join(dir, 'up_al.onnx')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING: part of .* stays unaligned: \d+ hidden weight axes frozen.*\d+\.\d% of the parameters.*grouped ConvTranspose/);
  const rx = path.join(FIELD, 'zoo-resnext-micro.onnx');
  const x = await runBasin(['align', rx, rx, '-o', path.join(dir, 'rx.onnx')]);
  assert.equal(x.code, 0, x.stderr);
  assert.doesNotMatch(x.stderr, /WARNING/);
  const m = await runBasin(['align', path.join(FIXTURES, 'mlp_small_seed0.onnx'), path.join(FIXTURES, 'mlp_small_seed1.onnx'), '-o', path.join(dir, 'm.onnx')]);
  assert.equal(m.code, 0, m.stderr);
  assert.doesNotMatch(m.stderr, /WARNING/);
});

test('align of state_dicts with a spec that names no permutation warns; --strict refuses before any matching', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-noop-st-'));
  const spec = path.join(dir, 'spec.json');
  writeFileSync(spec, JSON.stringify({ axes_to_perm: { 'layers.0.weight': [null, null], 'layers.1.weight': [null, null], 'head.weight': [null, null] } }));
  const a = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const b = path.join(FIXTURES, 'mlp_small_seed1.safetensors');
  const r = await runBasin(['align', a, b, '--spec', spec, '-o', path.join(dir, 'b.safetensors')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING: nothing to align: .*the spec names no permutation/);
  const s = await runBasin(['align', a, b, '--spec', spec, '-o', path.join(dir, 'b2.safetensors'), '--strict']);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /\[nothing_to_align\]/);
  assert.doesNotMatch(s.stderr, /sweep/, 'refused before matching');
});

test('alignmentCoverage counts permuted tensors and parameters, and keeps only causes that freeze hidden units', async () => {
  const shapes = new Map<string, number[]>([
    ['w0', [8, 4]],
    ['b0', [8]],
    ['w1', [3, 8]],
    ['eps', [1]],
  ]);
  const c = alignmentCoverage(
    {
      axes_to_perm: { w0: ['P', null], b0: ['P'], w1: [null, 'P'] },
      frozen: [
        { tensor: 'w0', axis: 1, reason: "reaches graph input 'x'" },
        { tensor: 'w1', axis: 0, reason: "op 'com.microsoft.Foo' is not known to be permutation-equivariant", node: 'n1' },
      ],
    },
    shapes,
  );
  assert.deepEqual({ ...c, causes: undefined }, { groups: 1, tensors: 3, params: 32 + 8 + 24, permutedTensors: 3, permutedParams: 64, causes: undefined });
  assert.equal(c.causes.length, 1);
  assert.equal(c.causes[0]!.node, 'n1');
  const none = alignmentCoverage({ axes_to_perm: {}, frozen: [{ tensor: 'w0', axis: 0, reason: "op 'X' is not known", node: 'n\u001b[2J' }] }, shapes);
  assert.equal(none.permutedParams, 0);
  const e = await assertBasinError(() => coverageWarnings(none, { what: "'B'", strict: true }), 'nothing_to_align');
  assert.match(e.message, /node 'n\\x1b\[2J'/, 'names from the file are escaped');
  assert.equal(coverageWarnings(none, { what: "'B'" }).length, 1);
});
