/**
 * The fields an ONNX alignment reports, the same for `basin align --report` (align-models.ts) and the browser's
 * `alignOnnx` (web/index.ts): permutations, objective, sweeps, what was left unpermuted, the verification and the
 * spec's coverage of the model's parameters.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { AlignOnnxResult } from './align-onnx.js';
import type { alignmentCoverage } from './coverage.js';

/** A coverage summary as reports write it (snake_case). */
export function coverageJson(c: ReturnType<typeof alignmentCoverage>) {
  return { groups: c.groups, permuted_params: c.permutedParams, params: c.params, frozen_causes: c.causes };
}

/** The report fields of `r`, B aligned to `a`; `seconds` is the time the alignment took. */
export function alignReportFields(r: AlignOnnxResult, a: OnnxModel, coverage: ReturnType<typeof alignmentCoverage>, warnings: string[], seconds: number) {
  return {
    perms: Object.fromEntries([...r.match.perms].map(([k, v]) => [k, Array.from(v)])),
    objective_before: r.match.objectiveBefore,
    objective_after: r.match.objectiveAfter,
    sweeps: r.match.sweeps,
    seconds,
    // scalar constants (LayerNorm eps, GELU factors) are not worth listing
    unpermuted: a.weights().filter((n) => !r.spec.axesToPerm.has(n) && a.weightInfo(n).shape.some((d) => d > 1)),
    verified: true as const,
    verify: { samples: r.verify.samples, max_abs: r.verify.maxAbs, max_rel: r.verify.maxRel },
    warnings,
    coverage: coverageJson(coverage),
    spec: r.spec.toJson(),
  };
}
