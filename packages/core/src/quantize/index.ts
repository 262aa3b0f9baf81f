/** Round-to-nearest INT4 / INT8 quantizers (symmetric / asymmetric, groups, clipping search). */
export {
  type ClipOptions,
  type QuantizationError,
  type QuantizeOptions,
  type QuantizeResult,
  quantizationError,
  quantizeRtn,
  quantizeRtnAsync,
  roundHalfEven,
} from './rtn.js';
