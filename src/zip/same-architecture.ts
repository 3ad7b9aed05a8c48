/**
 * Two models can be stacked side by side only when they are one architecture with two sets of weights: the same
 * graph (node for node: op type, inputs, outputs, attributes), the same graph inputs and outputs, and the same
 * constant tensors (names, dtypes, shapes). Integer constants (Reshape shapes, axes, indices) must hold the same
 * values, since the stacked model has one graph for both.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';

function label(m: OnnxModel, fallback: string): string {
  return m.path ?? fallback;
}

function attrText(a: unknown): string {
  return JSON.stringify(a, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Array.from(v) : v));
}

/**
 * Check that `a` and `b` are one architecture (see the file comment). `names`: the files they came from, for the
 * messages (default: the ONNX paths, else 'A' / 'B').
 * @throws BasinError models_mismatch naming the first node, graph input/output or tensor that differs
 */
export function checkSameArchitecture(a: OnnxModel, b: OnnxModel, names?: readonly [string, string]): void {
  const la = names?.[0] ?? label(a, 'A');
  const lb = names?.[1] ?? label(b, 'B');
  const fail = (what: string, details: Record<string, unknown>): never => {
    throw new BasinError('models_mismatch', `${q(la)} and ${q(lb)} are not one architecture: ${what}; zip stacks two models of the same graph with different weights`, {
      file: lb,
      ...details,
    });
  };
  for (const [kind, va, vb] of [['input', a.inputs, b.inputs], ['output', a.outputs, b.outputs]] as const) {
    const na = va.map((v) => v.name);
    const nb = vb.map((v) => v.name);
    if (na.join('\u0000') !== nb.join('\u0000')) fail(`graph ${kind}s differ (${na.map(q).join(', ')} vs ${nb.map(q).join(', ')})`, { expected: na, found: nb });
    for (let i = 0; i < va.length; i++) {
      if (va[i]!.elemType !== vb[i]!.elemType) fail(`graph ${kind} ${q(na[i]!)} has element type ${va[i]!.elemType} in one and ${vb[i]!.elemType} in the other`, { tensor: na[i] });
    }
  }
  const nodesA = a.proto.graph?.node ?? [];
  const nodesB = b.proto.graph?.node ?? [];
  const n = Math.min(nodesA.length, nodesB.length);
  for (let i = 0; i < n; i++) {
    const x = nodesA[i]!;
    const y = nodesB[i]!;
    const name = x.name || `#${i}`;
    if (x.opType !== y.opType) fail(`node ${i} is ${q(name)} (${x.opType}) in one and ${q(y.name ?? '')} (${y.opType}) in the other`, { node: name });
    if ((x.input ?? []).join('\u0000') !== (y.input ?? []).join('\u0000') || (x.output ?? []).join('\u0000') !== (y.output ?? []).join('\u0000')) {
      fail(`node ${q(name)} (${x.opType}) reads or writes other values`, { node: name });
    }
    if (x.opType !== 'Constant') {
      const ax = attrText(x.attribute ?? []);
      const ay = attrText(y.attribute ?? []);
      if (ax !== ay) fail(`node ${q(name)} (${x.opType}) has other attributes`, { node: name });
    }
  }
  if (nodesA.length !== nodesB.length) fail(`one graph has ${nodesA.length} nodes, the other ${nodesB.length}`, { expected: nodesA.length, found: nodesB.length });
  const ca = new Set(a.constants());
  for (const name of b.constants()) if (!ca.has(name)) fail(`tensor ${q(name)} is only in ${q(lb)}`, { tensor: name });
  for (const name of a.constants()) {
    if (!b.has(name)) fail(`tensor ${q(name)} is only in ${q(la)}`, { tensor: name });
    const ia = a.weightInfo(name);
    const ib = b.weightInfo(name);
    if (ia.dtype !== ib.dtype) fail(`tensor ${q(name)} is ${ia.dtype} in one and ${ib.dtype} in the other`, { tensor: name, expected: ia.dtype, found: ib.dtype });
    if (shapeStr(ia.shape) !== shapeStr(ib.shape)) fail(`tensor ${q(name)} has shape ${shapeStr(ia.shape)} in one and ${shapeStr(ib.shape)} in the other`, { tensor: name, expected: ia.shape, found: ib.shape });
  }
}
