/**
 * Checkpoint I/O (docs/checkpoints.md): safetensors reader/writer, quantization configs, GPTQ / AWQ /
 * compressed-tensors converters, and our packed container (writePacked / loadPacked).
 */

export type {
  AwqConfig,
  CompressedTensorsConfig,
  CtGroup,
  CtWeightScheme,
  Fp8Config,
  GptqCheckpointFormat,
  GptqConfig,
  GptqDynamicRule,
  NamePattern,
  OtherQuantConfig,
  QuantizationConfig,
} from './config.js';
export { parseQuantizationConfig, pythonRegex, readQuantizationConfig } from './config.js';
export type { CheckpointReport, ConvertOptions, ConvertResult } from './convert.js';
export { convertCheckpoint, inspectCheckpoint } from './convert.js';
export type { AwqTensors, CtTensors, GptqTensors } from './decode.js';
export {
  AWQ_ORDER,
  awqZeroPoints,
  ctZeroPoints,
  decodeAwq,
  decodeCompressedTensors,
  decodeGptq,
  gptqZeroPoints,
} from './decode.js';
export type { ExpertModule, ExpertProjection, ExpertsPlan } from './moe.js';
export { expertsMeta, loadExperts, parseExpertModule, planExperts, readConfigNumExperts } from './moe.js';
export type {
  LoadPackedOptions,
  PackedCheckpointInfo,
  PackedExpertsSource,
  PackedLayerMeta,
  PackedLayerSource,
  WriteContainerOptions,
  WriteProgress,
} from './packed.js';
export {
  loadPacked,
  loadPackedExperts,
  PACKED_FORMAT_NAME,
  packedExpertsTensorDeclarations,
  packedLayerMeta,
  packedTensorDeclarations,
  readPackedInfo,
  writePacked,
  writePackedContainer,
} from './packed.js';
export type {
  CheckpointPlan,
  ExecutablePlan,
  LayerPlan,
  LayerStatus,
  PlanOptions,
  SourceFormat,
  UnquantizedModule,
} from './plan.js';
export { ctGroupFor, ctIgnoreMatch, gptqModuleConfig, planCheckpoint } from './plan.js';
export type { SafetensorsDtype, TensorBytes, TensorDeclaration, TensorInfo } from './safetensors.js';
export {
  MAX_HEADER_BYTES,
  numel,
  SAFETENSORS_DTYPE_BITS,
  SafetensorsReader,
  SafetensorsWriter,
  tensorByteLength,
} from './safetensors.js';
export type { TensorSource } from './sharded.js';
export { INDEX_FILE, ShardedSafetensors } from './sharded.js';
export type { Bitmask24Tensors, Marlin24Tensors } from './sparse.js';
export {
  decodeMarlin24,
  decodeSparse24Bitmask,
  MARLIN24_PERM,
  MARLIN24_SCALE_PERM,
  marlin24MetaOffset,
  marlin24ShapeProblem,
} from './sparse.js';
export type { PackedSparseSource } from './sparse-container.js';
export {
  readSparseInfo,
  SPARSE_METADATA_KEY,
  sparseTensorData,
  sparseTensorDeclarations,
} from './sparse-container.js';
export type { SparseLayerInfo } from './sparse-plan.js';
export { claimsTwoFour, isSparseStored, sparseLayerSource } from './sparse-plan.js';
export { loadPackedSparse, readSparseLayer } from './sparse-read.js';
