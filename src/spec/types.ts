/**
 * The permutation spec: which (tensor, axis) pairs share one hidden-unit permutation. The JSON form extends the
 * seeds' `axes_to_perm` (torch layouts: Linear weight [out, in]) with optional per-permutation facts, so a spec
 * written by hand for a safetensors MLP and one inferred from an ONNX graph are the same document.
 *
 * Convention everywhere: applying permutation P to an axis makes new slice i = old slice P[i].
 */

/** A permutation name, or null for an axis that is not permuted. */
export type PermRef = string | null;

export interface PermPoint {
  /** A value (tensor) name in the ONNX graph that carries this permuted dimension. */
  value: string;
  /** The axis of that value (with the runtime's batch axis included). */
  axis: number;
}

export interface PermInfo {
  size: number;
  /**
   * Derived: this axis is `of` expanded over `inner` trailing positions (conv features flattened into a Linear:
   * index c*inner + s moves to P[c]*inner + s). Not solved for; follows `of`.
   */
  expand?: { of: string; inner: number };
  /**
   * Derived: block-diagonal concatenation of parts along the axis (Concat/Split). A number is a block of that many
   * positions that stays fixed.
   */
  concat?: (string | number)[];
  /**
   * Attention heads: the axis is `count` heads of size/count positions. The permutation maps whole heads to heads
   * and is free within a head; every perm with the same `tie` moves heads identically (Q/K pair and V/output pair
   * of one attention block).
   */
  heads?: { count: number; tie: string };
  /**
   * Tensors on which this permutation acts on two axes: recurrent weights (LSTM/GRU/RNN R, [D, G·H, H]: hidden units
   * feed back into themselves). Weight matching solves them with the other axis at the current assignment.
   */
  recurrent?: string[];
  /** Where this permutation's activations can be read in the graph (used by activation matching). */
  points?: PermPoint[];
  /** Free text for reports: what this group is (e.g. "residual stream", "MLP hidden of layer 0"). */
  description?: string;
}

export interface FrozenAxis {
  tensor: string;
  axis: number;
  /** The graph node that forced the freeze, when one did. */
  node?: string;
  reason: string;
}

export interface PermutationSpecJson {
  axes_to_perm: Record<string, PermRef[]>;
  perms?: Record<string, PermInfo>;
  frozen?: FrozenAxis[];
}
