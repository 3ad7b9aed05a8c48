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
  | 'runtime_missing'
  // recipes (basin run)
  | 'recipe_invalid'
  // paths and outputs
  | 'unsafe_path'
  | 'output_conflict'
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
  | 'data_required'
  | 'graph_required'
  | 'unsupported'
  // numerics and verification
  | 'non_finite'
  | 'shape_mismatch'
  | 'verify_failed'
  | 'nothing_to_align'
  | 'nothing_to_factorize'
  | 'too_large'
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

/**
 * The one error basin throws for bad input or a failed check: `code` (a member of the closed BasinErrorCode union)
 * tells failures apart, `details` hold the facts the message was built from (file, tensor, node, axis, shapes,
 * offsets, expected/found), and the message names the thing at fault (names through q()) and the fix when known.
 */
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

/** Whether `e` is a BasinError (a type guard for catch clauses). */
export function isBasinError(e: unknown): e is BasinError {
  return e instanceof BasinError;
}

/**
 * Escape every control character (C0, DEL, C1) and the Unicode line/paragraph separators and bidi controls as
 * `\xNN` / `\uNNNN`, and backslashes as `\\`, so a name read from a file can never move the cursor, erase a line,
 * start a new line or reorder text when printed. Printable text, including non-ASCII letters, is kept.
 */
export function escapeControl(text: string): string {
  return text.replace(/[\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Quote a name the way every basin message does; control characters in it are escaped (see escapeControl). */
export function q(name: string): string {
  return `'${escapeControl(String(name))}'`;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
