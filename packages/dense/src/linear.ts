import {
  AddonLinear,
  type LinearFromFloatBase,
  type LinearFromPackedOptions,
  type LinearParts,
  type LoadLinearsOptions,
  type PackedWeight,
  quantizeRtn,
  type WeightBits,
} from '@marlin/core';
import { gemm } from './gemm.js';
import { kit } from './kit.js';

export { type HostLinear, type LinearFromPackedOptions, type LoadLinearsOptions, readLinears } from '@marlin/core';

/** Options of `Linear.fromFloat`. */
export interface LinearFromFloatOptions extends LinearFromFloatBase {
  /** 32, 64, 128 (default) or 'per-channel'. */
  readonly groupSize?: number | 'per-channel';
  /** 4 (default) or 8 (INT8: codes 0-255 around zero point 128). */
  readonly bits?: WeightBits;
  /** Symmetric quantization (default true); false adds integer zero points. */
  readonly sym?: boolean;
}

/**
 * A quantized linear layer y = x · W^T (+ bias) on the GPU: an INT4 or INT8 weight in device memory plus an optional
 * bias (or, with device 'cpu', on the host for the CPU reference). Owns its device memory (dispose()).
 *
 * @example
 * using layer = Linear.fromFloat(weightNxK, { inFeatures: 4096, outFeatures: 11008, groupSize: 128 });
 * using x = Tensor.from(xBits, [8, 4096], 'fp16');
 * using y = layer.forward(x);
 */
export class Linear extends AddonLinear {
  private constructor(parts: LinearParts) {
    super(gemm, parts);
  }

  /**
   * Quantizes float weights (nn.Linear layout: outFeatures x inFeatures, row-major) with the round-to-nearest
   * quantizer of @marlin/core (INT4 or INT8), packs and uploads them (or keeps them on the host for device 'cpu').
   */
  static fromFloat(weightsNxK: Float32Array, options: LinearFromFloatOptions): Linear {
    return new Linear(
      kit.linearFromFloat(weightsNxK, options, (w, K, N, o) => {
        return quantizeRtn(w, {
          K,
          N,
          bits: o.bits ?? 4,
          groupSize: o.groupSize ?? 128,
          symmetric: o.sym ?? true,
          scaleDtype: o.dtype ?? 'fp16',
          layout: 'NxK',
        }).weight;
      }),
    );
  }

  /** Uploads an already packed INT4 / INT8 weight (e.g. from loadPacked) and an optional bias. */
  static fromPacked(packed: PackedWeight, options: LinearFromPackedOptions = {}): Linear {
    return new Linear(kit.linearFromPacked(packed, options));
  }
}

/**
 * Loads every packed layer of a marlin-ts container (written by `marlin convert` / writePacked) onto the GPU, with its
 * bias when the container holds `<layer>.bias`. Returns layer name -> Linear; dispose each when done.
 *
 * @example
 * const layers = await loadLinears('model.marlin.safetensors');
 * const y = layers.get('model.layers.0.mlp.down_proj')!.forward(x);
 */
export function loadLinears(path: string, options?: LoadLinearsOptions): Promise<Map<string, Linear>> {
  return kit.loadLinears((p, o) => Linear.fromPacked(p, o), path, options);
}
