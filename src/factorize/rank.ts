/**
 * The latent rank a factorization is asked for, resolved as the seed resolves it: an integer r >= 1 is taken as
 * is; a fraction 0 < f < 1 means floor(f · inputs), capped at the current width of the map (its outputs, or the
 * latent rank of an already factorized pair).
 */
import { BasinError, q } from '../errors.js';

/**
 * Resolve `rank` for a layer with `inputs` input features whose map is currently `width` wide.
 *
 * Errors: 'invalid_argument' naming the layer for a rank that is not a positive finite number, an integer-sized
 * rank that is not an integer (2.5), or a fraction that rounds down to 0 latent features.
 */
export function resolveRank(layer: string, rank: number, inputs: number, width: number): number {
  if (typeof rank !== 'number' || !Number.isFinite(rank) || rank <= 0) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: rank must be an integer >= 1 or a fraction in (0, 1), got ${String(rank)}`, {
      node: layer,
      expected: 'integer >= 1 or fraction in (0, 1)',
      found: rank,
    });
  }
  if (rank < 1) {
    const k = Math.min(Math.floor(rank * inputs), width);
    if (k < 1) {
      throw new BasinError('invalid_argument', `layer ${q(layer)}: rank fraction ${rank} of its ${inputs} inputs rounds down to 0; use a larger fraction or an integer rank`, {
        node: layer,
        found: rank,
      });
    }
    return k;
  }
  if (!Number.isSafeInteger(rank)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: rank ${rank} is neither an integer nor a fraction in (0, 1)`, {
      node: layer,
      expected: 'integer >= 1 or fraction in (0, 1)',
      found: rank,
    });
  }
  return rank;
}
