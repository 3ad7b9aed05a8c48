/**
 * onnxruntime com.microsoft contrib ops in the tracer (issue 12, item 5), unused opset imports (item 8) and group
 * descriptions (item 9), beyond the zoo's standard checks (test/zoo.test.ts): attributes that make a node
 * untraceable freeze it naming the node and why, per-head constants stay sound, the field pair aligns through the
 * CLI, and Silero VAD loads and inspects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import type { Feed } from '../src/onnx/session.js';
import { checkInvariance, inferPermutationSpec, probeModel, sampleFeeds, type InferResult } from '../src/graph/index.js';
import { ruleFor } from '../src/graph/rules/index.js';
import { runBasin } from './helpers.js';
import { FIELD, sileroFeeds, weight } from './zoo/models.js';

const MS = { domain: 'com.microsoft' };

async function infer(model: OnnxModel, feeds?: Record<string, Feed>): Promise<InferResult> {
  return inferPermutationSpec(model, await probeModel(model, feeds));
}

async function invariant(model: OnnxModel, r: InferResult): Promise<void> {
  for (const seed of [1, 2, 3]) {
    const rep = await checkInvariance(model, r.spec, sampleFeeds(model, 3, seed) as unknown as Record<string, Feed>, { seed });
    assert.ok(rep.equivalent && rep.maxRelError <= 1e-5, `seed ${seed}: ${rep.worst.kind} ${rep.worst.name} moved by ${rep.worst.maxAbs}`);
  }
}

test('com.microsoft ops have rules; the same op names in other domains do not', () => {
  for (const op of ['Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'BiasAdd', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', 'FusedMatMul', 'Attention', 'MultiHeadAttention']) {
    assert.ok(ruleFor(op, 'com.microsoft'), op);
    assert.equal(ruleFor(op, 'com.example'), undefined, op);
  }
  assert.equal(ruleFor('GroupQueryAttention', 'com.microsoft'), undefined);
  assert.ok(ruleFor('SimplifiedLayerNormalization', ''));
});

test('FusedMatMul with transBatchA freezes its axes, naming the node and the attribute', async () => {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', [2, 3, 4]);
  g.initializer('w1', weight('tb.w1', [4, 8])).initializer('w2', weight('tb.w2', [3, 8, 5]));
  const model = g
    .node('MatMul', ['x', 'w1'], ['h'], {}, { name: 'fc1' })
    .node('Relu', ['h'], ['a'])
    .node('FusedMatMul', ['a', 'w2'], ['y'], { transBatchA: 1 }, { ...MS, name: 'fused' })
    .output('y')
    .build();
  const r = await infer(model);
  assert.equal(r.spec.axes_to_perm['w1']?.[1], null);
  const f = r.spec.frozen?.find((x) => x.tensor === 'w1' && x.axis === 1);
  assert.equal(f?.node, 'fused');
  assert.match(f?.reason ?? '', /transBatchA/);
  assert.equal(r.groups.length, 0);
});

test('Attention with a per-head attention_bias constant stays sound (the heads either permute it or freeze)', async () => {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', ['batch', 5, 4]);
  g.initializer('w_in', weight('ab.w_in', [4, 8]))
    .initializer('qkv_w', weight('ab.qkv_w', [8, 24]))
    .initializer('qkv_b', weight('ab.qkv_b', [24]))
    .initializer('rel', weight('ab.rel', [1, 2, 5, 5]))
    .initializer('w_o', weight('ab.w_o', [8, 3]));
  const model = g
    .node('MatMul', ['x', 'w_in'], ['h'], {}, { name: 'embed' })
    .node('Attention', ['h', 'qkv_w', 'qkv_b', '', '', 'rel'], ['att'], { num_heads: 2 }, { ...MS, name: 'attention' })
    .node('MatMul', ['att', 'w_o'], ['y'], {}, { name: 'out_proj' })
    .output('y', ['batch', 5, 3])
    .build();
  const r = await infer(model);
  assert.ok(r.spec.axes_to_perm['w_in']?.[1], 'the attention input features still permute');
  assert.ok(r.spec.axes_to_perm['w_o']?.[0], 'the value/output features still permute');
  await invariant(model, r);
});

test('MultiHeadAttention with a key-value cache freezes, saying so', async () => {
  const g = new GraphBuilder(17).importDomain('com.microsoft', 1).input('x', [1, 5, 8]).input('pk', [1, 2, 3, 4]).input('pv', [1, 2, 3, 4]);
  for (const n of ['q', 'k', 'v']) g.initializer(`w_${n}`, weight(`kv.w_${n}`, [8, 8]));
  g.initializer('w_o', weight('kv.w_o', [8, 8]));
  const model = g
    .node('MatMul', ['x', 'w_q'], ['q'], {}, { name: 'q_proj' })
    .node('MatMul', ['x', 'w_k'], ['k'], {}, { name: 'k_proj' })
    .node('MatMul', ['x', 'w_v'], ['v'], {}, { name: 'v_proj' })
    .node('MultiHeadAttention', ['q', 'k', 'v', '', '', '', 'pk', 'pv'], ['att', 'pko', 'pvo'], { num_heads: 2 }, { ...MS, name: 'mha' })
    .node('MatMul', ['att', 'w_o'], ['y'], {}, { name: 'out_proj' })
    .output('y')
    .output('pko')
    .output('pvo')
    .build();
  const r = await infer(model);
  const f = r.spec.frozen?.find((x) => x.tensor === 'w_q' && x.axis === 1);
  assert.equal(f?.node, 'mha');
  assert.match(f?.reason ?? '', /key-value cache/);
});

test('field-ort-contrib-gelu: align permutes the com.microsoft Gelu MLP (no "nothing to align") and verifies', { skip: !existsSync(path.join(FIELD, 'field-ort-contrib-gelu-seed1.onnx')) }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-contrib-'));
  try {
    const out = path.join(dir, 'b_aligned.onnx');
    const report = path.join(dir, 'report.json');
    const r = await runBasin(['align', path.join(FIELD, 'field-ort-contrib-gelu-seed0.onnx'), path.join(FIELD, 'field-ort-contrib-gelu-seed1.onnx'), '-o', out, '--report', report, '--strict']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /nothing to align/);
    const perms = JSON.parse((await import('node:fs')).readFileSync(report, 'utf8')).perms as Record<string, number[]>;
    assert.deepEqual(Object.values(perms).map((p) => p.length), [128, 128]);
    assert.ok(Object.values(perms).some((p) => p.some((v, i) => v !== i)), 'two independently trained MLPs need a non-identity permutation');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('zoo-silero-vad loads despite its unused ai.onnx.training import; its If branches are traced (conv groups of both rates)', { skip: !existsSync(path.join(FIELD, 'zoo-silero-vad.onnx')) }, async () => {
  const model = await loadOnnx(path.join(FIELD, 'zoo-silero-vad.onnx'));
  const r = await infer(model, sileroFeeds(1));
  for (const prefix of ['model.', 'model_8k.']) assert.ok(r.spec.axes_to_perm[`${prefix}first_layer.0.pw_conv.0.weight`]?.[0], prefix);
  assert.match(r.spec.frozen?.find((f) => f.tensor === 'model.decoder.decoder.1.weight' && f.axis === 1)?.reason ?? '', /reaches graph input 'h'/);
});
