/**
 * The external-data files an ONNX file references, read without loading the model: every `location` of a
 * tensor stored `EXTERNAL` (initializers, sparse initializers, Constant-node and other tensor attributes, in the
 * main graph and in every subgraph), resolved against the model's folder. Output checks use it so that `-o` can
 * never name a file an input model reads its weights from, whatever that file is called.
 */
import { open } from 'node:fs/promises';
import { freeBuffer, freeableBuffer, type FreeableBuffer } from '../tensor/freeable-buffer.js';
import path from 'node:path';
import * as onnx from './proto.js';

type IGraph = onnx.GraphProto;
type ITensor = onnx.TensorProto;

/**
 * Absolute paths (model folder + location) of the external-data files `onnxPath` references. Returns an empty
 * list for a file that cannot be read or decoded: its loader reports that with a named error.
 */
export async function referencedExternalFiles(onnxPath: string): Promise<string[]> {
  // The file is read on a freeableBuffer, freed before returning: a model's bytes left to the garbage collector
  // were still resident when the command loaded the models next (ViT-B/16 align: 346 MB more at its peak).
  let buf: FreeableBuffer | undefined;
  try {
    let bytes: Buffer;
    try {
      ({ buf, bytes } = await readWhole(onnxPath));
      // every external reference carries the key "location": without those bytes there is none, and the (slow, for a
      // model with inline weights) decode is skipped; the command's loader decodes the file once more anyway
      if (bytes.indexOf('location') < 0) return [];
      return locations(onnx.decodeModel(bytes), path.dirname(path.resolve(onnxPath)));
    } catch {
      return [];
    }
  } finally {
    if (buf) freeBuffer(buf);
  }
}

/** The bytes of `file` on a freeableBuffer (as a Buffer view, for indexOf). */
async function readWhole(file: string): Promise<{ buf: FreeableBuffer; bytes: Buffer }> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const buf = freeableBuffer(size);
    const bytes = Buffer.from(buf, 0, size);
    for (let off = 0; off < size; ) {
      const { bytesRead } = await fh.read(bytes, off, Math.min(size - off, 1 << 30), off);
      if (bytesRead === 0) return { buf, bytes: bytes.subarray(0, off) };
      off += bytesRead;
    }
    return { buf, bytes };
  } finally {
    await fh.close();
  }
}

/** The external-data files (absolute paths) a decoded model references; `dir` is its folder. */
function locations(model: onnx.ModelProto, dir: string): string[] {
  const found = new Set<string>();
  const tensor = (t: ITensor | null | undefined): void => {
    if (!t || t.dataLocation !== onnx.TensorProto_DataLocation.EXTERNAL) return;
    const loc = (t.externalData ?? []).find((kv) => kv.key === 'location')?.value;
    if (loc) found.add(path.resolve(dir, loc));
  };
  const graph = (g: IGraph | null | undefined): void => {
    if (!g) return;
    for (const t of g.initializer ?? []) tensor(t);
    for (const s of g.sparseInitializer ?? []) {
      tensor(s.values);
      tensor(s.indices);
    }
    for (const n of g.node ?? []) {
      for (const a of n.attribute ?? []) {
        tensor(a.t);
        for (const t of a.tensors ?? []) tensor(t);
        graph(a.g);
        for (const sg of a.graphs ?? []) graph(sg);
      }
    }
  };
  graph(model.graph);
  return [...found];
}
