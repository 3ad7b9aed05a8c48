/**
 * One error class for everything basin rejects. `code` comes from a closed union so callers, the CLI and tests
 * can tell failures apart without parsing text; `details` keeps the facts (file, tensor, node, axis, shapes,
 * offsets) the message was built from.
 */
export type BasinErrorCode =
  // safetensors / file input
  | 'file_not_found'
  | 'file_truncated'
  | 'header_too_large'
  | 'header_invalid_json'
  | 'header_invalid_entry'
  | 'unknown_dtype'
  | 'offsets_invalid'
  | 'tensor_size_mismatch'
  | 'duplicate_tensor'
  | 'tensor_not_found'
  | 'index_invalid'
  | 'io_error'
  // ONNX
  | 'onnx_invalid'
  | 'onnx_unsupported_op'
  | 'onnx_unsupported_opset'
  | 'onnx_external_data'
  | 'onnx_runtime'
  // permutation specs
  | 'spec_invalid'
  | 'spec_param_missing'
  | 'spec_rank_mismatch'
  | 'spec_size_mismatch'
  | 'spec_repeated_perm'
  | 'spec_arch_mismatch'
  // model pairs and data
  | 'models_mismatch'
  | 'data_invalid'
  | 'data_shape_mismatch'
  // numerics and verification
  | 'non_finite'
  | 'shape_mismatch'
  | 'verify_failed'
  // generic bad argument
  | 'invalid_argument';

export type BasinErrorDetails = {
  file?: string;
  tensor?: string;
  node?: string;
  axis?: number;
  shape?: readonly number[];
  expected?: unknown;
  found?: unknown;
  [key: string]: unknown;
};

export class BasinError extends Error {
  readonly code: BasinErrorCode;
  readonly details: BasinErrorDetails;

  constructor(code: BasinErrorCode, message: string, details: BasinErrorDetails = {}) {
    super(message);
    this.name = 'BasinError';
    this.code = code;
    this.details = details;
  }
}

export function isBasinError(e: unknown): e is BasinError {
  return e instanceof BasinError;
}

/** Quote a name the way every basin message does. */
export function q(name: string): string {
  return `'${name}'`;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
