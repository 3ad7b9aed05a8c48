// The public surface of basin: everything a user can import is re-exported here.
export { BasinError, isBasinError, type BasinErrorCode, type BasinErrorDetails } from './errors.js';
export { DTYPES, type DType, type DTypeInfo } from './dtype.js';
export { Tensor, axisToRows, moveaxis, transpose, take, permuteAxisInPlace } from './tensor/tensor.js';
