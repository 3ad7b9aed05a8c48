import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertAllClose, assertBasinError } from './helpers.js';
import { barrierOf } from '../src/eval/barrier.js';
import { interpolationChart, type InterpolationChartInput } from '../src/report/plot.js';
import { strokeText, svgToPng, writeChart } from '../src/report/png.js';
import { formatMarkdownTable, formatTable } from '../src/report/table.js';

// ---------------------------------------------------------------------------------------------------------------
// A tiny XML reader: enough to prove the SVG is well formed and to look at its elements.

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

function unescape(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) =>
    e[0] === '#'
      ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10))
      : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!,
  );
}

/** Parses a document or throws naming the first problem: unclosed or mismatched tags, stray '<' or '&'. */
function parseXml(doc: string): XmlElement {
  let i = 0;
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: XmlElement[] = [root];
  const tag = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*"[^"<]*")*)\s*(\/?)>/y;
  const attr = /([A-Za-z_][\w:.-]*)\s*=\s*"([^"<]*)"/g;
  while (i < doc.length) {
    if (doc.startsWith('<?', i)) {
      const end = doc.indexOf('?>', i);
      assert.ok(end > 0, `unterminated processing instruction at ${i}`);
      i = end + 2;
    } else if (doc.startsWith('<!--', i)) {
      const end = doc.indexOf('-->', i);
      assert.ok(end > 0, `unterminated comment at ${i}`);
      i = end + 3;
    } else if (doc[i] === '<') {
      tag.lastIndex = i;
      const m = tag.exec(doc);
      assert.ok(m, `malformed tag at ${i}: ${doc.slice(i, i + 60)}`);
      const [all, closing, name, rawAttrs, selfClosing] = m;
      if (closing) {
        const open = stack.pop()!;
        assert.equal(open.name, name, `</${name}> closes <${open.name}>`);
      } else {
        const el: XmlElement = { name: name!, attrs: {}, children: [], text: '' };
        for (const a of rawAttrs!.matchAll(attr)) {
          assert.ok(!(a[1]! in el.attrs), `duplicate attribute ${a[1]} on <${name}>`);
          assert.ok(!/&(?!(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);)/i.test(a[2]!), `raw '&' in attribute ${a[1]}`);
          el.attrs[a[1]!] = unescape(a[2]!);
        }
        stack[stack.length - 1]!.children.push(el);
        if (!selfClosing) stack.push(el);
      }
      i += all.length;
    } else {
      const end = doc.indexOf('<', i);
      const raw = doc.slice(i, end < 0 ? doc.length : end);
      assert.ok(!/&(?!(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);)/i.test(raw), `raw '&' in text: ${raw}`);
      assert.ok(stack.length > 1 || raw.trim() === '', `text outside the root element: ${raw.slice(0, 40)}`);
      stack[stack.length - 1]!.text += unescape(raw);
      i = end < 0 ? doc.length : end;
    }
  }
  assert.equal(stack.length, 1, `unclosed <${stack[stack.length - 1]!.name}>`);
  assert.equal(root.children.length, 1, 'exactly one root element');
  return root.children[0]!;
}

function all(el: XmlElement, pred: (e: XmlElement) => boolean, out: XmlElement[] = []): XmlElement[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) all(c, pred, out);
  return out;
}

function one(el: XmlElement, pred: (e: XmlElement) => boolean): XmlElement {
  const found = all(el, pred);
  assert.equal(found.length, 1, `expected exactly one match, found ${found.length}`);
  return found[0]!;
}

const texts = (svg: XmlElement) => all(svg, (e) => e.name === 'text').map((e) => e.text);

