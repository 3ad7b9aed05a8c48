/**
 * The web page in a real browser: `basin web` serves it, system Chromium (headless, driven by puppeteer-core) loads
 * it, gets the shared MLP pair and a labelled data slice through its file inputs, aligns, charts and merges, and the
 * files it downloads are checked here, in Node, independently of the page: with onnxruntime-node (B aligned computes
 * what B computes), with the ONNX protobuf decoded by protobuf-es (its weights are a permutation of B's), and against
 * the CLI's own outputs (`basin align`, `basin merge`, `basin interpolate`) for the same files.
 *
 * Skipped, with a message, only when no Chromium is found (BASIN_CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModel } from '../src/onnx/proto.js';
import * as ort from 'onnxruntime-node';
import puppeteer, { type Browser, type ElementHandle, type Page } from 'puppeteer-core';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const A = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const B = path.join(FIXTURES, 'mlp_small_seed1.onnx');
const SAMPLES = 300;

function findChromium(): string | undefined {
  const env = process.env.BASIN_CHROMIUM;
  if (env) return existsSync(env) ? env : undefined;
  return ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
}

/** The first SAMPLES rows of the fixtures' test set as a safetensors file (input F32 [N, 784], label F32 [N]), cut by hand. */
function dataSlice(dir: string): { file: string; x: Float32Array; n: number } {
  const buf = readFileSync(path.join(FIXTURES, 'fmnist_test1k.safetensors'));
  const hlen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + hlen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const input = header['input']!;
  const label = header['label']!;
  assert.equal(input.dtype, 'F32');
  const base = 8 + hlen;
  const x = buf.subarray(base + input.data_offsets[0], base + input.data_offsets[0] + SAMPLES * 784 * 4);
  const y = buf.subarray(base + label.data_offsets[0], base + label.data_offsets[0] + SAMPLES * 4);
  const head = Buffer.from(JSON.stringify({
    input: { dtype: 'F32', shape: [SAMPLES, 784], data_offsets: [0, x.length] },
    label: { dtype: label.dtype, shape: [SAMPLES], data_offsets: [x.length, x.length + y.length] },
  }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  const file = path.join(dir, 'fmnist_slice.safetensors');
  writeFileSync(file, Buffer.concat([len, head, x, y]));
  return { file, x: new Float32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.length)), n: SAMPLES };
}

/** An ONNX file's float initializers by name, decoded with protobuf-es' generated schema (not basin's reader). */
function initializers(bytes: Uint8Array): Map<string, Float32Array> {
  const m = decodeModel(bytes);
  const out = new Map<string, Float32Array>();
  for (const t of m.graph?.initializer ?? []) {
    assert.equal(t.dataType, 1, `initializer ${t.name} is float`);
    const raw = t.rawData;
    out.set(t.name, raw.length ? new Float32Array(new Uint8Array(raw).slice().buffer) : Float32Array.from(t.floatData));
  }
  return out;
}

async function logits(model: string | Uint8Array, x: Float32Array, n: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model as string);
  try {
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [n, 784]) });
    return r[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** `basin web --port 0`: resolves with the URL it prints on stdout. */
function startServer(): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'web', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
      if (m) resolve({ url: m[1]!, child });
    });
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => reject(new Error(`basin web exited (${code}) before printing its URL: ${err}`)));
  });
}

/** Wait for `name` to appear in `dir` (Chromium renames its .crdownload when the download completes). */
async function downloaded(dir: string, name: string, timeoutMs = 20_000): Promise<Uint8Array> {
  const until = Date.now() + timeoutMs;
  // Chromium creates the download folder with the first download: until then there is nothing to list
  const list = () => (existsSync(dir) ? readdirSync(dir) : []);
  while (Date.now() < until) {
    if (list().includes(name)) return readFileSync(path.join(dir, name));
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`download ${name} did not arrive in ${dir} (found: ${list().join(', ') || 'nothing'})`);
}

/** Click a download link and return the file's bytes, through Chromium's real download path. */
async function download(page: Page, dir: string, selector: string): Promise<{ name: string; bytes: Uint8Array }> {
  const name = await page.$eval(selector, (a) => (a as HTMLAnchorElement).download);
  assert.ok(name, `${selector} names its file`);
  await page.click(selector);
  return { name, bytes: await downloaded(dir, name) };
}

