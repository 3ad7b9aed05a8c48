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
