/**
 * onnxruntime's errors in basin's form: every failure to create a session or run one becomes a BasinError
 * (`onnx_runtime`) that names basin's input file and, when it can be found, the node at fault, with
 * onnxruntime's own source locations (`/onnxruntime_src/onnxruntime/core/graph/model.cc:202 onnxruntime::Model::
 * Model(...)`) and status prefixes (`[ONNXRuntimeError] : 1 : FAIL :`) removed: they describe onnxruntime's
 * build, not the user's model. Names in the text are printed through the same escaping as every message.
 */
import type * as onnx from './proto.js';
import { BasinError, escapeControl, q } from '../errors.js';

type IGraphProto = onnx.GraphProto;

/** A C++ source location: `/path/to/file.cc:123` (also `.h`, `.cpp`, Windows paths). */
const SOURCE_LOCATION = /(?:(?<!\w)[A-Za-z]:)?[\\/]?(?:[\w.+-]+[\\/])*[\w.+-]+\.(?:cc|cpp|cxx|c|h|hpp):\d+\s*/g;

/** Skip a C++ function signature right after a source location: `ns::Cls::fn(args...) const `. */
function skipSignature(text: string, at: number): number {
  const m = /^[\w:~<>,* &]*\(/.exec(text.slice(at));
  if (!m || !m[0].includes('::')) return at;
  let depth = 0;
  for (let i = at + m[0].length - 1; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')' && --depth === 0) {
      let end = i + 1;
      const tail = /^(?:\s*const)?\s*/.exec(text.slice(end));
      if (tail) end += tail[0].length;
      return end;
    }
  }
  return at;
}

/** onnxruntime's message without its source locations, function signatures and status prefixes. */
export function cleanOrtMessage(message: string): string {
  let out = '';
  let from = 0;
  for (const m of message.matchAll(SOURCE_LOCATION)) {
    if (m.index! < from) continue;
    out += `${message.slice(from, m.index)} `;
    from = skipSignature(message, m.index! + m[0].length);
  }
  out += message.slice(from);
  return out
    .replace(/\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/g, '')
    .replace(/[ \t]*\n[ \t]*/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
}

/** The node onnxruntime's message names, in any of the forms it uses. */
function nodeFromMessage(msg: string): string | undefined {
  const patterns = [/Name:\s*'([^']*)'/, /In Node, \("([^"]*)"/, /Node\s*\(([^)]*)\)/, /node '([^']*)'/i, /Node:\s*([^\s,]+)/];
  for (const p of patterns) {
    const m = p.exec(msg)?.[1];
    if (m) return m;
  }
  return undefined;
}

/** The first node (in graph order) on a cycle of the main graph, if it has one (Kahn's algorithm). */
export function nodeOnCycle(graph: IGraphProto | null | undefined): string | undefined {
  const nodes = graph?.node ?? [];
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output ?? []) if (o) producer.set(o, i);
  });
  const indeg = nodes.map(() => 0);
  const users: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const x of n.input ?? []) {
      const p = producer.get(x);
      if (p !== undefined) {
        indeg[i]!++;
        users[p]!.push(i);
      }
    }
  });
  const ready = indeg.flatMap((d, i) => (d === 0 ? [i] : []));
  let done = 0;
  while (ready.length > 0) {
    const i = ready.pop()!;
    done++;
    for (const u of users[i]!) if (--indeg[u]! === 0) ready.push(u);
  }
  if (done === nodes.length) return undefined;
  // Walk back through unfinished producers from any unfinished node until one repeats: that one is on a cycle.
  let i = indeg.findIndex((d) => d > 0);
  const seen = new Set<number>();
  while (!seen.has(i)) {
    seen.add(i);
    const back = (nodes[i]!.input ?? []).map((x) => producer.get(x)).find((p) => p !== undefined && indeg[p]! > 0);
    if (back === undefined) break;
    i = back;
  }
  const n = nodes[i]!;
  return n.name || `#${i} (${n.opType ?? '?'} → ${(n.output ?? []).join(', ')})`;
}

export interface OrtErrorContext {
  /** basin's input file, when the model came from one. */
  file?: string | undefined;
  /** The graph the session was built from: to find the node of a cycle onnxruntime does not name. */
  graph?: IGraphProto | null | undefined;
}

/**
 * An onnxruntime failure (`doing`: "creating a session", "running the model") as BasinError('onnx_runtime')
 * naming the file and node; BasinErrors pass through unchanged.
 */
export function ortError(doing: string, e: unknown, { file, graph }: OrtErrorContext = {}): BasinError {
  if (e instanceof BasinError) return e;
  const raw = e instanceof Error ? e.message : String(e);
  const msg = cleanOrtMessage(raw);
  let node = nodeFromMessage(msg);
  if (node === undefined && /acyclic|cycle/i.test(msg)) node = nodeOnCycle(graph);
  return new BasinError(
    'onnx_runtime',
    `onnxruntime failed ${doing}${file ? ` for ${q(file)}` : ''}${node ? ` at node ${q(node)}` : ''}: ${escapeControl(msg)}`,
    { file, node },
  );
}
