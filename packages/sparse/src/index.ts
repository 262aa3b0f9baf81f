/**
 * @marlin/sparse: 2:4 structured-sparse INT4 weight x fp16 / bf16 activation GEMM (Sparse-Marlin) for Node.js on
 * NVIDIA GPUs (sm_80+; wgmma.mma_async.sp on sm_90a), built on @marlin/core's addon kit. Importing it never touches the
 * GPU; every failure is a typed error with a stable code. Tensors, streams and graphs are core's, so they work with
 * @marlin/dense and @marlin/fp8 in the same process. Packing, pruning, validation and the CPU reference are core's
 * (packSparse, pruneAndQuantize24, validatePackedSparse, referenceGemmPackedSparse).
 */

export {
  type AddonProbe as SparseProbe,
  type GemmAddon as SparseAddon,
  type PackedSparseWeight,
  packSparse,
  pruneAndQuantize24,
  type SparseQuantizedWeight,
} from '@marlin/core';
export * from '@marlin/core/addon';
export {
  candidatePaths,
  doctor,
  gemm,
  gemmPlan,
  livePlans,
  loadSparseBinary,
  noBinaryError,
  probe,
  uploadPacked,
  validateGemm,
} from './gemm.js';
export { Linear, type LinearFromFloatOptions, loadLinears, readLinears, type SparseFromFloatErrors } from './linear.js';
