import {
  AddonLinear,
  type HalfDtype,
  type LinearFromFloatBase,
  type LinearFromPackedOptions,
  type LinearParts,
  type LoadLinearsOptions,
  type PackedWeight,
  type QuantizedWeight,
  quantizeFp8,
} from '@marlin/core';
import { gemm } from './gemm.js';
import { kit } from './kit.js';

/** How the scales of `Linear.fromFloat` are laid out. */
export type Fp8ScaleLayout = 'per-channel' | 32 | 64 | 128 | 'block';

/** Options of `Linear.fromFloat`. */
export interface LinearFromFloatOptions extends LinearFromFloatBase {
  /**
   * 'per-channel' (default: one scale per output feature), a group size along K (32, 64, 128), or 'block' (one scale
   * per 128 x 128 block, as DeepSeek-V3 / Qwen3-FP8 checkpoints).
   */
  readonly scales?: Fp8ScaleLayout;
}

/** Quantizes nn.Linear weights (N x K) to e4m3 with core's saturating round-to-nearest-even quantizer. */
function quantize(w: Float32Array, K: number, N: number, o: LinearFromFloatOptions): QuantizedWeight {
  const scales = o.scales ?? 'per-channel';
  const scaleDtype: HalfDtype = o.dtype ?? 'fp16';
  const base = { K, N, scaleDtype, layout: 'NxK' as const };
  const opts = scales === 'block' ? { ...base, granularity: 'block' as const } : { ...base, groupSize: scales };
  return quantizeFp8(w, opts).weight;
}

/**
 * A linear layer y = x · W^T (+ bias) with FP8 e4m3 weights on the GPU (or, with device 'cpu', on the host for the
 * CPU reference). Owns its device memory (dispose()).
 *
 * @example
 * using layer = Linear.fromFloat(weightNxK, { inFeatures: 4096, outFeatures: 4096, scales: 'block' });
 * using y = layer.forward(Tensor.from(xBits, [8, 4096], 'fp16'));
 */
export class Linear extends AddonLinear {
  private constructor(parts: LinearParts) {
    super(gemm, parts);
  }

  /** Quantizes float weights (outFeatures x inFeatures, row-major) to e4m3, packs and uploads them. */
  static fromFloat(weightsNxK: Float32Array, options: LinearFromFloatOptions): Linear {
    return new Linear(kit.linearFromFloat(weightsNxK, options, quantize));
  }

  /** Uploads a packed FP8 weight (pack() of an e4m3 QuantizedWeight, or loadPacked of a converted checkpoint). */
  static fromPacked(packed: PackedWeight, options: LinearFromPackedOptions = {}): Linear {
    return new Linear(kit.linearFromPacked(packed, options));
  }
}

/**
 * Loads every packed layer of a container written by `marlin convert` from an FP8 checkpoint (Hugging Face
 * `quant_method: "fp8"`, compressed-tensors float-quantized) onto the GPU, with its bias. A layer of another variant
 * is refused with an error naming the package that runs it.
 *
 * @example
 * const layers = await loadLinears('qwen3-fp8.marlin.safetensors');
 */
export function loadLinears(path: string, options?: LoadLinearsOptions): Promise<Map<string, Linear>> {
  return kit.loadLinears((p, o) => Linear.fromPacked(p, o), path, options);
}
