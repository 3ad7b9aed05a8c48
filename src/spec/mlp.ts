/**
 * `--arch mlp`: the spec of a plain stack of Linear layers, derived from names and shapes alone.
 *
 * Layer order comes from the names: numbered layers in natural order (`layers.2` before `layers.10`, `fc1` before
 * `fc2`), then one output layer named like a head (`head`, `classifier`, `out`, `fc`, …). The order is checked
 * against the shapes (each layer's input width = the previous layer's output width). Only when the names give no
 * order do the shapes decide, and then only when exactly one chain fits; otherwise it is an error asking for
 * --spec. The model's input axis (first layer's input) and output axis (last layer's output) are never
 * permuted, whatever the widths; a hidden layer of width 1 has nothing to permute and is listed under `frozen`.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { FrozenAxis, PermutationSpecJson, PermRef } from './types.js';

interface Layer {
  weight: string;
  bias?: string;
  /** The module path: the weight's name without its trailing 'weight'. */
  prefix: string;
  out: number;
  in: number;
}

export interface MlpSpecOptions {
  /**
   * What to tell the user when the checkpoint is not a plain MLP: it must fit what they passed (default: write a
   * spec with --spec). A caller that already has a spec and needs a graph says to pass --graph instead.
   */
  hint?: string;
}

/** Module names torch models give their output layer; one of them, if present, is the last layer. */
const HEAD_WORDS = new Set(['head', 'heads', 'classifier', 'out', 'output', 'out_proj', 'fc_out', 'lm_head', 'logits', 'final', 'readout', 'fc', 'linear_out', 'predictor']);

/**
 * The spec of a plain MLP state_dict (torch Linear layout: weight [out, in], bias [out]).
 * @param shapes tensor name -> shape, every tensor of the checkpoint
 * @param source the file, for messages
 * @throws BasinError spec_arch_mismatch when a tensor is not a Linear weight or bias, when the layers do not chain
 *   in name order, or when names give no order and the shapes allow more than one chain.
 */
export function mlpSpec(shapes: ReadonlyMap<string, readonly number[]>, source = 'checkpoint', opts: MlpSpecOptions = {}): PermutationSpecJson {
  const chain = mlpLayers(shapes, source, opts);
  const axes: Record<string, PermRef[]> = {};
  const frozen: FrozenAxis[] = [];
  // hidden i sits between chain[i] and chain[i + 1]; width 1 has nothing to permute
  const hidden = chain.slice(0, -1).map((l, i) => (l.out > 1 ? `P_${i}` : null));
  chain.forEach((l, i) => {
    const out = i < chain.length - 1 ? hidden[i]! : null;
    const inn = i > 0 ? hidden[i - 1]! : null;
    axes[l.weight] = [out, inn];
    if (l.bias) axes[l.bias] = [out];
    if (i < chain.length - 1 && l.out === 1) frozen.push({ tensor: l.weight, axis: 0, reason: 'hidden layer of width 1: nothing to permute' });
  });
  return frozen.length ? { axes_to_perm: axes, frozen } : { axes_to_perm: axes };
}

