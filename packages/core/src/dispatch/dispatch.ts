/**
 * Kernel dispatch: choose a row of kernel-table.json and a split-K factor for one GEMM problem on one device, and
 * explain the choice in words (`describe`).
 *
 * The native kernel's work partition (the model this file reasons with):
 * - a thread block owns mTile tokens x (nTiles * 64) output columns and a contiguous range of K;
 * - grid = mBlocks x nBlocks x splits, mBlocks = ceil(M / mTile), nBlocks = ceil(Np / (64 * nTiles));
 * - the Kp / 64 k-tiles (64 rows each) are cut into `splits` contiguous ranges of `kTilesPerSplit` k-tiles (a multiple
 *   of kTilesPerStage; the last range holds the remainder);
 * - shared memory per block = stages * (nTiles*kTilesPerStage*tileBytes        weights (tileBytes: the variant's codec,
 *                                                                               2048 for INT4, 4096 for 8-bit,
 *                                                                               1536 for 2:4 sparse INT4)
 *                                      + mTile*kTilesPerStage*64*2            activations
 *                                      + nTiles*kTilesPerStage*2*64*2         scales (2 groups of 32 per k-tile, fp16)
 *                                      + nTiles*kTilesPerStage*2*64)          zero points (u8, always reserved)
 *   or the epilogue's k-slice partials + staged output tile when that is larger;
 * - up to 3 blocks per SM (mTile <= 16, sm_90), 2 (mTile <= 32) or 1, as shared memory allows (Traits::kMinBlocks);
 *   warp-specialised hopper rows (gemm_ws_kernel.cuh: 384 threads, 1 KiB-aligned stages) always 1;
 */
import { assertHalfDtype } from '../dtypes.js';
import { DeviceError, ErrorCode, ShapeError, UnsupportedError, ValueError } from '../errors/index.js';
import { paddedK, paddedN } from '../format/layout.js';
import type { CodeType, HalfDtype, WeightBits } from '../format/types.js';
import { assertGroupSize, assertKN } from '../format/validate.js';
import kernelTableJson from './kernel-table.json';

/** Name of a kernel variant (codec x operand x problem list; kernel-table.json `variants`). */
export type VariantName = 'int4' | 'int8' | 'fp8' | 'int4-sparse';

/** A kernel variant as kernel-table.json describes it: the codec descriptor dispatch and the generator read. */
export interface KernelVariant {
  /** The addon that builds it (`@marlin/<addon>`). */
  readonly addon: string;
  /** The native codec (native/common/<header>). */
  readonly codec: string;
  readonly header: string;
  readonly bits: WeightBits;
  readonly codeType: CodeType;
  /** Bytes of one 64 x 64 kernel tile (512 x bits; 2:4 sparse: 384 x bits, half the codes plus 2-bit indices). */
  readonly tileBytes: number;
  readonly zeroPoints: boolean;
  /** The A operand: dense, or 2:4 sparse along K (`mma.sp` / `wgmma.mma_async.sp`; docs/format.md "2:4 sparse"). */
  readonly operand: 'dense' | 'sparse24';
  readonly problem: 'single';
  readonly why: string;
}

/** Kernel family: sm_80+ `mma.sync` path or the sm_90a `wgmma` path. */
export type KernelFamily = 'ampere' | 'hopper';

/** One row of kernel-table.json (a compiled kernel configuration). */
export interface KernelConfig {
  readonly id: number;
  readonly kernel: KernelFamily;
  /** Tokens per thread block. */
  readonly mTile: number;
  /** 64-column weight tiles per thread block. */
  readonly nTiles: number;
  /** 64-deep k-tiles per pipeline stage. */
  readonly kTilesPerStage: number;
  /** Pipeline stages in shared memory. */
  readonly stages: number;
  /**
   * Hopper rows only: the warp-specialised kernel (a producer warpgroup issuing TMA/bulk copies, two consumer
   * warpgroups doing dequant + wgmma, full/empty mbarrier pipeline; native/kernels/dense/gemm_ws_kernel.cuh).
   */
  readonly warpSpecialized?: boolean;
  /**
   * Warp-specialised rows only: resident blocks per SM the kernel is built for (1 default, or 2: launch bound of 2
   * blocks, registers split 40 / 96 between producer and consumers; gemm_ws_kernel.cuh WsRegs).
   */
  readonly blocksPerSm?: number;
  /**
   * The M range dispatch uses the row for (default: any M). Rows of the same tile shape that differ in their pipeline
   * (e.g. 10 and 20: 2 k-tiles x 4 stages vs 4 x 2) are told apart by M, which the cost model does not see.
   */
  readonly minM?: number;
  readonly maxM?: number;
  /** The variants (kernel-table.json `variants`) this row is built for; they share one tile size. */
  readonly variants: readonly VariantName[];
  /** Built only with MARLIN_EXPERIMENTAL_KERNELS=1; dispatch runs it only when asked by `options.configId`. */
  readonly experimental?: boolean;
  /** Why this configuration exists. */
  readonly why: string;
}

/** The GEMM problem y[M, N] = x[M, K] W[K, N]. */
export interface GemmProblem {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly groupSize: number;
  readonly bits: WeightBits;
  /** Code type of the weights (absent: 'int'); 'e4m3' is FP8 (bits 8, no zero points). */
  readonly codeType?: CodeType;
  /** '2:4': a packed 2:4 sparse INT4 weight (docs/format.md "2:4 sparse (packed)"), the int4-sparse variant. */
  readonly sparsity?: '2:4';
  readonly dtype: HalfDtype;
  readonly hasZeros: boolean;
  readonly actOrder: boolean;
}

/** GPU architecture name. */
export type GpuArch = 'sm80' | 'sm86' | 'sm89' | 'sm90';

