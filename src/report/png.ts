/**
 * Chart output: SVG to PNG through resvg, and `writeChart`, which picks the format from the file extension and
 * writes atomically.
 *
 * Fonts. resvg draws text only with fonts it can load, and on a machine without any (a slim container image) it
 * silently drops every label. So before rendering, one probe render (cached per process) asks which of the common
 * sans-serif families is installed, and that family becomes resvg's default and its `sans-serif`, so a chart whose
 * stack names none of the installed fonts still gets a sans font rather than whatever the first system font is.
 * When no font at all can be loaded, the text of the SVG is drawn with a built-in single-stroke vector font
 * (`strokeText`): plainer than a real typeface, but every label, tick and legend entry stays readable. Installing
 * a font package (Debian/Ubuntu: `apt-get install fonts-dejavu-core`) or passing `fontFiles` gives the real one.
 */
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { escapeXml } from './plot.js';

export interface PngOptions {
  /** Width of the PNG in pixels; the height keeps the SVG's aspect ratio. Default: the SVG's own width. */
  width?: number;
  /** Extra font files (TTF/OTF) to load besides the system fonts. */
  fontFiles?: string[];
  /** Extra folders to load fonts from besides the system fonts. */
  fontDirs?: string[];
  /** Load the system's fonts (default true). With false and no fontFiles/fontDirs, the built-in stroke font is used. */
  loadSystemFonts?: boolean;
}

/** Sans-serif families tried in this order for resvg's default family. */
const SANS_FAMILIES = [
  'DejaVu Sans',
  'Arial',
  'Helvetica',
  'Helvetica Neue',
  'Liberation Sans',
  'Noto Sans',
  'Roboto',
  'Open Sans',
  'Segoe UI',
  'Verdana',
  'FreeSans',
  'Ubuntu',
  'Cantarell',
  'Bitstream Vera Sans',
];

interface FontProbe {
  /** No font could be loaded: text would not be drawn. */
  none: boolean;
  /** The first installed family of SANS_FAMILIES, if any. */
  sans?: string;
}

const probes = new Map<string, FontProbe>();

type FontOptions = NonNullable<ResvgRenderOptions['font']>;

function baseFontOptions(o: PngOptions): FontOptions {
  return { loadSystemFonts: o.loadSystemFonts ?? true, fontFiles: o.fontFiles ?? [], fontDirs: o.fontDirs ?? [] };
}

/**
 * One render of a row of "Hg" per candidate family plus a reference row in a family that exists nowhere: resvg
 * falls back to its default font for unknown families, so a row that differs from the reference is an installed
 * family, and a blank reference row means there are no fonts at all.
 */
