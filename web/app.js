/**
 * The basin web page: two ONNX models (and optional labelled data) in, groups shown, B aligned to A, the
 * interpolation chart naive vs aligned, a merge at any t, and downloads made from Blobs. The work runs in a Web
 * Worker (worker.js → ops.js → basin-web.js); when a module worker cannot start, on the main thread. Nothing leaves
 * the page. Every name read from a file is put in the page as text (textContent), never as HTML.
 */

const $ = (id) => document.getElementById(id);

/** What the page holds: the files' bytes and what was computed from them. */
const state = {
  a: null, // { name, bytes }
  b: null,
  data: null,
  aligned: null, // Uint8Array of B aligned
  alignReport: null,
  busy: false,
};

// ---------------------------------------------------------------- the backend (worker, else main thread)

let nextId = 1;
const pending = new Map();
let worker = null;
let mainThread = null;

function startWorker() {
  return new Promise((resolve) => {
    let w;
    try {
      w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    } catch {
      return resolve(null);
    }
    w.onmessage = (e) => {
      const { id, progress, result, error } = e.data;
      const p = pending.get(id);
      if (!p) return;
      if (progress !== undefined) return p.onProgress?.(progress);
      pending.delete(id);
      if (error) p.reject(error);
      else p.resolve(result);
    };
    w.onerror = (e) => {
      e.preventDefault?.();
      // a worker that fails to load its module: reject what waits, fall back to the main thread
      for (const [, p] of pending) p.reject({ name: 'Error', message: `the worker failed: ${e.message ?? 'could not load'}` });
      pending.clear();
      resolve(null);
    };
    worker = w;
    call('info', {}).then((info) => resolve(info), () => resolve(null));
  });
}

let mainQueue = Promise.resolve();

/** Run `op` in the worker (or on the main thread, one at a time); resolves with its result, rejects with { name, code?, message }. */
function call(op, args, onProgress, transfer = []) {
  if (worker) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, onProgress });
      worker.postMessage({ id, op, args }, transfer);
    });
  }
  const run = mainQueue.then(() => mainThread.runOp(op, args, (stage, fraction) => onProgress?.({ stage, fraction })));
  mainQueue = run.catch(() => undefined);
  return run.then(
    (r) => r.result,
    (e) => Promise.reject({ name: e?.name ?? 'Error', code: typeof e?.code === 'string' ? e.code : undefined, message: String(e?.message ?? e) }),
  );
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return node;
}

function table(headers, rows, numeric = []) {
  const t = el('table');
  const head = el('tr');
  for (const h of headers) head.append(el('th', {}, h));
  t.append(el('thead', {}, head));
  const body = el('tbody');
  for (const r of rows) {
    const tr = el('tr');
    r.forEach((c, i) => tr.append(el('td', numeric.includes(i) ? { class: 'num' } : i === 2 && headers[2] === 'tensors' ? { class: 'tensors' } : {}, c)));
    body.append(tr);
  }
  t.append(body);
  return t;
}

function fmt(x, digits = 4) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return String(x ?? '–');
  return Math.abs(x) !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6) ? x.toExponential(2) : x.toFixed(digits);
}

function bytesText(n) {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

// The error box shows one error; `slot` names the model file it is about ('' for an operation), so that a good file
// dropped later in the other slot does not hide it.
function showError(e, slot = e?.slot ?? '') {
  $('error').dataset.slot = slot;
  $('error').hidden = false;
  $('error-code').textContent = e?.code ? `[${e.code}]` : e?.name && e.name !== 'Error' ? `(${e.name})` : '';
  $('error-message').textContent = String(e?.message ?? e);
}

function clearError(slot) {
  const shown = $('error').dataset.slot ?? '';
  if (slot !== undefined && shown !== '' && shown !== slot) return; // another file's error stays until that file is replaced
  $('error').hidden = true;
  $('error-code').textContent = '';
  $('error-message').textContent = '';
}

function setDownload(link, bytes, filename, type = 'application/octet-stream') {
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([bytes], { type }));
  link.download = filename;
  link.textContent = `${link.dataset.label ?? link.textContent.replace(/ \(.*$/, '')} (${filename}, ${bytesText(bytes.byteLength)})`;
  link.hidden = false;
}