/** What dispatch needs to know about the device (from the runtime's probe). */
export interface DeviceInfo {
  /** Architecture name, or give computeMajor / computeMinor. */
  readonly arch?: GpuArch;
  readonly computeMajor?: number;
  readonly computeMinor?: number;
  /** Number of SMs (132 on H100 SXM, 108 on A100). */
  readonly smCount: number;
  /** Opt-in maximum dynamic shared memory per block in bytes (cudaDevAttrMaxSharedMemoryPerBlockOptin). */
  readonly maxSharedMemoryPerBlock: number;
  /** Shared memory per SM in bytes; defaults to maxSharedMemoryPerBlock + 1 KiB (true for sm_80 .. sm_90). */
  readonly maxSharedMemoryPerMultiprocessor?: number;
  /**
   * The PTX target the addon's kernels were compiled for, as this device runs them (the runtime's kernelArch():
   * cudaFuncAttributes.ptxVersion, e.g. 90 for sm_90a SASS, 80 for compute_80 PTX JIT-compiled on a newer GPU). It
   * decides their stage layout, occupancy and whether the wgmma family exists; absent or 0: the compute capability.
   */
  readonly kernelArch?: number;
}

/** Dispatch overrides. */
export interface DispatchOptions {
  /** Use only configurations of this kernel family. */
  readonly force?: KernelFamily;
  /** Use exactly this table row (still checked against the device's shared memory). */
  readonly configId?: number;
}

/** The chosen launch. */
export interface KernelChoice {
  readonly config: KernelConfig;
  readonly configId: number;
  /** Compute capability as major * 10 + minor (80, 86, 89, 90). */
  readonly computeCapability: number;
  readonly mBlocks: number;
  readonly nBlocks: number;
  /** Split-K factor (grid z). */
  readonly splits: number;
  /**
   * Balanced last wave (native `marlin_dense_launch.tail_splits`): 0 = one launch; t >= 2 (only with splits = 1) = the
   * column blocks past the last whole wave of slots run as a second launch, split-K t ways, so that the partial wave's
   * work is spread over every slot (docs/kernel-design.md "Balanced last wave").
   */
  readonly tailSplits: number;
  /** Kp / 64. */
  readonly kTiles: number;
  /** k-tiles per split (the last split holds kTiles - (splits - 1) * kTilesPerSplit). */
  readonly kTilesPerSplit: number;
  /** Dynamic shared memory per block in bytes. */
  readonly smemBytes: number;
  readonly blocksPerSm: number;
  /** Blocks that run at once on the device: smCount * blocksPerSm. */
  readonly slots: number;
  /** mBlocks * nBlocks * splits. */
  readonly gridBlocks: number;
  /** gridBlocks / slots. */
  readonly waves: number;
  /** Sentences explaining the choice, in order (joined by `describe`). */
  readonly reasons: readonly string[];
}

/** Shared memory the kernel reserves per block on sm_80+ (on top of the dynamic allocation). */
const RESERVED_SMEM_PER_BLOCK = 1024;
/**
 * How split-K is costed for one kernel family: candidate splits 2 .. min(maxSplits, kTiles / minKTilesPerSplit), each
 * block paying `fixedKTiles` k-tiles of start-up (pipeline fill + epilogue) and, for warp-specialised rows, the fp32
 * partial round trip (`reduceKTiles`).
 */
interface SplitModel {
  readonly maxSplits: number;
  readonly minKTilesPerSplit: number;
  readonly fixedKTiles: number;
}
// Ampere rows, measured on H100 (docs/perf-notes.md): every block pays a fixed start-up cost of about 16 k-tiles'
// streaming time. Splits as short as 8 k-tiles (2 stages) since launches overlap the previous kernel on sm_90 (H200
// sweep, 8B o_proj 4096 x 4096: 8 splits 5.9 us vs 4 splits 7.3 at M = 1, 7.8 vs 8.4 at M = 16; serial launches tie);
// the cost model picks the same splits as before for every other Llama layer.
const AMPERE_SPLITS: SplitModel = { maxSplits: 16, minKTilesPerSplit: 8, fixedKTiles: 16 };
// Warp-specialised rows, refitted to H200 sweeps (configs 10/13/15/17, M = 32-1024, the 8 Llama layers, splits 1-8;
// docs/perf-notes.md) after the split-K reduction stopped serialising its loads and the producer stopped copying
// duplicate scale rows: splits of 8 k-tiles can win small layers, and a block's start-up is ~4 k-tiles of its own
// (longer) k-tile time.
const WS_SPLITS: SplitModel = { maxSplits: 8, minKTilesPerSplit: 8, fixedKTiles: 4 };
/**
 * Resident blocks per SM the native kernel is built for (Traits::kMinBlocks in gemm_kernel.cuh): token tiles <= 16 cap
 * registers for 3 blocks on sm_90 (2 on sm_8x, whose cp.async weight plan needs more registers), <= 32 for 2, larger
 * ones use up to 255 registers (1 block). Shared memory may allow fewer.
 */
function maxBlocksPerSm(config: KernelConfig, cc: number): number {
  // Warp-specialised: 384 threads whose consumers take 232 registers each (setmaxnreg) fill the register file, unless
  // the row is built for 2 blocks per SM (96-register consumers).
  if (config.warpSpecialized === true) return config.blocksPerSm ?? 1;
  if (config.mTile > 32) return 1;
  return config.mTile <= 16 && cc >= 90 ? 3 : 2;
}
const ARCH_CC: Readonly<Record<GpuArch, number>> = { sm80: 80, sm86: 86, sm89: 89, sm90: 90 };

/** The kernel table (kernel-table.json `dense`), ids as in the file. */
export const KERNEL_TABLE: readonly KernelConfig[] = (kernelTableJson as unknown as { dense: KernelConfig[] }).dense;

/** The kernel variants (kernel-table.json `variants`). */
export const KERNEL_VARIANTS: Readonly<Record<VariantName, KernelVariant>> = (
  kernelTableJson as unknown as { variants: Record<VariantName, KernelVariant> }
).variants;

/**
 * The variant that runs a problem: 2:4 sparse INT4 for sparse weights, FP8 for e4m3 codes, INT8 for other 8-bit
 * weights, INT4 otherwise.
 */
export function variantOf(
  problem: Pick<GemmProblem, 'bits' | 'codeType'> & { readonly sparsity?: undefined },
): Exclude<VariantName, 'int4-sparse'>;
export function variantOf(problem: Pick<GemmProblem, 'bits' | 'codeType' | 'sparsity'>): VariantName;
export function variantOf(problem: Pick<GemmProblem, 'bits' | 'codeType' | 'sparsity'>): VariantName {
  if (problem.sparsity === '2:4') return 'int4-sparse';
  if (problem.codeType === 'e4m3') return 'fp8';
  return problem.bits === 8 ? 'int8' : 'int4';
}