function probeFonts(font: FontOptions): FontProbe {
  const key = JSON.stringify(font);
  const known = probes.get(key);
  if (known) return known;
  const rowH = 24;
  const families = ['basin-no-such-font', ...SANS_FAMILIES];
  const rows = families
    .map((fam, i) => `<text x="2" y="${i * rowH + 18}" font-size="16" font-family="${fam}">Hgaw</text>`)
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="${families.length * rowH}">${rows}</svg>`;
  const px = new Resvg(svg, { font: { ...font, defaultFontFamily: 'basin-no-such-font' } }).render().pixels;
  const rowBytes = 64 * rowH * 4;
  const row = (i: number) => px.subarray(i * rowBytes, (i + 1) * rowBytes);
  const ref = row(0);
  let none = true;
  for (let i = 3; i < ref.length; i += 4) {
    if (ref[i]! > 0) {
      none = false;
      break;
    }
  }
  let sans: string | undefined;
  if (!none) {
    for (let k = 1; k < families.length && !sans; k++) if (!row(k).equals(ref)) sans = families[k];
  }
  const result: FontProbe = sans ? { none, sans } : { none };
  probes.set(key, result);
  return result;
}

function badSvg(e: unknown): BasinError {
  const why = e instanceof Error ? e.message : String(e);
  return new BasinError('invalid_argument', `cannot render the chart: the SVG does not parse (${why})`, { found: why });
}

/**
 * Render an SVG document to PNG bytes. Throws `invalid_argument` for a width that is not an integer in
 * [1, 16384] or an SVG resvg cannot parse.
 */
export function svgToPng(svg: string, options: PngOptions = {}): Buffer {
  const { width } = options;
  if (width !== undefined && !(Number.isInteger(width) && width >= 1 && width <= 16384)) {
    throw new BasinError('invalid_argument', `PNG width must be an integer in [1, 16384], found ${String(width)}`, {
      expected: '[1, 16384]',
      found: width,
    });
  }
  if (typeof svg !== 'string') throw new BasinError('invalid_argument', 'svgToPng needs the SVG document as a string', { found: typeof svg });
  const font = baseFontOptions(options);
  const probe = probeFonts(font);
  const source = probe.none ? strokeText(svg) : svg;
  const fontOptions: FontOptions = probe.sans ? { ...font, defaultFontFamily: probe.sans, sansSerifFamily: probe.sans } : font;
  let resvg: Resvg;
  try {
    resvg = new Resvg(source, {
      fitTo: width === undefined ? { mode: 'original' } : { mode: 'width', value: width },
      font: fontOptions,
      background: '#ffffff',
      shapeRendering: 2,
      textRendering: 1,
    });
  } catch (e) {
    throw badSvg(e);
  }
  return resvg.render().asPng();
}

/**
 * Write a chart: `.svg` writes the document as is, `.png` renders it (see `svgToPng`); the extension is matched
 * case-insensitively and anything else is `invalid_argument`. The file is replaced atomically: readers see the
 * old file or the complete new one.
 * @throws BasinError invalid_argument for a name that is neither *.svg nor *.png, or a bad width; io_error naming the path
 */
export async function writeChart(file: string, svg: string, options: PngOptions = {}): Promise<void> {
  const ext = path.extname(file).toLowerCase();
  let bytes: Uint8Array;
  if (ext === '.svg') bytes = Buffer.from(svg, 'utf8');
  else if (ext === '.png') bytes = svgToPng(svg, options);
  else {
    throw new BasinError('invalid_argument', `cannot tell the chart format of ${q(file)}: name it *.svg or *.png`, {
      file,
      expected: ['.svg', '.png'],
      found: ext || '(no extension)',
    });
  }
  await writeFileAtomic(file, [bytes]);
}

// ---------------------------------------------------------------------------------------------------------------
// The built-in stroke font, for machines without fonts.
//
// Glyphs are polylines on a grid with the baseline at y = 0, x-height 7, cap height 10 and descenders to −3.
// Strokes are separated by '|'; a stroke is a list of points "x,y" and arcs "(cx,cy,rx,ry,from,to)" (degrees,
// counterclockwise with y up; `to` < `from` runs clockwise) joined into one polyline. The number after the glyph
// is its ink width; every glyph gets 3 units of side bearing in all.

const GLYPHS: Record<string, [number, string]> = {
  ' ': [1.4, ''],
  A: [8, '0,0 4,10 8,0|1.5,3.5 6.5,3.5'],
  B: [7, '0,0 0,10 3.8,10 (3.8,7.5,2.6,2.5,90,-90) 0,5|3.8,5 (3.8,2.5,3.2,2.5,90,-90) 0,0'],
  C: [8, '(4.5,5,4.5,5,45,315)'],
  D: [7.5, '0,0 0,10 3,10 (3,5,4.5,5,90,-90) 0,0'],
  E: [6.5, '6.5,10 0,10 0,0 6.5,0|0,5 5.5,5'],
  F: [6.2, '6.2,10 0,10 0,0|0,5 5.2,5'],
  G: [8.6, '(4.5,5,4.5,5,40,360) 4.8,5'],
  H: [7, '0,0 0,10|7,0 7,10|0,5 7,5'],
  I: [0, '0,0 0,10'],
  J: [4.5, '4.5,10 4.5,2.5 (2.25,2.5,2.25,2.5,0,-180)'],
  K: [7, '0,0 0,10|7,10 0,3.5|2.4,5.6 7,0'],
  L: [6, '0,10 0,0 6,0'],
  M: [9, '0,0 0,10 4.5,2 9,10 9,0'],
  N: [7, '0,0 0,10 7,0 7,10'],
  O: [9, '(4.5,5,4.5,5,0,360)'],
  P: [6.5, '0,0 0,10 3.8,10 (3.8,7.25,2.75,2.75,90,-90) 0,4.5'],
  Q: [9, '(4.5,5,4.5,5,0,360)|5.5,2.5 9,-1'],
  R: [7, '0,0 0,10 3.8,10 (3.8,7.25,2.75,2.75,90,-90) 0,4.5|3.6,4.5 7,0'],
  S: [7, '(3.5,7.5,3.4,2.5,25,270) (3.5,2.5,3.5,2.5,90,-155)'],
  T: [8, '0,10 8,10|4,10 4,0'],
  U: [7, '0,10 0,3.5 (3.5,3.5,3.5,3.5,180,360) 7,10'],
  V: [8, '0,10 4,0 8,10'],
  W: [11, '0,10 2.75,0 5.5,10 8.25,0 11,10'],
  X: [7, '0,10 7,0|0,0 7,10'],
  Y: [8, '0,10 4,5 8,10|4,5 4,0'],
  Z: [7, '0,10 7,10 0,0 7,0'],
  a: [6, '(3,3.5,3,3.5,0,360)|6,7 6,0'],
  b: [6, '0,10 0,0|(3,3.5,3,3.5,0,360)'],
  c: [5.6, '(3.3,3.5,3.3,3.5,45,315)'],
  d: [6, '6,10 6,0|(3,3.5,3,3.5,0,360)'],
  e: [6, '0,3.5 6,3.5 (3,3.5,3,3.5,0,315)'],
  f: [4.5, '(3.7,8.3,1.7,1.7,60,180) 2,0|0,7 4.5,7'],
  g: [6, '(3,3.5,3,3.5,0,360)|6,7 6,-0.5 (3,-0.5,3,2.5,0,-160)'],
  h: [6, '0,10 0,0|0,4.5 (3,4.5,3,2.5,180,0) 6,0'],
  i: [0, '0,0 0,7|0,9.4 0,9.6'],
  j: [2, '2,7 2,-1.2 (0.2,-1.2,1.8,1.8,0,-120)|2,9.4 2,9.6'],
  k: [5.8, '0,0 0,10|5.5,7 0,2.6|2,4.3 5.8,0'],
  l: [0, '0,0 0,10'],
  m: [9, '0,0 0,7|0,4.5 (2.25,4.5,2.25,2.5,180,0) 4.5,0|4.5,4.5 (6.75,4.5,2.25,2.5,180,0) 9,0'],
  n: [6, '0,0 0,7|0,4.5 (3,4.5,3,2.5,180,0) 6,0'],
  o: [6.4, '(3.2,3.5,3.2,3.5,0,360)'],
  p: [6, '0,7 0,-3|(3,3.5,3,3.5,0,360)'],
  q: [6, '6,7 6,-3|(3,3.5,3,3.5,0,360)'],
  r: [4.2, '0,0 0,7|0,4 (3.5,4,3.5,3,180,75)'],
  s: [5.6, '(2.9,5.25,2.6,1.75,25,270) (2.9,1.75,2.8,1.75,90,-155)'],
  t: [4, '1.6,9.3 1.6,1.6 (3.3,1.6,1.7,1.6,180,300)|0,7 4,7'],
  u: [6, '0,7 0,2.5 (3,2.5,3,2.5,180,360)|6,7 6,0'],
  v: [6, '0,7 3,0 6,7'],
  w: [9, '0,7 2.25,0 4.5,7 6.75,0 9,7'],
  x: [6, '0,7 6,0|0,0 6,7'],
  y: [6, '0,7 3,0|6,7 2,-3 0.8,-3'],
  z: [6, '0,7 6,7 0,0 6,0'],
  '0': [6, '(3,5,3,5,0,360)'],
  '1': [6, '1,8 3.5,10 3.5,0'],
  '2': [6, '(3,7,3,3,160,-30) 0,0 6,0'],
  '3': [6, '(3,7.5,2.7,2.5,150,-90) (3,2.5,3,2.5,90,-150)'],
  '4': [6.5, '4.6,0 4.6,10 0,3 6.5,3'],
  '5': [6, '5.5,10 1,10 0.6,5.5 (3,3.2,3,3.2,135,-150)'],
  '6': [6, '(6,3,6,7,100,180)|(3,3,3,3,0,360)'],
  '7': [6, '0,10 6,10 2,0'],
  '8': [6, '(3,7.5,2.6,2.5,-90,270)|(3,2.5,3,2.5,90,450)'],
  '9': [6, '(3,7,3,3,0,360)|(0,7,6,7,0,-80)'],
  '.': [0, '0,0.2 0,0.6'],
  ',': [0.6, '0.6,0.6 0,-1.6'],
  ':': [0, '0,0.2 0,0.6|0,6 0,6.4'],
  ';': [0.6, '0.6,6 0.6,6.4|0.6,0.6 0,-1.6'],
  '!': [0, '0,10 0,3|0,0.2 0,0.6'],
  '?': [6, '(3,7.5,3,2.5,160,-60) 3,3.5 3,3|3,0.2 3,0.6'],
  "'": [0, '0,10 0,7'],
  '"': [2, '0,10 0,7|2,10 2,7'],
  '`': [1, '0,10 1,8.5'],
  '(': [2.3, '(4.5,4,4.5,7,120,240)'],
  ')': [2.3, '(-2.2,4,4.5,7,60,-60)'],
  '[': [2.5, '2.5,10.5 0,10.5 0,-2 2.5,-2'],
  ']': [2.5, '0,10.5 2.5,10.5 2.5,-2 0,-2'],
  '{': [3, '3,10.5 1.5,10.5 1.5,5 0,4.2 1.5,3.5 1.5,-2 3,-2'],
  '}': [3, '0,10.5 1.5,10.5 1.5,5 3,4.2 1.5,3.5 1.5,-2 0,-2'],
  '-': [3.4, '0,4 3.4,4'],
  '_': [6, '0,-1.5 6,-1.5'],
  '+': [6, '0,4.5 6,4.5|3,1.5 3,7.5'],
  '=': [6, '0,3 6,3|0,6 6,6'],
  '<': [6, '6,8 0,4.5 6,1'],
  '>': [6, '0,8 6,4.5 0,1'],
  '/': [4, '0,-1 4,10.5'],
  '\\': [4, '0,10.5 4,-1'],
  '|': [0, '0,10.5 0,-2.5'],
  '%': [7.5, '(1.6,8,1.6,2,0,360)|(5.9,2,1.6,2,0,360)|6.5,10 1,0'],
  '#': [7.5, '1.5,0 2.5,10|4.5,0 5.5,10|0,3.5 7,3.5|0.5,6.5 7.5,6.5'],
  '*': [5, '2.5,10 2.5,6|0.5,9 4.5,7|0.5,7 4.5,9'],
  '&': [7, '7,0 1.2,6.8 (2.7,8.4,1.5,1.6,220,-40) 0.8,3.2 (3,2.2,2.4,2.2,150,300) 6.5,4.5'],
  '@': [9, '6.2,6.5 5.6,2.8 (4.4,4.2,1.7,2.2,0,360)|6.2,2.4 (4.6,4.5,4.4,5.2,-30,320)'],
  $: [7, '(3.5,7.5,3.4,2.5,25,270) (3.5,2.5,3.5,2.5,90,-155)|3.5,11.5 3.5,-1.5'],
  '^': [5, '0,7 2.5,10 5,7'],
  '~': [6, '0,4 1.5,5 3,4.5 4.5,4 6,5'],
  '·': [0, '0,4.3 0,4.7'],
  '×': [5, '0,1.5 5,6.5|0,6.5 5,1.5'],
  '−': [6, '0,4.5 6,4.5'],
  '–': [6, '0,4 6,4'],
  '—': [10, '0,4 10,4'],
  '…': [5, '0,0.2 0,0.6|2.5,0.2 2.5,0.6|5,0.2 5,0.6'],
  '±': [6, '0,5 6,5|3,2 3,8|0,0 6,0'],
  '°': [3, '(1.5,8.5,1.5,1.5,0,360)'],
  'α': [7, '(3,3.5,3,3.5,25,335) 7,0|7,7 5.72,4.98'],
  'µ': [6, '0,-3 0,7|0,2.5 (3,2.5,3,2.5,180,360)|6,7 6,0'],
  'Δ': [8, '0,0 4,10 8,0 0,0'],
  '≈': [6, '0,3 1.5,4 3,3.5 4.5,3 6,4|0,6 1.5,7 3,6.5 4.5,6 6,7'],
  '≤': [6, '6,9 0,6.5 6,4|0,2 6,2'],
  '≥': [6, '0,9 6,6.5 0,4|0,2 6,2'],
  '→': [8, '0,4.5 8,4.5|5,7 8,4.5 5,2'],
  '\u00a0': [1.4, ''],
};
/** Drawn for characters the stroke font lacks. */
const MISSING: [number, string] = [6, '0,0 0,10 6,10 6,0 0,0'];
const SIDE_BEARING = 3;
/** Stroke-font units per em: cap height 10 units ≈ 0.72 em, as in common sans fonts. */
const UNITS_PER_EM = 13.9;

