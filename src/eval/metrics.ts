/** Classification metrics from logits: mean cross-entropy of softmax(logits) and accuracy. */
import { BasinError, q, shapeStr } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface EvalResult {
  /** Mean cross-entropy (natural log). */
  readonly loss: number;
  /** Fraction of samples whose largest logit is the label (first index on ties). */
  readonly accuracy: number;
  readonly count: number;
}

/** Sums over a batch, to be combined across batches. */
export interface EvalSums {
  lossSum: number;
  correct: number;
  count: number;
}

/**
 * Add one batch of logits [n, classes] to `sums`: loss_i = logsumexp(z_i) - z_i[y_i] in float64, correct when
 * argmax(z_i) == y_i. Only the first `count` rows are used (padding rows after them are ignored). `source` names
 * the data set in errors (a label out of range).
 */
export function accumulateLogits(sums: EvalSums, logits: Tensor, labels: Int32Array, count = labels.length, name = 'logits', source?: string): void {
  if (logits.rank !== 2) {
    throw new BasinError('shape_mismatch', `output ${q(name)} has shape ${shapeStr(logits.shape)}; expected [batch, classes]`, {
      tensor: name,
      shape: logits.shape,
    });
  }
  const [rows, classes] = logits.shape as [number, number];
  if (rows < count || labels.length < count) {
    throw new BasinError('shape_mismatch', `output ${q(name)} has ${rows} rows for ${count} samples (${labels.length} labels)`, {
      tensor: name,
      shape: logits.shape,
      expected: count,
    });
  }
  const z = logits.data;
  for (let i = 0; i < count; i++) {
    const y = labels[i]!;
    if (!(y >= 0 && y < classes)) {
      throw new BasinError('data_invalid', `${source !== undefined ? `${q(source)}: ` : ''}label ${y} of sample ${sums.count + i} is out of range for the ${classes} classes of output ${q(name)}`, {
        file: source,
        tensor: name,
        found: y,
        expected: classes,
        index: sums.count + i,
      });
    }
    const row = i * classes;
    // argmax, first index on ties; a NaN wins (as in torch.argmax) and makes the loss NaN.
    let max = z[row]!;
    let arg = 0;
    for (let c = 1; c < classes; c++) {
      const v = z[row + c]!;
      if (v > max || (Number.isNaN(v) && !Number.isNaN(max))) {
        max = v;
        arg = c;
      }
    }
    let s = 0;
    for (let c = 0; c < classes; c++) s += Math.exp(z[row + c]! - max);
    sums.lossSum += max + Math.log(s) - z[row + y]!;
    if (arg === y) sums.correct++;
  }
  sums.count += count;
}

export function finish(sums: EvalSums): EvalResult {
  return {
    loss: sums.count ? sums.lossSum / sums.count : NaN,
    accuracy: sums.count ? sums.correct / sums.count : NaN,
    count: sums.count,
  };
}

/** Loss and accuracy of one set of logits [n, classes] against `labels` (pure). */
export function evaluateLogits(logits: Tensor, labels: Int32Array): EvalResult {
  if (logits.rank === 2 && logits.shape[0] !== labels.length) {
    throw new BasinError('shape_mismatch', `${logits.shape[0]} rows of logits for ${labels.length} labels`, {
      shape: logits.shape,
      found: labels.length,
    });
  }
  const sums: EvalSums = { lossSum: 0, correct: 0, count: 0 };
  accumulateLogits(sums, logits, labels);
  return finish(sums);
}
