/**
 * `-` as an input path reads standard input, where the format allows: one ONNX model without external data, one
 * safetensors file (a state_dict or a data set), one `.npy` array, a JSON document (a permutation spec), or a
 * recipe (`basin run -`). The bytes are read in full, their format told from their first bytes (the formats'
 * magic numbers, not the command line), and written to a private temporary file that replaces the `-`; the file is
 * removed when the process exits. `-` after `-o`/`--out`/`--report` is an output and is left alone
 * (terminal-options.ts).
 *
 * What stdin cannot carry: two inputs (stdin is read once), an ONNX model whose weights are in external data files
 * or a sharded checkpoint (their other files are named relative to the model's folder), a folder data set.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BasinError } from '../errors.js';
import { showPathAs } from './common.js';

let stdinFile: string | undefined;

/** Whether `file` is the temporary file holding standard input (a recipe read from stdin has its paths relative to the working folder). */
export function isStdinFile(file: string): boolean {
  return stdinFile !== undefined && path.resolve(file) === stdinFile;
}

/** Options whose value `-` names an output (stdout), not an input. */
const OUTPUT_OPTIONS = new Set(['-o', '--out', '--report']);

/** The positions in `argv` of `-` tokens that name inputs. */
export function stdinPositions(argv: readonly string[]): number[] {
  const at: number[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') break;
    if (argv[i] === '-' && !(i > 0 && OUTPUT_OPTIONS.has(argv[i - 1]!))) at.push(i);
  }
  return at;
}

/**
 * The file extension the bytes' format reads under, told from their first bytes: `.safetensors` (an 8-byte
 * little-endian header length that fits, then `{`), `.npy` (`\x93NUMPY`), `.onnx` (a ModelProto starts with field 1,
 * ir_version, as a varint: byte 0x08), `.json` (text starting with `{` or `[`), `.yaml` for a recipe (any text, when
 * `recipe` is set). Undefined when none fits.
 */
export function sniffFormat(bytes: Uint8Array, recipe = false): string | undefined {
  if (bytes.length >= 9 && bytes[8] === 0x7b) {
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (n + 8n <= BigInt(bytes.length)) return '.safetensors';
  }
  if (bytes.length >= 6 && bytes[0] === 0x93 && String.fromCharCode(...bytes.subarray(1, 6)) === 'NUMPY') return '.npy';
  if (bytes[0] === 0x08 && !recipe) return '.onnx';
  const head = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, 256)).trimStart();
  if (recipe && head.length > 0 && !head.includes('\u0000')) return '.yaml';
  if (head.startsWith('{') || head.startsWith('[')) return '.json';
  return undefined;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/**
 * Replace an input `-` in `argv` (the arguments after the script) by a temporary file holding standard input.
 * Returns `argv` unchanged when there is none.
 * @throws BasinError invalid_argument when `-` is given twice, when stdin is a terminal or empty, or when its format
 * is none of those listed above (the message names the first bytes).
 */
export async function takeStdinInput(argv: readonly string[], stdin: NodeJS.ReadStream = process.stdin): Promise<string[]> {
  const at = stdinPositions(argv);
  if (at.length === 0) return [...argv];
  if (at.length > 1) {
    throw new BasinError('invalid_argument', `'-' (standard input) is given ${at.length} times; stdin can be read once: give the other inputs as files`, { found: at.length });
  }
  if (stdin.isTTY) {
    throw new BasinError('invalid_argument', "'-' reads the input from standard input, but stdin is a terminal: pipe a file in (basin … - < model.onnx)");
  }
  const bytes = await readAll(stdin);
  if (bytes.length === 0) throw new BasinError('invalid_argument', "'-' reads the input from standard input, but stdin is empty");
  const recipe = argv.find((a) => !a.startsWith('-')) === 'run';
  const ext = sniffFormat(bytes, recipe);
  if (!ext) {
    const hex = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new BasinError(
      'invalid_argument',
      `standard input is not a format basin reads from a pipe (first bytes ${hex}): expected an ONNX model, a safetensors file, a .npy array or a JSON spec`,
      { file: '-' },
    );
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'basin-stdin-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, `stdin${ext}`);
  writeFileSync(file, bytes, { mode: 0o600 });
  stdinFile = path.resolve(file);
  // messages name the input '-', as the user gave it, never the temporary file (gone when the command ends)
  showPathAs(file, '-');
  if (stdinFile !== file) showPathAs(stdinFile, '-');
  const out = [...argv];
  out[at[0]!] = file;
  return out;
}
