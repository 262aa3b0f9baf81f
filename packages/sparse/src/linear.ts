import {
  AddonLinear,
  fromFloatInputs,
  type HostLinear,
  type LinearFromFloatBase,
  type LinearFromPackedOptions,
  type LinearParts,
  type LoadLinearsOptions,
  loadLinearsWith,
  type PackedSparseWeight,
  type PruningError,
  packSparse,
  pruneAndQuantize24,
  type QuantizationError,
  readSparseLinears,
  type SparseQuantizedWeight,
} from '@marlin/core';
import { gemm } from './gemm.js';
import { kit } from './kit.js';

/** Options of `Linear.fromFloat`. */
export interface LinearFromFloatOptions extends LinearFromFloatBase {
  /** 32, 64, 128 (default) or 'per-channel' (rows of the dense K per scale). */
  readonly groupSize?: number | 'per-channel';
  /** Symmetric quantization (default true); false adds integer zero points. */
  readonly sym?: boolean;
}

/** What `Linear.fromFloat` lost: the 2:4 pruning (against the float weight), the quantization, and both together. */
export interface SparseFromFloatErrors {
  readonly pruning: PruningError;
  readonly quantization: QuantizationError;
  readonly total: QuantizationError;
}

/**
 * A linear layer y = x · W^T (+ bias) with a 2:4 sparse INT4 weight on the GPU (or, with device 'cpu', on the host for
 * the CPU reference). Owns its device memory (dispose()).
 *
 * @example
 * using layer = Linear.fromFloat(weightNxK, { inFeatures: 4096, outFeatures: 14336, groupSize: 128 });
 * console.log(layer.errors?.pruning.relFrobenius); // what 2:4 magnitude pruning dropped
 * using y = layer.forward(Tensor.from(xBits, [8, 4096], 'fp16'));
 */
export class Linear extends AddonLinear<PackedSparseWeight> {
  /** fromFloat's pruning and quantization errors; null for a layer made from a packed or sparse weight. */
  readonly errors: SparseFromFloatErrors | null;

  private constructor(parts: LinearParts<PackedSparseWeight>, errors: SparseFromFloatErrors | null = null) {
    super(gemm, parts);
    this.errors = errors;
  }

  /**
   * Prunes float weights (nn.Linear layout: outFeatures x inFeatures, row-major) to 2:4 along the input features
   * (the two largest |w| of every 4, @marlin/core prune24), quantizes the kept ones to INT4 (round to nearest), packs
   * and uploads them (or keeps them on the host for device 'cpu'). `errors` reports what each step lost.
   */
  static fromFloat(weightsNxK: Float32Array, options: LinearFromFloatOptions): Linear {
    const { K, N, dtype, bias } = fromFloatInputs(weightsNxK, options);
    const r = pruneAndQuantize24(weightsNxK, {
      K,
      N,
      groupSize: options.groupSize ?? 128,
      symmetric: options.sym ?? true,
      scaleDtype: dtype,
      layout: 'NxK',
    });
    const parts = kit.linearFromPacked(packSparse(r.weight), { bias, device: options.device });
    return new Linear(parts, { pruning: r.pruning, quantization: r.quantization, total: r.total });
  }

  /** Packs a logical 2:4 weight (a SparseQuantizedWeight: readSparseLayer, sparsifyQuantized) and uploads it. */
  static fromSparse(weight: SparseQuantizedWeight, options: LinearFromPackedOptions = {}): Linear {
    return Linear.fromPacked(packSparse(weight), options);
  }

  /** Uploads an already packed 2:4 weight (packSparse, loadPackedSparse) and an optional bias. */
  static fromPacked(packed: PackedSparseWeight, options: LinearFromPackedOptions = {}): Linear {
    return new Linear(kit.linearFromPacked(packed, options));
  }
}

/**
 * Reads the packed 2:4 layers of a marlin-ts container (`marlin convert` of a marlin-24 or sparse-24-bitmask
 * checkpoint, or writePacked) with their biases, on the host.
 */
export function readLinears(
  path: string,
  options?: LoadLinearsOptions,
): Promise<Map<string, HostLinear<PackedSparseWeight>>> {
  return readSparseLinears(path, options);
}

/**
 * Loads every packed 2:4 layer of a marlin-ts container onto the GPU, with its bias when the container holds
 * `<layer>.bias`. Returns layer name -> Linear; dispose each when done. Dense layers of the same container are left to
 * @marlin/dense.
 *
 * @example
 * const layers = await loadLinears('sparse-llama-3.1-8b.marlin.safetensors');
 * const y = layers.get('model.layers.0.mlp.down_proj')!.forward(x);
 */
export function loadLinears(path: string, options?: LoadLinearsOptions): Promise<Map<string, Linear>> {
  return loadLinearsWith((p: PackedSparseWeight, o) => Linear.fromPacked(p, o), path, options, readSparseLinears);
}