const compiled = new Map<string, { width: number; lines: [number, number][][] }>();

function glyph(c: string): { width: number; lines: [number, number][][] } {
  const hit = compiled.get(c);
  if (hit) return hit;
  // Accented letters fall back to their base letter (é → e) before the box for missing glyphs.
  const [width, spec] = GLYPHS[c] ?? GLYPHS[c.normalize('NFD')[0] ?? ''] ?? MISSING;
  const lines: [number, number][][] = [];
  for (const stroke of spec.split('|')) {
    if (!stroke.trim()) continue;
    const pts: [number, number][] = [];
    for (const tok of stroke.match(/\([^)]*\)|[^\s()]+/g) ?? []) {
      const nums = tok.replace(/[()]/g, '').split(',').map(Number);
      if (tok.startsWith('(')) {
        const [cx, cy, rx, ry, from, to] = nums as [number, number, number, number, number, number];
        const steps = Math.max(2, Math.ceil(Math.abs(to - from) / 15));
        for (let s = 0; s <= steps; s++) {
          const t = ((from + ((to - from) * s) / steps) * Math.PI) / 180;
          pts.push([cx + rx * Math.cos(t), cy + ry * Math.sin(t)]);
        }
      } else {
        pts.push([nums[0]!, nums[1]!]);
      }
    }
    if (pts.length) lines.push(pts);
  }
  const g = { width, lines };
  compiled.set(c, g);
  return g;
}

