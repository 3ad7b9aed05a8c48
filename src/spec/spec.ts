/**
 * A validated permutation spec, resolved against the tensor shapes it will be applied to. Validation happens
 * here, before any compute: every error names the tensor and axis at fault.
 *
 * Internally every permuted axis is reduced to "placements" of base (solvable) permutations: base perm P of
 * size n acts on the indices offset + i*inner + s (i < n, s < inner) of one tensor axis. Derived perms
 * (expand, concat) only change offset and inner, so weight matching and apply need nothing else.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { FrozenAxis, PermInfo, PermRef, PermutationSpecJson } from './types.js';

export interface Placement {
  tensor: string;
  axis: number;
  offset: number;
  inner: number;
}

export interface ResolvedPerm {
  name: string;
  size: number;
  info: PermInfo;
  /** Derived perms (expand, concat) follow their base perms and are never solved for. */
  derived: boolean;
}

export type Assignment = Map<string, Int32Array>;

/**
 * A permutation spec resolved against a model's weight shapes: for each tensor, the permutation (if any) on each
 * axis; permutation sizes, heads ties and derived (block) permutations checked; the activation points where each
 * permutation acts. JSON form: docs/spec-format.md (the seeds' axes_to_perm, generalized). Source: Ainsworth et al.
 * 2023, "Git Re-Basin" (permutation specs), seeds 000/001.
 * @throws BasinError spec_invalid from fromJson naming the tensor, axis and permutation at fault
 */
export class PermutationSpec {
  readonly axesToPerm: ReadonlyMap<string, readonly PermRef[]>;
  readonly perms: ReadonlyMap<string, ResolvedPerm>;
  /** Base perms in a stable order (first appearance in axes_to_perm). */
  readonly free: readonly string[];
  /** Every placement of each base perm (the seeds' perm_to_axes, generalized). */
  readonly permToAxes: ReadonlyMap<string, readonly Placement[]>;
  /** heads tie name -> the base perms moving heads together. */
  readonly ties: ReadonlyMap<string, readonly string[]>;
  readonly frozen: readonly FrozenAxis[];
  private readonly axisPlacements = new Map<string, { base: string; offset: number; inner: number }[]>();

  private constructor(
    axesToPerm: Map<string, PermRef[]>,
    perms: Map<string, ResolvedPerm>,
    frozen: FrozenAxis[],
    private readonly source: string,
  ) {
    this.axesToPerm = axesToPerm;
    this.perms = perms;
    this.frozen = frozen;
    const free: string[] = [];
    const permToAxes = new Map<string, Placement[]>();
    for (const [tensor, refs] of axesToPerm) {
      const basesInTensor = new Map<string, number>();
      refs.forEach((ref, axis) => {
        if (ref === null) return;
        const placements = this.resolve(ref, 0, 1, [], tensor, axis);
        this.axisPlacements.set(`${tensor}\u0000${axis}`, placements);
        for (const p of placements) {
          // Two blocks of one axis may share a permutation (a fused QKV projection: concat [QK, QK, VO]); two
          // different axes may not: the matching step would no longer be a linear assignment (except on a tensor the
          // perm lists as `recurrent`, solved linearized).
          const prev = basesInTensor.get(p.base);
          if (prev !== undefined && prev !== axis && !perms.get(p.base)?.info.recurrent?.includes(tensor)) {
            throw new BasinError(
              'spec_repeated_perm',
              `${this.where()}: permutation ${q(p.base)} acts on two axes of tensor ${q(tensor)} (axes ${prev} and ${axis}); ` +
                'one permutation can act on at most one axis of a tensor',
              { tensor, axis, perm: p.base },
            );
          }
          basesInTensor.set(p.base, axis);
          if (!permToAxes.has(p.base)) {
            permToAxes.set(p.base, []);
            free.push(p.base);
          }
          permToAxes.get(p.base)!.push({ tensor, axis, offset: p.offset, inner: p.inner });
        }
      });
    }
    this.free = free;
    this.permToAxes = permToAxes;
    const ties = new Map<string, string[]>();
    for (const name of free) {
      const h = perms.get(name)!.info.heads;
      if (h) {
        if (!ties.has(h.tie)) ties.set(h.tie, []);
        ties.get(h.tie)!.push(name);
      }
    }
    for (const [tie, members] of ties) {
      const counts = new Set(members.map((m) => perms.get(m)!.info.heads!.count));
      if (counts.size > 1) {
        throw new BasinError('spec_invalid', `${this.where()}: permutations tied by heads ${q(tie)} have different head counts`, {
          expected: [...counts],
          perm: members.join(', '),
        });
      }
    }
    this.ties = ties;
  }

