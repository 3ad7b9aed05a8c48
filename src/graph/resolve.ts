/**
 * From the raw dimension graph to one permutation expression per class:
 *
 * 1. normalize: every class keeps at most one definition. Two factor definitions of one class (the same axis
 *    reshaped two ways) are refined to their common atoms; two concat definitions to their common blocks.
 *    Definitions that cannot be reconciled freeze the class.
 * 2. propagate freezes: a frozen whole freezes its parts; a whole whose parts are all frozen is frozen.
 * 3. heads: a factor definition with two adjacent free atoms (H, d) is an attention-head axis. It is valid only
 *    when the within-head class d never appears without its heads class H (every value carrying d also carries H,
 *    and no weight axis is H or d alone); then each head may have its own within-head permutation. When that
 *    does not hold, H is frozen (all heads share one within-head permutation) and everything is redone.
 * 4. expressions: base (a free class), heads (H, d), expand (a class followed by frozen inner factors), concat
 *    (blocks; a frozen block is a fixed number of positions; frozen outer factors repeat a block).
 */
import type { Def, DimGraph, DimId, FreezeReason } from './dims.js';

export type Expr =
  | { kind: 'frozen' }
  | { kind: 'base'; root: DimId; size: number }
  /** d = -1: the heads axis alone (one position per head). */
  | { kind: 'heads'; h: DimId; d: DimId; count: number; size: number }
  | { kind: 'expand'; of: Expr; inner: number; size: number }
  | { kind: 'concat'; parts: (Expr | number)[]; size: number };

const FROZEN: Expr = { kind: 'frozen' };

export function exprKey(e: Expr | number): string {
  if (typeof e === 'number') return `${e}`;
  switch (e.kind) {
    case 'frozen':
      return 'F';
    case 'base':
      return `b${e.root}`;
    case 'heads':
      return `h${e.h}:${e.d}`;
    case 'expand':
      return `e(${exprKey(e.of)})*${e.inner}`;
    case 'concat':
      return `c[${e.parts.map(exprKey).join(',')}]`;
  }
}

function sizeOf(e: Expr | number): number {
  return typeof e === 'number' ? e : e.kind === 'frozen' ? 0 : e.size;
}

function expandE(e: Expr, inner: number): Expr {
  if (inner === 1 || e.kind === 'frozen') return e;
  return { kind: 'expand', of: e, inner, size: e.size * inner };
}

function concatE(parts: (Expr | number)[]): Expr {
  const merged: (Expr | number)[] = [];
  for (const p of parts) {
    const last = merged[merged.length - 1];
    if (typeof p === 'number' && typeof last === 'number') merged[merged.length - 1] = last + p;
    else if (p !== 0) merged.push(p);
  }
  if (merged.every((p) => typeof p === 'number')) return FROZEN;
  if (merged.length === 1) return merged[0] as Expr;
  return { kind: 'concat', parts: merged, size: merged.reduce<number>((a, p) => a + sizeOf(p), 0) };
}

function repeatE(e: Expr, outer: number, wholeSize: number): Expr {
  if (outer === 1 || e.kind === 'frozen') return e;
  void wholeSize;
  return concatE(Array.from({ length: outer }, () => e));
}

class HeadsViolation extends Error {
  constructor(
    readonly heads: DimId,
    readonly why: string,
  ) {
    super(why);
  }
}

export class Resolver {
  /** One definition per non-frozen class (after normalization), by root. */
  readonly canon = new Map<DimId, Def>();
  /** within-head class root -> heads class root */
  readonly pairs = new Map<DimId, DimId>();
  private readonly heads = new Set<DimId>();
  private frozenRoots = new Map<DimId, FreezeReason>();

  constructor(readonly dg: DimGraph) {}

  run(weightDims: readonly DimId[], valueDims: ReadonlyMap<string, DimId[]>): void {
    for (let round = 0; round < 1000; round++) {
      let guard = 0;
      while (this.normalizeOnce() || this.propagateOnce()) {
        if (++guard > 10000) throw new Error('permutation inference did not converge');
      }
      if (!this.headsCheck(weightDims, valueDims)) return;
    }
    throw new Error('permutation inference did not converge');
  }

  find(d: DimId): DimId {
    return this.dg.find(d);
  }

  isFrozen(d: DimId): boolean {
    return this.dg.size[d]! <= 1 || this.frozenRoots.has(this.find(d));
  }

