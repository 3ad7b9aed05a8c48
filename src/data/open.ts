/** `openDataset`: pick the reader from the path. */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { fsError } from '../io/atomic.js';
import type { Dataset, OpenDatasetOptions } from './dataset.js';
import { IdxDataset, findIdxFile } from './idx.js';
import { openNpyDataset } from './npy.js';
import { openSafetensorsDataset } from './safetensors.js';

async function kind(p: string): Promise<'file' | 'dir' | undefined> {
  try {
    const s = await stat(p);
    return s.isDirectory() ? 'dir' : 'file';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(e, p, 'open');
  }
}

function notFound(p: string): never {
  throw new BasinError('file_not_found', `data set ${q(p)} does not exist`, { file: p });
}

/**
 * Open a labelled data set:
 * - `data.safetensors`: tensors `inputName` [N, ...] and `labelName` [N];
 * - `x.npy,y.npy`, or `x.npy` with `labels`, or a folder holding `x.npy` + `y.npy` (or `<inputName>.npy` +
 *   `<labelName>.npy`);
 * - an MNIST idx folder (`split` picks t10k or train files), or an idx images file (labels file found beside it
 *   or given with `labels`).
 * @throws BasinError file_not_found; invalid_argument (an unknown format); data_invalid naming the file and field at fault
 */
export async function openDataset(pathOrDir: string, options: OpenDatasetOptions = {}): Promise<Dataset> {
  const { inputName = 'input', labelName = 'label', split = 'test' } = options;
  const parts = pathOrDir.split(',');
  if (parts.length === 2 && parts.every((p) => p.endsWith('.npy'))) {
    for (const p of parts) if ((await kind(p)) !== 'file') notFound(p);
    return openNpyDataset(parts[0]!, parts[1]!, options);
  }
  const k = await kind(pathOrDir);
  if (k === undefined) notFound(pathOrDir);
  if (k === 'dir') {
    for (const [x, y] of [['x', 'y'], [inputName, labelName]] as const) {
      const xf = path.join(pathOrDir, `${x}.npy`);
      const yf = path.join(pathOrDir, `${y}.npy`);
      if ((await kind(xf)) === 'file' && (await kind(yf)) === 'file') return openNpyDataset(xf, yf, options);
    }
    if (split !== 'test' && split !== 'train') {
      throw new BasinError('invalid_argument', `'split' must be 'test' or 'train', got ${q(String(split))}`, { found: split });
    }
    const prefix = split === 'test' ? 't10k' : 'train';
    const images = await findIdxFile(pathOrDir, prefix, 'images');
    const labels = await findIdxFile(pathOrDir, prefix, 'labels');
    if (images && labels) return IdxDataset.open(images, labels, options);
    throw new BasinError(
      'data_invalid',
      `${q(pathOrDir)} holds no data set basin reads: expected x.npy + y.npy, ${inputName}.npy + ${labelName}.npy, or MNIST idx files ${prefix}-images-idx3-ubyte[.gz] + ${prefix}-labels-idx1-ubyte[.gz]`,
      { file: pathOrDir },
    );
  }
  const base = path.basename(pathOrDir);
  if (base.endsWith('.safetensors')) return openSafetensorsDataset(pathOrDir, options);
  if (base.endsWith('.npy')) {
    if (!options.labels) {
      throw new BasinError('data_invalid', `${q(pathOrDir)} holds inputs only; give the labels file too (as 'x.npy,y.npy' on the command line; library: the labels option)`, { file: pathOrDir });
    }
    if ((await kind(options.labels)) !== 'file') notFound(options.labels);
    return openNpyDataset(pathOrDir, options.labels, options);
  }
  if (/images-idx\d-ubyte(\.gz)?$/.test(base)) {
    const labels = options.labels ?? path.join(path.dirname(pathOrDir), base.replace(/images-idx\d/, 'labels-idx1'));
    if ((await kind(labels)) !== 'file') {
      throw new BasinError('data_invalid', `no labels for idx images ${q(pathOrDir)}: ${q(labels)} does not exist (pass the images and labels files as 'images,labels'; library: the labels option)`, {
        file: pathOrDir,
      });
    }
    return IdxDataset.open(pathOrDir, labels, options);
  }
  throw new BasinError('data_invalid', `${q(pathOrDir)}: unknown data format; expected .safetensors, .npy, an MNIST idx file, or a folder of them`, {
    file: pathOrDir,
  });
}
