/**
 * @marlin/dense: INT4-weight x fp16/bf16-activation GEMM (Marlin) for Node.js on NVIDIA GPUs (sm_80+).
 * Importing this package never touches the GPU: the addon is loaded and the device probed on first GPU use, and
 * every failure is a typed error with a stable code.
 */

// The device layer lives in @marlin/core; re-exported so one import is enough.
export { Graph, memGetInfo, memory, Stream, Tensor } from '@marlin/core';
export {
  candidatePaths,
  type DenseAddon,
  GemmParam,
  glibcVersion,
  type LoadAttempt,
  type LoadedBinary,
  loadDenseBinary,
  type NativeGemmPlan,
  noBinaryError,
} from './binding.js';
export {
  type CpuGemmOptions,
  type GemmConfig,
  type GemmOptions,
  type GemmPlanDetails,
  type GemmPlanInfo,
  gemm,
  gemmPlan,
  type HostMatrix,
  livePlans,
  type TensorMeta,
  type ValidatedGemm,
  validateGemm,
} from './gemm.js';
export { Linear, type LinearFromFloatOptions, type LinearFromPackedOptions } from './linear.js';
export { type HostLinear, type LoadLinearsOptions, loadLinears, readLinears } from './load.js';
export { type DenseProbe, doctor, probe } from './runtime.js';
export { DevicePackedWeight, type PackedWeightMeta, type UploadOptions, uploadPacked } from './weights.js';
