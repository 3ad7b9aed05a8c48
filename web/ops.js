/**
 * The page's operations on the browser bundle (basin-web.js), one function per button. Runs inside the Web Worker
 * (worker.js), or on the main thread when a module worker cannot start. Inputs and outputs are plain data
 * (Uint8Array, numbers, strings), so they cross postMessage unchanged; `onProgress` gets plain objects.
 */
import * as basin from './basin-web.js';

let ready;

/** Start onnxruntime-web once (wasm files next to the bundle). */
function init() {
  ready ??= Promise.resolve(basin.initRuntime());
  return ready;
}

/**
 * Run one operation.
 * @param {string} op inspect | align | interpolate | merge | chart | info
 * @param {Record<string, unknown>} args
 * @param {(p: unknown) => void} onProgress
 * @returns {Promise<{ result: unknown, transfer: ArrayBuffer[] }>}
 */
export async function runOp(op, args, onProgress) {
  await init();
  switch (op) {
    case 'info':
      return { result: { crossOriginIsolated: globalThis.crossOriginIsolated === true, exports: Object.keys(basin) }, transfer: [] };
    case 'inspect':
      return { result: await basin.inspectOnnx(args.bytes, args.name), transfer: [] };
    case 'align': {
      const r = await basin.alignOnnx(args.a, args.b, { onProgress });
      return { result: r, transfer: [r.model.buffer] };
    }
    case 'interpolate': {
      const r = await basin.interpolateOnnx(args.a, args.b, args.data, { steps: args.steps, onProgress });
      return { result: r, transfer: [] };
    }
    case 'merge': {
      const model = await basin.mergeOnnx(args.a, args.b, { t: args.t, method: args.method });
      return { result: model, transfer: [model.buffer] };
    }
    case 'chart':
      return { result: basin.interpolationChartSvg(args.curves), transfer: [] };
    default:
      throw new Error(`unknown operation ${op}`);
  }
}
