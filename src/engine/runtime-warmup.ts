/**
 * onnxruntime's one-time process set-up, started early on a worker thread.
 *
 * The first InferenceSession of a process pays for onnxruntime's environment and its CPU kernel registry (every
 * kernel it ships registered once): ~70 ms of CPU on the 2-core VM, whatever the model, on the thread that creates
 * it. Both are process-wide, so a session created on another thread pays them for everyone: a command that will
 * run models or the matrix engine starts one tiny session on a worker thread while its main thread loads modules
 * and reads the models, and its own first session then costs ~5 ms instead of ~75 (measured: a 784-512x3 MLP pair's
 * whole `basin align` ~55 ms shorter in wall time). Node only (the browser build never imports this file).
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import os from 'node:os';
import { readFileSync } from 'node:fs';

/**
 * A one-node ONNX model, c = MatMul(a, b) on float32 [1, 1] inputs (IR 7, opset 13), as serialized by
 * onnx.helper: running it also initializes the matrix kernels' platform dispatch.
 */
export const WARMUP_MODEL_BASE64 =
  'CAcSADpVChEKAWEKAWISAWMiBk1hdE11bBIBd1oTCgFhEg4KDAgBEggKAggBCgIIAVoTCgFiEg4KDAgBEggKAggBCgIIAWITCgFjEg4KDAgBEggKAggBCgIIAUIECgAQDQ==';

// The worker: load onnxruntime-node, create and run the tiny session, release it. Failures are the main thread's
// to meet and report when it creates its own sessions, so the worker swallows them. Its stdio stays piped to the
// process's own (the default): a captured stream that the worker writes to keeps the process alive after its work
// (measured: a worker's one stderr line under `stderr: true` held the CLI open forever).
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
(async () => {
  try {
    const ort = require(workerData.ort);
    const s = await ort.InferenceSession.create(Buffer.from(workerData.model, 'base64'), {
      intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 4, graphOptimizationLevel: 'disabled',
    });
    const one = new ort.Tensor('float32', new Float32Array([1]), [1, 1]);
    await s.run({ a: one, b: one }, { logSeverityLevel: 4 });
    await s.release();
  } catch {}
})();
`;

let started = false;
/** Resolves when the worker has exited (at once when none was started). */
let exited: Promise<void> = Promise.resolve();

/**
 * Whether a core is likely idle now. On Linux: the kernel's count of runnable threads (/proc/loadavg's fourth field,
 * `running/total`, which counts this thread too), least of three reads, leaves a core free. Elsewhere: the last
 * minute's load average does. The worker only pays off beside an idle core; on a busy machine it is ~0.1 s of extra
 * CPU taken from the command itself (measured at load 8 on 2 cores: 1.49 s of CPU against 1.27 without it, and no
 * shorter wall time). The count, not the average: the average still says "busy" for a minute after a busy process
 * ended (measured: `basin align` run right after the seed's PyTorch process, whose threads left the 1-minute average
 * at 1.6 on an idle 2-core machine, went without the worker and took ~60 ms longer).
 */
export function spareCore(): boolean {
  const cores = os.availableParallelism();
  if (cores < 2) return false;
  const running = runnableThreads();
  return running === undefined ? (os.loadavg()[0] ?? 0) <= cores - 1 : running <= cores - 1;
}

/** Least of three reads of /proc/loadavg's runnable-thread count (this thread included), or undefined where there is none. */
export function runnableThreads(read: () => string = () => readFileSync('/proc/loadavg', 'utf8')): number | undefined {
  let least: number | undefined;
  for (let i = 0; i < 3; i++) {
    let text: string;
    try {
      text = read();
    } catch {
      return undefined;
    }
    const m = /^\S+ \S+ \S+ (\d+)\/\d+ /.exec(text);
    if (!m) return undefined;
    const r = Number(m[1]);
    least = least === undefined ? r : Math.min(least, r);
  }
  return least;
}

/**
 * Start onnxruntime's process set-up on a worker thread, once per process, when a core is spare (`spareCore`, unless
 * `always`); returns at once (the worker does not keep the process alive and its failures are ignored: the main
 * thread's own first session reports them).
 * @returns whether a worker was started (false when one was already started, no core was spare, or none could be)
 */
export function warmRuntimeInBackground({ always = false }: { always?: boolean } = {}): boolean {
  if (started || !(always || spareCore())) return false;
  started = true;
  try {
    const ort = createRequire(import.meta.url).resolve('onnxruntime-node');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ort, model: WARMUP_MODEL_BASE64 } });
    worker.on('error', () => undefined);
    exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.unref();
    return true;
  } catch {
    return false;
  }
}

/**
 * Wait (at most `timeoutMs`) for the warm-up worker to finish. A command that ends early (bad input found in the
 * first milliseconds) would otherwise exit while the worker is inside onnxruntime's native set-up, and Node's
 * teardown of the worker's environment there aborts the process with a C++ `terminate called after throwing an
 * instance of 'Napi::Error'` (seen on a loaded 2-core machine) instead of basin's own error and exit code. Normal
 * commands find the worker long finished.
 */
export async function settleWarmup(timeoutMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}