function pathPoints(d: string): [number, number][] {
  return [...d.matchAll(/[ML]\s*(-?[\d.]+),(-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

// ---------------------------------------------------------------------------------------------------------------
// Example data

const grid = (n: number, lo = 0, hi = 1) => Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));

function example(): InterpolationChartInput {
  const alphas = grid(11);
  const bump = (a: number) => Math.sin(Math.PI * a) ** 2;
  const mk = (name: string, mid: number, accMid: number) => {
    const loss = alphas.map((a) => 0.44 + (0.41 - 0.44) * a + (mid - 0.425) * bump(a));
    const accuracy = alphas.map((a) => (84 + a + (accMid - 84.5) * bump(a)) / 100);
    return { name, loss, accuracy, barrier: barrierOf(alphas, loss).barrier };
  };
  return {
    title: 'ResNet-20 on CIFAR-10',
    subtitle: 'test set',
    alphas,
    curves: [mk('naive', 2.0, 40), mk('aligned (weight matching)', 0.47, 83), mk('aligned + REPAIR', 0.45, 84)],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// barrierOf

test('barrierOf: a parabola over its chord has its known maximum at the middle', () => {
  const alphas = grid(21);
  // chord from 0.5 to 1.5, plus 4·h·α(1−α) on top: barrier h at α = 0.5.
  const loss = alphas.map((a) => 0.5 + a + 4 * 1.25 * a * (1 - a));
  const b = barrierOf(alphas, loss);
  assertAllClose(b.barrier, 1.25, { rtol: 1e-12 });
  assertAllClose(b.alpha, 0.5, { atol: 1e-12 });
  assert.equal(b.index, 10);
});

test('barrierOf: a straight line has no barrier', () => {
  const alphas = grid(9);
  const b = barrierOf(alphas, alphas.map((a) => 3 - 2 * a));
  assertAllClose(b.barrier, 0, { atol: 1e-12 });
  // A curve below its chord everywhere has barrier 0 too (the end points lie on the chord).
  const under = barrierOf(alphas, alphas.map((a) => -a * (1 - a)));
  assert.equal(under.barrier, 0);
});

test('barrierOf: the chord runs between the first and last α, whatever they are', () => {
  // α from −1 to 3; chord through (−1, 1) and (3, 5) is α + 2: gaps 0, 0, 1, −1, 0.
  const b = barrierOf([-1, 0, 1, 2, 3], [1, 2, 4, 3, 5]);
  assertAllClose(b.barrier, 1, { rtol: 1e-12 });
  assert.equal(b.alpha, 1);
  assert.equal(b.index, 2);
  // Uneven spacing: chord from (0.2, 1) to (0.9, 2.4) is 1 + 2(α − 0.2); at 0.3 it is 1.2, the loss 1.9.
  const u = barrierOf([0.2, 0.3, 0.65, 0.9], [1, 1.9, 2.0, 2.4]);
  assertAllClose(u.barrier, 0.7, { rtol: 1e-12 });
  assert.equal(u.alpha, 0.3);
});

test('barrierOf: an interior, off-center maximum', () => {
  const alphas = grid(11);
  const loss = alphas.map((a) => 1 + 5 * Math.exp(-((a - 0.3) ** 2) / 0.01));
  const b = barrierOf(alphas, loss);
  assertAllClose(b.alpha, 0.3, { atol: 1e-12 });
  assertAllClose(b.barrier, loss[3]! - (loss[0]! * 0.7 + loss[10]! * 0.3), { rtol: 1e-12 });
});

test('barrierOf: bad input is invalid_argument', async () => {
  await assertBasinError(() => barrierOf([0], [1]), 'invalid_argument');
  await assertBasinError(() => barrierOf([], []), 'invalid_argument');
  await assertBasinError(() => barrierOf([0, 1], [1, 2, 3]), 'invalid_argument');
  await assertBasinError(() => barrierOf([0, 0.5, 1], [1, NaN, 1]), 'invalid_argument');
  await assertBasinError(() => barrierOf([0, 0.5, 1], [1, Infinity, 1]), 'invalid_argument');
  await assertBasinError(() => barrierOf([0, 1, 0.5], [1, 2, 3]), 'invalid_argument');
  await assertBasinError(() => barrierOf([0, 0, 1], [1, 2, 3]), 'invalid_argument');
  await assertBasinError(() => barrierOf([0, NaN, 1], [1, 2, 3]), 'invalid_argument');
});

// ---------------------------------------------------------------------------------------------------------------
// interpolationChart

test('chart: a well-formed standalone SVG with size, viewBox, white background and generic fonts', () => {
  const svgText = interpolationChart(example());
  const svg = parseXml(svgText);
  assert.equal(svg.name, 'svg');
  assert.equal(svg.attrs.xmlns, 'http://www.w3.org/2000/svg');
  const w = Number(svg.attrs.width);
  const h = Number(svg.attrs.height);
  assert.equal(w, 1000);
  assert.ok(h > 300 && h < 1000, `height ${h}`);
  assert.equal(svg.attrs.viewBox, `0 0 ${w} ${h}`);
  assert.match(svg.attrs['font-family']!, /sans-serif$/);
  const bg = one(svg, (e) => e.attrs.class === 'background');
  assert.equal(bg.attrs.fill, '#ffffff');
  assert.ok(!/NaN|Infinity|undefined/.test(svgText));
  assert.ok(!/(href|url)\s*=|@import|@font-face/.test(svgText), 'no external resources');
  // Same input, same bytes.
  assert.equal(interpolationChart(example()), svgText);
});

test('chart: every curve is named with its barrier, and each panel has its title', () => {
  const input = example();
  const svg = parseXml(interpolationChart(input));
  const t = texts(svg);
  for (const c of input.curves) {
    const expected = `${c.name} — barrier ${c.barrier < 1 ? c.barrier.toFixed(3) : c.barrier.toFixed(2)} nats`;
    assert.ok(t.includes(expected), `missing legend entry ${expected}`);
  }
  for (const s of ['Test loss', 'Test accuracy', 'A', 'B', 'interpolation coefficient α', 'ResNet-20 on CIFAR-10', 'test set']) {
    assert.ok(t.includes(s), `missing text ${s}`);
  }
  // One color per curve, the same in both panels and in the legend.
  for (let i = 0; i < input.curves.length; i++) {
    const colors = new Set(all(svg, (e) => e.attrs.class === 'curve' && e.attrs['data-curve'] === String(i)).map((e) => e.attrs.stroke));
    assert.equal(colors.size, 1);
    const legend = one(svg, (e) => e.attrs.class === 'legend-entry' && e.attrs['data-curve'] === String(i));
    assert.ok(legend.children.some((c) => c.attrs.stroke === [...colors][0]));
  }
  const strokes = all(svg, (e) => e.attrs.class === 'curve' && e.attrs['data-curve'] !== undefined);
  assert.equal(strokes.length, input.curves.length * 2);
  assert.equal(new Set(strokes.map((e) => e.attrs.stroke)).size, input.curves.length);
  // A chord per curve, and a bracket for the naive curve's barrier with its value.
  assert.equal(all(svg, (e) => e.attrs.class === 'chord').length, input.curves.length);
  assert.ok(all(svg, (e) => e.attrs.class === 'barrier' && e.attrs['data-curve'] === '0').length === 1);
  assert.ok(t.includes(`barrier ${input.curves[0]!.barrier.toFixed(2)}`));
});

test('chart: text is escaped for XML', () => {
  const input = example();
  input.title = 'A & B <"quoted"> \'x\'';
  input.curves[0]!.name = 'naïve <&> "1"';
  const svgText = interpolationChart(input);
  const svg = parseXml(svgText);
  assert.ok(texts(svg).includes('A & B <"quoted"> \'x\''));
  assert.ok(texts(svg).some((s) => s.startsWith('naïve <&> "1" — barrier')));
});

test('chart: data map to the plot area (α = 0.5 at the middle, values linear in y)', () => {
  const input: InterpolationChartInput = {
    title: 't',
    alphas: [0, 0.5, 1],
    curves: [{ name: 'c', loss: [1, 1.5, 2], accuracy: [0.5, 0.6, 0.7], barrier: 0 }],
  };
  const svg = parseXml(interpolationChart(input));
  for (const panel of ['loss', 'accuracy']) {
    const g = one(svg, (e) => e.name === 'g' && e.attrs['data-panel'] === panel);
    const area = one(g, (e) => e.attrs.class === 'plot-area');
    const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((k) => Number(area.attrs[k]));
    const pts = pathPoints(one(g, (e) => e.attrs.class === 'curve').attrs.d!);
    assert.equal(pts.length, 3);
    assertAllClose(pts[1]![0], x! + w! / 2, { atol: 0.011, label: `${panel} x of α=0.5` });
    // End points symmetric about the middle and inside the area.
    assertAllClose(pts[0]![0] - x!, x! + w! - pts[2]![0], { atol: 0.011 });
    for (const [px, py] of pts) assert.ok(px >= x! && px <= x! + w! && py >= y! && py <= y! + h!, `${px},${py} outside`);
    // Values increase upwards, linearly.
    assert.ok(pts[2]![1] < pts[0]![1]);
    assertAllClose(pts[1]![1], (pts[0]![1] + pts[2]![1]) / 2, { atol: 0.011, label: `${panel} y of the middle value` });
  }
  // Every tick label and grid line sits where the data mapping puts its value (loss 1 → pts[0], 2 → pts[2]).
  const loss = one(svg, (e) => e.name === 'g' && e.attrs['data-panel'] === 'loss');
  const pts = pathPoints(one(loss, (e) => e.attrs.class === 'curve').attrs.d!);
  const yOf = (v: number) => pts[0]![1] + (v - 1) * (pts[2]![1] - pts[0]![1]);
  const ticks = all(loss, (e) => e.name === 'text' && e.attrs['text-anchor'] === 'end' && /^\d+(\.\d+)?$/.test(e.text));
  assert.ok(ticks.length >= 3, `${ticks.length} y ticks`);
  const gridYs = one(loss, (e) => e.attrs.class === 'grid')
    .attrs.d!.split('M')
    .filter((s) => s.includes('H'))
    .map((s) => Number(s.split(',')[1]!.split('H')[0]));
  for (const t of ticks) {
    const y = yOf(Number(t.text));
    // The label's baseline is a third of its font size below the line, so the digits center on it.
    assertAllClose(Number(t.attrs.y), y + 4.5, { atol: 0.02, label: `tick ${t.text}` });
    assert.ok(gridYs.some((g) => Math.abs(g - y) < 0.02), `grid line of tick ${t.text}`);
  }
});

test('chart: degenerate ranges (all values equal) and a single α interval do not divide by zero', () => {
  const svgText = interpolationChart({
    title: 'flat',
    alphas: [0, 1],
    curves: [{ name: 'flat', loss: [0.7, 0.7], accuracy: [1, 1], barrier: 0 }],
  });
  assert.ok(!/NaN|Infinity/.test(svgText));
  const svg = parseXml(svgText);
  assert.ok(texts(svg).includes('flat — barrier 0.000 nats'));
  // Zero everywhere, too.
  assert.ok(!/NaN|Infinity/.test(interpolationChart({ title: '', alphas: [0, 1], curves: [{ name: 'z', loss: [0, 0], accuracy: [0, 0], barrier: 0 }] })));
});

test('chart: loss-only (no accuracy) draws one panel; α beyond [0, 1] keeps A and B at 0 and 1', () => {
  const alphas = grid(9, -0.5, 1.5);
  const svgText = interpolationChart({
    title: 'extrapolation',
    alphas,
    curves: [{ name: 'naive', loss: alphas.map((a) => 1 + a * (1 - a)), accuracy: [], barrier: 0.25 }],
    endpointLabels: ['seed 0', 'seed 1'],
    xLabel: 'α',
  });
  const svg = parseXml(svgText);
  assert.equal(all(svg, (e) => e.attrs['data-panel'] !== undefined).length, 1);
  const loss = one(svg, (e) => e.attrs['data-panel'] === 'loss');
  const area = one(loss, (e) => e.attrs.class === 'plot-area');
  const [x, w] = [Number(area.attrs.x), Number(area.attrs.width)];
  const pts = pathPoints(one(loss, (e) => e.attrs.class === 'curve').attrs.d!);
  // α = 0 is the third point of 9 over [−0.5, 1.5]; the "seed 0" label sits under it.
  const a0 = one(loss, (e) => e.attrs.class === 'endpoint' && e.text === 'seed 0');
  assertAllClose(Number(a0.attrs.x), pts[2]![0], { atol: 0.011 });
  const a1 = one(loss, (e) => e.attrs.class === 'endpoint' && e.text === 'seed 1');
  assertAllClose(Number(a1.attrs.x), pts[6]![0], { atol: 0.011 });
  assertAllClose(pts[4]![0], x + w / 2, { atol: 0.011 });
});

test('chart: many points get fewer markers; many curves cycle styles', () => {
  const alphas = grid(101);
  const curves = Array.from({ length: 9 }, (_, i) => ({
    name: `curve ${i}`,
    loss: alphas.map((a) => 1 + i * 0.1 + a * (1 - a) * i),
    accuracy: alphas.map((a) => 0.9 - a * (1 - a) * i * 0.1),
    barrier: i / 4,
  }));
  const svg = parseXml(interpolationChart({ title: 'many', alphas, curves }));
  const marks = all(svg, (e) => e.attrs.class === 'markers' && e.attrs['data-curve'] === '0');
  assert.equal(marks.length, 2);
  for (const m of marks) assert.ok(m.children.length >= 5 && m.children.length <= 12, `${m.children.length} markers`);
  // Nine curves, eight colors: the ninth repeats the first color with another dash and marker.
  const curve0 = all(svg, (e) => e.attrs.class === 'curve' && e.attrs['data-curve'] === '0')[0]!;
  const curve8 = all(svg, (e) => e.attrs.class === 'curve' && e.attrs['data-curve'] === '8')[0]!;
  assert.equal(curve8.attrs.stroke, curve0.attrs.stroke);
  assert.notEqual(curve8.attrs['stroke-dasharray'], curve0.attrs['stroke-dasharray']);
});

test('chart: bad input is invalid_argument', async () => {
  const base = example();
  const withCurve = (patch: Record<string, unknown>): InterpolationChartInput => ({ ...base, curves: [{ ...base.curves[0]!, ...patch }] });
  await assertBasinError(() => interpolationChart({ ...base, curves: [] }), 'invalid_argument');
  await assertBasinError(() => interpolationChart({ ...base, alphas: [] }), 'invalid_argument');
  await assertBasinError(() => interpolationChart({ ...base, alphas: [0.5] }), 'invalid_argument');
  await assertBasinError(() => interpolationChart({ ...base, alphas: [...base.alphas].reverse() }), 'invalid_argument');
  const nanLoss = [...base.curves[0]!.loss];
  nanLoss[3] = NaN;
  const e = await assertBasinError(() => interpolationChart(withCurve({ loss: nanLoss })), 'invalid_argument');
  assert.equal(e.details.curve, 'naive');
  assert.equal(e.details.index, 3);
  const infAcc = [...base.curves[0]!.accuracy];
  infAcc[0] = Infinity;
  await assertBasinError(() => interpolationChart(withCurve({ accuracy: infAcc })), 'invalid_argument');
  await assertBasinError(() => interpolationChart(withCurve({ accuracy: base.curves[0]!.accuracy.map((a) => a * 100) })), 'invalid_argument');
  await assertBasinError(() => interpolationChart(withCurve({ loss: base.curves[0]!.loss.slice(1) })), 'invalid_argument');
  await assertBasinError(() => interpolationChart(withCurve({ barrier: NaN })), 'invalid_argument');
  await assertBasinError(
    () => interpolationChart({ ...base, curves: [base.curves[0]!, { ...base.curves[1]!, accuracy: [] }] }),
    'invalid_argument',
  );
  await assertBasinError(() => interpolationChart({ ...base, endpointLabels: ['A'] as unknown as [string, string] }), 'invalid_argument');
  await assertBasinError(() => interpolationChart(null as unknown as InterpolationChartInput), 'invalid_argument');
});

// ---------------------------------------------------------------------------------------------------------------
// PNG

function pngSize(png: Buffer): { width: number; height: number } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

test('png: signature and size follow the requested width and the aspect ratio', () => {
  const svgText = interpolationChart(example());
  const h = Number(parseXml(svgText).attrs.height);
  assert.deepEqual(pngSize(svgToPng(svgText)), { width: 1000, height: h });
  const half = pngSize(svgToPng(svgText, { width: 500 }));
  assert.equal(half.width, 500);
  assert.ok(Math.abs(half.height - h / 2) <= 1);
});

test('png: text is drawn with system fonts and, with none, with the built-in stroke font', () => {
  const withText = '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><rect width="200" height="40" fill="#fff"/><text x="10" y="28" font-size="20">barrier 1.44</text></svg>';
  const without = withText.replace(/<text[\s\S]*<\/text>/, '');
  const blank = svgToPng(without);
  assert.notDeepEqual(svgToPng(withText), blank);
  assert.notDeepEqual(svgToPng(withText, { loadSystemFonts: false }), svgToPng(without, { loadSystemFonts: false }));
  // The stroke font replaces every text element with paths, keeping position, anchor and rotation.
  const stroked = strokeText(interpolationChart(example()));
  assert.ok(!stroked.includes('<text'));
  parseXml(stroked);
  assert.match(stroked, /<g transform="rotate\(-90 [\d.]+ [\d.]+\)"><path d="M/);
});

test('png: bad width or SVG is invalid_argument', async () => {
  const svgText = interpolationChart(example());
  await assertBasinError(() => svgToPng(svgText, { width: 0 }), 'invalid_argument');
  await assertBasinError(() => svgToPng(svgText, { width: 10.5 }), 'invalid_argument');
  await assertBasinError(() => svgToPng(svgText, { width: 1e6 }), 'invalid_argument');
  await assertBasinError(() => svgToPng('<svg'), 'invalid_argument');
});

test('writeChart: the extension picks SVG or PNG; the write is atomic; other extensions are refused', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'basin-plot-'));
  try {
    const svgText = interpolationChart(example());
    await writeChart(path.join(dir, 'curve.svg'), svgText);
    assert.equal(await readFile(path.join(dir, 'curve.svg'), 'utf8'), svgText);
    await writeChart(path.join(dir, 'curve.PNG'), svgText, { width: 400 });
    assert.equal(pngSize(await readFile(path.join(dir, 'curve.PNG'))).width, 400);
    const e = await assertBasinError(() => writeChart(path.join(dir, 'curve.jpg'), svgText), 'invalid_argument');
    assert.equal(e.details.file, path.join(dir, 'curve.jpg'));
    await assertBasinError(() => writeChart(path.join(dir, 'curve'), svgText), 'invalid_argument');
    await assertBasinError(() => writeChart(path.join(dir, 'missing', 'curve.svg'), svgText), 'file_not_found');
    assert.deepEqual((await readdir(dir)).sort(), ['curve.PNG', 'curve.svg']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Tables

test('formatTable: numbers right-aligned with fixed digits, text left-aligned, whole columns stay whole', () => {
  const out = formatTable(
    ['curve', 'barrier', 'acc@0.5', 'points'],
    [
      ['naive', 1.4432, 0.4, 21],
      ['aligned + REPAIR', 0.0204, 0.84, 21],
      ['bad', NaN, -Infinity, 3],
    ],
    { digits: 3 },
  );
  assert.equal(
    out,
    [
      'curve             barrier  acc@0.5  points',
      '----------------  -------  -------  ------',
      'naive               1.443    0.400      21',
      'aligned + REPAIR    0.020    0.840      21',
      'bad                   NaN     -inf       3',
      '',
    ].join('\n'),
  );
  // Explicit alignment and no trailing spaces; a value rounding to zero loses its sign.
  assert.equal(formatTable(['a', 'b'], [['x', -0.0001]], { align: ['r', 'l'], digits: 2 }), 'a  b\n-  ----\nx  0.00\n');
});

test('formatMarkdownTable: alignment row and escaped pipes', () => {
  const out = formatMarkdownTable(['curve', 'barrier'], [['a|b', 1.5], ['c', 0.25]], { digits: 2 });
  assert.equal(out, ['| curve | barrier |', '|:------|--------:|', '| a\\|b  |    1.50 |', '| c     |    0.25 |', ''].join('\n'));
});

test('tables: bad input is invalid_argument', async () => {
  await assertBasinError(() => formatTable([], []), 'invalid_argument');
  await assertBasinError(() => formatTable(['a', 'b'], [['x']]), 'invalid_argument');
  await assertBasinError(() => formatTable(['a'], [[1]], { digits: -1 }), 'invalid_argument');
  await assertBasinError(() => formatTable(['a'], [[1]], { align: ['x' as 'l'] }), 'invalid_argument');
  await assertBasinError(() => formatMarkdownTable(['a'], [[null as unknown as string]]), 'invalid_argument');
});
