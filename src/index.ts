/**
 * basin's public API: everything a user can import from 'basin-ml' (package.json "exports" maps '.' here), grouped
 * by capability, lowest floor first. Internals (per-op tracer rules, LAP steps, engine caches, file-format and CLI
 * plumbing) are not exported; inside basin, import them from their own files.
 */

// Errors: one error class; `code` comes from a closed union and `details` hold the facts (file, tensor, node, axis…).
export { BasinError, isBasinError, type BasinErrorCode, type BasinErrorDetails } from './errors.js';

// Dtypes and tensors: the one dtype table (TypedArray, ONNX code, onnxruntime type, float32 conversions) and the float32 tensor.
export { DTYPES, decodeFloat32, encodeFloat32, type DType, type DTypeInfo } from './dtype.js';
export { Tensor, moveaxis, transpose } from './tensor/tensor.js';

// Weight files: safetensors files and sharded checkpoints, read lazily and validated, written atomically.
export { SafetensorsFile, writeSafetensors, MAX_HEADER_BYTES, type SafetensorsEntry, type TensorToWrite } from './io/safetensors.js';
export { openCheckpoint, writeCheckpoint, type Checkpoint, type TensorInfo, type WriteCheckpointOptions, type WrittenCheckpoint } from './io/checkpoint.js';
export { writeFileAtomic, type ChunkSink, type ChunkSource } from './io/atomic.js';
export { withProvenance, currentProvenance, provenanceMetadata, BASIN_VERSION, type Provenance } from './io/provenance.js';
export { parseRecipe, RECIPE_VERSION, type Recipe, type RecipeStep, type RecipeValue } from './recipe/recipe.js';

// ONNX models: load and save (external data, edits in place), build graphs from code, run them with onnxruntime.
export { OnnxModel, loadOnnx, saveOnnx, type WeightInfo, type WeightStorage, type ValueDesc, type FromBytesOptions } from './onnx/model.js';
export { GraphBuilder, attr, tensorProto, type Dim, type IntValues, type AttrValue, type TensorStorageOptions, type ExternalOptions } from './onnx/build.js';
export { OnnxSession, createSession, toTensor, type Feed, type RawValue, type OrtType, type CreateSessionOptions } from './onnx/session.js';

// Models from any store: a state_dict (safetensors, sharded, any dtype) on its own graph, a borrowed graph, or a built MLP graph.
export { openModel, requireGraph, type LoadedModel, type ModelSource, type GraphKind } from './models/load.js';
export { modelSpec, type ModelSpecOptions } from './models/model-spec.js';
export { saveModel, outputFormat, type SaveModelOptions, type SavedModel, type ModelFormat } from './models/save.js';
export { loadModel, mapWeights, withWeights, specForStateDict, stateDictSpecFromGraph, type LoadModelOptions, type WeightMapping } from './models/load.js';
export { mlpGraph, MLP_ACTIVATIONS, type MlpActivation } from './models/mlp-graph.js';

// Data: data sets (MNIST idx, .npy, safetensors) and the one feed that gives every model input its values.
export { openDataset } from './data/open.js';
export type { Dataset, Batch, OpenDatasetOptions } from './data/dataset.js';
export { openFeeds, type FeedSource, type OpenFeedsOptions } from './data/feed-source.js';
export { dataInput, type DataInputOptions } from './data/data-input.js';
export { feedFor, randomFeeds, randomBatches, parseDims, type DimSizes, type RandomFeedOptions } from './data/feed.js';

// Permutation specs: which weight axes share a hidden-unit permutation, and applying assignments to tensors and models.
export { PermutationSpec, type Assignment, type Placement, type ResolvedPerm } from './spec/spec.js';
export type { PermutationSpecJson, PermInfo, PermPoint, PermRef, FrozenAxis } from './spec/types.js';
export { applyAssignment, permuteTensor, randomAssignment, identityAssignment, checkAssignment, invert, type ShapedArray } from './spec/apply.js';
export { permuteModel, permuteRandomly, weightShapes, changedFraction, type PermutedModel } from './spec/permute-model.js';
export { mlpSpec, mlpLayers, type MlpSpecOptions } from './spec/mlp.js';

// Spec inference: trace an ONNX graph into its permutation groups, probe value shapes, check a spec by running it.
export { inferSpec, graphSpec, graphSpecWith, type ProbeInputs } from './graph/infer-spec.js';
export { inferPermutationSpec, inspectModel, probeModel, checkInvariance, type ProbeResult, type GroupReport, type GroupMember, type GroupKind, type FrozenGroupReport, type InferResult, type InvarianceReport } from './graph/index.js';

