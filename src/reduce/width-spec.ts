/**
 * `--width SPEC`: the new width of each permutation group, in units.
 *   - `P_3=256,P_5=0.5`: per group, an integer width or a fraction (0, 1) of the group's current width (floored);
 *   - `0.5`: one fraction (or, for grow, a factor > 1) for every free group;
 *   - `1.5x` / `P_3=2x`: a factor times `base` (the group's width in one model, for zip; default its current width).
 * Heads groups (attention heads, `basin inspect` kind `heads NxD`) are counted in positions: the width must be a
 * multiple of the head size D (whole heads; a bare factor 0.5 on 4 heads × 16 gives 32 = 2 heads). Derived groups
 * (expand, concat) follow their base and cannot be named.
 */
import { BasinError, q } from '../errors.js';
import type { GroupReport } from '../graph/types.js';

/** Head size of a heads group (positions per head), or 1. */
export function unitSize(g: GroupReport): number {
  return g.heads ? g.size / g.heads.count : 1;
}

function parseValue(text: string, g: GroupReport, base: ReadonlyMap<string, number> | undefined, perGroup = false): number {
  const t = text.trim();
  const bad = (why: string): BasinError =>
    new BasinError('invalid_argument', `--width: group ${q(g.name)} (${g.size} units): ${q(t)} ${why}`, { option: '--width', node: g.name, found: t });
  let w: number;
  if (/^[0-9]*\.?[0-9]+x$/i.test(t)) {
    const f = Number(t.slice(0, -1));
    if (!(f > 0)) throw bad('is not a positive factor');
    w = Math.round(f * (base?.get(g.name) ?? g.size));
  } else {
    const v = Number(t);
    if (t === '' || !Number.isFinite(v) || v <= 0) throw bad('is not a positive width, fraction or factor (e.g. 256, 0.5, 1.5x)');
    if (perGroup && v > 1 && !Number.isInteger(v)) throw bad('is a fractional number of units: give a whole width (e.g. 64), a fraction in (0, 1) of the group (0.5) or a factor (1.5x)');
    if (Number.isInteger(v) && v >= 1 && !t.includes('.')) w = v;
    else if (v < 1) w = Math.floor(v * g.size);
    else w = Math.round(v * g.size);
  }
  const u = unitSize(g);
  if (w < 1) throw bad(`leaves no unit (${w})`);
  if (w % u !== 0) throw bad(`gives ${w}, not a multiple of the head size ${u} (${g.heads!.count} heads × ${u})`);
  return w;
}

/**
 * New width per group from `text` (see the header), in units (positions for heads groups). `base`: the width a
 * factor `1.5x` multiplies per group (zip: one model's width); default the group's current width. Groups not named
 * keep their width (they are left out of the map). Pure: no model is read.
 * @throws BasinError invalid_argument naming the unknown or derived group, or the group whose value is bad (not
 *   positive, no unit left, or not whole heads)
 */
export function parseWidthSpec(text: string, groups: readonly GroupReport[], base?: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  const byName = new Map(groups.map((g) => [g.name, g]));
  const free = groups.filter((g) => g.kind === 'free' || g.kind === 'heads');
  if (text.trim() === '') throw new BasinError('invalid_argument', '--width is empty: give P_3=256, a fraction 0.5, or a factor 1.5x', { option: '--width' });
  if (!text.includes('=')) {
    for (const g of free) out.set(g.name, parseValue(text, g, base));
    return out;
  }
  for (const part of text.split(/,(?![^(]*\))/)) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim();
    const g = byName.get(name);
    if (eq < 0 || !g) {
      const known = free.map((x) => x.name).join(', ');
      throw new BasinError('invalid_argument', `--width: no permutation group ${q(eq < 0 ? part.trim() : name)} (groups: ${known || 'none'}; see basin inspect)`, {
        option: '--width',
        node: name,
        found: part,
      });
    }
    if (g.kind !== 'free' && g.kind !== 'heads') {
      throw new BasinError('invalid_argument', `--width: group ${q(name)} is derived (${g.kind}) and follows ${(g.follows ?? []).map(q).join(', ')}: give their widths instead`, {
        option: '--width',
        node: name,
      });
    }
    if (out.has(name)) throw new BasinError('invalid_argument', `--width names group ${q(name)} twice`, { option: '--width', node: name });
    out.set(name, parseValue(part.slice(eq + 1), g, base, true));
  }
  return out;
}
