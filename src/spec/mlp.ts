/**
 * `--arch mlp`: the spec of a plain stack of Linear layers, derived from names and shapes alone.
 * Layers chain when one's input width equals the previous one's output width; among equal widths the
 * natural order of names decides (layers.2 before layers.10), and the chain must use every weight.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { PermutationSpecJson, PermRef } from './types.js';

interface Layer {
  weight: string;
  bias?: string;
  out: number;
  in: number;
}

export function mlpSpec(shapes: ReadonlyMap<string, readonly number[]>, source = 'checkpoint'): PermutationSpecJson {
  const layers: Layer[] = [];
  const used = new Set<string>();
  for (const [name, shape] of shapes) {
    if (!name.endsWith('weight')) continue;
    if (shape.length !== 2) {
      throw new BasinError(
        'spec_arch_mismatch',
        `${q(source)} is not a plain MLP: ${q(name)} has shape ${shapeStr(shape)}, but every Linear weight is 2-D [out, in]; write a spec with --spec instead`,
        { tensor: name, shape },
      );
    }
    const prefix = name.slice(0, -'weight'.length);
    const bias = `${prefix}bias`;
    const layer: Layer = { weight: name, out: shape[0]!, in: shape[1]! };
    if (shapes.has(bias)) {
      const bs = shapes.get(bias)!;
      if (bs.length !== 1 || bs[0] !== layer.out) {
        throw new BasinError('spec_arch_mismatch', `${q(source)}: bias ${q(bias)} has shape ${shapeStr(bs)}, expected [${layer.out}] to match ${q(name)}`, {
          tensor: bias,
          shape: bs,
        });
      }
      layer.bias = bias;
      used.add(bias);
    }
    used.add(name);
    layers.push(layer);
  }
  const extra = [...shapes.keys()].filter((n) => !used.has(n));
  if (extra.length) {
    throw new BasinError(
      'spec_arch_mismatch',
      `${q(source)} is not a plain MLP: tensor ${q(extra[0]!)} (shape ${shapeStr(shapes.get(extra[0]!)!)}) is neither a Linear weight nor its bias; write a spec with --spec instead`,
      { tensor: extra[0], extra },
    );
  }
  if (layers.length < 2) {
    throw new BasinError('spec_arch_mismatch', `${q(source)} has ${layers.length} Linear layer(s): an MLP needs at least 2 to have a hidden layer`, {});
  }
  layers.sort((x, y) => naturalCompare(x.weight, y.weight));
  const chain = findChain(layers);
  if (!chain) {
    const desc = layers.map((l) => `${q(l.weight)} ${shapeStr([l.out, l.in])}`).join(', ');
    throw new BasinError('spec_arch_mismatch', `${q(source)}: the Linear layers do not chain into one stack (each input width = previous output width): ${desc}`, {});
  }
  const axes: Record<string, PermRef[]> = {};
  chain.forEach((l, i) => {
    const out = i < chain.length - 1 ? `P_${i}` : null;
    const inn = i > 0 ? `P_${i - 1}` : null;
    axes[l.weight] = [out, inn];
    if (l.bias) axes[l.bias] = [out];
  });
  return { axes_to_perm: axes };
}

function findChain(layers: Layer[]): Layer[] | null {
  const outs = new Set(layers.map((l) => l.out));
  // Prefer a first layer whose input width is no other layer's output (the model input).
  const starts = [...layers.filter((l) => !outs.has(l.in)), ...layers.filter((l) => outs.has(l.in))];
  const used = new Set<Layer>();
  const chain: Layer[] = [];
  // Backtracking is linear when a chain exists in natural order; cap it so a hopeless case fails fast.
  let budget = 100_000;
  const extend = (): boolean => {
    if (chain.length === layers.length) return true;
    if (--budget < 0) return false;
    const prev = chain[chain.length - 1]!;
    for (const l of layers) {
      if (used.has(l) || l.in !== prev.out) continue;
      used.add(l);
      chain.push(l);
      if (extend()) return true;
      chain.pop();
      used.delete(l);
    }
    return false;
  };
  for (const s of starts) {
    used.add(s);
    chain.push(s);
    if (extend()) return chain;
    chain.pop();
    used.delete(s);
  }
  return null;
}

export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