function stem(name) {
  return name.replace(/\.[^.]*$/, '') || 'model';
}

/** The bundle's progress stages, as the page says them. */
const STAGES = { load: 'reading the models', spec: 'finding the permutation groups', match: 'weight matching', verify: 'checking aligned B against B', evaluate: 'evaluating', merge: 'merging' };

function progressHandler(bar, status, what) {
  bar.hidden = false;
  bar.removeAttribute('value');
  status.textContent = `${what}…`;
  return (p) => {
    if (typeof p?.fraction === 'number') {
      bar.max = 1;
      bar.value = p.fraction;
    } else {
      bar.removeAttribute('value');
    }
    status.textContent = `${what}${p?.stage ? `: ${STAGES[p.stage] ?? p.stage}` : ''}`;
  };
}

async function busy(fn) {
  if (state.busy) return;
  state.busy = true;
  updateButtons();
  try {
    clearError();
    await fn();
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
    updateButtons();
  }
}

function updateButtons() {
  const both = state.a && state.b;
  $('align').disabled = !both || state.busy;
  $('interpolate').disabled = !both || !state.data || !state.aligned || state.busy;
  $('merge').disabled = !both || state.busy;
  $('align-section').hidden = !both;
  $('merge-section').hidden = !both;
  $('interp-section').hidden = !both || !state.data;
  $('merge-which').textContent = state.aligned
    ? 'Merges A with B aligned: (1−t)·A + t·B by the chosen method.'
    : 'B is not aligned yet: this merges A with B as it is (the naive merge). Align first for the merge that keeps the accuracy.';
}

// ---------------------------------------------------------------- inputs

async function takeFile(slot, file) {
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  state[slot] = { name: file.name, bytes };
  $(`name-${slot}`).textContent = `${file.name} (${bytesText(bytes.byteLength)})`;
  document.querySelector(`.drop[data-slot="${slot}"]`).classList.add('loaded');
  if (slot !== 'data') {
    // a new model makes earlier results stale
    state.aligned = null;
    $('download-aligned').hidden = true;
    $('download-merged').hidden = true;
    $('align-report').replaceChildren();
    $('align-status').textContent = '';
    $('chart').replaceChildren();
    $('barriers').hidden = true;
  }
  updateButtons();
  // not behind `busy`: both models are read while either is dropped (the worker runs one operation at a time)
  if (slot !== 'data') {
    clearError(slot);
    try {
      await showModel(slot);
    } catch (e) {
      // a file basin cannot read is not kept: Align and Merge wait for a good one
      if (state[slot]?.bytes === bytes) {
        state[slot] = null;
        $(`name-${slot}`).textContent = `${file.name}: not usable (see the error)`;
        document.querySelector(`.drop[data-slot="${slot}"]`).classList.remove('loaded');
        updateButtons();
      }
      if (e && typeof e === 'object') e.slot = slot;
      throw e;
    }
  }
}

async function showModel(slot) {
  const m = state[slot];
  const box = $(`model-${slot}`);
  box.replaceChildren(el('h3', {}, `Model ${slot.toUpperCase()}: `, m.name), el('p', { class: 'status' }, 'reading…'));
  $('models').hidden = false;
  let info;
  try {
    info = await call('inspect', { bytes: m.bytes.slice(), name: m.name });
  } catch (e) {
    box.replaceChildren(el('h3', {}, `Model ${slot.toUpperCase()}: `, m.name), el('p', { class: 'error' }, `${e.code ? `[${e.code}] ` : ''}${e.message}`));
    throw e;
  }
  renderModel(box, slot, m.name, info);
}

/** Weight axes as `tensor:axis`, comma-separated. */
function members(list) {
  return (list ?? []).map((m) => `${m.tensor}:${m.axis}`).join(', ');
}

function shapeText(s) {
  if (!Array.isArray(s)) return String(s ?? '');
  return `[${s.map((d) => (d === null || d === undefined ? '?' : d)).join(', ')}]`;
}

