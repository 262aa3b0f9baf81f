import { Tensor } from '../device/tensor.js';
import { toHalfBits } from '../dtypes.js';
import { DisposedError, DtypeError, ShapeError, ValueError } from '../errors/index.js';
import { pack } from '../format/pack.js';
import { validatePackedSparse } from '../format/sparse-pack.js';
import type { HalfDtype, PackedWeight, QuantizedWeight } from '../format/types.js';
import { validatePacked } from '../format/validate.js';
import type { GemmFunction } from './gemm.js';
import type { CpuGemmOptions, GemmOptions, HostMatrix } from './types.js';
import { type AnyPackedWeight, type DevicePackedWeight, isPackedSparse, type UploadOptions } from './weights.js';

/** Where a layer lives: a GPU ordinal, or 'cpu' (host memory; only the CPU reference runs it, no GPU needed). */
export type LinearDevice = number | 'cpu';

/** Options of `Linear.fromPacked`. */
export interface LinearFromPackedOptions {
  /** [N] bias: a device tensor (taken over: disposed with the layer), or bits in the scale dtype. */
  readonly bias?: Tensor | Uint16Array;
  /** GPU ordinal (default 0), or 'cpu' to keep the layer on the host for the CPU reference. */
  readonly device?: LinearDevice;
}

/** The options every addon's `Linear.fromFloat` shares (an addon adds its quantizer's own). */
export interface LinearFromFloatBase {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Activation dtype (default 'fp16'); the scales are stored in it. */
  readonly dtype?: HalfDtype;
  /** [outFeatures] bias, as numbers (Float32Array) or as bits in `dtype` (Uint16Array). */
  readonly bias?: Float32Array | Uint16Array;
  /** GPU ordinal (default 0), or 'cpu' to keep the layer on the host for the CPU reference. */
  readonly device?: LinearDevice;
}

/** What a layer is made of: a device weight and bias (GPU layer) or host ones (CPU layer). */
export interface LinearParts<P extends AnyPackedWeight = PackedWeight> {
  readonly device: LinearDevice;
  readonly weight: DevicePackedWeight | null;
  readonly packed: P | null;
  readonly bias: Tensor | null;
  readonly hostBias: Uint16Array | null;
}

function checkDevice(what: string, device: unknown): LinearDevice {
  if (device === undefined) return 0;
  if (device === 'cpu' || (Number.isSafeInteger(device) && (device as number) >= 0)) return device as LinearDevice;
  throw new ValueError(`${what}: device = ${JSON.stringify(device)} is neither a GPU ordinal nor 'cpu'.`, {
    fix: "pass a GPU ordinal (0, 1, ...) or 'cpu' for a host layer that runs the CPU reference.",
  });
}

/**
 * The parts of a layer made from a packed weight: uploaded with the addon's `upload` (which refuses variants the
 * addon does not run), or kept on the host for device 'cpu' (checked with `check`, no GPU touched).
 */
export function linearPartsFromPacked<P extends AnyPackedWeight = PackedWeight>(
  upload: (p: P, o: UploadOptions) => DevicePackedWeight,
  check: (p: P) => void,
  packed: P,
  options: LinearFromPackedOptions = {},
): LinearParts<P> {
  const device = checkDevice('Linear', options.device);
  const b = options.bias;
  if (b !== undefined) {
    const n = b instanceof Tensor ? b.numel : b.length;
    if (n !== packed.N) {
      throw new ShapeError(`Linear: bias has ${n} values; the layer has ${packed.N} output features.`, {
        fix: 'pass one bias value per output feature.',
      });
    }
    if (b instanceof Tensor && b.dtype !== packed.scaleDtype) {
      throw new DtypeError(`Linear: bias is ${b.dtype} but the weight's dtype is ${packed.scaleDtype}.`, {
        fix: `upload the bias as ${packed.scaleDtype}.`,
      });
    }
  }
  if (device === 'cpu') {
    if (b instanceof Tensor) {
      throw new ValueError("Linear: a device Tensor bias was given for a layer on device 'cpu'.", {
        fix: 'pass the bias as Uint16Array bits in the scale dtype (await bias.toHost()).',
      });
    }
    if (isPackedSparse(packed)) validatePackedSparse(packed);
    else validatePacked(packed);
    check(packed);
    return { device, weight: null, packed, bias: null, hostBias: b ?? null };
  }
  const weight = upload(packed, { device });
  let bias: Tensor | null = null;
  try {
    if (b !== undefined) bias = b instanceof Tensor ? b : Tensor.from(b, [packed.N], packed.scaleDtype, { device });
  } catch (e) {
    weight.dispose();
    throw e;
  }
  return { device, weight, packed: null, bias, hostBias: null };
}

