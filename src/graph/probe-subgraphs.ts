/**
 * Shapes inside control-flow subgraphs (If branches, Loop and Scan bodies), which onnxruntime cannot expose as
 * graph outputs: each subgraph is run on its own as a model whose inputs are its formal inputs (a Loop body's first
 * iteration: iteration 0, the loop's cond and initial values; a Scan body's: the initial states and slice 0 of
 * each scan input) and the outer values it reads (from the enclosing run; outer initializers are copied in), and
 * whose outputs are all its node outputs. Both branches of an If run, whichever the condition takes. Nested
 * subgraphs recurse on the subgraph's own run. A subgraph that fails to run (a branch valid only for other
 * inputs) records nothing: the tracer then freezes what it would tie (rules/control.ts).
 */
import type ort from 'onnxruntime-node';
import { runtime } from '../engine/runtime.js';
import * as onnx from '../onnx/proto.js';
import { openSession, quietRunOptions } from '../engine/session-factory.js';
import type { ProbeResult } from './probe.js';

type IModelProto = onnx.ModelProto;
type IGraphProto = onnx.GraphProto;
type ITensorProto = onnx.TensorProto;

const ELEM: Record<string, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, string: 8, bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13,
};
const CONTROL = new Set(['If', 'Loop', 'Scan']);

/**
 * Record the shapes, element types and small integer contents of every value inside the subgraphs of `graph`'s
 * control-flow nodes into `out`. `env`: values of the enclosing scope by name; `inits`: initializers in scope.
 */
export async function probeSubgraphs(model: IModelProto, graph: IGraphProto, env: ReadonlyMap<string, ort.Tensor>, inits: ReadonlyMap<string, ITensorProto>, out: ProbeResult): Promise<void> {
  for (const node of graph.node ?? []) {
    if (!CONTROL.has(node.opType ?? '') || (node.domain && node.domain !== 'ai.onnx')) continue;
    for (const a of node.attribute ?? []) {
      if (!a.g) continue;
      const formal = formalFeeds(node, a.name ?? '', a.g, env);
      if (!formal) continue;
      await probeOne(model, a.g, formal, env, inits, out);
    }
  }
}

/** The first iteration's formal inputs of a subgraph, or undefined when they cannot be formed. */
function formalFeeds(node: onnx.NodeProto, attr: string, sub: IGraphProto, env: ReadonlyMap<string, ort.Tensor>): Map<string, ort.Tensor> | undefined {
  const names = (sub.input ?? []).map((i) => i.name ?? '');
  const feeds = new Map<string, ort.Tensor>();
  const inputs = node.input ?? [];
  if (node.opType === 'If') return names.length === 0 ? feeds : undefined;
  if (node.opType === 'Loop' && attr === 'body') {
    feeds.set(names[0]!, new (runtime().Tensor)('int64', BigInt64Array.from([0n]), []));
    const cond = inputs[1] ? env.get(inputs[1]) : undefined;
    feeds.set(names[1]!, cond ?? new (runtime().Tensor)('bool', Uint8Array.from([1]), []));
    for (let k = 2; k < names.length; k++) {
      const v = env.get(inputs[k] ?? '');
      if (!v) return undefined;
      feeds.set(names[k]!, v);
    }
    return feeds;
  }
  if (node.opType === 'Scan' && attr === 'body') {
    const m = Number(node.attribute?.find((x) => x.name === 'num_scan_inputs')?.i ?? 0);
    const axes = (node.attribute?.find((x) => x.name === 'scan_input_axes')?.ints ?? []).map(Number);
    const states = inputs.length - m;
    for (let k = 0; k < inputs.length; k++) {
      const v = env.get(inputs[k] ?? '');
      if (!v) return undefined;
      feeds.set(names[k]!, k < states ? v : firstSlice(v, axes[k - states] ?? 0));
    }
    return feeds;
  }
  return undefined;
}

