/**
 * The interpolation chart: loss and accuracy of (1 − α)·A + α·B along α for several curves (naive, aligned,
 * aligned + REPAIR, ...), with the loss barrier of each, as one standalone SVG document.
 *
 * Layout (1000 units wide; the height follows the legend): a centered title and optional subtitle; two panels
 * side by side, "Test loss" (cross-entropy, nats) and "Test accuracy" (%), sharing the α axis with the end-point
 * labels (model A, model B) under it; a legend under both panels so it never covers data. Each curve keeps one
 * color (Okabe–Ito, colorblind-safe), one marker and one dash style in both panels. On the loss panel every curve
 * also gets its chord (the straight line between its end points, faint and dotted) and a bracket at the α where
 * the curve rises furthest above that chord, i.e. its barrier; the legend prints the barrier in nats.
 *
 * Everything is computed from the input alone: no fonts are loaded (text widths are estimated from DejaVu Sans
 * metrics, the widest of the fonts in the font stack), so the same input always gives the same bytes.
 */
import { BasinError } from '../errors.js';
import { barrierOf, checkAlphas, checkSeries } from '../eval/barrier.js';

/** One curve of the chart: values at each α of the chart's `alphas`. */
export interface InterpolationCurve {
  /** Shown in the legend, e.g. "naive", "aligned (weight matching)". */
  name: string;
  /** Cross-entropy loss in nats at each α. */
  loss: readonly number[];
  /**
   * Accuracy at each α as a fraction in [0, 1] (drawn as %). Leave it empty in every curve for a loss-only chart
   * (one panel).
   */
  accuracy: readonly number[];
  /** The barrier printed in the legend, in nats (usually `barrierOf(alphas, loss).barrier`). */
  barrier: number;
}

export interface InterpolationChartInput {
  title: string;
  subtitle?: string;
  /** Interpolation coefficients, strictly increasing (usually 0 … 1; α = 0 is model A, α = 1 is model B). */
  alphas: readonly number[];
  curves: readonly InterpolationCurve[];
  /** Title of the α axis; default "interpolation coefficient α". */
  xLabel?: string;
  /** Labels written under α = 0 and α = 1; default ["A", "B"]. */
  endpointLabels?: readonly [string, string];
  /** Unit of the loss and barriers: 'nats' (default, per sample) or 'nats/token' (language models). */
  lossUnit?: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

function validate(input: InterpolationChartInput): { hasAccuracy: boolean } {
  if (input === null || typeof input !== 'object') throw bad('chart input must be an object', { found: input });
  if (typeof input.title !== 'string') throw bad('chart title must be a string', { found: typeof input.title });
  checkAlphas(input.alphas, 'alphas');
  const n = input.alphas.length;
  if (!Array.isArray(input.curves) || input.curves.length === 0) {
    throw bad('the chart needs at least one curve', { found: Array.isArray(input.curves) ? 0 : typeof input.curves });
  }
  const withAccuracy = input.curves.filter((c) => Array.isArray(c?.accuracy) && c.accuracy.length > 0).length;
  if (withAccuracy !== 0 && withAccuracy !== input.curves.length) {
    throw bad(
      `${withAccuracy} of ${input.curves.length} curves have accuracy values; give accuracy for every curve or for none (a loss-only chart)`,
      { expected: [0, input.curves.length], found: withAccuracy },
    );
  }
  input.curves.forEach((c, i) => {
    if (c === null || typeof c !== 'object') throw bad(`curves[${i}] must be an object`, { index: i });
    if (typeof c.name !== 'string') throw bad(`curves[${i}].name must be a string`, { index: i, found: typeof c.name });
    const d = { curve: c.name, index: i };
    checkSeries(c.loss, n, `curve '${c.name}' loss`, d);
    if (withAccuracy) {
      checkSeries(c.accuracy, n, `curve '${c.name}' accuracy`, d, [0, 1, 'accuracy is a fraction in [0, 1]; divide percentages by 100']);
    }
    if (typeof c.barrier !== 'number' || !Number.isFinite(c.barrier)) {
      throw bad(`curve '${c.name}' barrier is ${String(c.barrier)}; it must be a finite number of nats`, { ...d, found: c.barrier });
    }
  });
  if (input.endpointLabels !== undefined) {
    const e = input.endpointLabels;
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'string') {
      throw bad('endpointLabels must be two strings, e.g. ["A", "B"]', { found: e });
    }
  }
  return { hasAccuracy: withAccuracy > 0 };
}