  private where(): string {
    return this.source ? `spec ${q(this.source)}` : 'spec';
  }

  /** Build and validate a spec against the shapes of the tensors it names. */
  static fromJson(json: unknown, shapes: ReadonlyMap<string, readonly number[]>, source = ''): PermutationSpec {
    const where = source ? `spec ${q(source)}` : 'spec';
    const doc = parseSpecJson(json, where);
    const axesToPerm = new Map<string, PermRef[]>(Object.entries(doc.axes_to_perm));
    const declared = new Map<string, PermInfo>(Object.entries(doc.perms ?? {}));

    // 1. every tensor exists, with the right rank
    const missing = [...axesToPerm.keys()].filter((t) => !shapes.has(t));
    if (missing.length) {
      const hint = suggest(missing[0]!, [...shapes.keys()]);
      throw new BasinError(
        'spec_param_missing',
        `${where} names ${missing.length} tensor(s) the model does not have: ${missing.map(q).join(', ')}` + (hint ? `; did you mean ${q(hint)}?` : ''),
        { tensor: missing[0], missing },
      );
    }
    for (const [tensor, refs] of axesToPerm) {
      const shape = shapes.get(tensor)!;
      if (refs.length !== shape.length) {
        throw new BasinError(
          'spec_rank_mismatch',
          `${where}: ${q(tensor)} lists ${refs.length} axes but the tensor has shape ${shapeStr(shape)} (rank ${shape.length})`,
          { tensor, shape, expected: shape.length, found: refs.length },
        );
      }
    }

    // 2. sizes: each perm one size over all its direct uses
    const uses = new Map<string, { tensor: string; axis: number; size: number }[]>();
    for (const [tensor, refs] of axesToPerm) {
      refs.forEach((ref, axis) => {
        if (ref === null) return;
        if (!uses.has(ref)) uses.set(ref, []);
        uses.get(ref)!.push({ tensor, axis, size: shapes.get(tensor)![axis]! });
      });
    }
    for (const [perm, list] of uses) {
      const declaredSize = declared.get(perm)?.size;
      const sizes = new Set(list.map((u) => u.size));
      if (declaredSize !== undefined) sizes.add(declaredSize);
      if (sizes.size > 1) throw sizeError(where, perm, list, shapes, declaredSize);
    }

    // 3. resolve every perm's size (direct uses, declared, or through derived definitions)
    const perms = new Map<string, ResolvedPerm>();
    const sizeOf = (name: string, stack: string[]): number => {
      const known = perms.get(name);
      if (known) return known.size;
      if (stack.includes(name)) {
        throw new BasinError('spec_invalid', `${where}: derived permutations form a cycle: ${[...stack, name].map(q).join(' -> ')}`, { perm: name });
      }
      const info: PermInfo = declared.get(name) ?? { size: NaN };
      let size = uses.get(name)?.[0]?.size ?? info.size;
      const next = [...stack, name];
      if (info.expand) {
        const { of, inner } = info.expand;
        if (!Number.isInteger(inner) || inner < 1) throw new BasinError('spec_invalid', `${where}: ${q(name)}.expand.inner must be a positive integer`, { perm: name });
        const s = sizeOf(of, next) * inner;
        if (!Number.isNaN(size) && size !== s) throw derivedSizeError(where, name, size, s, `${q(of)} x ${inner}`);
        size = s;
      } else if (info.concat) {
        let s = 0;
        for (const part of info.concat) s += typeof part === 'number' ? part : sizeOf(part, next);
        if (!Number.isNaN(size) && size !== s) throw derivedSizeError(where, name, size, s, `the sum of its concat parts`);
        size = s;
      }
      if (Number.isNaN(size) || size === undefined) {
        throw new BasinError('spec_invalid', `${where}: cannot tell the size of permutation ${q(name)}: no tensor axis uses it and 'perms' gives no size`, { perm: name });
      }
      if (info.heads) {
        const { count, tie } = info.heads;
        if (!Number.isInteger(count) || count < 1 || size % count !== 0 || typeof tie !== 'string') {
          throw new BasinError('spec_invalid', `${where}: ${q(name)} has ${count} heads, which does not divide its size ${size}`, { perm: name, found: count });
        }
      }
      const resolved: ResolvedPerm = { name, size, info: { ...info, size }, derived: Boolean(info.expand || info.concat) };
      perms.set(name, resolved);
      return size;
    };
    for (const name of new Set([...uses.keys(), ...declared.keys()])) sizeOf(name, []);
    for (const [name, p] of perms) {
      if (p.derived && p.info.heads) throw new BasinError('spec_invalid', `${where}: ${q(name)} is derived and cannot also have heads`, { perm: name });
    }
    return new PermutationSpec(axesToPerm, perms, doc.frozen ?? [], source);
  }

