/**
 * Static checks of QuantizeLinear / DequantizeLinear parameters, before onnxruntime runs the model (issue 12 F4):
 * onnxruntime's own errors for these name nothing. Checked where the facts are in the file (initializers):
 * the `axis` attribute is in range for x's rank; a 1-D per-axis scale / zero point has one value per position of
 * x's `axis`; a DequantizeLinear zero point has x's element type.
 */
import { BasinError, q } from '../errors.js';
import * as onnx from '../onnx/proto.js';

type Graph = onnx.GraphProto;

/**
 * @throws BasinError onnx_invalid naming the node and the tensor at fault
 */
export function checkQuantParams(graph: Graph, file?: string): void {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  for (const n of graph.node ?? []) {
    if (n.opType !== 'QuantizeLinear' && n.opType !== 'DequantizeLinear') continue;
    const [x = '', scale = '', zp = ''] = n.input ?? [];
    const xt = inits.get(x);
    const st = inits.get(scale);
    const zt = zp ? inits.get(zp) : undefined;
    const node = n.name || (n.output ?? [])[0] || n.opType;
    const fail = (tensor: string, why: string): never => {
      throw new BasinError('onnx_invalid', `node ${q(node)} (${n.opType}): ${why}`, { file, node, tensor });
    };
    if (n.opType === 'DequantizeLinear' && xt && zt && xt.dataType !== zt.dataType) {
      fail(zp, `zero point ${q(zp)} has element type ${zt.dataType} but the quantized tensor ${q(x)} has ${xt.dataType} (TensorProto codes): they must match`);
    }
    if (!xt) continue;
    const xdims = (xt.dims ?? []).map(Number);
    const attr = (n.attribute ?? []).find((a) => a.name === 'axis');
    const axis = attr ? Number(attr.i ?? 0) : 1;
    const blocked = Number((n.attribute ?? []).find((a) => a.name === 'block_size')?.i ?? 0) > 0;
    const sdims = (st?.dims ?? []).map(Number);
    const perAxis = sdims.length === 1 && sdims[0]! > 1;
    if (!perAxis && !blocked) continue;
    const a = axis < 0 ? axis + xdims.length : axis;
    if (a < 0 || a >= xdims.length) fail(x, `axis ${axis} is out of range for ${q(x)} of rank ${xdims.length}`);
    if (perAxis && sdims[0] !== xdims[a]) {
      fail(scale, `scale ${q(scale)} has ${sdims[0]} values but axis ${axis} of ${q(x)} has ${xdims[a]}: a per-axis scale has one value per position`);
    }
    const zdims = (zt?.dims ?? []).map(Number);
    if (perAxis && zt && zdims.length === 1 && zdims[0] !== xdims[a]) {
      fail(zp, `zero point ${q(zp)} has ${zdims[0]} values but axis ${axis} of ${q(x)} has ${xdims[a]}`);
    }
  }
}
