/**
 * Control flow in the tracer (issue 12, item 7), beyond the zoo's standard checks (test/zoo.test.ts: If with an
 * MLP in each branch, Loop with a carried state, Scan, Silero VAD): what cannot be proven stays frozen, naming the
 * cause: a branch that disagrees (one that reverses the units), a branch the probe cannot run, a carried value that
 * changes shape, subgraphs that reuse a name (not traced); and no activation point lies inside a subgraph.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { inferPermutationSpec, probeModel, type InferResult } from '../src/graph/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randn, rng } from './helpers.js';
import { ifMlp } from './zoo/models-cf.js';

function weight(seed: number, shape: number[]): Tensor {
  const r = rng(seed);
  return new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r) * 0.5));
}

async function infer(model: OnnxModel): Promise<InferResult> {
  return inferPermutationSpec(model, await probeModel(model));
}

/** x [batch, 4] -> MatMul to 8 = a -> If(cond: sum(x) > 0, then, else) = z [batch, 8] -> MatMul to 3. */
function ifModel(then: GraphBuilder, other: GraphBuilder): OnnxModel {
  return new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w0', weight(1, [4, 8]))
    .initializer('w2', weight(2, [8, 3]))
    .initializer('zero', new Tensor([], Float32Array.from([0])))
    .node('MatMul', ['x', 'w0'], ['a'], {}, { name: 'fc0' })
    .node('ReduceSum', ['x'], ['s'], { keepdims: 0 })
    .node('Greater', ['s', 'zero'], ['cond'])
    .node('If', ['cond'], ['z'], { then_branch: attr.graph(then), else_branch: attr.graph(other) }, { name: 'branch' })
    .node('MatMul', ['z', 'w2'], ['y'], {}, { name: 'head' })
    .output('y', ['batch', 3])
    .build();
}

const frozenAt = (r: InferResult, tensor: string, axis: number) => r.spec.frozen?.find((f) => f.tensor === tensor && f.axis === axis);

test('a group through an If: a constant stored in one branch is a weight permuted with it; a branch that disagrees freezes it', async () => {
  const then = new GraphBuilder(17).node('Relu', ['a'], ['t']).output('t');
  const other = new GraphBuilder(17).initializer('shift', weight(3, [8])).node('Add', ['a', 'shift'], ['e']).output('e');
  const r = await infer(ifModel(then, other));
  assert.equal(r.groups.length, 1);
  assert.equal(r.spec.axes_to_perm['shift']?.[0], r.spec.axes_to_perm['w0']?.[1], 'the branch constant moves with the units it shifts');
  assert.equal(r.spec.axes_to_perm['w2']?.[0], r.spec.axes_to_perm['w0']?.[1]);
  // a branch that reverses the units' order (Slice with step -1) cannot follow one permutation of them
  const reversed = new GraphBuilder(17)
    .initializer('st', { dims: [1], int64: [-1] })
    .initializer('en', { dims: [1], int64: [-9] })
    .initializer('ax', { dims: [1], int64: [1] })
    .initializer('sp', { dims: [1], int64: [-1] })
    .node('Slice', ['a', 'st', 'en', 'ax', 'sp'], ['e'])
    .output('e');
  const rr = await infer(ifModel(then, reversed));
  assert.equal(rr.groups.length, 0);
  for (const [t, axis] of [['w0', 1], ['w2', 0]] as const) assert.ok(frozenAt(rr, t, axis), `${t}:${axis} frozen`);
  // the same If with both branches elementwise: one free group through it
  const free = await infer(ifModel(then, new GraphBuilder(17).node('Tanh', ['a'], ['e']).output('e')));
  assert.equal(free.groups.length, 1);
  assert.equal(free.spec.axes_to_perm['w0']?.[1], free.spec.axes_to_perm['w2']?.[0]);
});

test('a branch the probe cannot run freezes what it would tie, saying so', async () => {
  // never taken on the probe's inputs (sum(x) > 0), and it fails when run: 3·8 values do not fill [-1, 5]
  const then = new GraphBuilder(17).node('Relu', ['a'], ['t']).output('t');
  const other = new GraphBuilder(17)
    .initializer('s5', { dims: [2], int64: [-1, 5] })
    .initializer('s8', { dims: [2], int64: [-1, 8] })
    .node('Reshape', ['a', 's5'], ['e0'])
    .node('Reshape', ['e0', 's8'], ['e'])
    .output('e');
  const r = await infer(ifModel(then, other));
  // named at the first value the probe could not see: the branch's Reshape, or the If's tie to the branch output
  assert.match(frozenAt(r, 'w0', 1)?.reason ?? '', /shape of '(e|e0)' (is )?unknown/);
  assert.equal(frozenAt(r, 'w2', 0)?.reason, frozenAt(r, 'w0', 1)?.reason);
  assert.equal(r.groups.length, 0);
});

test('a Loop-carried value that changes shape across iterations is not a fixed point: frozen', async () => {
  const body = new GraphBuilder(17)
    .input('i', [], 'I64')
    .input('c', [], 'BOOL')
    .input('h_in', ['batch', null])
    .node('Concat', ['h_in', 'h_in'], ['h_out'], { axis: 1 })
    .node('Identity', ['c'], ['c_out'])
    .output('c_out', [], 'BOOL')
    .output('h_out', ['batch', null]);
  const model = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w0', weight(4, [4, 8]))
    .initializer('trips', { dims: [], int64: [1] })
    .initializer('ax', { dims: [1], int64: [1] })
    .node('MatMul', ['x', 'w0'], ['h0'], {}, { name: 'fc0' })
    .node('Loop', ['trips', '', 'h0'], ['h'], { body: attr.graph(body) }, { name: 'loop' })
    .node('ReduceSum', ['h', 'ax'], ['y'], { keepdims: 0 })
    .output('y', ['batch'])
    .build();
  const r = await infer(model);
  assert.match(frozenAt(r, 'w0', 1)?.reason ?? '', /value carried by Loop.*'h_out' \[\d+, 16\] does not match 'h_in' \[\d+, 8\]/);
});

test('subgraphs that reuse a name are not traced: what they read freezes', async () => {
  const then = new GraphBuilder(17).node('Relu', ['a'], ['e']).output('e');
  const other = new GraphBuilder(17).node('Tanh', ['a'], ['e']).output('e'); // 'e' in both branches
  const r = await infer(ifModel(then, other));
  assert.equal(r.groups.length, 0);
  for (const [t, axis] of [['w0', 1], ['w2', 0]] as const) assert.match(frozenAt(r, t, axis)?.reason ?? '', /read inside a subgraph of 'If'|op 'If' has a subgraph/);
});

test('activation points of a group through an If lie outside the branches (onnxruntime cannot read values inside)', async () => {
  const r = await infer(ifMlp());
  assert.equal(r.groups.length, 2);
  const inside = new Set(['t0', 't1', 'e0', 'e1']);
  for (const g of r.groups) {
    assert.ok(g.points.length > 0, g.name);
    for (const p of g.points) assert.ok(!inside.has(p.value), `${g.name} has a point at ${p.value}`);
  }
});
