/**
 * @marlin/fp8: FP8 e4m3 weight x fp16 / bf16 activation GEMM (W8A16) for Node.js on NVIDIA GPUs (sm_80+), built on
 * @marlin/core's addon kit. Importing it never touches the GPU; every failure is a typed error with a stable code.
 * Tensors, streams and graphs are core's, so they work with @marlin/dense in the same process.
 */

export { type AddonProbe as Fp8Probe, type GemmAddon as Fp8Addon, readLinears } from '@marlin/core';
export * from '@marlin/core/addon';
export {
  candidatePaths,
  doctor,
  gemm,
  gemmPlan,
  livePlans,
  loadFp8Binary,
  noBinaryError,
  probe,
  uploadPacked,
  validateGemm,
} from './gemm.js';
export { type Fp8ScaleLayout, Linear, type LinearFromFloatOptions, loadLinears } from './linear.js';
