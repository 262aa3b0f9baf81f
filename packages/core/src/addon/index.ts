/**
 * The addon kit: what every GEMM addon package (@marlin/dense, @marlin/fp8, ...) shares. An addon calls
 * defineAddon({ name, packageName, packageRoot, variants }) and re-exports the machinery under its own names.
 */
export {
  type AddonBinarySpec,
  addonCacheDir,
  addonCandidatePaths,
  addonNoBinaryError,
  addonVersion,
  type BinarySource,
  findPlatformPackage,
  type GemmAddon,
  GemmParam,
  glibcVersion,
  type HostPlatform,
  LAUNCH_SERIAL,
  type LoadAttempt,
  type LoadedBinary,
  loadAddonBinary,
  marlinCacheDir,
  type NativeGemmPlan,
  type NoBinaryContext,
  type PlatformPackageState,
  PREBUILT_PLATFORMS,
  platformKey,
  platformPackageName,
} from './binary.js';
export { createGemm, type GemmContext, type GemmFunction, type GemmMachinery, gemmParams, planKey } from './gemm.js';
export {
  type AddonKit,
  type AddonProbe,
  type AddonSpec,
  defineAddon,
  type RegisteredAddon,
  registeredAddons,
} from './kit.js';
export {
  AddonLinear,
  fromFloatInputs,
  type LinearDevice,
  type LinearFromFloatBase,
  type LinearFromPackedOptions,
  type LinearParts,
} from './linear.js';
export { type HostLinear, type LoadLinearsOptions, loadLinearsWith, readLinears, readSparseLinears } from './load.js';
// Every option, result and metadata type of the gemm API.
export type * from './types.js';
export { configIdsFor, quickAcceptFor, type ValidationTarget, validateGemmFor } from './validate.js';
export {
  assertVariant,
  VARIANT_NAMES,
  VARIANT_PACKAGES,
  type VariantFacts,
  type WeightVariant,
  weightVariant,
} from './variant.js';
export {
  type AnyPackedWeight,
  DevicePackedWeight,
  isPackedSparse,
  type PackedWeightMeta,
  type UploadOptions,
} from './weights.js';
