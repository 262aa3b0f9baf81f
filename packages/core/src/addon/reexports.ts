/**
 * What every GEMM addon package (@marlin/dense, @marlin/fp8, @marlin/sparse) re-exports of core, so that one import of
 * the addon is enough: the device layer (tensors, streams, graphs, memory), device weights and the kit's gemm and
 * Linear types. An addon's index has `export * from '@marlin/core/addon'`; names of its own variant it adds itself.
 */
export {
  type CpuGemmOptions,
  DevicePackedWeight,
  type GemmConfig,
  type GemmOptions,
  GemmParam,
  type GemmPlanDetails,
  type GemmPlanInfo,
  Graph,
  type HostLinear,
  type HostMatrix,
  type LinearFromPackedOptions,
  type LoadAttempt,
  type LoadLinearsOptions,
  memGetInfo,
  memory,
  type PackedWeightMeta,
  Stream,
  Tensor,
  type TensorMeta,
  type UploadOptions,
  type ValidatedGemm,
} from '../index.js';