  /** Why a class is frozen: the first freeze recorded by a node, else the first recorded at all. */
  reason(d: DimId): FreezeReason | undefined {
    return this.frozenRoots.get(this.find(d));
  }

  private computeFrozen(): void {
    const withNode = new Map<DimId, FreezeReason>();
    const any = new Map<DimId, FreezeReason>();
    for (const [d, why] of this.dg.frozen) {
      const r = this.find(d);
      if (!any.has(r)) any.set(r, why);
      if (why.node && !withNode.has(r)) withNode.set(r, why);
    }
    this.frozenRoots = new Map([...any].map(([r, why]) => [r, withNode.get(r) ?? why]));
  }

  /** Freeze a whole class from outside (a use the spec cannot express); call run() again afterwards. */
  freeze(d: DimId, why: FreezeReason): void {
    this.freezeClass(d, why);
  }

  private freezeClass(d: DimId, why: FreezeReason): void {
    this.dg.freeze(this.find(d), why);
    const r = this.find(d);
    if (!this.frozenRoots.has(r)) this.frozenRoots.set(r, why);
  }

  private normalizeOnce(): boolean {
    const dg = this.dg;
    this.computeFrozen();
    let changed = false;
    const byRoot = new Map<DimId, Def[]>();
    for (const def of dg.defs) {
      const parts = def.parts.filter((p) => (def.kind === 'factor' ? dg.size[p]! > 1 : dg.size[p]! > 0));
      if (parts.length === 0) continue;
      if (parts.length === 1) {
        if (dg.size[parts[0]!] === dg.size[def.whole] && dg.union(def.whole, parts[0]!)) changed = true;
        continue;
      }
      const r = this.find(def.whole);
      const list = byRoot.get(r);
      const d2 = { ...def, parts };
      if (list) list.push(d2);
      else byRoot.set(r, [d2]);
    }
    const out: Def[] = [];
    this.canon.clear();
    for (const [root, defs] of byRoot) {
      const seen = new Set<string>();
      const unique = defs.filter((d) => {
        const k = `${d.kind}:${d.parts.map((p) => this.find(p)).join(',')}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      if (unique.length === 1 || this.frozenRoots.has(root)) {
        out.push(...unique);
        if (unique.length === 1) this.canon.set(root, unique[0]!);
        continue;
      }
      const kinds = new Set(unique.map((d) => d.kind));
      if (kinds.size > 1) {
        const f = unique.find((d) => d.kind === 'factor')!;
        const c = unique.find((d) => d.kind === 'concat')!;
        // several block splits (two Slices of one axis) or factorings: refine each kind to one definition first
        const byKind = (['factor', 'concat'] as const).map((k) => unique.filter((d) => d.kind === k));
        const many = byKind.find((list) => list.length > 1);
        const refinedKind = many && this.refine(root, many);
        if (refinedKind) {
          out.push(...refinedKind, ...unique.filter((d) => !many.includes(d)));
          changed = true;
          continue;
        }
        const split = unique.length === 2 ? this.splitLeading(f, c) : undefined;
        if (split) {
          out.push(...split);
          changed = true;
          continue;
        }
        this.freezeClass(root, { node: c.node, reason: `axis is split into blocks here and reshaped into factors at '${f.node}'` });
        out.push(...unique);
        changed = true;
        continue;
      }
      const refined = this.refine(root, unique);
      if (!refined) {
        const sizes = unique.map((d) => `[${d.parts.map((p) => dg.size[p]).join(', ')}]`).join(' and ');
        this.freezeClass(root, { node: unique[1]!.node, reason: `axis is reshaped two incompatible ways: ${sizes}` });
        out.push(...unique);
      } else out.push(...refined);
      changed = true;
    }
    dg.defs = out;
    return changed;
  }

  /**
   * One axis reshaped into factors [F0, F1, …] and split into blocks (a Concat feeding a channel shuffle, a grouped
   * Conv's per-group outputs reshaped): when every block is a whole number of F0 slices (its size a multiple of
   * F1·…), F0 is split into matching pieces and each block is [piece, F1, …]. Pieces of size 1 are fixed, so the
   * blocks then share the inner factors' permutation (what a shuffle across the blocks needs). Undefined otherwise.
   */
  private splitLeading(f: Def, c: Def): Def[] | undefined {
    const dg = this.dg;
    const rest = f.parts.slice(1);
    const inner = rest.reduce((a, p) => a * dg.size[p]!, 1);
    const sizes = c.parts.map((p) => dg.size[p]!);
    if (inner <= 1 || sizes.some((s) => s % inner !== 0)) return undefined;
    const pieces = sizes.map((s) => dg.virtual(s / inner));
    return [
      f,
      { kind: 'concat', whole: f.parts[0]!, parts: pieces, node: c.node },
      ...c.parts.map((b, i): Def => ({ kind: 'factor', whole: b, parts: [pieces[i]!, ...rest], node: f.node })),
    ];
  }

  /** Common refinement of several definitions of one class; undefined when they cannot be reconciled. */
  private refine(root: DimId, defs: Def[]): Def[] | undefined {
    const dg = this.dg;
    const factor = defs[0]!.kind === 'factor';
    const start = factor ? 1 : 0;
    const step = (acc: number, n: number): number => (factor ? acc * n : acc + n);
    const spans = defs.map((d) => {
      let acc = start;
      return d.parts.map((p) => {
        const lo = acc;
        acc = step(acc, dg.size[p]!);
        return { part: p, lo, hi: acc };
      });
    });
    const bounds = [...new Set([start, ...spans.flat().map((s) => s.hi)])].sort((a, b) => a - b);
    if (factor) for (let k = 1; k < bounds.length; k++) if (bounds[k]! % bounds[k - 1]! !== 0) return undefined;
    const index = new Map(bounds.map((b, k) => [b, k]));
    const reps: (DimId | undefined)[] = new Array(bounds.length - 1).fill(undefined);
    const multi: { part: DimId; lo: number; hi: number; node: string }[] = [];
    spans.forEach((list, k) => {
      for (const s of list) {
        const lo = index.get(s.lo)!;
        const hi = index.get(s.hi)!;
        if (hi - lo === 1) {
          if (reps[lo] === undefined) reps[lo] = s.part;
          else dg.union(reps[lo]!, s.part);
        } else multi.push({ part: s.part, lo, hi, node: defs[k]!.node });
      }
    });
    for (let k = 0; k < reps.length; k++) {
      if (reps[k] === undefined) reps[k] = dg.virtual(factor ? bounds[k + 1]! / bounds[k]! : bounds[k + 1]! - bounds[k]!);
    }
    const kind = defs[0]!.kind;
    const out: Def[] = multi.map((m) => ({ kind, whole: m.part, parts: reps.slice(m.lo, m.hi) as DimId[], node: m.node }));
    out.push({ kind, whole: root, parts: reps as DimId[], node: defs[0]!.node });
    return out;
  }

  private propagateOnce(): boolean {
    this.computeFrozen();
    let changed = false;
    for (const def of this.dg.defs) {
      const w = this.find(def.whole);
      const why = this.frozenRoots.get(w);
      if (why) {
        for (const p of def.parts) {
          if (!this.isFrozen(p)) {
            this.freezeClass(p, why);
            changed = true;
          }
        }
      } else if (def.parts.every((p) => this.isFrozen(p)) && this.dg.size[w]! > 1) {
        const first = def.parts.map((p) => this.reason(p)).find((r) => r);
        this.freezeClass(w, first ?? { node: def.node, reason: 'every part of this axis is frozen' });
        changed = true;
      }
    }
    return changed;
  }

  /** Find head pairs; returns true when it had to freeze something (then everything is redone). */
  private headsCheck(weightDims: readonly DimId[], valueDims: ReadonlyMap<string, DimId[]>): boolean {
    this.computeFrozen();
    this.pairs.clear();
    this.heads.clear();
    for (const [root, def] of this.canon) {
      if (def.kind !== 'factor' || this.isFrozen(root)) continue;
      const free = def.parts.map((p, i) => (this.isFrozen(p) ? -1 : i)).filter((i) => i >= 0);
      if (free.length <= 1) continue;
      if (free.length === 2 && free[1] === free[0]! + 1) {
        const h = this.find(def.parts[free[0]!]!);
        const d = this.find(def.parts[free[1]!]!);
        const prev = this.pairs.get(d);
        if (prev !== undefined && prev !== h) {
          const why = { node: def.node, reason: 'within-head axis is split under two different head axes' };
          this.freezeClass(prev, why);
          this.freezeClass(h, why);
          return true;
        }
        this.pairs.set(d, h);
        this.heads.add(h);
        continue;
      }
      this.freezeClass(root, { node: def.node, reason: `axis is reshaped into ${free.length} permuted factors, which a spec cannot express` });
      return true;
    }
    for (const [d, h] of this.pairs) {
      if (this.heads.has(d) || this.pairs.has(h)) {
        // a channel shuffle ([g, C/g] -> [C/g, g]): keep the larger factor free, the groups fixed
        const smaller = this.dg.size[d]! < this.dg.size[h]! ? d : h;
        this.freezeClass(smaller, { reason: 'head axes nest inside one another (a channel shuffle): the smaller factor stays fixed' });
        return true;
      }
    }
    if (this.pairs.size === 0) return false;
    // every value that carries a within-head class must carry its heads class too
    const memo = new Map<DimId, Set<DimId>>();
    const carried = (d: DimId): Set<DimId> => {
      const r = this.find(d);
      const known = memo.get(r);
      if (known) return known;
      const s = new Set<DimId>([r]);
      memo.set(r, s);
      const def = this.canon.get(r);
      if (def) for (const p of def.parts) for (const x of carried(p)) s.add(x);
      return s;
    };
    for (const [value, dims] of valueDims) {
      const all = new Set<DimId>();
      for (const d of dims) for (const x of carried(d)) all.add(x);
      for (const [d, h] of this.pairs) {
        if (all.has(d) && !all.has(h)) {
          this.freezeClass(h, { reason: `within-head axis reaches '${value}' without its heads axis, so all heads must share one within-head permutation` });
          return true;
        }
      }
    }
    for (const d of weightDims) {
      try {
        this.expr(d, true);
      } catch (e) {
        if (!(e instanceof HeadsViolation)) throw e;
        this.freezeClass(e.heads, { reason: e.why });
        return true;
      }
    }
    return false;
  }

  /**
   * The permutation expression of a dim's class. `strict` (weights): a heads or within-head class used alone
   * throws a HeadsViolation; otherwise (activation points) it reads as frozen.
   */
  expr(d: DimId, strict = false): Expr {
    const dg = this.dg;
    const root = this.find(d);
    if (this.isFrozen(root)) return FROZEN;
    const def = this.canon.get(root);
    if (!def) {
      const asD = this.pairs.get(root);
      // a heads axis on its own (a per-head constant: Swin's folded relative-position bias [1, heads, T, T] added to
      // the scores) moves with the whole-head map: a heads permutation with one position per head
      if (asD === undefined && this.heads.has(root)) return { kind: 'heads', h: root, d: -1, count: dg.size[root]!, size: dg.size[root]! };
      if (asD !== undefined) {
        if (!strict) return FROZEN;
        throw new HeadsViolation(asD ?? root, 'a weight axis carries a head axis or a within-head axis on its own');
      }
      return { kind: 'base', root, size: dg.size[root]! };
    }
    if (def.kind === 'concat') return concatE(def.parts.map((p) => (this.isFrozen(p) ? dg.size[p]! : this.expr(p, strict))));
    const free = def.parts.map((p, i) => (this.isFrozen(p) ? -1 : i)).filter((i) => i >= 0);
    if (free.length === 0) return FROZEN;
    const lo = free[0]!;
    const hi = free[free.length - 1]!;
    const outer = def.parts.slice(0, lo).reduce((a, p) => a * dg.size[p]!, 1);
    const inner = def.parts.slice(hi + 1).reduce((a, p) => a * dg.size[p]!, 1);
    let e: Expr;
    if (free.length === 1) e = this.expr(def.parts[lo]!, strict);
    else {
      const h = this.find(def.parts[lo]!);
      const dd = this.find(def.parts[hi]!);
      if (free.length !== 2 || hi !== lo + 1 || this.pairs.get(dd) !== h) {
        if (!strict) return FROZEN;
        throw new HeadsViolation(h, 'axis is reshaped into permuted factors that are not one head axis and one within-head axis');
      }
      e = { kind: 'heads', h, d: dd, count: dg.size[h]!, size: dg.size[h]! * dg.size[dd]! };
    }
    return repeatE(expandE(e, inner), outer, dg.size[root]!);
  }
}