// Matching: the table of matching methods (weight, activation), each two models + optional data → permutations.
export { MATCHING_METHODS, MATCHING_METHOD_NAMES, matchingMethod, type MatchingMethod, type MatchingMethodName, type MatchOptions, type MethodResult } from './match/registry.js';
export { weightMatching, matchingObjective, type WeightMatchingOptions, type MatchingResult, type SweepInfo } from './match/weight-matching.js';
export { activationMatching, type ActivationMatchingOptions, type ActivationMatchingResult, type ActivationProgress, type ActivationData, type PermCorrelation } from './match/activation-matching.js';

// Alignment: align or randomly permute models and checkpoints, each output verified against its source.
export { alignOnnxModels, randomlyPermute, resolveSpec, checkSameWeights, type AlignOnnxResult, type PermuteResult, type SpecSource } from './align/align-onnx.js';
export { alignCheckpoints, type AlignReport, type AlignCheckpointOptions } from './align/align-checkpoints.js';
export { verifyAlignedCheckpoint, type CheckpointGraph } from './align/verify-checkpoint.js';

// Verification: two models compute the same function, value by value, within float32 rounding.
export { compareModels, assertEquivalent, verifySummary, type VerifyResult, type OutputDiff, type ValueDiff, type ValueKind, type CompareOptions, type ComparePermutation } from './verify/verify.js';
export { verifyPermuted, type VerifyOptions } from './verify/verify-permuted.js';
export { roundingTolerance } from './verify/tolerance.js';

// Merging: interpolate, MergeMany, and the corrections (BatchNorm reset, REPAIR) applied to merged models.
export { interpolateModels, averageModels } from './merge/interpolate.js';
export { mergeMany, type MergeManyOptions, type MergeManyResult, type MergeManyProgress } from './merge/merge-many.js';
export { mergeMethod, MERGE_METHOD_NAMES, type MergeMethod, type MergeMethodName, type MergeMethodOptions, type ResolvedMergeOptions } from './merge/methods/index.js';
export { mergeTensors, type MergeTensorsResult } from './merge/methods/merge-tensors.js';
export { CORRECTIONS, CORRECTION_NAMES, correction, type Correction, type CorrectionName, type CorrectionOptions, type CorrectionResult } from './merge/corrections.js';
export { resetBatchNorm, type ResetBatchNormOptions, type ResetBatchNormResult, type BatchNormReset, type BatchNormStatistics } from './merge/bn-reset.js';
export { repairModel, type RepairOptions, type RepairResult, type RepairedLayer, type MergeEndpoints } from './merge/repair.js';
export type { CalibrationData, CalibrationBatch, CalibrationOptions, PassProgress } from './merge/calibration.js';

// Evaluation: loss and accuracy (classification) or loss per token and perplexity (language models), and barriers.
export { evaluate, type EvaluateOptions } from './eval/evaluate.js';
export { openEvalData, type OpenEvalDataOptions } from './eval/eval-data.js';
export { evaluateLogits, LOSS_UNIT, type EvalResult, type EvalTask } from './eval/metrics.js';
export { barrierOf, type Barrier } from './eval/barrier.js';
export { alphaGrid, interpolationCurves, curveOf, midpoint, type CurvePoint, type InterpolationCurve as InterpolationCurveResult, type CurveSpec } from './pipeline/interpolate.js';

// Reports: the interpolation chart (SVG, PNG) and text tables.
export { interpolationChart, type InterpolationChartInput, type InterpolationCurve } from './report/plot.js';
export { svgToPng, writeChart, type PngOptions } from './report/png.js';
export { formatTable, formatMarkdownTable, type TableOptions, type TableCell, type TableAlign } from './report/table.js';

// Linear algebra and the matrix engine (onnxruntime products, float64 decompositions, the assignment solver).
export { matmul, matmulTs, gramSum, type MatmulOptions, type MatShape, type FloatMatrix, type GramTerm, type GramSumOptions } from './engine/matmul.js';
export { disposeEngine } from './engine/ort.js';
export { setEngineThreads, engineThreads } from './engine/session-factory.js';
export { solveAssignment, type AssignmentOptions, type AssignmentResult } from './linalg/lap.js';
export { eigh, type EighResult } from './linalg/eigh.js';
export { svd, type SvdResult } from './linalg/svd.js';
export { qr, solveLeastSquares, type QrResult, type LeastSquaresOptions, type LeastSquaresResult } from './linalg/qr.js';
export { cholesky, choleskySolve } from './linalg/cholesky.js';
export { randomizedSvd, topKEig, type LinearOperator, type RandomizedOptions, type TopKEigResult } from './linalg/randomized.js';

