/**
 * The dimension graph: union-find over "dims" (value name, axis), plus virtual dims that Reshape and Slice create
 * for the factors and blocks of an axis. Linked dims must share one permutation. A dim may be frozen (must stay
 * identity) with the node and reason that forced it, and may be defined from other dims: a factor definition
 * (the axis is the row-major product of its parts: Reshape, Flatten, attention heads) or a concat definition (the
 * axis is its parts one after another: Concat, Split, Slice).
 */

export type DimId = number;

export interface FreezeReason {
  node?: string;
  reason: string;
}

export interface Note {
  tag: NoteTag;
  node: string;
}

/** What a rule saw a dim doing; used only to describe groups in reports. */
export type NoteTag = 'residual' | 'norm' | 'linear' | 'conv' | 'attention' | 'embedding' | 'batchnorm' | 'recurrent' | 'carried';

export interface FactorDef {
  kind: 'factor';
  whole: DimId;
  parts: DimId[];
  node: string;
}

export interface ConcatDef {
  kind: 'concat';
  whole: DimId;
  parts: DimId[];
  node: string;
}

export type Def = FactorDef | ConcatDef;

export class DimGraph {
  private readonly parent: number[] = [];
  readonly size: number[] = [];
  /** 'value\u0000axis' for value dims, '#n' for virtual ones. */
  readonly key: string[] = [];
  readonly value: (string | undefined)[] = [];
  readonly axis: number[] = [];
  private readonly byKey = new Map<string, DimId>();
  readonly frozen = new Map<DimId, FreezeReason>();
  readonly notes = new Map<DimId, Note[]>();
  defs: Def[] = [];

  get count(): number {
    return this.parent.length;
  }

  dim(value: string, axis: number, size: number): DimId {
    const k = `${value}\u0000${axis}`;
    const known = this.byKey.get(k);
    if (known !== undefined) return known;
    const id = this.add(k, size);
    this.value[id] = value;
    this.axis[id] = axis;
    return id;
  }

  /**
   * One node's own dim on an axis of a uniform value (uniform.ts): not linked to other nodes' dims on it and not
   * listed under the value (no weight or activation point is read there).
   */
  readerDim(value: string, axis: number, reader: string, size: number): DimId {
    const k = `${value}\u0000${axis}\u0000${reader}`;
    return this.byKey.get(k) ?? this.add(k, size);
  }

  lookup(value: string, axis: number): DimId | undefined {
    return this.byKey.get(`${value}\u0000${axis}`);
  }

  virtual(size: number): DimId {
    return this.add(`#${this.parent.length}`, size);
  }

  private add(k: string, size: number): DimId {
    const id = this.parent.length;
    this.parent.push(id);
    this.size.push(size);
    this.key.push(k);
    this.value.push(undefined);
    this.axis.push(-1);
    this.byKey.set(k, id);
    return id;
  }

  find(d: DimId): DimId {
    let r = d;
    while (this.parent[r] !== r) r = this.parent[r]!;
    let x = d;
    while (this.parent[x] !== r) {
      const next = this.parent[x]!;
      this.parent[x] = r;
      x = next;
    }
    return r;
  }

  /** Link two dims; returns true when two classes were merged. Sizes must agree (size-1 dims are never linked). */
  union(a: DimId, b: DimId): boolean {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return false;
    // the lower id stays the root: classes are named after their first dim in graph order
    if (ra < rb) this.parent[rb] = ra;
    else this.parent[ra] = rb;
    return true;
  }

  /** Freeze a dim (first reason wins). Returns true when the dim was not frozen before. */
  freeze(d: DimId, why: FreezeReason): boolean {
    if (this.frozen.has(d)) return false;
    this.frozen.set(d, why);
    return true;
  }

  note(d: DimId, note: Note): void {
    const list = this.notes.get(d);
    if (!list) this.notes.set(d, [note]);
    else if (!list.some((n) => n.tag === note.tag && n.node === note.node)) list.push(note);
  }

  /** Members of every class, by root, in id order. */
  classes(): Map<DimId, DimId[]> {
    const out = new Map<DimId, DimId[]>();
    for (let i = 0; i < this.parent.length; i++) {
      const r = this.find(i);
      const list = out.get(r);
      if (list) list.push(i);
      else out.set(r, [i]);
    }
    return out;
  }
}
