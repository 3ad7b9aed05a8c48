/**
 * Warnings on a factorized model that is far from the original: a graph output whose nmse against the original
 * (FactorizeModelResult.outputNmse, MSE / var of the original output on the first calibration batch) is above
 * OUTPUT_NMSE_WARNING. Per layer each pair may look fine while their errors compound through the network (or one
 * amplifying op) into a destroyed output; the model is still written, but the user must be told, loudly.
 */
import { q } from '../errors.js';

/** Output nmse above which the factorized model is reported as destroyed (0.1: 10% of the output's variance). */
export const OUTPUT_NMSE_WARNING = 0.1;

/** The rank mode of `basin factorize`, for the advice in the warning. */
export type FactorizeMode = 'rank' | 'keep' | 'max-nmse' | 'auto';

const ADVICE: Readonly<Record<FactorizeMode, string>> = {
  rank: 'use a larger --rank',
  keep: 'use a larger --keep (keep more of the parameters)',
  'max-nmse': 'use a smaller --max-nmse',
  auto: 'use a smaller --max-nmse ceiling',
};

/**
 * One warning per graph output whose nmse exceeds OUTPUT_NMSE_WARNING (graph-output order; NaN counts as
 * exceeding). Each names the output, its nmse and what to do in this mode: larger ranks or a smaller budget, or
 * leaving layers out (dropping --include-ends when it was given; else higher --min-features / --min-channels).
 * Empty when every output is close.
 * @param outputNmse graph output name → nmse against the original (dimensionless)
 */
export function outputWarnings(outputNmse: Readonly<Record<string, number>>, { mode, includeEnds = false }: { mode: FactorizeMode; includeEnds?: boolean }): string[] {
  const leaveOut = includeEnds ? 'drop --include-ends to leave the first and last layers dense' : 'leave layers dense with higher --min-features / --min-channels';
  return Object.entries(outputNmse)
    .filter(([, v]) => !(v <= OUTPUT_NMSE_WARNING))
    .map(
      ([name, v]) =>
        `output ${q(name)} of the factorized model has nmse ${v.toExponential(2)} against the original (above ${OUTPUT_NMSE_WARNING}): ` +
        `it is far from the original and likely broken; ${ADVICE[mode]}, or ${leaveOut}`,
    );
}
