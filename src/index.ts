// The public surface of basin: everything a user can import is re-exported here.
export { BasinError, isBasinError, type BasinErrorCode, type BasinErrorDetails } from './errors.js';
export { DTYPES, type DType, type DTypeInfo } from './dtype.js';
export { Tensor, axisToRows, moveaxis, transpose, take, permuteAxisInPlace } from './tensor/tensor.js';
export { SafetensorsFile, writeSafetensors, decodeFloat32, encodeFloat32, MAX_HEADER_BYTES, type SafetensorsEntry, type TensorToWrite } from './io/safetensors.js';
export { openCheckpoint, writeCheckpoint, type Checkpoint, type TensorInfo, type WriteCheckpointOptions, type WrittenCheckpoint } from './io/checkpoint.js';
export { writeFileAtomic, type ChunkSink, type ChunkSource } from './io/atomic.js';
export { interpolationChart, barrierOf, escapeXml, type InterpolationChartInput, type InterpolationCurve, type Barrier } from './report/plot.js';
export { svgToPng, writeChart, type PngOptions } from './report/png.js';
export { formatTable, formatMarkdownTable, type TableOptions, type TableCell, type TableAlign } from './report/table.js';
export { OnnxModel, loadOnnx, saveOnnx, onnxTypeName, MIN_OPSET, MAX_OPSET, KNOWN_DOMAINS, type WeightInfo, type WeightStorage, type ValueDesc, type FromBytesOptions } from './onnx/model.js';
export { GraphBuilder, attr, tensorProto, irVersionFor, type Dim, type IntValues, type AttrValue, type TensorStorageOptions, type ExternalOptions } from './onnx/build.js';
export { OnnxSession, createSession, valueShapes, traceValues, toTensor, type Feed, type RawValue, type OrtType, type CreateSessionOptions, type TracedValue } from './onnx/session.js';
export { openDataset } from './data/open.js';
export { parseNpyHeader, readNpyHeader, type NpyHeader } from './data/npy.js';
export type { Dataset, Batch, OpenDatasetOptions } from './data/dataset.js';
export { evaluate, checkInputFits, type EvaluateOptions } from './eval/evaluate.js';
export { evaluateLogits, type EvalResult } from './eval/metrics.js';
export { solveAssignment, type AssignmentOptions, type AssignmentResult } from './linalg/lap.js';