/** Rows built for `variant` (experimental ones included). */
export function variantConfigs(variant: VariantName): KernelConfig[] {
  return KERNEL_TABLE.filter((c) => c.variants.includes(variant));
}

/** Whether a row's variants have a 2:4 sparse operand (the sparse tensor cores: half the MMA work). */
export function isSparseConfig(config: KernelConfig): boolean {
  return KERNEL_VARIANTS[config.variants[0]]?.operand === 'sparse24';
}

/** Tile bytes of a row: its variants' codec descriptor (they share one tile size). */
export function tileBytesOf(config: KernelConfig): number {
  const v = KERNEL_VARIANTS[config.variants[0]];
  if (v === undefined) {
    throw new ValueError(`Config ${config.id} names no known variant (${JSON.stringify(config.variants)}).`, {
      fix: 'list variants from kernel-table.json "variants" on every row.',
    });
  }
  return v.tileBytes;
}

/**
 * Whether `config` fills its stages through the copy engine on a device of compute capability `cc`
 * (native/kit/tma_stage.cuh: 1024-byte aligned stages, + 1024 B to align the dynamic base): the warp-specialised rows
 * always, the mma.sync ("ampere") rows from sm_90 on (their sm_90a / sm_100 / sm_120 SASS runs the producer-warp
 * pipeline), cc 0 = unknown device (the cp.async layout). `cc` is the architecture the code was compiled for
 * (DeviceInfo.kernelArch): compute_80 PTX JIT-compiled on a newer GPU runs the cp.async layout.
 */
function tmaStages(config: KernelConfig, cc: number): boolean {
  return config.warpSpecialized === true || (config.kernel === 'ampere' && cc >= 90);
}

/**
 * Shared memory per block (bytes) of `config` on a device of compute capability `cc` (default: the sm_80 layout), per
 * the formula at the top of this file.
 */
export function smemBytes(config: KernelConfig, _hasZeros: boolean, cc = 0): number {
  const { nTiles, mTile, stages } = config;
  const tma = tmaStages(config, cc);
  const outTile = mTile * (nTiles * 64 + 8) * 2;
  const pipeline = stages * stageBytes(config, cc);
  if (config.warpSpecialized === true) return Math.max(pipeline, outTile) + 1024; // + 1024 B to align the dynamic base
  // The epilogue reuses the pipeline's memory: k-slice partials (128 threads x fragments) + the staged output tile.
  const epilogue = 128 * (mTile / 8) * nTiles * 16 + outTile;
  return Math.max(pipeline, epilogue) + (tma ? 1024 : 0);
}

/**
 * Shared memory of one pipeline stage: weights + activations + scale rows + zero-point rows (always reserved: one
 * stage layout per config); stages filled by the copy engine (tmaStages) start on 1024-byte boundaries (128-byte
 * swizzle atoms).
 */
export function stageBytes(config: KernelConfig, cc = 0): number {
  const { nTiles, kTilesPerStage: kts, mTile } = config;
  const bytes =
    nTiles * kts * tileBytesOf(config) + mTile * kts * 64 * 2 + nTiles * kts * 2 * 64 * 2 + nTiles * kts * 2 * 64;
  return tmaStages(config, cc) ? Math.ceil(bytes / 1024) * 1024 : bytes;
}

/** Compute capability (major * 10 + minor) of a device description; `DeviceError` ARCH_TOO_OLD below 8.0. */
export function computeCapability(device: DeviceInfo): number {
  let cc: number;
  if (device.arch !== undefined) {
    if (!(device.arch in ARCH_CC)) {
      throw new ValueError(`Unknown GPU arch ${JSON.stringify(device.arch)}.`, {
        fix: "pass arch as 'sm80', 'sm86', 'sm89' or 'sm90', or give computeMajor and computeMinor.",
      });
    }
    cc = ARCH_CC[device.arch];
  } else if (Number.isInteger(device.computeMajor) && Number.isInteger(device.computeMinor)) {
    cc = (device.computeMajor as number) * 10 + (device.computeMinor as number);
  } else {
    throw new ValueError('The device description has neither arch nor computeMajor/computeMinor.', {
      fix: "pass { arch: 'sm90', ... } or { computeMajor: 9, computeMinor: 0, ... } from the runtime probe.",
    });
  }
  if (cc < 80) {
    throw new DeviceError(ErrorCode.ARCH_TOO_OLD, `Compute capability ${cc / 10} is not supported (needs sm_80+).`, {
      fix: 'run on an Ampere (A100, A10, RTX 30xx), Ada (L4, L40, RTX 40xx) or Hopper (H100, H200) GPU, or use the CPU reference (device: "cpu").',
      details: { computeCapability: cc },
    });
  }
  return cc;
}

function validateProblem(p: GemmProblem): void {
  if (!Number.isInteger(p.M) || p.M < 1) {
    throw new ShapeError(`M = ${p.M} must be a positive integer (the number of tokens).`, {
      fix: 'pass the row count of the activation matrix.',
    });
  }
  assertKN(p.K, p.N);
  assertGroupSize(p.groupSize, p.K);
  assertHalfDtype(p.dtype);
  if (p.bits !== 4 && p.bits !== 8) {
    throw new UnsupportedError(`bits = ${p.bits}: the GPU kernels take 4-bit and 8-bit weights.`, {
      fix: 'quantize the weight to 4 or 8 bits.',
      details: { bits: p.bits },
    });
  }
  if (p.codeType !== undefined && p.codeType !== 'int' && p.codeType !== 'e4m3') {
    throw new ValueError(`codeType ${JSON.stringify(p.codeType)} is not a weight code type.`, {
      fix: "pass codeType 'int' (INT4 / INT8) or 'e4m3' (FP8), or omit it.",
    });
  }
  if (p.sparsity !== undefined && (p.sparsity !== '2:4' || p.bits !== 4 || p.codeType === 'e4m3' || p.actOrder)) {
    throw new UnsupportedError(
      `A sparse problem (sparsity ${JSON.stringify(p.sparsity)}, bits ${p.bits}${p.actOrder ? ', act-order' : ''}): the sparse kernels take 2:4 INT4 weights without act-order.`,
      {
        fix: 'pass sparsity "2:4", bits 4 and no permutation (docs/format.md "2:4 sparse (packed)").',
        details: { sparsity: p.sparsity, bits: p.bits, actOrder: p.actOrder },
      },
    );
  }
  if (p.codeType === 'e4m3' && (p.bits !== 8 || p.hasZeros || p.actOrder)) {
    throw new UnsupportedError('FP8 e4m3 weights are 8-bit, without zero points or act-order.', {
      fix: 'pass bits 8, no zero points and no permutation for FP8 weights (docs/format.md "FP8 e4m3").',
      details: { bits: p.bits, hasZeros: p.hasZeros, actOrder: p.actOrder },
    });
  }
}

