/**
 * @marlin/core/reference: the CPU reference (the explicit `device: 'cpu'` path). Dequantization and GEMM with exactly
 * the kernels' semantics (docs/format.md), an f64 oracle, and the dense-GEMM error bound GPU tests use as tolerance.
 */
export { assertScaleDtypeMatches, dequantize, dequantizePacked, isPackedWeight } from './dequantize.js';
export {
  type DenseErrorBound,
  denseErrorBound,
  maxAbsDeviation,
  type ReferenceGemmF64Result,
  type ReferenceGemmOptions,
  type ReferenceGemmResult,
  referenceGemm,
  referenceGemmF64,
  ulpOf,
} from './gemm.js';
export {
  type MoeActivation,
  type MoeAlignment,
  type MoeAlignOptions,
  type MoeRouterOptions,
  type MoeRouting,
  moeAlignBlockSize,
  moeAlignCapacity,
  moeRouterTopK,
  type ReferenceMoeOptions,
  type ReferenceMoeResult,
  referenceMoe,
  siluAndMul,
  swigluOai,
} from './moe.js';
export {
  dequantizeSparse,
  packSparseAsDense,
  referenceGemmSparse,
  referenceGemmSparseF64,
} from './sparse.js';
export {
  decodePackedSparse,
  dequantizePackedSparse,
  referenceGemmPackedSparse,
  referenceGemmPackedSparseF64,
  type SparseLaneFragment,
  sparseLaneFragment,
} from './sparse-packed.js';
