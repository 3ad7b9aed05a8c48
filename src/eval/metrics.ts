/**
 * Metrics from logits, summed batch by batch: classification (mean cross-entropy of softmax(logits [N, C]) against
 * a label per sample, and accuracy) and language modelling (mean cross-entropy of softmax(logits [N, T, V]) at
 * each position t < T − 1 against the next token ids[n, t + 1], in nats/token; perplexity = exp(loss); next-token
 * top-1 accuracy). Log-sum-exp in float64 with the row maximum subtracted.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

/** What is scored: one label per sample (`logits` [N, C]), or the next token at each position (`logits` [N, T, V]). */
export type EvalTask = 'classification' | 'lm';

/** The unit of an EvalResult's loss, for tables, reports and charts. */
export const LOSS_UNIT: Readonly<Record<EvalTask, string>> = { classification: 'nats', lm: 'nats/token' };

export interface EvalResult {
  /** Mean cross-entropy (natural log): nats per sample (classification) or per predicted token (lm). */
  readonly loss: number;
  /** Fraction of samples (classification) or predicted tokens (lm) whose largest logit is the target (first index on ties). */
  readonly accuracy: number;
  /** Samples evaluated. */
  readonly count: number;
  /** 'classification' when absent (results built before the task existed). */
  readonly task?: EvalTask;
  /** lm: positions scored (N·(T − 1) less the masked ones). */
  readonly tokens?: number;
  /** lm: exp(loss). */
  readonly perplexity?: number;
}

/** Sums over a batch, to be combined across batches. `count` counts scored targets (samples or tokens). */
export interface EvalSums {
  lossSum: number;
  correct: number;
  count: number;
  /** Samples seen (lm: `count` counts tokens). */
  samples?: number;
}

/**
 * Score one row of logits `z[row .. row + classes)` against target `y`: adds the cross-entropy
 * (log-sum-exp minus the target's logit, in float64, max subtracted) to `lossSum` and counts a top-1 hit. Argmax
 * takes the first index on ties; a NaN wins (as in torch.argmax) and makes the loss NaN.
 */
function scoreRow(sums: { lossSum: number; correct: number }, z: ArrayLike<number>, row: number, classes: number, y: number): void {
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
    scoreRow(sums, z, i * classes, classes, y);
  }
  sums.count += count;
}

/** Mean loss and accuracy from the sums (NaN when nothing was scored). */
export function finish(sums: EvalSums, task: EvalTask = 'classification'): EvalResult {
  const loss = sums.count ? sums.lossSum / sums.count : NaN;
  const accuracy = sums.count ? sums.correct / sums.count : NaN;
  if (task === 'classification') return { loss, accuracy, count: sums.count, task };
  return { loss, accuracy, count: sums.samples ?? 0, task, tokens: sums.count, perplexity: Math.exp(loss) };
}

/** Token ids or a 0/1 mask as fed to the model: [n, T] integers. */
export type IdArray = BigInt64Array | Int32Array | Uint8Array | ArrayLike<number>;

/**
 * Add one batch of language-model logits [n, T, V] to `sums`: for each of the first `count` samples and each
 * position t < T − 1 whose target is attended (`mask[n, t]` and `mask[n, t + 1]` non-zero, when a mask is given),
 * loss += logsumexp(z[n, t]) − z[n, t, ids[n, t + 1]] in float64, correct when argmax z[n, t] == ids[n, t + 1].
 * `ids` and `mask` are row-major [rows ≥ count, T].
 * @throws BasinError shape_mismatch when the logits are not [≥ count, T, V]; data_invalid naming the data set,
 *   sample and position when a target id is outside [0, V)
 */
export function accumulateLm(
  sums: EvalSums,
  logits: Tensor,
  ids: IdArray,
  { count, length, mask, name = 'logits', source }: { count: number; length: number; mask?: IdArray; name?: string; source?: string },
): void {
  const [rows, T, V] = logits.shape as [number, number, number];
  if (logits.rank !== 3 || rows < count || T !== length) {
    throw new BasinError(
      'shape_mismatch',
      `output ${q(name)} has shape ${shapeStr(logits.shape)}; a language model gives logits [batch, positions, vocabulary] = [${count}, ${length}, V] for ${count} sequences of ${length} tokens`,
      { tensor: name, shape: logits.shape, expected: [count, length] },
    );
  }
  const z = logits.data;
  const first = sums.samples ?? 0;
  for (let n = 0; n < count; n++) {
    for (let t = 0; t + 1 < T; t++) {
      const at = n * T + t;
      if (mask && (Number(mask[at]!) === 0 || Number(mask[at + 1]!) === 0)) continue;
      const y = Number(ids[at + 1]!);
      if (!(Number.isInteger(y) && y >= 0 && y < V)) {
        throw new BasinError(
          'data_invalid',
          `${source !== undefined ? `${q(source)}: ` : ''}token id ${y} at position ${t + 1} of sample ${first + n} is outside the ${V} logits of output ${q(name)} (the vocabulary)`,
          { file: source, tensor: name, found: y, expected: V, index: first + n, position: t + 1 },
        );
      }
      scoreRow(sums, z, at * V, V, y);
      sums.count++;
    }
  }
  sums.samples = first + count;
}

/**
 * Loss and accuracy of one set of logits [n, classes] against `labels` (pure).
 * @throws BasinError shape_mismatch when logits are not [N, C] or labels not N long
 */
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