function validateDevice(device: DeviceInfo): void {
  for (const key of ['smCount', 'maxSharedMemoryPerBlock'] as const) {
    if (!Number.isInteger(device[key]) || device[key] <= 0) {
      throw new ValueError(`device.${key} = ${device[key]} must be a positive integer.`, {
        fix: 'pass the values reported by the runtime probe (cudaDeviceGetAttribute).',
      });
    }
  }
  const arch = device.kernelArch;
  if (arch !== undefined && !(Number.isInteger(arch) && arch >= 0)) {
    throw new ValueError(
      `device.kernelArch = ${arch} must be a non-negative integer (a PTX version such as 80 or 90).`,
      {
        fix: "pass the runtime's kernelArch(device), or leave it out.",
      },
    );
  }
}

/** The architecture the kernels run as on `device`: its kernelArch, else its compute capability (major * 10 + minor). */
export function kernelArchOf(device: DeviceInfo): number {
  const arch = device.kernelArch;
  return arch !== undefined && arch > 0 ? arch : computeCapability(device);
}

/**
 * Table rows dispatch may choose on its own: not marked `"experimental": true`. Experimental rows run only when asked
 * for by `options.configId` (tuning sweeps).
 */
export function isExperimental(config: KernelConfig): boolean {
  return (config as { experimental?: boolean }).experimental === true;
}

/**
 * Smallest M for which sm_90 runs the hopper (wgmma) family by default. Up to M = 16 the ampere decode configurations
 * stream weights fastest (wgmma m64n8/n16 variants measured no better); from M = 32 on wgmma wins (sweeps on
 * H100: 70B block at M = 32 1.75x vs 1.67x, M = 64 1.34x vs 0.95x, M = 1024 0.53x vs 0.36x; docs/perf-notes.md).
 */
const HOPPER_MIN_M = 17;

/**
 * The family dispatch uses when not forced: hopper on sm_90 running the sm_90a SASS (its only target) from
 * HOPPER_MIN_M, when one of its rows for M fits the device's shared memory per block.
 */
function defaultFamily(M: number, device: DeviceInfo, cc: number, variant: VariantName): KernelFamily {
  const hasHopper = variantConfigs(variant).some(
    (c) => c.kernel === 'hopper' && !isExperimental(c) && inMRange(c, M) && fitsDevice(c, false, device),
  );
  return cc === 90 && kernelArchOf(device) === 90 && M >= HOPPER_MIN_M && hasHopper ? 'hopper' : 'ampere';
}

/** Whether dispatch may pick `config` for M tokens (its minM / maxM). */
function inMRange(config: KernelConfig, M: number): boolean {
  return M >= (config.minM ?? 1) && M <= (config.maxM ?? Number.POSITIVE_INFINITY);
}

/** Candidate rows of one family, sorted by mTile then id (so equal mTiles resolve to the lowest id). */
function familyConfigs(
  force: KernelFamily | undefined,
  device: DeviceInfo,
  cc: number,
  M: number,
  variant: VariantName,
): KernelConfig[] {
  const family = force ?? defaultFamily(M, device, cc, variant);
  if (family === 'hopper' && cc !== 90) {
    throw new UnsupportedError(`force: 'hopper' needs sm_90 (its SASS is sm_90a), this device is sm_${cc}.`, {
      fix: "drop force or use force: 'ampere'.",
    });
  }
  if (family === 'hopper' && kernelArchOf(device) !== 90) {
    throw new UnsupportedError(
      `force: 'hopper' needs the sm_90a image, but this binary runs sm_${kernelArchOf(device)} code on this device.`,
      { fix: "drop force or use force: 'ampere', or build the addon with 90a in MARLIN_CUDA_ARCHS." },
    );
  }
  const configs = variantConfigs(variant).filter((c) => c.kernel === family && !isExperimental(c) && inMRange(c, M));
  if (configs.length === 0) {
    throw new UnsupportedError(`kernel-table.json has no '${family}' configuration of variant ${variant}.`, {
      fix: "use force: 'ampere' (or omit force); the hopper path is not compiled yet.",
    });
  }
  return configs.sort((a, b) => a.mTile - b.mTile || a.id - b.id);
}

function fitsDevice(config: KernelConfig, hasZeros: boolean, device: DeviceInfo): boolean {
  return smemBytes(config, hasZeros, kernelArchOf(device)) <= device.maxSharedMemoryPerBlock;
}

function configById(id: number, problem: GemmProblem, device: DeviceInfo, reasons: string[]): KernelConfig {
  const config = KERNEL_TABLE.find((c) => c.id === id);
  if (config === undefined) {
    throw new ValueError(`configId ${id} is not in kernel-table.json.`, {
      fix: `pass one of the ids ${KERNEL_TABLE.map((c) => c.id).join(', ')}, or omit configId.`,
    });
  }
  const variant = variantOf(problem);
  if (!config.variants.includes(variant)) {
    throw new UnsupportedError(
      `configId ${id} is not built for ${variant} weights (it is for ${config.variants.join(', ')}).`,
      {
        fix: `pass one of the ids ${variantConfigs(variant)
          .map((c) => c.id)
          .join(', ')}, or omit configId.`,
      },
    );
  }
  if (!fitsDevice(config, problem.hasZeros, device)) {
    throw new UnsupportedError(
      `configId ${id} needs ${kib(smemBytes(config, problem.hasZeros, kernelArchOf(device)))} of shared memory per block, the device allows ${kib(device.maxSharedMemoryPerBlock)}.`,
      { fix: 'omit configId to let dispatch choose a configuration that fits.' },
    );
  }
  reasons.push(`Config ${id} was forced by options.configId.`);
  return config;
}

