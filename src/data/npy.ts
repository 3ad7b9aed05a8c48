/**
 * NumPy .npy arrays (format versions 1-3): little-endian or byte-sized numeric dtypes, C order. The header dict is
 * parsed strictly as the Python literal it is (npy-header.ts); data is read by offset while iterating.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { DType } from '../dtype.js';
import { DTYPES } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import { fsError } from '../io/atomic.js';
import { NpyHeaderSyntaxError, parseNpyHeaderDict, type NpyHeaderDict } from './npy-header.js';
import { ColumnDataset, checkPair, type Column } from './columns.js';
import { limited, type OpenDatasetOptions } from './dataset.js';

const NPY_DTYPES: Record<string, DType> = {
  f2: 'F16', f4: 'F32', f8: 'F64', i1: 'I8', i2: 'I16', i4: 'I32', i8: 'I64', u1: 'U8', u2: 'U16', u4: 'U32', u8: 'U64', b1: 'BOOL',
};

/** Header cap: numpy itself refuses headers over 10 000 bytes unless told otherwise. */
const MAX_NPY_HEADER = 1 << 20;

export interface NpyHeader {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte offset of the data. */
  readonly dataOffset: number;
}

function bad(file: string, msg: string, extra: Record<string, unknown> = {}): never {
  throw new BasinError('data_invalid', `${q(file)}: ${msg}`, { file, ...extra });
}

/** Parse and validate the header of an .npy file given its first bytes and total size. */
export function parseNpyHeader(head: Uint8Array, fileSize: number, file: string): NpyHeader {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (head.length < 10 || !magic.every((b, i) => head[i] === b)) bad(file, 'not an .npy file (missing the \\x93NUMPY magic)');
  const major = head[6]!;
  const minor = head[7]!;
  if (minor !== 0 || major < 1 || major > 3) {
    return bad(file, `.npy format version ${major}.${minor} is not supported (1.0, 2.0 or 3.0)`, { found: `${major}.${minor}` });
  }
  let headerLen: number;
  let start: number;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else {
    if (head.length < 12) bad(file, 'file ends inside the .npy header');
    headerLen = dv.getUint32(8, true);
    start = 12;
  }
  if (headerLen > MAX_NPY_HEADER) bad(file, `.npy header of ${headerLen} bytes is larger than ${MAX_NPY_HEADER}`);
  if (start + headerLen > head.length) bad(file, `file ends inside the .npy header (${headerLen} bytes announced)`);
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(head.subarray(start, start + headerLen));
  } catch {
    return bad(file, '.npy header is not valid UTF-8');
  }
  let dict: NpyHeaderDict;
  try {
    dict = parseNpyHeaderDict(text);
  } catch (e) {
    if (!(e instanceof NpyHeaderSyntaxError)) throw e;
    return bad(file, `invalid .npy header: ${e.message}; numpy.load refuses it too`, { found: text.trim().slice(0, 200) });
  }
  const { descr, shape } = dict;
  if (dict.fortranOrder) {
    bad(file, "array is stored in Fortran (column-major) order; save it with np.save(path, np.ascontiguousarray(a))", { found: 'fortran_order' });
  }
  const order = descr[0];
  const dtype = NPY_DTYPES[descr.slice(1)];
  if (dtype === undefined || !(order === '<' || order === '|' || (order === '>' && DTYPES[dtype].bytes === 1))) {
    return bad(file, `.npy dtype ${q(descr)} is not supported; use a little-endian numeric dtype such as '<f4' (a.astype('<f4'))`, { found: descr });
  }
  const dataOffset = start + headerLen;
  // Exact (BigInt) byte count, compared with what the file holds: no precision is lost on a huge shape.
  const bytes = shape.reduce((a, d) => a * BigInt(d), BigInt(DTYPES[dtype].bytes));
  const have = fileSize - dataOffset;
  if (bytes > BigInt(have)) {
    bad(file, `.npy data of shape (${shape.join(', ')}) ${descr} needs ${bytes} bytes after the header, but the file has ${have}; is it truncated?`, {
      expected: bytes.toString(),
      found: have,
    });
  }
  return { dtype, shape, dataOffset };
}

export async function readNpyHeader(file: string): Promise<NpyHeader> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw fsError(e, file, 'open');
  }
  try {
    const size = (await fh.stat()).size;
    const head = new Uint8Array(Math.min(size, 12));
    await fh.read(head, 0, head.length, 0);
    let want = head.length;
    if (head.length >= 10 && head[6] === 1) want = 10 + (head[8]! | (head[9]! << 8));
    else if (head.length >= 12 && (head[6] === 2 || head[6] === 3)) want = 12 + new DataView(head.buffer).getUint32(8, true);
    const full = new Uint8Array(Math.min(size, Math.min(want, 12 + MAX_NPY_HEADER)));
    await fh.read(full, 0, full.length, 0);
    return parseNpyHeader(full, size, file);
  } finally {
    await fh.close();
  }
}

/** An input .npy and a label .npy, matched row for row. */
export async function openNpyDataset(inputFile: string, labelFile: string, { limit }: OpenDatasetOptions = {}): Promise<ColumnDataset> {
  const x = await readNpyHeader(inputFile);
  const y = await readNpyHeader(labelFile);
  const input: Column = { file: inputFile, field: path.basename(inputFile), offset: x.dataOffset, dtype: x.dtype, shape: x.shape };
  const label: Column = { file: labelFile, field: path.basename(labelFile), offset: y.dataOffset, dtype: y.dtype, shape: y.shape };
  checkPair(input, label);
  return new ColumnDataset(`${inputFile},${labelFile}`, 'npy', input, label, limited(x.shape[0]!, limit));
}
