/**
 * The bytes a model takes on disk, for `basin factorize`'s before/after report: an ONNX file plus the external-data
 * files it references (plain names in its folder, each counted once); a safetensors file; a sharded index plus its
 * shards; a folder's .safetensors and .index.json files.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';


function size(p: string): number {
  try {
    return statSync(p).size;
  } catch (e) {
    throw new BasinError('file_not_found', `cannot read the size of ${q(p)}: ${(e as Error).message}`, { file: p });
  }
}

/** Sizes of the named files in `dir`, each once; names with a path separator or absent files are skipped. */
function sideFiles(dir: string, names: Iterable<string>): number {
  let n = 0;
  for (const name of new Set(names)) {
    if (/[\\/]/.test(name) || name === '.' || name === '..') continue;
    try {
      n += statSync(path.join(dir, name)).size;
    } catch {
      // absent: nothing on disk to count
    }
  }
  return n;
}

/** External-data locations referenced by an ONNX file's initializers and Constant attributes. */
function externalLocations(file: string): string[] {
  let proto: onnx.ModelProto;
  try {
    proto = onnx.decodeModel(readFileSync(file));
  } catch {
    return [];
  }
  const out: string[] = [];
  const add = (t: onnx.TensorProto | null | undefined): void => {
    if (t?.dataLocation !== onnx.TensorProto_DataLocation.EXTERNAL) return;
    const loc = (t.externalData ?? []).find((kv) => kv.key === 'location')?.value;
    if (loc) out.push(loc);
  };
  for (const t of proto.graph?.initializer ?? []) add(t);
  for (const n of proto.graph?.node ?? []) for (const a of n.attribute ?? []) add(a.t);
  return out;
}

/**
 * Bytes on disk of the model at `p` (see the file comment).
 * @throws BasinError file_not_found naming the path when it cannot be read
 */
export function modelBytes(p: string): number {
  let st;
  try {
    st = statSync(p);
  } catch (e) {
    throw new BasinError('file_not_found', `cannot read the size of ${q(p)}: ${(e as Error).message}`, { file: p });
  }
  if (st.isDirectory()) {
    return readdirSync(p)
      .filter((n) => n.endsWith('.safetensors') || n.endsWith('.index.json'))
      .reduce((a, n) => a + size(path.join(p, n)), 0);
  }
  const lower = p.toLowerCase();
  if (lower.endsWith('.onnx')) return st.size + sideFiles(path.dirname(p), externalLocations(p));
  if (lower.endsWith('.index.json')) {
    let shards: string[] = [];
    try {
      const root = JSON.parse(readFileSync(p, 'utf8')) as { weight_map?: Record<string, unknown> };
      shards = Object.values(root.weight_map ?? {}).filter((v): v is string => typeof v === 'string');
    } catch {
      shards = [];
    }
    return st.size + sideFiles(path.dirname(p), shards);
  }
  return st.size;
}