/** Inputs/outputs, permutation groups and frozen axes of one model, from inspectOnnx. */
function renderModel(box, slot, name, info) {
  const parts = [el('h3', {}, `Model ${slot.toUpperCase()}: `, name)];
  const io = [...(info.inputs ?? []).map((v) => ['input', v]), ...(info.outputs ?? []).map((v) => ['output', v])];
  if (io.length) parts.push(table(['', 'name', 'type', 'shape'], io.map(([k, v]) => [k, v.name, v.type ?? '', v.shape ? shapeText(v.shape) : 'unknown'])));
  const groups = info.groups ?? [];
  parts.push(el('p', {}, `${groups.length} permutation group${groups.length === 1 ? '' : 's'}`, groups.length ? ':' : ' (nothing to align)'));
  if (groups.length) {
    parts.push(table(['group', 'size', 'tensors', 'what'], groups.map((g) => [
      g.name,
      g.size,
      members(g.members),
      [g.kind && g.kind !== 'free' ? g.kind : '', g.description ?? ''].filter(Boolean).join(': '),
    ]), [1]));
  }
  const frozen = info.frozen ?? [];
  if (frozen.length) {
    parts.push(el('p', {}, `${frozen.length} frozen axis class${frozen.length === 1 ? '' : 'es'} (left as they are):`));
    parts.push(table(['frozen', 'size', 'tensors', 'reason'], frozen.map((f, i) => [i + 1, f.size, members(f.members), [f.reason, f.node ? `(node ${f.node})` : ''].filter(Boolean).join(' ')]), [1]));
  }
  box.replaceChildren(...parts);
}

function wireDrop(slot) {
  const zone = document.querySelector(`.drop[data-slot="${slot}"]`);
  const input = $(`file-${slot}`);
  input.addEventListener('change', () => void takeFile(slot, input.files?.[0]).catch(showError));
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    void takeFile(slot, e.dataTransfer?.files?.[0]).catch(showError);
  });
}

// ---------------------------------------------------------------- align, interpolate, merge

async function align() {
  const status = $('align-status');
  $('download-aligned').hidden = true;
  $('align-report').replaceChildren();
  const started = performance.now();
  const r = await call('align', { a: state.a.bytes.slice(), b: state.b.bytes.slice(), names: [state.a.name, state.b.name] }, progressHandler($('align-progress'), status, 'aligning'));
  $('align-progress').hidden = true;
  state.aligned = r.model;
  state.alignReport = r.report;
  const rep = r.report ?? {};
  const sweeps = Array.isArray(rep.sweeps) ? rep.sweeps : [];
  const rows = [
    ['objective before', fmt(rep.objective_before)],
    ['objective after', fmt(rep.objective_after)],
    ['sweeps', `${sweeps.length}${sweeps.length ? ` (${sweeps.map((s) => fmt(s, 2)).join(' → ')})` : ''}`],
    ['permutations', String(rep.perms ? Object.keys(rep.perms).length : '–')],
    ['weights permuted', rep.coverage ? `${rep.coverage.permuted_params} of ${rep.coverage.params}` : '–'],
    ['verification: largest output difference', rep.verify ? `${fmt(rep.verify.max_abs)} (relative ${fmt(rep.verify.max_rel)}, ${rep.verify.samples} samples)` : '–'],
    ['seconds', fmt((performance.now() - started) / 1000, 2)],
  ];
  const parts = [table(['alignment', ''], rows, [1])];
  for (const w of rep.warnings ?? []) parts.push(el('p', { class: 'warning' }, `warning: ${w}`));
  $('align-report').replaceChildren(...parts);
  status.textContent = 'done: B aligned computes the same function as B';
  setDownload($('download-aligned'), state.aligned, `${stem(state.b.name)}_aligned.onnx`);
  updateButtons();
  if (state.data) await interpolate();
}