/** The page's error box, or '' when it is hidden (so a failure shows basin's message, not a timeout). */
async function pageError(page: Page): Promise<string> {
  return page.$eval('#error', (e) => ((e as HTMLElement).hidden ? '' : (e.textContent ?? '').trim()));
}

async function waitFor(page: Page, what: string, fn: string, timeout = 40_000): Promise<void> {
  try {
    await page.waitForFunction(`(${fn}) || !document.getElementById('error').hidden`, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`waiting for ${what}: ${(e as Error).message}`);
  }
  const err = await pageError(page);
  assert.equal(err, '', `the page shows an error while waiting for ${what}`);
}

const chromium = findChromium();

test('the web page aligns, charts and merges the MLP pair in headless Chromium; its downloads are right', { skip: chromium ? false : 'no Chromium found (set BASIN_CHROMIUM, or install Debian chromium): the browser test is skipped', timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-web-'));
  const downloads = path.join(dir, 'downloads');
  let server: { url: string; child: ChildProcess } | undefined;
  let browser: Browser | undefined;
  try {
    const data = dataSlice(dir);
    // the CLI's answers for the same files, computed while the browser works: B aligned, A merged with it, the curves
    const cliAligned = path.join(dir, 'cli_aligned.onnx');
    const cliMerged = path.join(dir, 'cli_merged.onnx');
    const cli = Promise.all([
      runBasin(['align', A, B, '-o', cliAligned, '-q']).then(async (r) => [r, r.code === 0 ? await runBasin(['merge', A, cliAligned, '--merge', 'linear', '--weights', '0.5,0.5', '--method', 'none', '-o', cliMerged, '-q']) : r] as const),
      runBasin(['interpolate', A, B, '--data', data.file, '--align', 'weight', '--report', '-', '-q']),
    ]);
    server = await startServer();
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      // --no-sandbox: CI runs as root in a container (Chromium's sandbox needs user namespaces); the page is our own
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    });
    const cdp = await browser.target().createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(server.url);
    await waitFor(page, 'the runtime', "document.body.dataset.ready === 'true'", 30_000).catch((e: Error) => assert.fail(`${e.message}\nconsole: ${logs.join('\n')}`));
    const privacy = await page.$eval('#privacy', (e) => e.textContent ?? '');
    assert.match(privacy, /nothing is uploaded/, 'the page says nothing is uploaded');

    // a library error is shown in the page with its code and the file at fault, then a good file replaces it
    await ((await page.$('#file-a')) as ElementHandle<HTMLInputElement>).uploadFile(data.file);
    await page.waitForFunction("!document.getElementById('error').hidden", { timeout: 30_000, polling: 100 });
    const shown = await pageError(page);
    assert.match(shown, /\[onnx_invalid\]/, shown);
    assert.match(shown, /fmnist_slice\.safetensors/, 'the message names the file');

    for (const [id, file] of [['#file-a', A], ['#file-b', B], ['#file-data', data.file]] as const) {
      const input = (await page.$(id)) as ElementHandle<HTMLInputElement> | null;
      assert.ok(input, `${id} exists`);
      await input.uploadFile(file);
    }
    // each model's inputs/outputs and permutation groups
    await waitFor(page, 'the models', "document.querySelectorAll('#model-a table').length >= 2 && document.querySelectorAll('#model-b table').length >= 2");
    const modelA = await page.$eval('#model-a', (e) => e.textContent ?? '');
    assert.match(modelA, /input/);
    assert.match(modelA, /logits/);
    assert.match(modelA, /128/, 'the hidden groups of size 128 are listed');

    await page.click('#align');
    await waitFor(page, 'the alignment', "!document.getElementById('download-aligned').hidden");
    const report = await page.$eval('#align-report', (e) => e.textContent ?? '');
    assert.match(report, /objective before/);
    assert.match(report, /objective after/);
    const aligned = await download(page, downloads, '#download-aligned');

    // B aligned computes B's function, and its weights are B's, permuted: neither B nor A
    const [yB, yAligned] = [await logits(B, data.x, data.n), await logits(aligned.bytes, data.x, data.n)];
    assertAllClose(yAligned, yB, { rtol: 0, atol: 1e-5, label: 'logits of the downloaded aligned model vs B' });
    const [wA, wB, wAl] = [initializers(readFileSync(A)), initializers(readFileSync(B)), initializers(aligned.bytes)];
    assert.deepEqual([...wAl.keys()].sort(), [...wB.keys()].sort(), 'same initializers as B');
    let moved = 0;
    for (const [name, w] of wAl) {
      const b = wB.get(name)!;
      assert.deepEqual(Float32Array.from(w).sort(), Float32Array.from(b).sort(), `${name} holds B's values`);
      if (w.some((v, i) => v !== b[i])) moved++;
      assert.ok(w.some((v, i) => v !== wA.get(name)![i]), `${name} is not A's`);
    }
    assert.ok(moved >= 4, `the hidden layers' tensors are permuted (${moved} moved)`);

    // with data: the chart and the barrier of each curve, as `basin interpolate` computes them on the same data
    await waitFor(page, 'the interpolation', "!document.getElementById('barriers').hidden");
    assert.ok(await page.$('#chart img'), 'the chart is shown');
    const barriers = await page.$$eval('#barriers tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => ({ text: td.textContent ?? '', value: td.dataset.value }))));
    assert.equal(barriers.length, 2, 'naive and aligned rows');
    const [[alignRun, mergeRun], interpRun] = await cli;
    assert.equal(alignRun.code, 0, alignRun.stderr);
    assert.equal(mergeRun.code, 0, mergeRun.stderr);
    assert.equal(interpRun.code, 0, interpRun.stderr);
    const curves = (JSON.parse(interpRun.stdout) as { curves: { name: string; barrier: number }[] }).curves;
    const pageNaive = Number(barriers[0]![1]!.value);
    const pageAligned = Number(barriers[1]![1]!.value);
    assert.equal(barriers[0]![1]!.text, pageNaive.toFixed(4), 'the naive barrier is shown');
    assert.equal(barriers[1]![1]!.text, pageAligned.toFixed(4), 'the aligned barrier is shown');
    assertAllClose(pageNaive, curves.find((c) => c.name === 'naive')!.barrier, { rtol: 1e-3, atol: 1e-4, label: 'naive barrier (page vs basin interpolate)' });
    assertAllClose(pageAligned, curves.find((c) => c.name !== 'naive')!.barrier, { rtol: 1e-3, atol: 1e-4, label: 'aligned barrier (page vs basin interpolate)' });
    assert.ok(pageAligned < pageNaive, `alignment lowers the barrier (${pageAligned} vs ${pageNaive})`);

    // the page's alignment is the CLI's
    const wCli = initializers(readFileSync(cliAligned));
    for (const [name, w] of wAl) assert.deepEqual(w, wCli.get(name), `${name}: page and basin align agree`);

    // merge at t = 0.5: the same model as `basin merge A B_aligned --merge linear --weights 0.5,0.5 --method none`
    // (B aligned by the CLI: the same bytes as the page's, checked above)
    await page.$eval('#merge-t', (e) => {
      (e as HTMLInputElement).value = '0.5';
      e.dispatchEvent(new Event('input'));
    });
    await page.select('#merge-method', 'linear');
    await page.click('#merge');
    await waitFor(page, 'the merge', "!document.getElementById('download-merged').hidden");
    const merged = await download(page, downloads, '#download-merged');
    const [wM, wCliM] = [initializers(merged.bytes), initializers(readFileSync(cliMerged))];
    assert.deepEqual([...wM.keys()].sort(), [...wCliM.keys()].sort());
    for (const [name, w] of wM) {
      assertAllClose(w, wCliM.get(name)!, { rtol: 0, atol: 1e-6, label: `merged ${name} (page vs basin merge)` });
      // and, independently of both: the midpoint of A and B aligned
      const mid = wA.get(name)!.map((v, i) => (v + wAl.get(name)![i]!) / 2);
      assertAllClose(w, mid, { rtol: 0, atol: 1e-6, label: `merged ${name} vs (A + B aligned) / 2` });
    }
    assertAllClose(await logits(merged.bytes, data.x, data.n), await logits(cliMerged, data.x, data.n), { rtol: 0, atol: 1e-5, label: 'merged logits (page vs basin merge)' });
  } finally {
    await browser?.close().catch(() => {});
    server?.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
