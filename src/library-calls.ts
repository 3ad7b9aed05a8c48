/**
 * The library calls behind the commands (one per command) and the one Model they take; re-exported by index.ts.
 * - `openModel(path, {graph?, arch?})`: weights from any store plus a graph when there is one (models/load.ts);
 *   `requireGraph` refuses a weights-only model (graph_required) before anything runs it.
 * - `modelSpec(model, {spec?, probe?})`: its permutation spec.
 * - `alignModels(a, b, out, opts)`: `basin align`; `mergeModels(models, opts)`: `basin merge`;
 *   `interpolationStudy(a, b, opts)`: `basin interpolate`.
 */
export { openModel, requireGraph, type LoadedModel, type ModelSource, type GraphKind } from './models/load.js';
export { modelSpec, type ModelSpecOptions } from './models/model-spec.js';
export { alignModels, type AlignModelsOptions, type AlignModelsReport } from './align/align-models.js';
export { mergeModels, type MergeModelsOptions, type MergeModelsResult, type MergeModelsProgress } from './merge/merge-models.js';
export { interpolationStudy, type InterpolationStudy, type InterpolationStudyOptions } from './pipeline/interpolate.js';
