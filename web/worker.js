/**
 * The page's Web Worker: runs ops.js off the main thread so the page stays responsive while onnxruntime-web works.
 * Protocol: in `{ id, op, args }`; out `{ id, progress }` (any number), then `{ id, result }` or
 * `{ id, error: { name, code, message } }` (a BasinError keeps its code).
 */
import { runOp } from './ops.js';

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  try {
    const { result, transfer } = await runOp(op, args, (progress) => self.postMessage({ id, progress: plain(progress) }));
    self.postMessage({ id, result }, transfer.filter((b) => b instanceof ArrayBuffer));
  } catch (e) {
    self.postMessage({ id, error: errorData(e) });
  }
};

/** A progress event without functions or class instances (postMessage clones plain data only). */
function plain(p) {
  try {
    return JSON.parse(JSON.stringify(p ?? null));
  } catch {
    return null;
  }
}

function errorData(e) {
  return { name: e?.name ?? 'Error', code: typeof e?.code === 'string' ? e.code : undefined, message: String(e?.message ?? e) };
}