/**
 * mTile: the smallest table entry >= M (the largest entry for bigger M); if its shared memory does not fit the
 * device, the largest smaller one that fits (more mBlocks instead).
 */
function chooseConfig(
  problem: GemmProblem,
  device: DeviceInfo,
  configs: KernelConfig[],
  reasons: string[],
): KernelConfig {
  const { M, hasZeros } = problem;
  const preferred = configs.find((c) => c.mTile >= M) ?? configs[configs.length - 1];
  reasons.push(
    preferred.mTile >= M
      ? `M = ${M} -> config ${preferred.id}: the smallest token tile >= M is mTile ${preferred.mTile} (${preferred.why}).`
      : `M = ${M} exceeds every token tile -> config ${preferred.id}, the largest (mTile ${preferred.mTile}: ${preferred.why}).`,
  );
  if (fitsDevice(preferred, hasZeros, device)) return preferred;
  const smaller = configs.filter((c) => c.mTile < preferred.mTile && fitsDevice(c, hasZeros, device));
  const largestTile = smaller.length === 0 ? 0 : smaller[smaller.length - 1].mTile;
  const fallback = smaller.find((c) => c.mTile === largestTile);
  if (fallback === undefined) {
    throw new UnsupportedError(
      `No kernel configuration fits this device's ${kib(device.maxSharedMemoryPerBlock)} of shared memory per block for M = ${M}.`,
      { fix: 'run on a GPU with more shared memory per block, or use the CPU reference.' },
    );
  }
  reasons.push(
    `Config ${preferred.id} needs ${kib(smemBytes(preferred, hasZeros, kernelArchOf(device)))} of shared memory, more than the device's ${kib(device.maxSharedMemoryPerBlock)} per block, so config ${fallback.id} (mTile ${fallback.mTile}) is used with more token blocks.`,
  );
  return fallback;
}

interface SplitPlan {
  /** Balanced last wave's split count (0: none); splits is then 1. */
  tailSplits: number;
  splits: number;
  kTilesPerSplit: number;
  cost: number;
}

/** The largest split count `model` tries for kTiles k-tiles (each range >= model.minKTilesPerSplit; at least 1). */
function maxSplitsOf(kTiles: number, model: SplitModel): number {
  return Math.min(model.maxSplits, Math.max(1, Math.floor(kTiles / model.minKTilesPerSplit)));
}

/** `splits` nearly equal ranges rounded up to whole stages; returns the real split count and range length. */
function splitPlan(
  kTiles: number,
  requested: number,
  kTilesPerStage: number,
  tiles: number,
  slots: number,
  model: SplitModel,
  reduceCost: (splits: number) => number,
): SplitPlan {
  const per = Math.ceil(Math.ceil(kTiles / requested) / kTilesPerStage) * kTilesPerStage;
  const splits = Math.ceil(kTiles / per);
  const waves = Math.ceil((tiles * splits) / slots);
  return { splits, kTilesPerSplit: per, cost: waves * (per + model.fixedKTiles + reduceCost(splits)), tailSplits: 0 };
}

/**
 * Gain a balanced last wave must promise over the best single launch before dispatch takes it: the model's
 * predictions were checked on the H200 only where they promised 5% or more (docs/perf-notes.md).
 */
const TAIL_MIN_GAIN = 0.03;

/** How a balanced last wave divides a launch's tiles (balancedWave). */
export interface WaveSplit {
  /** Whole waves of slots the first launch fills. */
  readonly fullWaves: number;
  /** Column blocks of the first launch (all mBlocks token blocks of each). */
  readonly headBlocks: number;
  /** Output tiles of the second launch: (nBlocks - headBlocks) x mBlocks. */
  readonly tailTiles: number;
}

/**
 * Where a balanced last wave cuts a one-split launch of mBlocks x nBlocks tiles on `slots` resident blocks: the
 * column blocks of its whole waves, and the rest. Mirrors plan_tail in native/kit/host.cu, including when
 * there is none (undefined): no partial wave, no whole column block in the whole waves, or a last column block that
 * is not whole (`wholeBlocks` false: Np not a multiple of the block width).
 */
export function balancedWave(
  mBlocks: number,
  nBlocks: number,
  slots: number,
  wholeBlocks: boolean,
): WaveSplit | undefined {
  const tiles = mBlocks * nBlocks;
  if (!wholeBlocks || slots <= 0 || tiles <= slots || tiles % slots === 0) return undefined;
  const fullWaves = Math.floor(tiles / slots);
  const headBlocks = Math.floor((fullWaves * slots) / mBlocks);
  if (headBlocks <= 0 || headBlocks >= nBlocks) return undefined;
  return { fullWaves, headBlocks, tailTiles: (nBlocks - headBlocks) * mBlocks };
}

/**
 * Balanced last wave (docs/perf-notes.md): a one-split launch whose tiles fill W whole waves of `slots` and part of one
 * more runs the column blocks of the whole waves as one launch (W x (kTiles + fixed)) and the rest as a second launch
 * split t ways (costed as a split plan of those tiles). Returns the cheapest t in 2 .. model.maxSplits, or undefined
 * (balancedWave: no partial wave to balance).
 */
function tailPlan(
  kTiles: number,
  kTilesPerStage: number,
  mBlocks: number,
  nBlocks: number,
  slots: number,
  model: SplitModel,
  reduceCost: (splits: number) => number,
  wholeBlocks: boolean,
): SplitPlan | undefined {
  const wave = balancedWave(mBlocks, nBlocks, slots, wholeBlocks);
  if (wave === undefined) return undefined;
  const head = wave.fullWaves * (kTiles + model.fixedKTiles);
  let best: SplitPlan | undefined;
  for (let t = 2; t <= maxSplitsOf(kTiles, model); t++) {
    const rest = splitPlan(kTiles, t, kTilesPerStage, wave.tailTiles, slots, model, reduceCost);
    if (rest.splits < 2) continue;
    const cost = head + rest.cost;
    if (best === undefined || cost < best.cost) {
      best = {
        splits: 1,
        kTilesPerSplit: Math.ceil(kTiles / kTilesPerStage) * kTilesPerStage,
        cost,
        tailSplits: rest.splits,
      };
    }
  }
  return best;
}

