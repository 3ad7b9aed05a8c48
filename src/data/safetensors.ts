/** Data sets in one safetensors file: an input tensor [N, ...] and a label tensor [N] (any numeric dtypes). */
import { BasinError, q } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { ColumnDataset, checkPair, type Column } from './columns.js';
import { limited, type OpenDatasetOptions } from './dataset.js';

export async function openSafetensorsDataset(file: string, { inputName = 'input', labelName = 'label', limit }: OpenDatasetOptions = {}): Promise<ColumnDataset> {
  const st = await SafetensorsFile.open(file);
  try {
    const column = (name: string, what: string): Column => {
      const e = st.entries.get(name);
      if (!e) {
        const have = st.names().slice(0, 8).map(q).join(', ');
        throw new BasinError('data_invalid', `${q(file)} has no ${what} tensor ${q(name)} (it has ${have || 'no tensors'}); name it with ${what === 'input' ? '--input-name' : '--label-name'} (library: the ${what === 'input' ? 'inputName' : 'labelName'} option)`, {
          file,
          tensor: name,
        });
      }
      return { file, field: name, offset: e.begin, dtype: e.dtype, shape: e.shape };
    };
    const input = column(inputName, 'input');
    const label = column(labelName, 'label');
    checkPair(input, label);
    return new ColumnDataset(file, 'safetensors', input, label, limited(input.shape[0]!, limit));
  } finally {
    await st.close();
  }
}