function bad(message: string, details: Record<string, unknown> = {}): BasinError {
  return new BasinError('invalid_argument', message, details);
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers: escaping, number formatting, text widths, nice ticks

/** Escape text for XML character data and attribute values. */
export function escapeXml(s: string): string {
  // Characters XML 1.0 forbids outright (control codes other than tab, newline, carriage return) are dropped.
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '').replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;',
  );
}

/** A coordinate with at most 2 decimals, never "-0". */
function f(v: number): string {
  const r = Math.round(v * 100) / 100;
  return Object.is(r, -0) ? '0' : String(r);
}

/** The barrier as the legend prints it: 2 decimals from 1 nat up, else 3 (0.031), 1 decimal from 10 up. */
export function formatBarrier(b: number): string {
  const a = Math.abs(b);
  return b.toFixed(a >= 9.995 ? 1 : a >= 0.9995 ? 2 : 3);
}

/** Approximate advance widths in em (DejaVu Sans, the widest font of the stack, so estimates err on the safe side). */
function charWidth(c: string): number {
  if ('il.,:;!|\'`'.includes(c)) return 0.3;
  if ('fjtrI()[]{}-J'.includes(c)) return 0.4;
  if (c === ' ') return 0.32;
  if ('mwMW%—'.includes(c)) return 0.98;
  if ('+=<>~×'.includes(c)) return 0.84;
  if (c >= '0' && c <= '9') return 0.64;
  if (c >= 'a' && c <= 'z') return 0.62;
  if (c >= 'A' && c <= 'Z') return 0.74;
  return 0.7;
}

/** Estimated width of `text` at `size` px. */
export function textWidth(text: string, size: number, bold = false): number {
  let w = 0;
  for (const c of text) w += charWidth(c);
  return w * size * (bold ? 1.1 : 1);
}

function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

interface Scale {
  /** Axis limits (data units). */
  lo: number;
  hi: number;
  ticks: number[];
  /** The tick labels. */
  labels: string[];
}

/** Decimals needed to write multiples of `step` exactly (0.25 → 2, 5 → 0). */
function decimalsOf(step: number): number {
  for (let d = 0; d <= 12; d++) {
    const s = step * 10 ** d;
    if (Math.abs(s - Math.round(s)) < 1e-6 * Math.max(1, s)) return d;
  }
  return 12;
}

/** The 1-2-2.5-5 step whose number of intervals over `span` comes closest to `target`. */
function niceStep(span: number, target: number): number {
  const mag = 10 ** Math.floor(Math.log10(span / target));
  let best = mag;
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (Math.abs(span / (m * mag) - target) < Math.abs(span / best - target)) best = m * mag;
  }
  return best;
}

/** Smallest and largest value of several series (a loop: spreading a long array into Math.min overflows the stack). */
function rangeOf(series: readonly (readonly number[])[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (const v of s) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return [lo, hi];
}

/** The multiples of `step` in [lo, hi]. */
function ticksIn(lo: number, hi: number, step: number): number[] {
  const ticks: number[] = [];
  const decimals = decimalsOf(step);
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9 && ticks.length < 50; k++) {
    ticks.push(decimals < 12 ? Number((k * step).toFixed(decimals)) : k * step);
  }
  return ticks;
}

/**
 * Axis limits: the data range widened to at least `minSpan` (so a flat or nearly flat curve is not blown up into
 * noise, and an all-equal series cannot divide by zero), padded by `pad` of its span on each side, and moved
 * inside `clamp` when the data are (an accuracy axis stops at 100%); ticks at the nice multiples inside.
 */
