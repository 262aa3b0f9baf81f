/**
 * @marlin/dense: INT4 / INT8-weight x fp16/bf16-activation GEMM (Marlin) for Node.js on NVIDIA GPUs (sm_80+).
 * Importing this package never touches the GPU: the addon is loaded and the device probed on first GPU use, and
 * every failure is a typed error with a stable code. The machinery is @marlin/core's addon kit (defineAddon).
 */

// The device layer and the kit's shared types live in @marlin/core; re-exported so one import is enough.
export { glibcVersion, LAUNCH_SERIAL, type LoadedBinary, type NativeGemmPlan } from '@marlin/core';
export * from '@marlin/core/addon';
export {
  gemm,
  gemmPlan,
  livePlans,
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
  Linear,
  type LinearFromFloatOptions,
  loadLinears,
  readLinears,
} from './linear.js';
