/**
 * @marlin/dense: INT4 / INT8-weight x fp16/bf16-activation GEMM (Marlin) for Node.js on NVIDIA GPUs (sm_80+).
 * Importing this package never touches the GPU: the addon is loaded and the device probed on first GPU use, and
 * every failure is a typed error with a stable code. The machinery is @marlin/core's addon kit (defineAddon).
 */

// The device layer and the kit's shared types live in @marlin/core; re-exported so one import is enough.
export {
  DevicePackedWeight,
  GemmParam,
  Graph,
  glibcVersion,
  LAUNCH_SERIAL,
  type LoadAttempt,
  type LoadedBinary,
  memGetInfo,
  memory,
  type NativeGemmPlan,
  type PackedWeightMeta,
  Stream,
  Tensor,
  type UploadOptions,
} from '@marlin/core';
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
export {
  candidatePaths,
  type DenseAddon,
  type DenseProbe,
  doctor,
  loadDenseBinary,
  noBinaryError,
  probe,
  uploadPacked,
} from './kit.js';
export {
  type HostLinear,
  Linear,
  type LinearFromFloatOptions,
  type LinearFromPackedOptions,
  type LoadLinearsOptions,
  loadLinears,
  readLinears,
} from './linear.js';