function niceScale(min: number, max: number, pad: number, clamp: [number, number], minSpan: number, target = 5): Scale {
  let lo = min;
  let hi = max;
  if (hi - lo < minSpan) {
    const c = (lo + hi) / 2;
    lo = c - minSpan / 2;
    hi = c + minSpan / 2;
  }
  const p = (hi - lo) * pad;
  lo -= p;
  hi += p;
  if (lo < clamp[0] && min >= clamp[0]) {
    hi += clamp[0] - lo;
    lo = clamp[0];
  }
  if (hi > clamp[1] && max <= clamp[1]) {
    lo = Math.max(min >= clamp[0] ? clamp[0] : -Infinity, lo - (hi - clamp[1]));
    hi = clamp[1];
  }
  const step = niceStep(hi - lo, target);
  const ticks = ticksIn(lo, hi, step);
  return { lo, hi, ticks, labels: tickLabels(ticks, step) };
}

/**
 * Labels for ticks `step` apart: fixed decimals, just enough to tell neighbours apart (at least `minDecimals`),
 * or mantissa-exponent ("1.2e6") when that would need more than 4 decimals or the values reach 10⁵. Negative
 * values use the minus sign (−).
 */
function tickLabels(ticks: readonly number[], step: number, minDecimals = 0): string[] {
  let maxAbs = 0;
  for (const t of ticks) maxAbs = Math.max(maxAbs, Math.abs(t));
  const decimals = Math.max(minDecimals, decimalsOf(step));
  const exponent = maxAbs >= 1e5 || decimals > 4;
  // Mantissa digits: enough for the step at the scale of the largest tick (2.5e5 at 1e6 → 1.25e6).
  const p = exponent ? Math.min(6, decimalsOf(step / 10 ** Math.floor(Math.log10(maxAbs)))) : 0;
  return ticks.map((v) => {
    if (Math.abs(v) < step * 1e-6) return exponent ? '0' : (0).toFixed(decimals);
    const s = exponent ? v.toExponential(p).replace('e+', 'e') : v.toFixed(decimals);
    return s.replace('-', '−');
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Styles

/** Okabe–Ito, reordered for a white background (vermillion and blue first; yellow last, it is faint on white). */
const PALETTE = ['#D55E00', '#0072B2', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];
/** Curve dash patterns; none of them is the thin dotted pattern of the chords. */
const DASHES = ['', '9 4', '10 3 2.5 3', '4.5 3', '16 4 4 4', '2.5 2.5'];
const MARKERS = ['circle', 'square', 'triangle', 'diamond', 'triangle-down', 'hexagon'] as const;
type Marker = (typeof MARKERS)[number];

const CHORD_DASH = '1.5 3.5';
const INK = '#222222';
const MUTED = '#555555';
const GRID = '#e5e5e5';

interface Style {
  color: string;
  dash: string;
  marker: Marker;
}

function styleOf(i: number): Style {
  return { color: PALETTE[i % PALETTE.length]!, dash: DASHES[i % DASHES.length]!, marker: MARKERS[i % MARKERS.length]! };
}

function markerSvg(m: Marker, x: number, y: number, color: string, r = 4.2): string {
  const paint = `fill="${color}" stroke="#ffffff" stroke-width="1"`;
  const poly = (pts: [number, number][]) => `<polygon points="${pts.map(([px, py]) => `${f(x + px)},${f(y + py)}`).join(' ')}" ${paint}/>`;
  switch (m) {
    case 'circle':
      return `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r)}" ${paint}/>`;
    case 'square': {
      const s = r * 0.9;
      return `<rect x="${f(x - s)}" y="${f(y - s)}" width="${f(2 * s)}" height="${f(2 * s)}" ${paint}/>`;
    }
    case 'triangle':
      return poly([[0, -r * 1.2], [r * 1.1, r * 0.75], [-r * 1.1, r * 0.75]]);
    case 'triangle-down':
      return poly([[0, r * 1.2], [r * 1.1, -r * 0.75], [-r * 1.1, -r * 0.75]]);
    case 'diamond':
      return poly([[0, -r * 1.3], [r * 1.05, 0], [0, r * 1.3], [-r * 1.05, 0]]);
    case 'hexagon': {
      const pts: [number, number][] = [];
      for (let k = 0; k < 6; k++) pts.push([r * 1.05 * Math.cos((Math.PI / 3) * k), r * 1.05 * Math.sin((Math.PI / 3) * k)]);
      return poly(pts);
    }
  }
}

function text(
  x: number,
  y: number,
  s: string,
  size: number,
  opts: { anchor?: 'start' | 'middle' | 'end'; bold?: boolean; fill?: string; rotate?: boolean; halo?: boolean; cls?: string } = {},
): string {
  const attrs = [`x="${f(x)}"`, `y="${f(y)}"`, `font-size="${f(size)}"`];
  if (opts.anchor && opts.anchor !== 'start') attrs.push(`text-anchor="${opts.anchor}"`);
  if (opts.bold) attrs.push('font-weight="bold"');
  attrs.push(`fill="${opts.fill ?? INK}"`);
  if (opts.halo) attrs.push('stroke="#ffffff" stroke-width="3.5" stroke-linejoin="round" paint-order="stroke"');
  if (opts.rotate) attrs.push(`transform="rotate(-90 ${f(x)} ${f(y)})"`);
  if (opts.cls) attrs.push(`class="${opts.cls}"`);
  return `<text ${attrs.join(' ')}>${escapeXml(s)}</text>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Placing barrier labels

interface Bracket {
  /** Curve index. */
  i: number;
  x: number;
  /** Top (the curve) and bottom (the chord) in pixels. */
  y0: number;
  y1: number;
}

/** Pixel rectangle: left, top, right, bottom. */
type Box = [number, number, number, number];

/** Does the segment (x0,y0)–(x1,y1) touch the box? (Liang–Barsky clipping.) */
function segmentHitsBox(x0: number, y0: number, x1: number, y1: number, [l, t, r, b]: Box): boolean {
  let u0 = 0;
  let u1 = 1;
  const dx = x1 - x0;
  const dy = y1 - y0;
  const edges: [number, number][] = [
    [-dx, x0 - l],
    [dx, r - x0],
    [-dy, y0 - t],
    [dy, b - y0],
  ];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return false;
    } else {
      const u = q / p;
      if (p < 0) u0 = Math.max(u0, u);
      else u1 = Math.min(u1, u);
      if (u0 > u1) return false;
    }
  }
  return true;
}

const overlaps = (a: Box, b: Box) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];

/**
 * A spot beside the bracket for its label: right of it, then left, at the middle of the bracket, then a little
 * higher or lower, and last above it; inside the plot area and clear (with a 2 px margin) of every segment and
 * placed label.
 */
function labelSpot(
  b: Bracket,
  width: number,
  size: number,
  area: PanelGeometry,
  segments: readonly [number, number, number, number][],
  boxes: readonly Box[],
): { x: number; baseline: number; anchor: 'start' | 'middle' | 'end'; box: Box } | undefined {
  const ascent = size * 0.76;
  const descent = size * 0.24;
  for (const side of ['start', 'end'] as const) {
    for (const t of [0.5, 0.38, 0.62, 0.26, 0.74]) {
      const mid = b.y0 + (b.y1 - b.y0) * t;
      const baseline = mid + size * 0.36;
      const x = side === 'start' ? b.x + 7 : b.x - 7;
      const box: Box = side === 'start' ? [x - 2, baseline - ascent - 2, x + width + 2, baseline + descent + 2] : [x - width - 2, baseline - ascent - 2, x + 2, baseline + descent + 2];
      if (box[0] < area.x || box[2] > area.x + area.w || box[1] < area.y || box[3] > area.y + area.h) continue;
      if (segments.some(([x0, y0, x1, y1]) => segmentHitsBox(x0, y0, x1, y1, box))) continue;
      if (boxes.some((o) => overlaps(o, box))) continue;
      return { x, baseline, anchor: side, box };
    }
  }
  // Last, above the top of the bracket (the curve's highest point over its chord).
  const baseline = b.y0 - 9;
  const box: Box = [b.x - width / 2 - 2, baseline - ascent - 2, b.x + width / 2 + 2, baseline + descent + 2];
  const inside = box[0] >= area.x && box[2] <= area.x + area.w && box[1] >= area.y;
  if (inside && !segments.some(([x0, y0, x1, y1]) => segmentHitsBox(x0, y0, x1, y1, box)) && !boxes.some((o) => overlaps(o, box))) {
    return { x: b.x, baseline, anchor: 'middle', box };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The chart

const WIDTH = 1000;
const PLOT_H = 310;
const TICK_FONT = 12.5;
const LABEL_FONT = 14;
const LEGEND_FONT = 14;

interface PanelGeometry {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface PanelSpec {
  key: 'loss' | 'accuracy';
  title: string;
  yLabel: string;
  series: number[][];
  scale: Scale;
}

/**
 * Render the interpolation chart as a standalone SVG document (UTF-8, 1000 units wide, white background, no
 * external resources). Throws `invalid_argument` for empty or non-finite input, α not strictly increasing, series
 * whose length differs from `alphas`, or accuracy outside [0, 1].
 */
export function interpolationChart(input: InterpolationChartInput): string {
  const { hasAccuracy } = validate(input);
  const alphas = [...input.alphas];
  const n = alphas.length;
  const curves = input.curves;
  const [labelA, labelB] = input.endpointLabels ?? ['A', 'B'];
  const xLabel = input.xLabel ?? 'interpolation coefficient α';

  // Header.
  const out: string[] = [];
  let titleSize = 20;
  const titleW = textWidth(input.title, titleSize, true);
  if (titleW > WIDTH - 40) titleSize = Math.max(11, (titleSize * (WIDTH - 40)) / titleW);
  let top = 36;
  const header: string[] = [];
  if (input.title) {
    header.push(text(WIDTH / 2, top, input.title, titleSize, { anchor: 'middle', bold: true, cls: 'title' }));
  } else {
    top = 10;
  }
  if (input.subtitle) {
    top += 22;
    let subSize = 14;
    const subW = textWidth(input.subtitle, subSize);
    if (subW > WIDTH - 40) subSize = Math.max(10, (subSize * (WIDTH - 40)) / subW);
    header.push(text(WIDTH / 2, top, input.subtitle, subSize, { anchor: 'middle', fill: MUTED, cls: 'subtitle' }));
  }
  const plotTop = top + 44;

  // Panels.
  const marginL = 82;
  const marginR = 26;
  const gap = 92;
  const panelCount = hasAccuracy ? 2 : 1;
  const pw = (WIDTH - marginL - marginR - gap * (panelCount - 1)) / panelCount;
  const geometry: PanelGeometry[] = [];
  for (let p = 0; p < panelCount; p++) geometry.push({ x: marginL + p * (pw + gap), y: plotTop, w: pw, h: PLOT_H });

  const lossRange = rangeOf(curves.map((c) => c.loss));
  const panels: PanelSpec[] = [
    {
      key: 'loss',
      title: 'Test loss',
      yLabel: `cross-entropy (${input.lossUnit ?? 'nats'})`,
      series: curves.map((c) => [...c.loss]),
      scale: niceScale(lossRange[0], lossRange[1], 0.06, [0, Infinity], Math.max(1e-3, 0.02 * Math.max(Math.abs(lossRange[0]), Math.abs(lossRange[1])))),
    },
  ];
  if (hasAccuracy) {
    const accRange = rangeOf(curves.map((c) => c.accuracy));
    panels.push({
      key: 'accuracy',
      title: 'Test accuracy',
      yLabel: 'accuracy (%)',
      series: curves.map((c) => c.accuracy.map((a) => a * 100)),
      scale: niceScale(accRange[0] * 100, accRange[1] * 100, 0.06, [0, 100], 2),
    });
  }

  // The α axis: padded 3% on each side so end-point markers do not sit on the axis lines.
  const aSpan = alphas[n - 1]! - alphas[0]!;
  const xLo = alphas[0]! - aSpan * 0.03;
  const xHi = alphas[n - 1]! + aSpan * 0.03;
  const xStep = niceStep(xHi - xLo, 5);
  const xTicks = ticksIn(xLo, xHi, xStep);
  const xLabels = tickLabels(xTicks, xStep, 1);

  const styles = curves.map((_, i) => styleOf(i));
  // About a dozen markers per curve at most: enough to tell curves apart, few enough not to hide the lines.
  const markerEvery = n <= 13 ? 1 : Math.ceil((n - 1) / 10);
  const barriers = curves.map((c) => barrierOf(alphas, c.loss));

  const body: string[] = [];
  let axisBottom = plotTop + PLOT_H + 42;
  panels.forEach((panel, p) => {
    const g = geometry[p]!;
    const { scale } = panel;
    const X = (a: number) => g.x + ((a - xLo) / (xHi - xLo)) * g.w;
    const Y = (v: number) => g.y + g.h - ((v - scale.lo) / (scale.hi - scale.lo)) * g.h;
    const bottom = g.y + g.h;
    const right = g.x + g.w;
    body.push(`<g class="panel" data-panel="${panel.key}">`);
    body.push(`<rect class="plot-area" x="${f(g.x)}" y="${f(g.y)}" width="${f(g.w)}" height="${f(g.h)}" fill="#ffffff"/>`);
    body.push(text(g.x + g.w / 2, g.y - 14, panel.title, 15.5, { anchor: 'middle', bold: true, cls: 'panel-title' }));

    // Grid and ticks.
    const grid: string[] = [];
    const ticks: string[] = [];
    let tickW = 0;
    scale.ticks.forEach((t, k) => {
      const y = Y(t);
      grid.push(`M${f(g.x)},${f(y)}H${f(right)}`);
      ticks.push(`M${f(g.x - 5)},${f(y)}H${f(g.x)}`);
      body.push(text(g.x - 9, y + TICK_FONT * 0.36, scale.labels[k]!, TICK_FONT, { anchor: 'end', fill: MUTED }));
      tickW = Math.max(tickW, textWidth(scale.labels[k]!, TICK_FONT));
    });
    xTicks.forEach((t, k) => {
      const x = X(t);
      grid.push(`M${f(x)},${f(g.y)}V${f(bottom)}`);
      ticks.push(`M${f(x)},${f(bottom)}V${f(bottom + 5)}`);
      body.push(text(x, bottom + 20, xLabels[k]!, TICK_FONT, { anchor: 'middle', fill: MUTED }));
    });
    body.push(`<path class="grid" d="${grid.join('')}" stroke="${GRID}" stroke-width="1" fill="none"/>`);
    body.push(`<path d="M${f(g.x)},${f(g.y)}V${f(bottom)}H${f(right)}${ticks.join('')}" stroke="#444444" stroke-width="1.2" fill="none"/>`);

    // Axis titles and end-point labels.
    // The y title clears the widest tick label (its glyphs hang about 11 px left of its rotated baseline).
    const yTitleX = Math.max(14, Math.min(g.x - 58, g.x - 9 - tickW - 8));
    body.push(text(yTitleX, g.y + g.h / 2, panel.yLabel, LABEL_FONT, { anchor: 'middle', rotate: true, fill: INK }));
    const endY = bottom + 42;
    const xTitleW = textWidth(xLabel, LABEL_FONT);
    const ends: [number, string][] = [
      [0, labelA],
      [1, labelB],
    ];
    let xTitleY = endY;
    for (const [a, label] of ends) {
      if (a < alphas[0]! || a > alphas[n - 1]! || !label) continue;
      const w = textWidth(label, LABEL_FONT, true);
      // Centered under its α, but kept inside the figure.
      const x = Math.min(Math.max(X(a), w / 2 + 6), WIDTH - w / 2 - 6);
      // The x title sits between the end-point labels on the same row unless they would touch it.
      if (Math.abs(x - (g.x + g.w / 2)) < w / 2 + xTitleW / 2 + 12) xTitleY = endY + 20;
      body.push(text(x, endY, label, LABEL_FONT, { anchor: 'middle', bold: true, cls: 'endpoint' }));
    }
    axisBottom = Math.max(axisBottom, xTitleY);
    body.push(text(g.x + g.w / 2, xTitleY, xLabel, LABEL_FONT, { anchor: 'middle', fill: INK }));

    // Loss panel: chords and barrier brackets under the curves.
    const labels: string[] = [];
    if (panel.key === 'loss') {
      const brackets: Bracket[] = [];
      curves.forEach((c, i) => {
        const st = styles[i]!;
        const l0 = c.loss[0]!;
        const l1 = c.loss[n - 1]!;
        body.push(
          `<line class="chord" x1="${f(X(alphas[0]!))}" y1="${f(Y(l0))}" x2="${f(X(alphas[n - 1]!))}" y2="${f(Y(l1))}" stroke="${st.color}" stroke-width="1.3" stroke-opacity="0.75" stroke-dasharray="${CHORD_DASH}" stroke-linecap="round"/>`,
        );
        const b = barriers[i]!;
        const t = (b.alpha - alphas[0]!) / (alphas[n - 1]! - alphas[0]!);
        const yChord = Y((1 - t) * l0 + t * l1);
        const yCurve = Y(c.loss[b.index]!);
        if (yChord - yCurve < 1) return; // no barrier to show
        let x = X(b.alpha);
        // Brackets of different curves at the same α would hide each other: step aside by 6 px.
        while (brackets.some((q) => Math.abs(q.x - x) < 5 && q.y0 <= yChord + 1 && yCurve <= q.y1 + 1)) x += 6;
        body.push(
          `<path class="barrier" data-curve="${i}" d="M${f(x - 4)},${f(yCurve)}H${f(x + 4)}M${f(x)},${f(yCurve)}V${f(yChord)}M${f(x - 4)},${f(yChord)}H${f(x + 4)}" stroke="${st.color}" stroke-width="1.5" fill="none"/>`,
        );
        brackets.push({ i, x, y0: yCurve, y1: yChord });
      });
      // Label the tall brackets with their value where the label touches no curve, bracket or other label;
      // where no spot is free the legend alone carries the number.
      const segments: [number, number, number, number][] = [];
      for (const c of curves) {
        for (let k = 1; k < n; k++) segments.push([X(alphas[k - 1]!), Y(c.loss[k - 1]!), X(alphas[k]!), Y(c.loss[k]!)]);
      }
      for (const b of brackets) segments.push([b.x, b.y0, b.x, b.y1]);
      const boxes: Box[] = [];
      for (const b of brackets) {
        if (b.y1 - b.y0 < 34) continue;
        const label = `barrier ${formatBarrier(curves[b.i]!.barrier)}`;
        const lw = textWidth(label, 12.5, true);
        const spot = labelSpot(b, lw, 12.5, g, segments, boxes);
        if (!spot) continue;
        boxes.push(spot.box);
        labels.push(
          text(spot.x, spot.baseline, label, 12.5, {
            anchor: spot.anchor,
            bold: true,
            fill: styles[b.i]!.color,
            halo: true,
            cls: 'barrier-label',
          }),
        );
      }
    }

    // Curves and markers.
    panel.series.forEach((vals, i) => {
      const st = styles[i]!;
      const d = vals.map((v, k) => `${k === 0 ? 'M' : 'L'}${f(X(alphas[k]!))},${f(Y(v))}`).join('');
      const dash = st.dash ? ` stroke-dasharray="${st.dash}"` : '';
      body.push(
        `<path class="curve" data-curve="${i}" d="${d}" fill="none" stroke="${st.color}" stroke-width="2.4" stroke-linejoin="round" stroke-linecap="round"${dash}/>`,
      );
      const marks: string[] = [];
      vals.forEach((v, k) => {
        if (k % markerEvery === 0 || k === n - 1) marks.push(markerSvg(st.marker, X(alphas[k]!), Y(v), st.color));
      });
      body.push(`<g class="markers" data-curve="${i}">${marks.join('')}</g>`);
    });
    body.push(...labels);
    body.push('</g>');
  });

  // Legend under the panels: one entry per curve, then a muted key for the chord and the barrier bracket.
  const legendTop = axisBottom + 40;
  interface Entry {
    width: number;
    draw: (x: number, y: number) => string;
  }
  const sample = 40;
  const entries: Entry[] = curves.map((c, i) => {
    const st = styles[i]!;
    const label = `${truncate(c.name, 48)} — barrier ${formatBarrier(c.barrier)} ${input.lossUnit ?? 'nats'}`;
    return {
      width: sample + 8 + textWidth(label, LEGEND_FONT),
      draw: (x, y) =>
        `<g class="legend-entry" data-curve="${i}"><line x1="${f(x)}" y1="${f(y)}" x2="${f(x + sample)}" y2="${f(y)}" stroke="${st.color}" stroke-width="2.4" stroke-linecap="round"${st.dash ? ` stroke-dasharray="${st.dash}"` : ''}/>` +
        markerSvg(st.marker, x + sample / 2, y, st.color) +
        text(x + sample + 8, y + LEGEND_FONT * 0.36, label, LEGEND_FONT, { fill: INK }) +
        '</g>',
    };
  });
  const keyFont = 12.5;
  const chordLabel = 'chord between end points';
  const bracketLabel = 'barrier = max gap between curve and chord';
  const key: Entry[] = [
    {
      width: 30 + 7 + textWidth(chordLabel, keyFont),
      draw: (x, y) =>
        `<line x1="${f(x)}" y1="${f(y)}" x2="${f(x + 30)}" y2="${f(y)}" stroke="${MUTED}" stroke-width="1.3" stroke-dasharray="${CHORD_DASH}" stroke-linecap="round"/>` +
        text(x + 37, y + keyFont * 0.36, chordLabel, keyFont, { fill: MUTED }),
    },
    {
      width: 10 + 7 + textWidth(bracketLabel, keyFont),
      draw: (x, y) =>
        `<path d="M${f(x + 1)},${f(y - 7)}H${f(x + 9)}M${f(x + 5)},${f(y - 7)}V${f(y + 7)}M${f(x + 1)},${f(y + 7)}H${f(x + 9)}" stroke="${MUTED}" stroke-width="1.5" fill="none"/>` +
        text(x + 17, y + keyFont * 0.36, bracketLabel, keyFont, { fill: MUTED }),
    },
  ];
  const legend: string[] = ['<g class="legend">'];
  let y = legendTop;
  const maxRow = WIDTH - 60;
  const packRows = (list: Entry[], spacing: number): Entry[][] => {
    const rows: Entry[][] = [];
    let row: Entry[] = [];
    let w = 0;
    for (const e of list) {
      if (row.length > 0 && w + spacing + e.width > maxRow) {
        rows.push(row);
        row = [];
        w = 0;
      }
      w += (row.length ? spacing : 0) + e.width;
      row.push(e);
    }
    if (row.length) rows.push(row);
    return rows;
  };
  const drawRows = (rows: Entry[][], spacing: number, rowH: number) => {
    for (const row of rows) {
      const w = row.reduce((s, e) => s + e.width, 0) + spacing * (row.length - 1);
      let x = (WIDTH - w) / 2;
      for (const e of row) {
        legend.push(e.draw(x, y));
        x += e.width + spacing;
      }
      y += rowH;
    }
  };
  drawRows(packRows(entries, 34), 34, 26);
  y += 2;
  drawRows(packRows(key, 30), 30, 22);
  legend.push('</g>');
  const height = Math.ceil(y + 4);

  const desc = curves.map((c) => `${c.name}: barrier ${formatBarrier(c.barrier)} ${input.lossUnit ?? 'nats'}`).join('; ');
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif">`,
  );
  out.push(`<title>${escapeXml(input.title)}</title>`);
  out.push(`<desc>${escapeXml(desc)}</desc>`);
  out.push(`<rect class="background" x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  out.push(...header, ...body, ...legend);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
