/**
 * `-o -` writes the model to standard output: the command writes a private temporary file (of the format of its
 * model inputs: `.onnx` for ONNX inputs, `.safetensors` for state_dicts), checked and stamped as every output is,
 * and its bytes are copied to stdout when the command succeeds. Only a single self-contained file can go through a
 * pipe: an output that needs more files (external data of a model over 2 GB, `--shard-size` shards) is refused.
 * Tables and progress go to stderr then (terminal-options.ts).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BasinError } from '../errors.js';
import { showPathAs } from './common.js';

const OUT_OPTIONS = new Set(['-o', '--out']);

/** The model extension a command's inputs ask for: the first input path naming .onnx or a safetensors file. */
function inputExtension(argv: readonly string[]): '.onnx' | '.safetensors' | undefined {
  for (const a of argv) {
    const lower = a.toLowerCase();
    if (lower.endsWith('.onnx')) return '.onnx';
    if (lower.endsWith('.safetensors') || lower.endsWith('.index.json')) return '.safetensors';
  }
  return undefined;
}

export interface StdoutOutput {
  /** The arguments with `-o -` replaced by the temporary file. */
  readonly argv: string[];
  /** Copy the output to stdout (when the command wrote it) and remove the temporary folder. */
  finish(succeeded: boolean): Promise<void>;
}

/**
 * Replace `-o -` / `--out -` / `--out=-` by a temporary file; undefined when the command line has none.
 * @throws BasinError invalid_argument when no model input tells the format, with `--shard-size`, or with `--report -`
 */
export function takeStdoutOutput(argv: readonly string[]): StdoutOutput | undefined {
  let at = -1;
  for (let i = 0; i < argv.length && argv[i] !== '--'; i++) {
    if ((OUT_OPTIONS.has(argv[i]!) && argv[i + 1] === '-') || argv[i] === '--out=-') at = argv[i] === '--out=-' ? i : i + 1;
  }
  if (at < 0) return undefined;
  if (argv.some((a, i) => (a === '--report' && argv[i + 1] === '-') || a === '--report=-')) {
    throw new BasinError('invalid_argument', '-o - and --report - both ask for stdout; send one of them to a file', { option: '-o' });
  }
  if (argv.some((a) => a === '--shard-size' || a.startsWith('--shard-size='))) {
    throw new BasinError('invalid_argument', '-o - writes one file to stdout; a sharded output (--shard-size) needs a folder or a path', { option: '-o' });
  }
  const ext = inputExtension(argv);
  if (!ext) {
    throw new BasinError('invalid_argument', '-o - (stdout): no model input names its format (.onnx or .safetensors); give an output path instead', { option: '-o' });
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'basin-stdout-'));
  const file = path.join(dir, `model${ext}`);
  showPathAs(file, '- (stdout)'); // "wrote - (stdout)", not the temporary file that is gone when the command ends
  const out = [...argv];
  out[at] = argv[at] === '--out=-' ? `--out=${file}` : file;
  const clean = () => rmSync(dir, { recursive: true, force: true });
  process.on('exit', clean);
  return {
    argv: out,
    async finish(succeeded: boolean): Promise<void> {
      try {
        if (!succeeded) return;
        const written = readdirSync(dir);
        if (!written.includes(path.basename(file))) return; // the command wrote no model (e.g. --help)
        if (written.length > 1) {
          throw new BasinError('invalid_argument', `-o -: the output needs more than one file (${written.length}: external data of a model over 2 GB?); give an output path`, { option: '-o' });
        }
        const bytes = readFileSync(file);
        await new Promise<void>((resolve, reject) => {
          // a reader that stops early (`| head -c 10`) closes the pipe: EPIPE, on the callback and as an 'error' event
          const closed = (e: NodeJS.ErrnoException): void =>
            reject(
              e.code === 'EPIPE'
                ? new BasinError('io_error', '-o -: standard output was closed before the whole model was written (the reading program stopped early); what it read is incomplete', { option: '-o' })
                : e,
            );
          process.stdout.once('error', closed);
          process.stdout.write(bytes, (e) => (e ? closed(e) : resolve()));
        });
      } finally {
        clean();
      }
    },
  };
}