/** Index 0 of `t` along `axis` (the axis removed). */
function firstSlice(t: ort.Tensor, axis: number): ort.Tensor {
  const dims = [...t.dims];
  const a = axis < 0 ? axis + dims.length : axis;
  const inner = dims.slice(a + 1).reduce((x, y) => x * y, 1);
  const outer = dims.slice(0, a).reduce((x, y) => x * y, 1);
  const src = t.data as unknown as { length: number; [i: number]: unknown; constructor: new (n: number) => { [i: number]: unknown } };
  const data = new src.constructor(outer * inner);
  for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) data[o * inner + i] = src[o * dims[a]! * inner + i];
  return new (runtime().Tensor)(t.type as 'float32', data as unknown as Float32Array, dims.filter((_, i) => i !== a));
}

async function probeOne(
  model: IModelProto,
  sub: IGraphProto,
  formal: ReadonlyMap<string, ort.Tensor>,
  env: ReadonlyMap<string, ort.Tensor>,
  inits: ReadonlyMap<string, ITensorProto>,
  out: ProbeResult,
): Promise<void> {
  const local = new Set<string>([...formal.keys(), ...(sub.initializer ?? []).map((t) => t.name ?? '')]);
  const reads: string[] = [];
  collectReads(sub, local, reads);
  const feeds = new Map(formal);
  const copied: ITensorProto[] = [];
  for (const r of reads) {
    const v = env.get(r);
    if (v) feeds.set(r, v);
    else if (inits.has(r)) copied.push(inits.get(r)!);
    else return; // a value the enclosing run did not produce
  }
  const outputs: string[] = [];
  for (const n of sub.node ?? []) for (const o of n.output ?? []) if (o && !outputs.includes(o)) outputs.push(o);
  for (const t of sub.initializer ?? []) {
    out.shapes.set(t.name ?? '', (t.dims ?? []).map(Number));
  }
  for (const [name, t] of formal) {
    out.shapes.set(name, [...t.dims]);
    out.dtypes.set(name, t.type);
  }
  if (!outputs.length) return;
  const standalone = Object.assign(onnx.shallowCopy(model), {
    graph: onnx.create(onnx.GraphProtoSchema, {
      name: 'subgraph',
      node: sub.node ?? [],
      initializer: [...(sub.initializer ?? []), ...copied],
      input: [...feeds].map(([name, t]) => onnx.valueInfo({ name, type: onnx.tensorType(ELEM[t.type] ?? 0) })),
      output: outputs.map((name) => onnx.create(onnx.ValueInfoProtoSchema, { name })),
    }),
  });
  let session: ort.InferenceSession | undefined;
  let results: ort.InferenceSession.OnnxValueMapType;
  try {
    session = await openSession(onnx.encodeModel(standalone), { doing: 'running a subgraph to read its value shapes' });
    results = await session.run(Object.fromEntries(feeds), quietRunOptions());
  } catch {
    await session?.release().catch(() => undefined);
    return;
  }
  await session.release();
  const inner = new Map(env);
  for (const [name, t] of feeds) inner.set(name, t);
  for (const [name, v] of Object.entries(results)) {
    const t = v as ort.Tensor;
    inner.set(name, t);
    out.shapes.set(name, [...t.dims]);
    out.dtypes.set(name, t.type);
    if ((t.type === 'int64' || t.type === 'int32') && t.size <= 4096) out.ints.set(name, Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x)));
  }
  const scope = new Map(inits);
  for (const t of sub.initializer ?? []) scope.set(t.name ?? '', t);
  await probeSubgraphs(model, sub, inner, scope, out);
}

/** Names `sub` (and its nested subgraphs) reads that it does not define itself. */
function collectReads(sub: IGraphProto, local: ReadonlySet<string>, into: string[]): void {
  const defined = new Set(local);
  for (const i of sub.input ?? []) defined.add(i.name ?? '');
  for (const t of sub.initializer ?? []) defined.add(t.name ?? '');
  for (const n of sub.node ?? []) {
    for (const i of n.input ?? []) if (i && !defined.has(i) && !into.includes(i)) into.push(i);
    for (const a of n.attribute ?? []) {
      for (const g of [a.g, ...(a.graphs ?? [])]) {
        if (!g) continue;
        const nested: string[] = [];
        collectReads(g, defined, nested);
        for (const r of nested) if (!into.includes(r)) into.push(r);
      }
    }
    for (const o of n.output ?? []) defined.add(o);
  }
}