// Warp-specialised (hopper) cost model, fitted to H200 sweeps (configs 10/13/15/17, M = 32-1024, the 8 Llama layers;
// docs/perf-notes.md): summed over every layer and M, dispatch's picks cost 0.5% more than the
// sweep's best per-layer picks; the worst single layer (8B o_proj at M = 32: 4 splits, 8 measured 15% faster) 1.17x.
/** Sustained tensor rate of one SM (75% of the ~4096 fp16 FLOP/clk dense peak). */
const TENSOR_FLOP_PER_CLK_SM = 3072;
/** L2 -> SM bytes per clock one SM sustains when every SM streams (weights + activation tiles). */
const L2_BYTES_PER_CLK_SM = 24;
/** fp32 partial bytes per clock of the split-K round trip (the last block reads every split's tile alone). */
const REDUCE_BYTES_PER_CLK = 30;

/**
 * Clocks one block of a warp-specialised configuration spends per k-tile: its wgmma work at the sustained tensor rate
 * or its weight + activation + scale bytes at the L2 rate, whichever is slower. 128-token x 256-column blocks are
 * tensor-bound (1365 clk), 128 x 128 ones L2-bound (869 clk for half the work): why the wide block wins on big layers.
 */
export function kTileClocks(config: KernelConfig): number {
  const { mTile, nTiles } = config;
  // The sparse tensor cores run a 2:4 operand's k32 in the time of a dense k16: half the dense-equivalent FLOPs.
  const flops = (2 * mTile * nTiles * 64 * 64) / (isSparseConfig(config) ? 2 : 1);
  const bytes = nTiles * tileBytesOf(config) + mTile * 128 + nTiles * 64 * 3;
  return Math.max(flops / TENSOR_FLOP_PER_CLK_SM, bytes / L2_BYTES_PER_CLK_SM);
}

/** Split-K's fp32 round trip in k-tiles of `config`: each split writes its partial tile, the last one reads them all. */
function reduceKTiles(config: KernelConfig, splits: number): number {
  if (splits <= 1) return 0;
  const tileBytes = config.mTile * config.nTiles * 64 * 4;
  return ((1 + splits) * tileBytes) / REDUCE_BYTES_PER_CLK / kTileClocks(config);
}

/**
 * Split-K heuristic. Without split-K, mBlocks * nBlocks output tiles may leave SMs idle (decode: M = 1). Each
 * candidate split count s (1 .. model.maxSplits, each range >= model.minKTilesPerSplit k-tiles) costs
 * waves(s) * (kTilesPerSplit(s) + model.fixedKTiles + reduce(s)), waves = ceil(blocks / slots); the cheapest wins,
 * ties go to fewer splits (less fp32 partial traffic). Ampere rows: 16 splits, 8 k-tiles, 16 fixed, no reduce term;
 * warp-specialised rows: WS_SPLITS and reduceKTiles.
 *
 * Worked example, ampere (M = 1, K = N = 8192, int4, H100: 132 SMs, 227 KiB smem per block; table row 0: mTile 8,
 * nTiles 2, kTilesPerStage 4, stages 4):
 *   config 0: smem = 4 stages x (16384 + 4096 + 2048 + 1024) + 1024 (sm_90 stage alignment) = 95,232 B -> 2 blocks per SM -> 264 slots; mBlocks = 1, nBlocks = 8192 / 128 = 64 tiles; kTiles = 8192 / 64 = 128 -> <= 8 splits.
 *   s = 1: 1 wave x (128 + 16) = 144;  s = 2: 1 x 80;  s = 3: 44-tile ranges, 1 x 60;  s = 4: 256 blocks, 1 x 48;
 *   s = 5: 28-tile ranges, 320 blocks, 2 x 44 = 88  -> splits = 4, grid 1 x 64 x 4 = 256 blocks.
 */
function chooseSplits(
  kTiles: number,
  kTilesPerStage: number,
  tiles: number,
  slots: number,
  model: SplitModel,
  reduceCost: (splits: number) => number = () => 0,
): SplitPlan {
  // NOTE: also when tiles >= slots: a last partial wave can cost more than splitting.
  let best = splitPlan(kTiles, 1, kTilesPerStage, tiles, slots, model, reduceCost);
  for (let s = 2; s <= maxSplitsOf(kTiles, model); s++) {
    const plan = splitPlan(kTiles, s, kTilesPerStage, tiles, slots, model, reduceCost);
    if (plan.cost < best.cost) best = plan;
  }
  return best;
}

function splitModel(config: KernelConfig): SplitModel {
  if (config.warpSpecialized === true) return WS_SPLITS;
  // The ampere start-up cost is a time (about 16 INT4 k-tiles' streaming): fewer k-tiles of the wider 8-bit tiles.
  const scale = 2048 / tileBytesOf(config);
  return scale === 1 ? AMPERE_SPLITS : { ...AMPERE_SPLITS, fixedKTiles: AMPERE_SPLITS.fixedKTiles * scale };
}

interface LaunchPlan {
  config: KernelConfig;
  smem: number;
  blocksPerSm: number;
  slots: number;
  mBlocks: number;
  nBlocks: number;
  kTiles: number;
  plan: SplitPlan;
  /** Warp-specialised rows: plan.cost in k-tiles x kTileClocks (comparable across column widths); else plan.cost. */
  clocks: number;
}

/** Whether `config`'s column blocks cover the packed width of N exactly (a balanced last wave needs it). */
function wholeBlocks(N: number, config: KernelConfig): boolean {
  return paddedN(N) % (64 * config.nTiles) === 0;
}