  private resolve(name: string, offset: number, inner: number, stack: string[], tensor: string, axis: number): { base: string; offset: number; inner: number }[] {
    const p = this.perms.get(name);
    if (!p) throw new BasinError('spec_invalid', `${this.where()}: unknown permutation ${q(name)} on ${q(tensor)} axis ${axis}`, { tensor, axis });
    if (p.info.expand) return this.resolve(p.info.expand.of, offset, inner * p.info.expand.inner, [...stack, name], tensor, axis);
    if (p.info.concat) {
      const out: { base: string; offset: number; inner: number }[] = [];
      let at = offset;
      for (const part of p.info.concat) {
        if (typeof part === 'number') {
          at += part * inner;
          continue;
        }
        out.push(...this.resolve(part, at, inner, [...stack, name], tensor, axis));
        at += this.perms.get(part)!.size * inner;
      }
      return out;
    }
    return [{ base: name, offset, inner }];
  }

  /** Where the base perms of any (possibly derived) permutation sit along an axis it is placed on. */
  basePlacements(name: string): { base: string; offset: number; inner: number }[] {
    return this.resolve(name, 0, 1, [], '(activation point)', -1);
  }

  /** Tensors the spec names, in document order. */
  tensors(): string[] {
    return [...this.axesToPerm.keys()];
  }

  /** Placements of base perms on one tensor axis (empty when the axis is not permuted). */
  placementsOn(tensor: string, axis: number): readonly { base: string; offset: number; inner: number }[] {
    return this.axisPlacements.get(`${tensor}\u0000${axis}`) ?? [];
  }

  /** The full index array for one tensor axis under an assignment, or null when the axis is not permuted. */
  axisIndex(tensor: string, axis: number, size: number, assignment: Assignment): Int32Array | null {
    const placements = this.placementsOn(tensor, axis);
    if (placements.length === 0) return null;
    const idx = new Int32Array(size);
    for (let i = 0; i < size; i++) idx[i] = i;
    for (const { base, offset, inner } of placements) {
      const perm = assignment.get(base);
      if (!perm) throw new BasinError('invalid_argument', `no permutation given for ${q(base)}`, { perm: base });
      for (let i = 0; i < perm.length; i++) {
        const dst = offset + i * inner;
        const src = offset + perm[i]! * inner;
        for (let s = 0; s < inner; s++) idx[dst + s] = src + s;
      }
    }
    return idx;
  }

  toJson(): PermutationSpecJson {
    const axes_to_perm: Record<string, PermRef[]> = {};
    for (const [t, refs] of this.axesToPerm) axes_to_perm[t] = [...refs];
    const perms: Record<string, PermInfo> = {};
    for (const [name, p] of this.perms) perms[name] = p.info;
    const out: PermutationSpecJson = { axes_to_perm, perms };
    if (this.frozen.length) out.frozen = [...this.frozen];
    return out;
  }
}

/**
 * A permutation spec's JSON checked for structure (not yet against any model's shapes: PermutationSpec.fromJson does
 * that): an object whose "axes_to_perm" maps tensor names to arrays of permutation names or null, with optional
 * "perms" and "frozen" of the documented forms. Run it where a spec enters (a file, a library call) so that a wrong
 * document stops before any model is read.
 * @param where names the spec in messages, e.g. `spec 'spec.json'`
 * @throws BasinError spec_invalid naming the field at fault
 */