/** Checks the float weights of `Linear.fromFloat` and turns the bias into bits. */
export function fromFloatInputs(
  weightsNxK: Float32Array,
  options: LinearFromFloatBase,
): { readonly K: number; readonly N: number; readonly dtype: HalfDtype; readonly bias: Uint16Array | undefined } {
  const { inFeatures: K, outFeatures: N } = options;
  if (!(weightsNxK instanceof Float32Array) || weightsNxK.length !== K * N) {
    throw new ShapeError(
      `Linear.fromFloat: expected a Float32Array of outFeatures x inFeatures = ${N} x ${K} = ${K * N} values, got ${weightsNxK?.length}.`,
      { fix: 'pass nn.Linear.weight flattened row-major (out x in).' },
    );
  }
  checkDevice('Linear.fromFloat', options.device);
  const dtype = options.dtype ?? 'fp16';
  let bias: Uint16Array | undefined;
  if (options.bias !== undefined)
    bias = options.bias instanceof Uint16Array ? options.bias : toHalfBits(options.bias, dtype);
  return { K, N, dtype, bias };
}

/** Packs a quantized weight for `Linear.fromFloat`. */
export function packForLinear(q: QuantizedWeight): PackedWeight {
  return pack(q);
}

/**
 * A quantized linear layer y = x · W^T (+ bias): a packed weight on the GPU (or, for device 'cpu', on the host) plus
 * an optional bias. Owns its device memory (dispose()). Each addon's `Linear` extends it with its factories; `P` is the
 * host layout of its weights (PackedWeight, or PackedSparseWeight for @marlin/sparse).
 */
export class AddonLinear<P extends AnyPackedWeight = PackedWeight> implements Disposable {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly dtype: HalfDtype;
  /** GPU ordinal, or 'cpu' for a host layer (forward only with `{ device: 'cpu' }`). */
  readonly device: LinearDevice;
  /** The device bias (null when there is none, or on a host layer: see hostBias). */
  readonly bias: Tensor | null;
  /** The bias bits of a host layer, else null. */
  readonly hostBias: Uint16Array | null;
  readonly #weight: DevicePackedWeight | null;
  readonly #packed: P | null;
  readonly #gemm: GemmFunction;
  /** The GPU options of a forward() without options, built once (no object per call on the hot path). */
  readonly #plainOptions: GemmOptions;
  #disposed = false;

  protected constructor(gemm: GemmFunction, parts: LinearParts<P>) {
    this.#gemm = gemm;
    this.#weight = parts.weight;
    this.#packed = parts.packed;
    this.device = parts.device;
    this.bias = parts.bias;
    this.hostBias = parts.hostBias;
    const meta = parts.weight ?? (parts.packed as P);
    this.inFeatures = meta.K;
    this.outFeatures = meta.N;
    this.dtype = meta.scaleDtype;
    this.#plainOptions = Object.freeze(parts.bias === null ? {} : { bias: parts.bias });
  }

  /** The weight in device memory. A host layer (device 'cpu') has none: use `packed`. */
  get weight(): DevicePackedWeight {
    if (this.#weight === null) {
      throw new ValueError("Linear: this layer is on device 'cpu'; it has no device weight.", {
        fix: 'use layer.packed (the host PackedWeight), or create the layer with a GPU device ordinal.',
      });
    }
    return this.#weight;
  }

  /** The host packed weight: kept for a host layer, downloaded (blocking) for a GPU layer. */
  get packed(): P {
    if (this.#disposed) throw new DisposedError('Linear was used after dispose().', { fix: 'create it again.' });
    return this.#packed ?? (this.weight.toHostPacked() as P);
  }

  /**
   * y = x · W^T + bias on the GPU (x: [M, inFeatures] Tensor), or with `{ device: 'cpu' }` on the CPU reference
   * (x: HostMatrix; a GPU layer's weights are downloaded for it).
   */
  forward(x: Tensor, options?: Omit<GemmOptions, 'bias'>): Tensor;
  forward(x: HostMatrix, options: Omit<CpuGemmOptions, 'bias'>): HostMatrix;
  forward(
    x: Tensor | HostMatrix,
    options?: Omit<GemmOptions, 'bias'> | Omit<CpuGemmOptions, 'bias'>,
  ): Tensor | HostMatrix {
    const w = this.#weight;
    if (options === undefined && w !== null) return this.#gemm(x as Tensor, w, this.#plainOptions);
    if (options?.device === 'cpu') {
      if (this.#disposed) throw new DisposedError('Linear was used after dispose().', { fix: 'create it again.' });
      const bias = this.hostBias ?? (this.bias === null ? undefined : (this.bias.toHostSync() as Uint16Array));
      return this.#gemm(x as HostMatrix, w ?? (this.#packed as P), {
        ...(options as CpuGemmOptions),
        bias: bias ?? undefined,
      });
    }
    if (w === null) {
      throw new ValueError("Linear.forward: this layer is on device 'cpu'; it runs only the CPU reference.", {
        fix: "pass a HostMatrix x with { device: 'cpu' }, or create the layer on a GPU (device: 0).",
      });
    }
    return this.#gemm(x as Tensor, w, { ...(options as GemmOptions), bias: this.bias ?? undefined });
  }

  get disposed(): boolean {
    return this.#weight?.disposed ?? this.#disposed;
  }

  dispose(): void {
    this.#disposed = true;
    this.#weight?.dispose();
    this.bias?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