/** Width of `s` in the stroke font, in em. */
function strokeWidthEm(s: string): number {
  let w = 0;
  for (const c of s) w += glyph(c).width + SIDE_BEARING;
  return w / UNITS_PER_EM;
}

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const k = e.toLowerCase();
    if (k.startsWith('#x')) return String.fromCodePoint(parseInt(k.slice(2), 16));
    if (k.startsWith('#')) return String.fromCodePoint(parseInt(k.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[k]!;
  });
}

function attrsOf(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of s.matchAll(/([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) m.set(a[1]!, unescapeXml(a[2] ?? a[3] ?? ''));
  return m;
}

function num(v: string | undefined, dflt: number): number {
  const x = v === undefined ? NaN : parseFloat(v);
  return Number.isFinite(x) ? x : dflt;
}

const r2 = (v: number) => String(Math.round(v * 100) / 100);

/**
 * Replace every `<text>` element of `svg` with the same text drawn as stroked paths of the built-in font. Reads
 * the attributes basin's charts write on `<text>`: x, y, font-size, font-weight, text-anchor, fill, fill-opacity,
 * transform, and a halo from stroke / stroke-width; nested `<tspan>` markup is flattened into its text.
 */
export function strokeText(svg: string): string {
  return svg.replace(/<text\b([^>]*)>([\s\S]*?)<\/text>/g, (_, rawAttrs: string, rawBody: string) => {
    const a = attrsOf(rawAttrs);
    const content = unescapeXml(rawBody.replace(/<[^>]*>/g, '')).replace(/\s+/g, ' ');
    const size = num(a.get('font-size'), 12);
    const bold = a.get('font-weight') === 'bold' || num(a.get('font-weight'), 400) >= 600;
    const k = size / UNITS_PER_EM;
    let x = num(a.get('x'), 0);
    const y = num(a.get('y'), 0);
    const anchor = a.get('text-anchor');
    const w = strokeWidthEm(content) * size;
    if (anchor === 'middle') x -= w / 2;
    else if (anchor === 'end') x -= w;
    let d = '';
    let pen = x;
    for (const c of content) {
      const g = glyph(c);
      const ox = pen + (SIDE_BEARING / 2) * k;
      for (const line of g.lines) {
        d += line.map(([gx, gy], i) => `${i ? 'L' : 'M'}${r2(ox + gx * k)},${r2(y - gy * k)}`).join('');
        // A one-point stroke (a dot) still needs a segment for the round cap to show.
        if (line.length === 1) d += `h0.01`;
      }
      pen += (g.width + SIDE_BEARING) * k;
    }
    const lw = size * (bold ? 0.125 : 0.085);
    const fill = a.get('fill') ?? '#000000';
    const opacity = a.get('fill-opacity');
    const common = 'fill="none" stroke-linecap="round" stroke-linejoin="round"';
    const parts: string[] = [];
    const halo = a.get('stroke');
    if (halo && halo !== 'none') {
      parts.push(`<path d="${d}" ${common} stroke="${escapeXml(halo)}" stroke-width="${r2(lw + num(a.get('stroke-width'), 1))}"/>`);
    }
    parts.push(`<path d="${d}" ${common} stroke="${escapeXml(fill)}" stroke-width="${r2(lw)}"${opacity ? ` stroke-opacity="${escapeXml(opacity)}"` : ''}/>`);
    const transform = a.get('transform');
    const cls = a.get('class');
    const open = `<g${transform ? ` transform="${escapeXml(transform)}"` : ''}${cls ? ` class="${escapeXml(cls)}"` : ''}>`;
    return `${open}${parts.join('')}</g>`;
  });
}