/** Occupancy, grid and split-K plan of `config` for `problem` on a device running `arch` code (kernelArchOf). */
function planLaunch(problem: GemmProblem, device: DeviceInfo, arch: number, config: KernelConfig): LaunchPlan {
  const smem = smemBytes(config, problem.hasZeros, arch);
  const perSm = device.maxSharedMemoryPerMultiprocessor ?? device.maxSharedMemoryPerBlock + RESERVED_SMEM_PER_BLOCK;
  const blocksPerSm = Math.max(
    1,
    Math.min(maxBlocksPerSm(config, arch), Math.floor(perSm / (smem + RESERVED_SMEM_PER_BLOCK))),
  );
  const slots = device.smCount * blocksPerSm;
  const mBlocks = Math.ceil(problem.M / config.mTile);
  const nBlocks = Math.ceil(paddedN(problem.N) / (64 * config.nTiles));
  const kTiles = paddedK(problem.K, problem.bits) / 64;
  // Split-K counts waves on at most 2 blocks per SM: with 3 resident decode blocks the partial last "wave" is cheap
  // (blocks overlap), and H100 runs measured the 2-block choices faster (70B o_proj M=4: 4 splits 18.3 us vs
  // 6 splits 20.3 us; gate_up: no split; docs/perf-notes.md). Warp-specialised rows also pay for the fp32 partial
  // round trip (their 128 x 256 partial tiles are 128 KiB; 2 splits of 70B gate_up at M = 256 cost 1.3x).
  const ws = config.warpSpecialized === true;
  const splitSlots = device.smCount * Math.min(blocksPerSm, 2);
  const reduce = ws ? (splits: number) => reduceKTiles(config, splits) : undefined;
  let plan = chooseSplits(kTiles, config.kTilesPerStage, mBlocks * nBlocks, splitSlots, splitModel(config), reduce);
  // Balanced last wave: warp-specialised rows only (on the mma.sync decode rows the second launch lost at every t;
  // docs/perf-notes.md).
  if (reduce !== undefined) {
    const tail = tailPlan(
      kTiles,
      config.kTilesPerStage,
      mBlocks,
      nBlocks,
      splitSlots,
      splitModel(config),
      reduce,
      wholeBlocks(problem.N, config),
    );
    if (tail !== undefined && tail.cost < plan.cost * (1 - TAIL_MIN_GAIN)) plan = tail;
  }
  const clocks = ws ? plan.cost * kTileClocks(config) : plan.cost;
  return { config, smem, blocksPerSm, slots, mBlocks, nBlocks, kTiles, plan, clocks };
}

/**
 * Chooses the kernel configuration and split-K factor for `problem` on `device`. Throws `UnsupportedError` for
 * problems no compiled kernel runs (forced hopper below sm_90, a config of another variant), `DeviceError` (ARCH_TOO_OLD) below sm_80, and
 * `ShapeError`/`DtypeError`/`ValueError` for malformed input.
 */
export function dispatch(problem: GemmProblem, device: DeviceInfo, options: DispatchOptions = {}): KernelChoice {
  validateProblem(problem);
  validateDevice(device);
  const cc = computeCapability(device);
  const reasons: string[] = [];
  const first =
    options.configId === undefined
      ? chooseConfig(problem, device, familyConfigs(options.force, device, cc, problem.M, variantOf(problem)), reasons)
      : configById(options.configId, problem, device, reasons);
  // Stage layout and occupancy follow the code the device runs (kernelArch), the family choice its compute capability.
  const arch = kernelArchOf(device);
  let launch = planLaunch(problem, device, arch, first);
  if (first.warpSpecialized === true && options.configId === undefined) {
    // Same token tile, other column widths (256 / 128): the cheapest under the warp-specialised cost model.
    const alternatives = KERNEL_TABLE.filter(
      (c) =>
        c !== first &&
        c.kernel === first.kernel &&
        c.variants.includes(variantOf(problem)) &&
        c.warpSpecialized === true &&
        c.mTile === first.mTile &&
        !isExperimental(c) &&
        inMRange(c, problem.M) &&
        fitsDevice(c, problem.hasZeros, device),
    );
    for (const alt of alternatives) {
      const other = planLaunch(problem, device, arch, alt);
      if (other.clocks < launch.clocks) {
        reasons.push(
          `Config ${alt.id} (${64 * alt.nTiles}-column blocks) is cheaper than config ${launch.config.id} (${64 * launch.config.nTiles} columns) for this shape under the warp-specialised cost model: ${Math.round(other.clocks)} vs ${Math.round(launch.clocks)} block-clocks (k-tile ${Math.round(kTileClocks(alt))} vs ${Math.round(kTileClocks(launch.config))} clk, waves, split-K round trip).`,
        );
        launch = other;
      }
    }
  }
  const { config, smem, blocksPerSm, slots, mBlocks, nBlocks, kTiles, plan } = launch;
  const gridBlocks = mBlocks * nBlocks * plan.splits;
  const choice = {
    config,
    configId: config.id,
    computeCapability: cc,
    mBlocks,
    nBlocks,
    splits: plan.splits,
    tailSplits: plan.tailSplits,
    kTiles,
    kTilesPerSplit: plan.kTilesPerSplit,
    smemBytes: smem,
    blocksPerSm,
    slots,
    gridBlocks,
    waves: gridBlocks / slots,
    reasons,
  };
  reasons.push(...launchReasons(problem, device, choice));
  return choice;
}

