/**
 * The page's Web Worker: runs ops.js off the main thread so the page stays responsive while onnxruntime-web works.
 * Protocol: in `{ id, op, args }`; out `{ id, progress: { stage, fraction } }` (any number), then `{ id, result }` or
 * `{ id, error: { name, code, message } }` (a BasinError keeps its code).
 */
import { runOp } from './ops.js';

// one operation at a time, in the order they were asked for
let queue = Promise.resolve();
self.onmessage = (event) => {
  queue = queue.then(() => handle(event.data));
};

async function handle({ id, op, args }) {
  try {
    const onProgress = (stage, fraction) => self.postMessage({ id, progress: { stage: String(stage), fraction: typeof fraction === 'number' ? fraction : null } });
    const { result, transfer } = await runOp(op, args, onProgress);
    self.postMessage({ id, result }, transfer.filter((b) => b instanceof ArrayBuffer));
  } catch (e) {
    self.postMessage({ id, error: errorData(e) });
  }
}

function errorData(e) {
  return { name: e?.name ?? 'Error', code: typeof e?.code === 'string' ? e.code : undefined, message: String(e?.message ?? e) };
}
