/**
 * A resized graph that onnxruntime cannot run: its graph computes shapes from a width basin changed in a form
 * reshape-pins.ts does not rewrite (it rewrites Reshape targets and Split sizes, constant or computed, which covers
 * torch's MultiheadAttention and GPT-2's head splits), so the new widths and the computed shapes disagree. Turned
 * into one clear error naming the groups.
 */
import { BasinError, q } from '../errors.js';

/**
 * Run `fn`; an onnx_runtime failure becomes BasinError verify_failed naming `groups` (what was resized).
 * @throws BasinError verify_failed, or whatever `fn` throws otherwise
 */
export async function explainShapeCoupling<T>(groups: readonly string[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof BasinError && e.code === 'onnx_runtime')) throw e;
    throw new BasinError(
      'verify_failed',
      `the resized model does not run: its graph computes shapes from the width of ${groups.map(q).join(', ')} in a way basin does not rewrite (it rewrites Reshape targets and Split sizes, e.g. torch MultiheadAttention's head split); leave ${groups.length > 1 ? 'these groups' : 'this group'} at ${groups.length > 1 ? 'their' : 'its'} width. onnxruntime said: ${e.message}`,
      { node: groups[0] },
    );
  }
}