/** The Linear layers of a plain MLP state_dict, in forward order (see mlpSpec for the rules and errors). */
export function mlpLayers(shapes: ReadonlyMap<string, readonly number[]>, source = 'checkpoint', opts: MlpSpecOptions = {}): { weight: string; bias?: string; out: number; in: number }[] {
  const hint = opts.hint ?? 'write a spec with --spec instead';
  const layers: Layer[] = [];
  const used = new Set<string>();
  for (const [name, shape] of shapes) {
    if (!name.endsWith('weight')) continue;
    if (shape.length !== 2) {
      throw new BasinError(
        'spec_arch_mismatch',
        `${q(source)} is not a plain MLP: ${q(name)} has shape ${shapeStr(shape)}, but every Linear weight is 2-D [out, in]; ${hint}`,
        { tensor: name, shape },
      );
    }
    const prefix = name.slice(0, -'weight'.length);
    const bias = `${prefix}bias`;
    const layer: Layer = { weight: name, prefix, out: shape[0]!, in: shape[1]! };
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
      `${q(source)} is not a plain MLP: tensor ${q(extra[0]!)} (shape ${shapeStr(shapes.get(extra[0]!)!)}) is neither a Linear weight nor its bias; ${hint}`,
      { tensor: extra[0], extra },
    );
  }
  if (layers.length < 2) {
    throw new BasinError('spec_arch_mismatch', `${q(source)} has ${layers.length} Linear layer(s): an MLP needs at least 2 to have a hidden layer`, {});
  }
  const named = nameOrder(layers);
  if (named) {
    for (let i = 1; i < named.length; i++) {
      const prev = named[i - 1]!;
      const l = named[i]!;
      if (l.in !== prev.out) {
        throw new BasinError(
          'spec_arch_mismatch',
          `${q(source)}: in name order ${q(l.weight)} ${shapeStr([l.out, l.in])} follows ${q(prev.weight)} ${shapeStr([prev.out, prev.in])}, ` +
            `but its input width ${l.in} is not the previous output width ${prev.out} (torch stores Linear weights as [out, in]); ${hint}`,
          { tensor: l.weight, expected: prev.out, found: l.in },
        );
      }
    }
    return named;
  }
  layers.sort((x, y) => naturalCompare(x.weight, y.weight));
  const chains = findChains(layers, 2);
  const desc = layers.map((l) => `${q(l.weight)} ${shapeStr([l.out, l.in])}`).join(', ');
  if (chains.length === 0) {
    throw new BasinError('spec_arch_mismatch', `${q(source)}: the Linear layers do not chain into one stack (each input width = previous output width): ${desc}`, {});
  }
  if (chains.length > 1) {
    throw new BasinError(
      'spec_arch_mismatch',
      `${q(source)}: the layer order is ambiguous: the names give no order (no numbered layers such as layers.0, fc1) and the shapes allow ` +
        `more than one chain (${chains.map((c) => c.map((l) => q(l.weight)).join(' -> ')).join(' or ')}); ${hint}`,
      { candidates: chains.map((c) => c.map((l) => l.weight)) },
    );
  }
  return chains[0]!;
}

/**
 * The forward order the names give, or null when they give none: every layer but at most one head-named layer
 * (placed last) must share one name pattern up to its numbers (layers.#., fc#., net.#.), and the numbers order them.
 */
function nameOrder(layers: Layer[]): Layer[] | null {
  const lastPart = (l: Layer) => l.prefix.replace(/[._]$/, '').split('.').pop()!.toLowerCase();
  const heads = layers.filter((l) => HEAD_WORDS.has(lastPart(l)));
  const body = layers.filter((l) => !heads.includes(l));
  if (heads.length > 1) return null;
  const pattern = (l: Layer) => l.prefix.replace(/\d+/g, '#');
  const patterns = new Set(body.map(pattern));
  if (patterns.size !== 1 || ![...patterns][0]!.includes('#')) return body.length === 0 ? null : body.length === 1 && heads.length === 1 ? [...body, ...heads] : null;
  const numbers = body.map((l) => (l.prefix.match(/\d+/g) ?? []).join('.'));
  if (new Set(numbers).size !== numbers.length) return null;
  return [...body.sort((x, y) => naturalCompare(x.prefix, y.prefix)), ...heads];
}

/** Up to `limit` orders of all layers in which each input width equals the previous output width. */
function findChains(layers: Layer[], limit: number): Layer[][] {
  const found: Layer[][] = [];
  const used = new Set<Layer>();
  const chain: Layer[] = [];
  // Backtracking; capped so that a hopeless case fails fast.
  let budget = 100_000;
  const extend = (): void => {
    if (found.length >= limit || --budget < 0) return;
    if (chain.length === layers.length) {
      found.push([...chain]);
      return;
    }
    const prev = chain[chain.length - 1];
    for (const l of layers) {
      if (used.has(l) || (prev && l.in !== prev.out)) continue;
      used.add(l);
      chain.push(l);
      extend();
      chain.pop();
      used.delete(l);
    }
  };
  extend();
  return found;
}

export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The weight axes of a plain MLP that carry the model's input or output features: never permuted. */
export function mlpIoAxes(shapes: ReadonlyMap<string, readonly number[]>, source = 'checkpoint', opts: MlpSpecOptions = {}): { tensor: string; axis: number; what: string }[] {
  const chain = mlpLayers(shapes, source, opts);
  const first = chain[0]!;
  const last = chain[chain.length - 1]!;
  const out = [{ tensor: first.weight, axis: 1, what: "the model's input features" }, { tensor: last.weight, axis: 0, what: "the model's output features" }];
  if (last.bias) out.push({ tensor: last.bias, axis: 0, what: "the model's output features" });
  return out;
}
