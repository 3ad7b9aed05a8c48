/**
 * The external-data files an ONNX file references, read without loading the model: every `location` of a
 * tensor stored `EXTERNAL` (initializers, sparse initializers, Constant-node and other tensor attributes, in the
 * main graph and in every subgraph), resolved against the model's folder. Output checks use it so that `-o` can
 * never name a file an input model reads its weights from, whatever that file is called.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as onnx from './proto.js';

type IGraph = onnx.GraphProto;
type ITensor = onnx.TensorProto;

/**
 * Absolute paths (model folder + location) of the external-data files `onnxPath` references. Returns an empty
 * list for a file that cannot be read or decoded: its loader reports that with a named error.
 */
export async function referencedExternalFiles(onnxPath: string): Promise<string[]> {
  let model: onnx.ModelProto;
  try {
    const bytes = await readFile(onnxPath);
    // every external reference carries the key "location": without those bytes there is none, and the (slow, for a
    // model with inline weights) decode is skipped; the command's loader decodes the file once more anyway
    if (bytes.indexOf('location') < 0) return [];
    model = onnx.decodeModel(bytes);
  } catch {
    return [];
  }
  const dir = path.dirname(path.resolve(onnxPath));
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
