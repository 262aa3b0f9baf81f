/** Round-to-nearest INT4 / INT8 quantizers (symmetric / asymmetric, groups, clipping search) and the FP8 e4m3 one. */

export {
  FP8_BLOCK,
  type Fp8Granularity,
  type QuantizeFp8Options,
  quantizeFp8,
  quantizeFp8Async,
} from './fp8.js';
export {
  type PruneOptions,
  type PruneQuantizeOptions,
  type PruneQuantizeResult,
  type PruneResult,
  type PruningError,
  prune24,
  pruneAndQuantize24,
  pruneAndQuantize24Async,
} from './prune.js';
export {
  type ClipOptions,
  type QuantizationError,
  type QuantizeBaseOptions,
  type QuantizeOptions,
  type QuantizeResult,
  quantizationError,
  quantizeRtn,
  quantizeRtnAsync,
  roundHalfEven,
} from './rtn.js';