export function parseSpecJson(json: unknown, where = 'spec'): PermutationSpecJson {
  const bad = (msg: string): never => {
    throw new BasinError('spec_invalid', `${where}: ${msg}`, {});
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('expected a JSON object with "axes_to_perm"');
  const doc = json as Record<string, unknown>;
  const a2p = doc['axes_to_perm'];
  if (typeof a2p !== 'object' || a2p === null || Array.isArray(a2p)) bad('"axes_to_perm" must be an object {tensor: [perm or null per axis]}');
  for (const [t, refs] of Object.entries(a2p as object)) {
    if (!Array.isArray(refs) || refs.some((r) => r !== null && typeof r !== 'string')) {
      bad(`"axes_to_perm".${q(t)} must be an array of permutation names or null, one per axis`);
    }
  }
  const perms = doc['perms'];
  if (perms !== undefined) {
    if (typeof perms !== 'object' || perms === null || Array.isArray(perms)) bad('"perms" must be an object');
    for (const [name, info] of Object.entries(perms as object)) {
      if (typeof info !== 'object' || info === null) bad(`"perms".${q(name)} must be an object`);
      const i = info as Record<string, unknown>;
      if (i['size'] !== undefined && (!Number.isInteger(i['size']) || (i['size'] as number) < 0)) bad(`"perms".${q(name)}.size must be a non-negative integer`);
      const e = i['expand'] as Record<string, unknown> | undefined;
      if (e !== undefined && (typeof e !== 'object' || typeof e['of'] !== 'string')) bad(`"perms".${q(name)}.expand must be {of, inner}`);
      const c = i['concat'];
      if (c !== undefined && (!Array.isArray(c) || c.some((x) => typeof x !== 'string' && !Number.isInteger(x)))) bad(`"perms".${q(name)}.concat must be a list of names and sizes`);
      const h = i['heads'] as Record<string, unknown> | undefined;
      if (h !== undefined && (typeof h !== 'object' || typeof h['tie'] !== 'string')) bad(`"perms".${q(name)}.heads must be {count, tie}`);
      const r = i['recurrent'];
      if (r !== undefined && (!Array.isArray(r) || r.some((x) => typeof x !== 'string'))) bad(`"perms".${q(name)}.recurrent must be a list of tensor names`);
    }
  }
  const frozen = doc['frozen'];
  if (frozen !== undefined && !Array.isArray(frozen)) bad('"frozen" must be a list');
  for (const f of (frozen as unknown[] | undefined) ?? []) {
    const o = f as Record<string, unknown> | null;
    if (typeof o !== 'object' || o === null || typeof o['tensor'] !== 'string' || !Number.isInteger(o['axis']) || typeof o['reason'] !== 'string') {
      bad('"frozen" entries must be {tensor, axis, reason}');
    }
  }
  return doc as unknown as PermutationSpecJson;
}

function sizeError(
  where: string,
  perm: string,
  list: { tensor: string; axis: number; size: number }[],
  shapes: ReadonlyMap<string, readonly number[]>,
  declaredSize: number | undefined,
): BasinError {
  // The majority size is taken as intended; the others are the ones that disagree.
  const counts = new Map<number, number>();
  for (const u of list) counts.set(u.size, (counts.get(u.size) ?? 0) + 1);
  const majority = declaredSize ?? [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  const lines = list.map((u) => `${q(u.tensor)} axis ${u.axis}: size ${u.size}${u.size !== majority ? '   <- disagrees' : ''}`);
  let hint = '';
  const culprit = list.find((u) => u.size !== majority);
  if (culprit) {
    const shape = shapes.get(culprit.tensor)!;
    if (shape.length === 2 && shape[1 - culprit.axis] === majority) {
      hint =
        `. ${q(culprit.tensor)} has shape ${shapeStr(shape)}: its axis ${1 - culprit.axis} has size ${majority}. ` +
        'torch stores Linear weights as [out, in]: the output axis is 0 and the input axis is 1. ' +
        'A spec written for [in, out] kernels (JAX/Flax, the original Git Re-Basin code) has its axes swapped.';
    }
  }
  return new BasinError(
    'spec_size_mismatch',
    `${where}: permutation ${q(perm)} must have one size, but its axes disagree` +
      (declaredSize !== undefined ? ` (declared size ${declaredSize})` : '') +
      `: ${lines.join('; ')}${hint}`,
    { perm, tensor: culprit?.tensor, axis: culprit?.axis, uses: list, expected: majority, found: culprit?.size },
  );
}

function derivedSizeError(where: string, name: string, declared: number, derived: number, what: string): BasinError {
  return new BasinError('spec_size_mismatch', `${where}: permutation ${q(name)} has size ${declared} but ${what} gives ${derived}`, {
    perm: name,
    expected: derived,
    found: declared,
  });
}

/** The closest name by edit distance, when it is close enough to be a likely typo or renaming. */
export function suggest(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
