/**
 * Random graphs from a palette of the patterns real models are made of (linear layers, activations, residual
 * branches, LayerNorm whole and decomposed, Concat/Split/Slice of features, gated units, head reshapes, attention,
 * Softmax over transposed features). Whatever the tracer infers, permuting by it must leave every output
 * unchanged: the tracer may freeze too much, never too little.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import type { Feed } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { inferPermutationSpec, probeModel, sampleFeeds, checkInvariance } from '../src/graph/index.js';
import { randn, rng } from './helpers.js';

interface Act {
  name: string;
  width: number;
}

function randomGraph(seed: number): GraphBuilder {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const g = new GraphBuilder(17).input('x', ['batch', 3, 4]);
  let n = 0;
  const fresh = (p: string): string => `${p}${n++}`;
  const weight = (shape: number[]): string => {
    const name = fresh('w');
    g.initializer(name, new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r) * 0.6)));
    return name;
  };
  const ints = (values: number[]): string => {
    const name = fresh('i');
    g.initializer(name, { dims: [values.length], int64: values });
    return name;
  };
  const linear = (a: Act, m: number, bias = r() < 0.7): Act => {
    let y = fresh('h');
    g.node('MatMul', [a.name, weight([a.width, m])], [y]);
    if (bias) {
      const yb = fresh('h');
      g.node('Add', r() < 0.5 ? [y, weight([m])] : [weight([m]), y], [yb]);
      y = yb;
    }
    return { name: y, width: m };
  };
  const unary = (a: Act, op = pick(['Relu', 'Tanh', 'Sigmoid', 'Softplus', 'Erf'])): Act => {
    const y = fresh('u');
    g.node(op, [a.name], [y]);
    return { name: y, width: a.width };
  };
  const history: Act[] = [];
  let cur = linear({ name: 'x', width: 4 }, pick([4, 6, 8]));
  const steps = 4 + Math.floor(r() * 5);
  for (let s = 0; s < steps; s++) {
    history.push(cur);
    const kind = pick(['linear', 'act', 'residual', 'ln', 'lnDecomposed', 'concat', 'split', 'heads', 'transposeSoftmax', 'slice', 'gate', 'attention']);
    const w = cur.width;
    switch (kind) {
      case 'linear':
        cur = unary(linear(cur, pick([4, 6, 8])));
        break;
      case 'act':
        cur = unary(cur);
        break;
      case 'residual': {
        const prev = history.find((h) => h.width === w && h.name !== cur.name);
        const other = prev ?? linear(unary(linear(cur, pick([4, 8]))), w);
        const y = fresh('res');
        g.node('Add', [cur.name, other.name], [y]);
        cur = { name: y, width: w };
        break;
      }
      case 'ln': {
        const y = fresh('ln');
        g.node('LayerNormalization', [cur.name, weight([w]), weight([w])], [y], { axis: -1 });
        cur = { name: y, width: w };
        break;
      }
      case 'lnDecomposed': {
        const mu = fresh('mu');
        const c = fresh('c');
        const y = fresh('n');
        g.node('ReduceMean', [cur.name], [mu], { axes: [-1] }).node('Sub', [cur.name, mu], [c]).node('Mul', [c, weight([w])], [y]);
        cur = { name: y, width: w };
        break;
      }
      case 'concat': {
        const a = linear(cur, pick([2, 3, 4]));
        const b = unary(linear(cur, pick([2, 3, 4])));
        const y = fresh('cat');
        g.node('Concat', [a.name, b.name], [y], { axis: -1 });
        cur = { name: y, width: a.width + b.width };
        break;
      }
      case 'split': {
        if (w % 2) break;
        const a = fresh('sa');
        const b = fresh('sb');
        const sb = fresh('sg');
        const y = fresh('glu');
        g.node('Split', [cur.name, ints([w / 2, w / 2])], [a, b], { axis: -1 }).node('Sigmoid', [b], [sb]).node('Mul', [a, sb], [y]);
        cur = { name: y, width: w / 2 };
        break;
      }
      case 'heads': {
        if (w % 2) break;
        const a = fresh('r4');
        const b = fresh('r4a');
        const y = fresh('r3');
        g.node('Reshape', [cur.name, ints([0, 0, 2, w / 2])], [a]).node('Relu', [a], [b]).node('Reshape', [b, ints([0, 0, w])], [y]);
        cur = { name: y, width: w };
        break;
      }
      case 'transposeSoftmax': {
        const a = fresh('t');
        const b = fresh('sm');
        const y = fresh('t');
        g.node('Transpose', [cur.name], [a], { perm: [0, 2, 1] }).node('Softmax', [a], [b], { axis: 1 }).node('Transpose', [b], [y], { perm: [0, 2, 1] });
        cur = { name: y, width: w };
        break;
      }
      case 'slice': {
        if (w < 4) break;
        const y = fresh('sl');
        g.node('Slice', [cur.name, ints([1]), ints([w - 1]), ints([-1])], [y]);
        cur = { name: y, width: w - 2 };
        break;
      }
      case 'gate': {
        const sg = unary(cur, 'Sigmoid');
        const y = fresh('gate');
        g.node('Mul', [cur.name, sg.name], [y]);
        cur = { name: y, width: w };
        break;
      }
      case 'attention': {
        if (w % 2) break;
        const d = w / 2;
        const heads = (a: Act, perm: number[]): string => {
          const rr = fresh('qr');
          const t = fresh('qt');
          g.node('Reshape', [a.name, ints([0, 0, 2, d])], [rr]).node('Transpose', [rr], [t], { perm });
          return t;
        };
        const q = heads(linear(cur, w), [0, 2, 1, 3]);
        const k = heads(linear(cur, w), [0, 2, 3, 1]);
        const v = heads(linear(cur, w), [0, 2, 1, 3]);
        const s1 = fresh('s');
        const p = fresh('p');
        const o = fresh('o');
        const ot = fresh('ot');
        const om = fresh('om');
        g.node('MatMul', [q, k], [s1]).node('Softmax', [s1], [p], { axis: -1 }).node('MatMul', [p, v], [o]);
        g.node('Transpose', [o], [ot], { perm: [0, 2, 1, 3] }).node('Reshape', [ot, ints([0, 0, w])], [om]);
        const out = linear({ name: om, width: w }, w);
        const y = fresh('res');
        g.node('Add', [cur.name, out.name], [y]);
        cur = { name: y, width: w };
        break;
      }
    }
  }
  const y = fresh('y');
  g.node('MatMul', [cur.name, weight([cur.width, 2])], [y]);
  g.output(y, ['batch', 3, 2]);
  if (r() < 0.2 && history.length > 2) g.output(history[1]!.name);
  return g;
}

test('fuzz: on 40 random graphs, permuting by the inferred spec never changes an output', async () => {
  let free = 0;
  let heads = 0;
  for (let seed = Number(process.env.FUZZ_FROM ?? 1); seed <= Number(process.env.FUZZ_TO ?? 40); seed++) {
    const model = randomGraph(seed).build();
    const r = inferPermutationSpec(model, await probeModel(model));
    free += r.groups.filter((g) => g.kind === 'free' || g.kind === 'heads').length;
    heads += r.groups.filter((g) => g.kind === 'heads').length;
    for (const s of [1, 2]) {
      const rep = await checkInvariance(model, r.spec, sampleFeeds(model, 2, seed * 7 + s) as unknown as Record<string, Feed>, { seed: seed * 13 + s });
      assert.ok(rep.maxRelError <= 1e-5, `graph ${seed} (permutation seed ${s}): outputs moved by ${rep.maxRelError}\n${JSON.stringify(r.spec.perms)}`);
      assert.ok(rep.equivalent, `graph ${seed} (permutation seed ${s}): ${rep.worst.kind} ${rep.worst.name} moved by ${rep.worst.maxAbs} > ${rep.worst.tolerance}`);
    }
  }
  // the palette is not all frozen: the tracer finds groups, heads among them
  if (process.env.GRAPH_FUZZ_VERBOSE) console.log({ free, heads });
  assert.ok(free >= 40, `only ${free} free groups over 40 graphs`);
  assert.ok(heads >= 1, 'no heads group in any graph');
});
