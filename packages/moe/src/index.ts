/**
 * @marlin/moe: a whole mixture-of-experts layer on quantized experts (INT4 / INT8 / FP8 weights x fp16 / bf16
 * activations) for Node.js on NVIDIA GPUs (sm_80+): routing alignment, both grouped Marlin GEMMs, activation and the
 * weighted sum in one call on one stream, graph-capturable. Built on @marlin/core's addon kit; importing it never
 * touches the GPU, and every failure is a typed error with a stable code. Tensors, streams and graphs are core's, so
 * they work with @marlin/dense and @marlin/fp8 in the same process.
 */
export {
  type AddonProbe as MoeProbe,
  describeMoe,
  dispatchMoe,
  Graph,
  type HostMatrix,
  type LoadAttempt,
  MOE_MAX_EXPERTS,
  MOE_MAX_TOPK,
  type MoeChoice,
  type MoeCodec,
  type MoeDispatchOptions,
  type MoeProblem,
  memGetInfo,
  memory,
  moeRouterTopK,
  type PackedExperts,
  packExperts,
  referenceMoe,
  Stream,
  stackExperts,
  Tensor,
} from '@marlin/core';
export { candidatePaths, doctor, livePlans, loadMoeBinary, noBinaryError, probe } from './addon.js';
export {
  type LoadMoeLayersOptions,
  loadMoeLayers,
  type MoeCpuForwardOptions,
  type MoeFloatExpert,
  type MoeForwardOptions,
  type MoeFromFloatOptions,
  type MoeHostRouting,
  MoeLayer,
  type MoeLoadOptions,
  type MoePlanInfo,
  type MoeQuantization,
} from './layer.js';
export { type MoeTopKOptions, moeTopK } from './router.js';
export { type InvalidIdsOptions, invalidExpertIds, resetInvalidExpertIds } from './stream-state.js';
export type {
  MoeActivation,
  MoeDevice,
  MoeLayerOptions,
  MoeLayerShape,
  MoeLogitsRouting,
  MoeRoutingInput,
  MoeTopKRouting,
} from './validate.js';
