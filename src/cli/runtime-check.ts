/**
 * What the CLI says when onnxruntime-node's native runtime cannot be loaded.
 *
 * onnxruntime-node ships its CPU runtime inside the npm package (bin/napi-v6/<platform>/<arch>); on linux-x64 its
 * install script also downloads CUDA provider files, which fails offline. basin needs only the CPU runtime, so the
 * package is installed with `--onnxruntime-node-install=skip` (the repo's .npmrc says so). When the binding is
 * missing anyway (a platform without a prebuilt runtime, a pruned node_modules, a broken shared library), Node's
 * loader error is a long path; this turns it into one clear BasinError that says what to do.
 */
import { BasinError } from '../errors.js';

/** Loader errors that come from onnxruntime-node's package or its native binding (not from basin's own code). */
const RUNTIME_LOAD = /onnxruntime[-_](node|binding|common)|libonnxruntime/;

/**
 * The BasinError (`runtime_missing`) for an error thrown while loading a command's modules, or undefined when the
 * error has nothing to do with onnxruntime-node (then it is a bug and is printed as one).
 */
export function runtimeLoadError(e: unknown): BasinError | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as NodeJS.ErrnoException).code;
  const text = `${e.message}`;
  if (!RUNTIME_LOAD.test(text)) return undefined;
  if (code !== undefined && !['MODULE_NOT_FOUND', 'ERR_MODULE_NOT_FOUND', 'ERR_DLOPEN_FAILED'].includes(code) && !/cannot open shared object|dlopen|invalid ELF/i.test(text)) return undefined;
  const firstLine = text.split('\n')[0] ?? text;
  return new BasinError(
    'runtime_missing',
    `onnxruntime-node's native runtime could not be loaded (${firstLine.slice(0, 200)}). basin runs models with it. ` +
      `Reinstall it with \`npm install onnxruntime-node --onnxruntime-node-install=skip\` ` +
      `(the CPU runtime ships in the package; without the flag, its install script downloads CUDA files on linux-x64, which fails offline). ` +
      `Prebuilt runtimes exist for linux x64/arm64, macOS x64/arm64 and Windows x64/arm64 (platform here: ${process.platform}-${process.arch}).`,
    { found: firstLine, platform: `${process.platform}-${process.arch}` },
  );
}
