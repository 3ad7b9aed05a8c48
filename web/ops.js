/**
 * The page's operations on the browser bundle (basin-web.js), one function per button. Runs inside the Web Worker
 * (worker.js), or on the main thread when a module worker cannot start. Inputs and outputs are plain data
 * (Uint8Array, numbers, strings), so they cross postMessage unchanged; `onProgress` gets plain objects.
 */
import * as basin from './basin-web.js';

let ready;

/** Start onnxruntime-web once (wasm files next to the bundle; wasm threads when the page is cross-origin isolated). */
function init() {
  const threads = globalThis.crossOriginIsolated === true ? Math.max(1, Math.min(4, globalThis.navigator?.hardwareConcurrency ?? 1)) : 1;
  ready ??= basin.initRuntime({ numThreads: threads }).then(() => threads);
  return ready;
}

/** The merge methods that combine two models without a shared base (the page's method select). */
const PAIR_METHODS = ['linear', 'slerp'];

/**
 * Run one operation.
 * @param {string} op inspect | align | interpolate | merge | chart | info
 * @param {Record<string, unknown>} args
 * @param {(stage: string, fraction?: number) => void} onProgress
 * @returns {Promise<{ result: unknown, transfer: ArrayBuffer[] }>}
 */
export async function runOp(op, args, onProgress) {
  const threads = await init();
  switch (op) {
    case 'info':
      return {
        result: { crossOriginIsolated: globalThis.crossOriginIsolated === true, threads, mergeMethods: (basin.MERGE_METHOD_NAMES ?? PAIR_METHODS).filter((m) => PAIR_METHODS.includes(m)) },
        transfer: [],
      };
    case 'inspect':
      return { result: await basin.inspectOnnx(args.bytes, args.name), transfer: [] };
    case 'align': {
      const r = await basin.alignOnnx(args.a, args.b, { onProgress, names: args.names });
      return { result: r, transfer: [r.model.buffer] };
    }
    case 'interpolate': {
      const r = await basin.interpolateOnnx(args.a, args.b, args.data, { steps: args.steps, onProgress, names: args.names });
      return { result: r, transfer: [] };
    }
    case 'merge': {
      const model = await basin.mergeOnnx(args.a, args.b, { t: args.t, method: args.method, names: args.names });
      return { result: model, transfer: [model.buffer] };
    }
    case 'chart':
      return { result: basin.interpolationChartSvg(args.curves, { title: args.title, endpointLabels: args.endpointLabels }), transfer: [] };
    default:
      throw new Error(`unknown operation ${op}`);
  }
}
