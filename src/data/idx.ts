/**
 * MNIST idx files (optionally gzipped), as in the Debian package dataset-fashion-mnist:
 * `{train,t10k}-images-idx3-ubyte[.gz]` and `{train,t10k}-labels-idx1-ubyte[.gz]`.
 *
 * Layout: a big-endian magic number `00 00 <type> <rank>` (type 0x08 = unsigned byte), `rank` big-endian u32
 * dimensions, then the data. Images are U8 pixels, each flattened to one row (as float32 in [0, 1] under the one
 * input rule, input-rule.ts); labels are class indices. Both files are streamed (through zlib when gzipped), one batch at a time.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { fsError } from '../io/atomic.js';
import { storedBatch, type StoredInput } from './input-rule.js';
import { checkBatchSize, limited, type Batch, type Dataset, type OpenDatasetOptions } from './dataset.js';

const UBYTE = 0x08;

/** Reads exact byte counts from a stream of chunks. */
class StreamReader {
  private readonly it: AsyncIterator<Buffer>;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly close: () => void;
  private readonly file: string;
  private read_ = 0;

  constructor(file: string) {
    this.file = file;
    const raw = createReadStream(file);
    const stream = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
    // A gzip error must not go unhandled on `raw` (pipe does not forward it).
    raw.on('error', (e) => stream.destroy(e));
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.close = () => {
      stream.destroy();
      raw.destroy();
    };
  }

  /** Exactly `n` bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Uint8Array> {
    while (this.buffered < n && !this.done) {
      let r: IteratorResult<Buffer>;
      try {
        r = await this.it.next();
      } catch (e) {
        if (e instanceof BasinError) throw e;
        const why = e instanceof Error ? e.message : String(e);
        throw new BasinError('data_invalid', `${q(this.file)}: cannot read past byte ${this.read_ + this.buffered}: ${why}`, { file: this.file });
      }
      if (r.done) this.done = true;
      else {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
    const take = Math.min(n, this.buffered);
    const out = new Uint8Array(take);
    let at = 0;
    while (at < take) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, take - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= take;
    this.read_ += take;
    return out;
  }

  destroy(): void {
    this.close();
  }
}

interface IdxHeader {
  readonly dims: readonly number[];
  readonly headerBytes: number;
}

async function readHeader(r: StreamReader, file: string, wantRank: number | 'atLeast2'): Promise<IdxHeader> {
  const magic = await r.read(4);
  const rank = magic[3] ?? 0;
  const rankOk = wantRank === 'atLeast2' ? rank >= 2 : rank === wantRank;
  if (magic.length < 4 || magic[0] !== 0 || magic[1] !== 0 || magic[2] !== UBYTE || !rankOk) {
    const hex = Array.from(magic, (b) => b.toString(16).padStart(2, '0')).join('');
    const expected = wantRank === 1 ? '00000801 (labels)' : '00000803 (images)';
    throw new BasinError('data_invalid', `${q(file)}: bad idx magic number 0x${hex || '(empty)'}; expected 0x${expected}`, {
      file,
      found: hex,
      expected,
    });
  }
  const d = await r.read(4 * rank);
  if (d.length < 4 * rank) throw new BasinError('data_invalid', `${q(file)}: file ends inside the idx header`, { file });
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const dims = Array.from({ length: rank }, (_, i) => dv.getUint32(4 * i, false));
  return { dims, headerBytes: 4 + 4 * rank };
}

async function exists(file: string): Promise<boolean> {
  try {
    await (await open(file, 'r')).close();
    return true;
  } catch {
    return false;
  }
}

/** `{prefix}-images-idx3-ubyte` with or without `.gz`, whichever exists. */
export async function findIdxFile(dir: string, prefix: string, kind: 'images' | 'labels'): Promise<string | undefined> {
  const base = `${dir}/${prefix}-${kind}-${kind === 'images' ? 'idx3' : 'idx1'}-ubyte`;
  for (const f of [base, `${base}.gz`]) if (await exists(f)) return f;
  return undefined;
}

export class IdxDataset implements Dataset {
  readonly source: string;
  readonly format = 'idx' as const;
  readonly size: number;
  readonly inputShape: readonly number[];
  readonly inputDType = 'U8' as const;
  readonly imagesFile: string;
  readonly labelsFile: string;

  private constructor(images: string, labels: string, size: number, sample: number) {
    this.source = images;
    this.imagesFile = images;
    this.labelsFile = labels;
    this.size = size;
    this.inputShape = Object.freeze([sample]);
  }

  static async open(images: string, labels: string, { limit }: OpenDatasetOptions = {}): Promise<IdxDataset> {
    const [x, y] = await Promise.all([IdxDataset.header(images, 'atLeast2'), IdxDataset.header(labels, 1)]);
    if (x.dims[0] !== y.dims[0]) {
      throw new BasinError('data_invalid', `${q(labels)} holds ${y.dims[0]} labels but ${q(images)} holds ${x.dims[0]} images`, {
        file: labels,
        expected: x.dims[0],
        found: y.dims[0],
      });
    }
    let sample = 1;
    for (const d of x.dims.slice(1)) sample *= d;
    if (!(Number.isSafeInteger(sample) && sample > 0 && sample <= 1 << 28)) {
      throw new BasinError('data_invalid', `${q(images)}: idx image dims [${x.dims.join(', ')}] are not a plausible sample size`, { file: images, shape: x.dims });
    }
    return new IdxDataset(images, labels, limited(x.dims[0]!, limit), sample);
  }

  private static async header(file: string, rank: number | 'atLeast2'): Promise<IdxHeader> {
    const r = await IdxDataset.reader(file);
    try {
      return await readHeader(r, file, rank);
    } finally {
      r.destroy();
    }
  }

  private static async reader(file: string): Promise<StreamReader> {
    try {
      await (await open(file, 'r')).close();
    } catch (e) {
      throw fsError(e, file, 'open');
    }
    return new StreamReader(file);
  }

  async *batches(batchSize: number): AsyncGenerator<Batch> {
    checkBatchSize(batchSize);
    const xr = await IdxDataset.reader(this.imagesFile);
    const yr = await IdxDataset.reader(this.labelsFile);
    const sample = this.inputShape[0]!;
    try {
      await readHeader(xr, this.imagesFile, 'atLeast2');
      await readHeader(yr, this.labelsFile, 1);
      for (let start = 0; start < this.size; start += batchSize) {
        const count = Math.min(batchSize, this.size - start);
        const [px, lb] = await Promise.all([this.readOrFail(xr, this.imagesFile, count * sample, start), this.readOrFail(yr, this.labelsFile, count, start)]);
        const stored: StoredInput = { dtype: 'U8', bytes: px, sampleShape: this.inputShape, where: { file: this.imagesFile, field: path.basename(this.imagesFile), first: start } };
        yield storedBatch(stored, Int32Array.from(lb), count);
      }
    } finally {
      xr.destroy();
      yr.destroy();
    }
  }

  private async readOrFail(r: StreamReader, file: string, n: number, start: number): Promise<Uint8Array> {
    const b = await r.read(n);
    if (b.length < n) {
      throw new BasinError('data_invalid', `${q(file)}: data ends in the batch starting at sample ${start}, though the header promises at least ${this.size} samples; is the file truncated?`, {
        file,
        expected: n,
        found: b.length,
      });
    }
    return b;
  }
}