async function interpolate() {
  const steps = Number($('steps').value);
  const bar = $('interp-progress');
  const status = $('interp-status');
  const curves = [];
  for (const [name, b] of [['naive', state.b.bytes], ['aligned (weight matching)', state.aligned]]) {
    const names = [state.a.name, name === 'naive' ? state.b.name : `${state.b.name} (aligned)`, state.data.name];
    const r = await call('interpolate', { a: state.a.bytes.slice(), b: b.slice(), data: state.data.bytes.slice(), steps, names }, progressHandler(bar, status, `interpolating, ${name}`));
    curves.push({ name, points: r.points, barrier: r.barrier });
  }
  bar.hidden = true;
  status.textContent = `${steps} values of t on ${state.data.name}`;
  const svg = await call('chart', {
    curves: curves.map((c) => ({ label: c.name, points: c.points })),
    title: `Interpolating ${state.a.name} and ${state.b.name}`,
    endpointLabels: ['A', 'B'],
  });
  const img = el('img', { alt: 'loss and accuracy along the interpolation, naive and aligned', id: 'chart-img' });
  img.src = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  const link = el('a', { download: 'interpolation.svg', href: img.src, id: 'download-chart' }, 'Download the chart (SVG)');
  $('chart').replaceChildren(img, el('br'), link);
  const body = $('barriers').querySelector('tbody');
  body.replaceChildren();
  for (const c of curves) {
    const mid = c.points.reduce((best, p) => (Math.abs(p.t - 0.5) < Math.abs(best.t - 0.5) ? p : best), c.points[0]);
    const tr = el('tr', { 'data-curve': c.name.split(' ')[0] });
    // data-value: the unrounded number, for scripts reading the page
    tr.append(
      el('td', {}, c.name),
      el('td', { class: 'num barrier', 'data-value': String(c.barrier) }, fmt(c.barrier)),
      el('td', { class: 'num', 'data-value': String(mid?.loss) }, fmt(mid?.loss)),
      el('td', { class: 'num', 'data-value': String(mid?.accuracy) }, typeof mid?.accuracy === 'number' ? `${(mid.accuracy * 100).toFixed(1)}%` : '–'),
    );
    body.append(tr);
  }
  $('barriers').hidden = false;
}

async function merge() {
  const t = Number($('merge-t').value);
  const method = $('merge-method').value;
  const b = state.aligned ?? state.b.bytes;
  $('merge-status').textContent = `merging at t = ${t} (${method})…`;
  $('download-merged').hidden = true;
  const model = await call('merge', { a: state.a.bytes.slice(), b: b.slice(), t, method, names: [state.a.name, state.aligned ? `${state.b.name} (aligned)` : state.b.name] });
  $('merge-status').textContent = `merged at t = ${t} (${method}${state.aligned ? ', B aligned' : ', B not aligned'})`;
  setDownload($('download-merged'), model, `merged_t${t}_${method}.onnx`);
}

// ---------------------------------------------------------------- start

async function main() {
  $('download-aligned').dataset.label = 'Download B aligned';
  $('download-merged').dataset.label = 'Download merged model';
  for (const slot of ['a', 'b', 'data']) wireDrop(slot);
  $('align').addEventListener('click', () => void busy(align));
  $('interpolate').addEventListener('click', () => void busy(interpolate));
  $('merge').addEventListener('click', () => void busy(merge));
  const range = $('merge-t-range');
  const num = $('merge-t');
  range.addEventListener('input', () => (num.value = range.value));
  num.addEventListener('input', () => (range.value = num.value));
  updateButtons();

  if (location.protocol === 'file:') {
    $('runtime-status').textContent = 'This page needs to be served: run `basin web` and open the address it prints (browsers do not load WebAssembly modules from file:// pages).';
    return;
  }
  let info = await startWorker();
  if (!info) {
    worker?.terminate();
    worker = null;
    mainThread = await import('./ops.js');
    info = await call('info', {});
  }
  const methods = info.mergeMethods ?? ['linear', 'slerp'];
  $('merge-method').replaceChildren(...methods.map((m) => el('option', { value: m }, m)));
  $('runtime-status').textContent = `ready: onnxruntime-web ${worker ? 'in a Web Worker' : 'on the main thread'}, ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  $('runtime-status').textContent = 'the runtime failed to start';
  showError(e);
});
