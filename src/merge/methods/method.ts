/**
 * What a merge method is: a rule that combines one tensor of N models (and, for task-vector methods, the same
 * tensor of their shared base) into one tensor. Every method is a row of the merge-method table (index.ts);
 * merge-tensors.ts walks the models tensor by tensor and calls the row's `tensor`, so no method sees a whole model.
 * Values are float64 (every float dtype widens exactly); the caller rounds the result once into the stored dtype.
 */

/** The merge methods, by the name `--merge` takes. */
export type MergeMethodName = 'average' | 'linear' | 'slerp' | 'task-arithmetic' | 'ties' | 'dare-linear' | 'dare-ties';

/** Every option a merge method can read, as the user gives them (CLI `--weights`, `--t`, …). */
export interface MergeMethodOptions {
  /** One weight per model (not per base). */
  weights?: readonly number[];
  /** Divide by the sum of the weights (linear; task-vector methods: by the summed weight of the kept entries). */
  normalize?: boolean;
  /** SLERP: position on the arc from model 0 (t = 0) to model 1 (t = 1). */
  t?: number;
  /** Task-vector methods: scale λ of the merged task vector (θ = θ_base + λ·τ). */
  lambda?: number;
  /** TIES / DARE: fraction of each task vector kept, in (0, 1]. */
  density?: number;
  /** DARE: seed of the drop masks. */
  seed?: number;
}

export type MergeOptionName = keyof MergeMethodOptions;

/** The options a method uses, with its defaults filled in (what the report records). */
export interface ResolvedMergeOptions {
  weights: number[];
  normalize?: boolean;
  t?: number;
  lambda?: number;
  density?: number;
  seed?: number;
}

/** One tensor's context: its name and shape, and (DARE) the keep mask of model k's task vector. */
export interface TensorContext {
  readonly name: string;
  readonly shape: readonly number[];
  /** DARE's keep mask for model k (1 = keep), of the tensor's size; the caller seeds it (see merge-tensors.ts). */
  readonly keepMask?: (model: number, density: number, size: number) => Uint8Array;
}

export interface MergeMethod {
  readonly name: MergeMethodName;
  /** What it is, with its source, for help and reports. */
  readonly label: string;
  /** Whether it merges task vectors θᵢ − θ_base, so needs `--base`. */
  readonly needsBase: boolean;
  /** How many models (besides the base) it takes. */
  readonly models: { readonly min: number; readonly max?: number };
  /** The options it reads; any other option given is refused. */
  readonly options: readonly MergeOptionName[];
  /**
   * The options with defaults, checked against the model count.
   * @throws BasinError invalid_argument naming the option
   */
  resolve(opts: MergeMethodOptions, models: number): ResolvedMergeOptions;
  /**
   * One merged tensor from the models' values (`inputs`, one flat array each, same length) and the base's
   * (task-vector methods). Pure: the inputs are not modified.
   */
  tensor(inputs: readonly Float64Array[], base: Float64Array | undefined, opts: ResolvedMergeOptions, ctx: TensorContext): Float64Array;
}