function launchReasons(problem: GemmProblem, device: DeviceInfo, c: Omit<KernelChoice, 'reasons'>): string[] {
  const cfg = c.config;
  const cc = kernelArchOf(device);
  const perStage = stageBytes(cfg, cc);
  const pipeline = cfg.stages * perStage;
  const extra =
    c.smemBytes === pipeline
      ? ''
      : ` (${c.smemBytes - pipeline} B more for ${cfg.warpSpecialized === true ? 'alignment / the epilogue tile' : tmaStages(cfg, cc) ? 'alignment / the epilogue' : 'the epilogue'})`;
  const tiles = c.mBlocks * c.nBlocks;
  const out = [
    `Shared memory: ${cfg.stages} stages x ${perStage} B${extra} = ${kib(c.smemBytes)} per block (device allows ${kib(device.maxSharedMemoryPerBlock)}), so ${c.blocksPerSm} block(s) per SM -> ${c.slots} slots on ${device.smCount} SMs.`,
    `Output tiles: mBlocks = ceil(${problem.M} / ${cfg.mTile}) = ${c.mBlocks}, nBlocks = ceil(${paddedN(problem.N)} / ${64 * cfg.nTiles}) = ${c.nBlocks} -> ${tiles} tiles.`,
  ];
  const wave = c.tailSplits > 1 ? balancedWave(c.mBlocks, c.nBlocks, c.slots, wholeBlocks(problem.N, cfg)) : undefined;
  if (wave !== undefined) {
    out.push(
      `Balanced last wave: ${tiles} tiles are ${wave.fullWaves} whole wave(s) of ${c.slots} slots and ${tiles - wave.fullWaves * c.slots} tiles more, so the first ${wave.headBlocks} column blocks run unsplit and the other ${c.nBlocks - wave.headBlocks} as a second launch split ${c.tailSplits} ways (${wave.tailTiles * c.tailSplits} blocks), cheaper under the cost model than any single launch.`,
    );
  } else if (c.splits === 1) {
    out.push(
      tiles >= c.slots
        ? `No split-K: ${tiles} tiles already fill the ${c.slots} slots, and splitting would not shorten the run (waves x (k-tiles + ${splitModel(cfg).fixedKTiles})); each block walks all ${c.kTiles} k-tiles.`
        : `No split-K: splitting the ${c.kTiles} k-tiles would not shorten the longest wave (at least ${splitModel(cfg).minKTilesPerSplit} k-tiles per split).`,
    );
  } else {
    const last = c.kTiles - (c.splits - 1) * c.kTilesPerSplit;
    out.push(
      `Split-K ${c.splits}: ${tiles} tiles on ${c.slots} slots, so the ${c.kTiles} k-tiles are cut into ranges of ${c.kTilesPerSplit} (multiple of ${cfg.kTilesPerStage} per stage; last ${last}), the fewest splits with the shortest critical path (waves x k-tiles per split).`,
    );
  }
  const ws = workspaceBytes(problem, c);
  out.push(
    wave === undefined
      ? `Grid ${c.mBlocks} x ${c.nBlocks} x ${c.splits} = ${c.gridBlocks} blocks = ${c.waves.toFixed(2)} waves; workspace ${ws} B.`
      : `Grids ${c.mBlocks} x ${wave.headBlocks} = ${c.mBlocks * wave.headBlocks} blocks, then ${c.mBlocks} x ${c.nBlocks - wave.headBlocks} x ${c.tailSplits} = ${wave.tailTiles * c.tailSplits} blocks; workspace ${ws} B.`,
  );
  return out;
}

/** The choice in words: which config and why, shared memory, tiles, waves, split-K. */
export function describe(choice: KernelChoice): string {
  const c = choice.config;
  const head = `Kernel config ${c.id} (${c.kernel}, sm_${choice.computeCapability}: mTile ${c.mTile}, nTiles ${c.nTiles}, kTilesPerStage ${c.kTilesPerStage}, stages ${c.stages}).`;
  return [head, ...choice.reasons].join('\n');
}

/** Alias of `describe` for code where the name `describe` is taken (test runners). */
export const describeKernelChoice = describe;

/** Arrival counters reserved at the start of every workspace (native kCounterCapacity = 4096 u32). */
export const WORKSPACE_COUNTER_BYTES = 4096 * 4;

/** The problem sizes the workspace depends on (N: where a balanced last wave cuts; without it, a bound). */
export type WorkspaceProblem = Pick<GemmProblem, 'M' | 'K' | 'actOrder'> & { readonly N?: number };

/**
 * What the workspace size depends on: the launch's tiles and splits, and its balanced last wave (tailSplits 0 or
 * absent: none; its partials cover the tiles past the whole waves of `slots`).
 */
export type WorkspaceChoice = Pick<KernelChoice, 'splits' | 'mBlocks' | 'nBlocks' | 'config'> & {
  readonly tailSplits?: number;
  readonly slots?: number;
};

/** Byte offsets of the workspace regions (each 256-byte aligned). Mirrors layout_of() in native/kernels/dense/dense.cu. */
export interface WorkspaceLayout {
  /** u32 arrival counters, one per output tile of a split-K launch; fixed 16 KiB at offset 0, zeroed once at creation. */
  readonly countersOffset: number;
  readonly countersBytes: number;
  /** fp32 partial sums, [mBlocks * nBlocks][splits][fragment order of mTile x nTiles * 64], only when splits > 1. */
  readonly partialsOffset: number;
  readonly partialsBytes: number;
  /** Act-order: activations gathered into packed row order, M x K in the activation dtype, rounded up to 256 B. */
  readonly permutedXOffset: number;
  readonly permutedXBytes: number;
  readonly totalBytes: number;
}

function roundUp256(n: number): number {
  return Math.ceil(n / 256) * 256;
}

/**
 * Workspace layout of a launch: [counters (16 KiB) | partials | permuted x]. The counters sit at a fixed offset so a
 * workspace reused across problems never reads stale partials as counters; the kernel leaves them at zero.
 */
export function workspaceLayout(problem: WorkspaceProblem, choice: WorkspaceChoice): WorkspaceLayout {
  const tileBytes = choice.config.mTile * choice.config.nTiles * 64 * 4;
  const splitTiles = choice.splits > 1 ? choice.mBlocks * choice.nBlocks * choice.splits : 0;
  const t = choice.tailSplits ?? 0;
  let tailTiles = 0;
  if (t > 1) {
    tailTiles =
      problem.N === undefined || choice.slots === undefined
        ? choice.mBlocks * choice.nBlocks // where the wave cuts is unknown: bounded by the whole grid
        : (balancedWave(choice.mBlocks, choice.nBlocks, choice.slots, wholeBlocks(problem.N, choice.config))
            ?.tailTiles ?? 0);
  }
  const partialTiles = Math.max(splitTiles, tailTiles * t);
  const partialsBytes = partialTiles > 0 ? roundUp256(partialTiles * tileBytes) : 0;
  const permutedXBytes = problem.actOrder ? roundUp256(problem.M * problem.K * 2) : 0;
  return {
    countersOffset: 0,
    countersBytes: WORKSPACE_COUNTER_BYTES,
    partialsOffset: WORKSPACE_COUNTER_BYTES,
    partialsBytes,
    permutedXOffset: WORKSPACE_COUNTER_BYTES + partialsBytes,
    permutedXBytes,
    totalBytes: WORKSPACE_COUNTER_BYTES + partialsBytes + permutedXBytes,
  };
}

/**
 * Workspace bytes a launch needs: 16 KiB of counters + roundUp256(P * mTile*nTiles*64*4) fp32 partials + (actOrder ?
 * roundUp256(M*K*2) : 0) permuted activations, where P = the larger of mBlocks*nBlocks*splits (splits > 1) and the
 * balanced last wave's tiles x tailSplits (tailSplits > 1; balancedWave), else 0.
 */
export function workspaceBytes(problem: WorkspaceProblem, choice: WorkspaceChoice): number {
  return workspaceLayout(problem, choice).totalBytes;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}