// The commands as library calls: what `basin align`, `basin merge` and `basin interpolate` each make one call to.
export { alignModels, type AlignModelsOptions, type AlignModelsReport } from './align/align-models.js';
export { mergeModels, type MergeModelsOptions, type MergeModelsResult, type MergeModelsProgress } from './merge/merge-models.js';
export { mergeCheckpoints, type MergeCheckpointsOptions, type MergeCheckpointsResult, type MergeCheckpointPhases, type CheckpointMatching } from './merge/merge-checkpoints.js';
export { interpolationStudy, type InterpolationStudy, type InterpolationStudyOptions } from './pipeline/interpolate.js';

// Factorization core (low-rank layers fitted on activations): streamed statistics, closed-form reduced-rank regression, ALS, convs on their im2col.
export { ActivationStats, type ActivationStatsOptions } from './factorize/activation-stats.js';
export { momentsOfMap, momentsOfTargets, outputVariance, nmseOf, type RegressionMoments } from './factorize/moments.js';
export { ReducedRank, DEFAULT_RCOND, type ReducedRankOptions, type RankFactors } from './factorize/reduced-rank.js';
export { refineAls, type AlsResult } from './factorize/als.js';
export { resolveRank } from './factorize/rank.js';
export { allocateRanks, nmseCurve, denseParams, pairParams, maxCheaperIndex, type RankLayer, type RankBudget, type RankChoice, type RankAllocation } from './factorize/allocate.js';
export { measureLayerLatency, latencySessionCount, clearLatencyCache, type MatMulShape, type ConvShape, type LatencyOptions, type LayerLatency } from './factorize/latency.js';
export { measureModelLatency, type ModelLatency, type ModelLatencyOptions } from './factorize/model-latency.js';
export { modelBytes } from './factorize/model-bytes.js';
export { autoRanks, defaultMeasure, DEFAULT_AUTO_MAX_NMSE, type AutoLayer, type AutoChoice, type AutoOptions, type LatencyMeasure } from './factorize/auto-ranks.js';
export { factorizeMatrix, solveLowRank, denseMap, type LinearMap, type SingleMap, type FactorizedMap, type MatrixSamples, type FactorizeOptions, type LowRankSolution, type MapSolution } from './factorize/factorize-matrix.js';
export { convGeometry, fanIn, padsFor, outputSize, im2col, type ConvGeometry, type ConvAttributes, type AutoPad } from './factorize/conv-geometry.js';
export { ConvStats } from './factorize/conv-stats.js';
export { factorizeConv, type ConvWeight, type FactorizedConvWeight, type ConvLowRankSolution } from './factorize/factorize-conv.js';
export { factorizeModel, uniformRank, breakEvenRank, type FactorizeModelOptions, type FactorizeModelResult, type FactorizedLayerReport, type ModelLatencyReport, type RankPolicy, type LayerRank } from './factorize/factorize-model.js';
export { budgetPolicy, autoPolicy, rankLayerOf, type AutoPolicyOptions } from './factorize/rank-policies.js';
export { findLayers, selectLayers, type FactorizableLayer } from './factorize/layers.js';
export { outputWarnings, OUTPUT_NMSE_WARNING, type FactorizeMode } from './factorize/output-warnings.js';

// Width changes (basin shrink, basin grow): per-group roles, one resize primitive (index maps or dense pairs), selection + least-squares refit, PCA folding, Net2Wider.
export { shrinkModel, checkWidths, REDUCTION_METHODS, type ReductionMethod, type ShrinkModelOptions, type ShrinkModelResult, type ShrinkGroupReport } from './reduce/shrink-model.js';
export { growModel, net2widerMap, type GrowModelOptions, type GrowModelResult } from './reduce/grow-model.js';
export { parseWidthSpec } from './reduce/width-spec.js';
export { resizeModel, type UnitMap } from './reduce/resize.js';
export { groupRoles, ROLE_RULES, type UnitRole, type GroupRoles, type RoleMember } from './reduce/roles.js';

// Zip (basin zip): two models of one architecture stacked side by side exactly, then reduced by the reduction core.
export { stackModels, STACK_TOLERANCE, type StackModelsOptions, type StackedModel, type StackedOutput, type StackOutputs, type StackInputs } from './zip/stack-models.js';
export { zipModels, type ZipModelsOptions, type ZipModelsResult, type ZipGroupWidth, type ZipHalfEvaluation } from './zip/zip-model.js';
