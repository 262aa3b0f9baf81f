import {
  DtypeError,
  type HalfDtype,
  type PackedWeight,
  pack,
  quantizeRtn,
  ShapeError,
  Tensor,
  toHalfBits,
  type WeightBits,
} from '@marlin/core';
import { type CpuGemmOptions, type GemmOptions, gemm, type HostMatrix } from './gemm.js';
import { type DevicePackedWeight, uploadPacked } from './weights.js';

/** Options of `Linear.fromFloat`. */
export interface LinearFromFloatOptions {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** 32, 64, 128 (default) or 'per-channel'. */
  readonly groupSize?: number | 'per-channel';
  /** 4 (default; the only width @marlin/dense runs). */
  readonly bits?: WeightBits;
  /** Symmetric quantization (default true); false adds integer zero points. */
  readonly sym?: boolean;
  /** Activation dtype (default 'fp16'); the scales are stored in it. */
  readonly dtype?: HalfDtype;
  /** [outFeatures] bias, as numbers (Float32Array) or as bits in `dtype` (Uint16Array). */
  readonly bias?: Float32Array | Uint16Array;
  readonly device?: number;
}

/** Options of `Linear.fromPacked`. */
export interface LinearFromPackedOptions {
  /** [N] bias: a device tensor (taken over: disposed with the layer), or bits in the scale dtype. */
  readonly bias?: Tensor | Uint16Array;
  readonly device?: number;
}

/**
 * A quantized linear layer y = x · W^T (+ bias) on the GPU: an INT4 weight in device memory plus an optional bias.
 * Owns its device memory (dispose()).
 *
 * @example
 * using layer = Linear.fromFloat(weightNxK, { inFeatures: 4096, outFeatures: 11008, groupSize: 128 });
 * using x = Tensor.from(xBits, [8, 4096], 'fp16');
 * using y = layer.forward(x);
 */
export class Linear implements Disposable {
  readonly weight: DevicePackedWeight;
  readonly bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly dtype: HalfDtype;

  /** The GPU options of a forward() without options, built once (no object per call on the hot path). */
  readonly #plainOptions: GemmOptions;

  private constructor(weight: DevicePackedWeight, bias: Tensor | null) {
    this.weight = weight;
    this.bias = bias;
    this.#plainOptions = Object.freeze(bias === null ? {} : { bias });
    this.inFeatures = weight.K;
    this.outFeatures = weight.N;
    this.dtype = weight.scaleDtype;
  }

  /**
   * Quantizes float weights (nn.Linear layout: outFeatures x inFeatures, row-major) with the round-to-nearest
   * quantizer of @marlin/core, packs and uploads them.
   */
  static fromFloat(weightsNxK: Float32Array, options: LinearFromFloatOptions): Linear {
    const { inFeatures: K, outFeatures: N } = options;
    if (!(weightsNxK instanceof Float32Array) || weightsNxK.length !== K * N) {
      throw new ShapeError(
        `Linear.fromFloat: expected a Float32Array of outFeatures x inFeatures = ${N} x ${K} = ${K * N} values, got ${weightsNxK?.length}.`,
        { fix: 'pass nn.Linear.weight flattened row-major (out x in).' },
      );
    }
    const dtype = options.dtype ?? 'fp16';
    const q = quantizeRtn(weightsNxK, {
      K,
      N,
      bits: options.bits ?? 4,
      groupSize: options.groupSize ?? 128,
      symmetric: options.sym ?? true,
      scaleDtype: dtype,
      layout: 'NxK',
    });
    let bias: Uint16Array | undefined;
    if (options.bias !== undefined)
      bias = options.bias instanceof Uint16Array ? options.bias : toHalfBits(options.bias, dtype);
    return Linear.fromPacked(pack(q.weight), { bias, device: options.device });
  }

  /** Uploads an already packed weight (e.g. from loadPacked) and an optional bias. */
  static fromPacked(packed: PackedWeight, options: LinearFromPackedOptions = {}): Linear {
    const device = options.device ?? 0;
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
    const weight = uploadPacked(packed, { device });
    let bias: Tensor | null = null;
    try {
      if (b !== undefined) bias = b instanceof Tensor ? b : Tensor.from(b, [packed.N], packed.scaleDtype, { device });
    } catch (e) {
      weight.dispose();
      throw e;
    }
    return new Linear(weight, bias);
  }

  /**
   * y = x · W^T + bias on the GPU (x: [M, inFeatures] Tensor), or with `{ device: 'cpu' }` on the CPU reference
   * (x: HostMatrix; the weights are downloaded for it).
   */
  forward(x: Tensor, options?: Omit<GemmOptions, 'bias'>): Tensor;
  forward(x: HostMatrix, options: Omit<CpuGemmOptions, 'bias'>): HostMatrix;
  forward(
    x: Tensor | HostMatrix,
    options?: Omit<GemmOptions, 'bias'> | Omit<CpuGemmOptions, 'bias'>,
  ): Tensor | HostMatrix {
    if (options === undefined) return gemm(x as Tensor, this.weight, this.#plainOptions);
    if (options.device === 'cpu') {
      const bias = this.bias === null ? undefined : (this.bias.toHostSync() as Uint16Array);
      return gemm(x as HostMatrix, this.weight, { ...(options as CpuGemmOptions), bias });
    }
    return gemm(x as Tensor, this.weight, { ...(options as GemmOptions), bias: this.bias ?? undefined });
  }

  get disposed(): boolean {
    return this.weight.disposed;
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
