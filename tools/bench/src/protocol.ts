/**
 * The benchmark protocol as data and pure functions (shared/docs/bench-protocol.md; docs/benchmark.md summarises it):
 * Llama-3 block shapes, the M sweep, the kernel series (INT4, INT8, FP8 and their scale layouts, 2:4 sparse INT4), the
 * bytes a weight-only GEMM must move, the roofline, and the targets.
 */
import { ValueError } from '@marlin/core';

export type ModelId = '8b' | '70b';
export type LayerName = 'qkv' | 'o' | 'gate_up' | 'down';
export type BenchDtype = 'fp16' | 'bf16';
/** Weight format of a kernel: the kernel-table variant. */
export type Variant = 'int4' | 'int8' | 'fp8' | 'sparse';
/** The addon package a variant ships in. */
export type AddonId = 'dense' | 'fp8' | 'sparse';
/** Scale layout: per group of 128 along K, per output channel, or 128 x 128 blocks (stored as group-128 scales). */
export type ScaleLayout = 'g128' | 'channel' | 'block128';
export type SeriesId = 'int4-g128' | 'int8-g128' | 'fp8-channel' | 'fp8-block128' | 'sparse-g128';

/** One linear layer of a transformer block, K x N = in x out. */
export interface LayerShape {
  readonly layer: LayerName;
  readonly K: number;
  readonly N: number;
}

export interface ModelSpec {
  readonly id: ModelId;
  readonly name: string;
  readonly layers: readonly LayerShape[];
  /** Speedup targets over cuBLAS fp16 (block sums), per M range: see `targetSpeedup`. */
  readonly targets: TargetTable;
}

/** Targets for M in 1-16, 32, 64, 128, 256, >= 512. */
export interface TargetTable {
  readonly m1to16: number;
  readonly m32: number;
  readonly m64: number;
  readonly m128: number;
  readonly m256: number;
  readonly m512up: number;
}

export const MODELS: Readonly<Record<ModelId, ModelSpec>> = {
  '8b': {
    id: '8b',
    name: 'Llama-3-8B',
    layers: [
      { layer: 'qkv', K: 4096, N: 6144 },
      { layer: 'o', K: 4096, N: 4096 },
      { layer: 'gate_up', K: 4096, N: 28672 },
      { layer: 'down', K: 14336, N: 4096 },
    ],
    targets: { m1to16: 3.0, m32: 2.8, m64: 2.3, m128: 1.5, m256: 0.95, m512up: 0.9 },
  },
  '70b': {
    id: '70b',
    name: 'Llama-3-70B',
    layers: [
      { layer: 'qkv', K: 8192, N: 10240 },
      { layer: 'o', K: 8192, N: 8192 },
      { layer: 'gate_up', K: 8192, N: 57344 },
      { layer: 'down', K: 28672, N: 8192 },
    ],
    targets: { m1to16: 3.5, m32: 3.3, m64: 2.6, m128: 1.6, m256: 0.95, m512up: 0.9 },
  },
};

/** Targets of the 8-bit kernels (fp8 and int8, the protocol's table), block sums over cuBLAS fp16. */
export const TARGETS_8BIT: Readonly<Record<ModelId, TargetTable>> = {
  '8b': { m1to16: 1.7, m32: 1.65, m64: 1.5, m128: 1.3, m256: 0.95, m512up: 0.9 },
  '70b': { m1to16: 1.85, m32: 1.8, m64: 1.7, m128: 1.5, m256: 1.0, m512up: 0.9 },
};

/** Targets of 2:4 sparse INT4 g128 (issue 18, the protocol's table), block sums over cuBLAS fp16. */
export const TARGETS_SPARSE: Readonly<Record<ModelId, TargetTable>> = {
  '8b': { m1to16: 3.8, m32: 3.5, m64: 2.8, m128: 1.9, m256: 1.2, m512up: 1.05 },
  '70b': { m1to16: 4.5, m32: 4.2, m64: 3.3, m128: 2.2, m256: 1.3, m512up: 1.1 },
};

/** One kernel series of a run: a variant with one scale layout. */
export interface SeriesSpec {
  readonly id: SeriesId;
  readonly variant: Variant;
  readonly addon: AddonId;
  readonly bits: 4 | 8;
  readonly codeType: 'int' | 'e4m3';
  readonly scales: ScaleLayout;
  /** Group size along K; 0 = per output channel (group size K). */
  readonly groupSize: number;
  /** Human label: "INT4 g128", "FP8 per-channel". */
  readonly label: string;
  /** '2:4': packed 2:4 sparse weights (docs/format.md "2:4 sparse (packed)"), the int4-sparse kernels. */
  readonly sparsity?: '2:4';
}

/** The series each variant runs, in run order (the protocol's rows: INT4 g128, INT8 g128, FP8 per-channel + block). */
export const SERIES: readonly SeriesSpec[] = [
  {
    id: 'int4-g128',
    variant: 'int4',
    addon: 'dense',
    bits: 4,
    codeType: 'int',
    scales: 'g128',
    groupSize: 128,
    label: 'INT4 g128',
  },
  {
    id: 'int8-g128',
    variant: 'int8',
    addon: 'dense',
    bits: 8,
    codeType: 'int',
    scales: 'g128',
    groupSize: 128,
    label: 'INT8 g128',
  },
  {
    id: 'fp8-channel',
    variant: 'fp8',
    addon: 'fp8',
    bits: 8,
    codeType: 'e4m3',
    scales: 'channel',
    groupSize: 0,
    label: 'FP8 per-channel',
  },
  {
    id: 'fp8-block128',
    variant: 'fp8',
    addon: 'fp8',
    bits: 8,
    codeType: 'e4m3',
    scales: 'block128',
    groupSize: 128,
    label: 'FP8 128x128 block',
  },
  {
    id: 'sparse-g128',
    variant: 'sparse',
    addon: 'sparse',
    bits: 4,
    codeType: 'int',
    scales: 'g128',
    groupSize: 128,
    label: 'INT4 2:4 g128',
    sparsity: '2:4',
  },
];

export const VARIANTS: readonly Variant[] = ['int4', 'int8', 'fp8', 'sparse'];

export function seriesOf(id: SeriesId): SeriesSpec {
  const s = SERIES.find((x) => x.id === id);
  if (!s) throw new ValueError(`unknown series '${id}'.`, { fix: `use one of ${SERIES.map((x) => x.id).join(', ')}.` });
  return s;
}

/** The group size a series runs at on a layer: its own, or K for per-channel scales. */
export function seriesGroupSize(s: SeriesSpec, K: number): number {
  return s.groupSize > 0 ? s.groupSize : K;
}

/**
 * The result file a variant's series are written to, one current file per package, variant and GPU kind:
 * dense (INT4), dense-int8, fp8 (both scale layouts), sparse (2:4 INT4).
 */
export const RESULT_FILE: Readonly<Record<Variant, string>> = {
  int4: 'dense',
  int8: 'dense-int8',
  fp8: 'fp8',
  sparse: 'sparse',
};

export const MODEL_IDS: readonly ModelId[] = ['8b', '70b'];
export const DTYPES: readonly BenchDtype[] = ['fp16', 'bf16'];
/** Tokens per call, the protocol's sweep. */
export const M_VALUES: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
/** --quick: one M per target column (smoke runs; not a protocol run). */
export const QUICK_M_VALUES: readonly number[] = [1, 16, 32, 64, 128, 256, 1024];
/** g128, symmetric INT4 (the dense series and the eager problem). */
export const GROUP_SIZE = 128;
/** bf16 must be within 5% of fp16: bf16 time <= 1.05 x fp16 time. */
export const BF16_RATIO_LIMIT = 1.05;

/**
 * Speedup target for a block at M tokens: the INT4 table, the 2:4 sparse one, or the 8-bit one for int8 and fp8.
 * Ranges between the protocol's columns take the next column's target (M = 20 is judged against the M = 32 target).
 */
export function targetSpeedup(model: ModelId, M: number, variant: Variant = 'int4'): number {
  const t =
    variant === 'int4' ? MODELS[model].targets : variant === 'sparse' ? TARGETS_SPARSE[model] : TARGETS_8BIT[model];
  if (M <= 16) return t.m1to16;
  if (M <= 32) return t.m32;
  if (M <= 64) return t.m64;
  if (M <= 128) return t.m128;
  if (M <= 256) return t.m256;
  return t.m512up;
}

export interface ProblemSize {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly groupSize: number;
  readonly hasZeros: boolean;
  /** Weight bits: 4 (default) or 8. */
  readonly bits?: 4 | 8;
  /** '2:4': half the codes are stored, plus 2-bit positions (docs/format.md "2:4 sparse (packed)"). */
  readonly sparsity?: '2:4';
}

export interface BytesMoved {
  /** Packed codes: 0.5 byte per weight for INT4, 1 byte for INT8 and FP8, 0.375 for 2:4 INT4 (codes + positions). */
  readonly weights: number;
  /** 2 bytes per group per column. */
  readonly scales: number;
  /** 1 byte per group per column (uint8 zero points, docs/format.md) when present. */
  readonly zeros: number;
  /** 2 M K. */
  readonly activations: number;
  /** 2 M N. */
  readonly output: number;
  readonly total: number;
}

function assertSize(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new ValueError(`${name} = ${v} must be a positive integer.`, { fix: `pass ${name} >= 1.` });
  }
}

/** Number of scale groups along K: ceil(K / groupSize). */
export function groupCount(K: number, groupSize: number): number {
  assertSize('K', K);
  assertSize('groupSize', groupSize);
  return Math.ceil(K / groupSize);
}

/**
 * Bytes a weight-only GEMM must move (the protocol's formula): packed weights (bits / 8 bytes per weight) + scales
 * (2 bytes per group per column) + zero points if any + activations (2 M K) + output (2 M N).
 * Example, Llama-3-70B o_proj at M = 1, INT4 g128: 8192 * 8192 / 2 + 2 * 64 * 8192 + 2 * 8192 + 2 * 8192 =
 * 34,635,776 bytes; FP8 per-channel: 8192 * 8192 + 2 * 8192 + 2 * 8192 + 2 * 8192 = 67,158,016 bytes; 2:4 INT4 g128
 * (1536-byte tiles of 64 x 64 weights: 3 bits per weight): 8192 * 8192 * 3 / 8 + 2 * 64 * 8192 + 2 * 8192 + 2 * 8192
 * = 26,247,168 bytes.
 */
export function bytesMoved(p: ProblemSize): BytesMoved {
  assertSize('M', p.M);
  assertSize('N', p.N);
  const G = groupCount(p.K, p.groupSize);
  // A 2:4 tile stores two of every four codes plus a 2-bit position each: 3/4 of the dense tile's bytes at 4 bits.
  const weights = (p.K * p.N * (p.bits ?? 4) * (p.sparsity === '2:4' ? 3 : 4)) / 32;
  const scales = 2 * G * p.N;
  const zeros = p.hasZeros ? G * p.N : 0;
  const activations = 2 * p.M * p.K;
  const output = 2 * p.M * p.N;
  return { weights, scales, zeros, activations, output, total: weights + scales + zeros + activations + output };
}

/** Bytes the dense fp16 GEMM on the dequantized shape must move: 2 K N + 2 M K + 2 M N. */
export function fp16BytesMoved(M: number, N: number, K: number): number {
  return 2 * K * N + 2 * M * K + 2 * M * N;
}

/** 2 M N K. */
export function gemmFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

/**
 * The FLOPs a kernel's compute roofline charges at the dense fp16 rate: 2 M N K, or half that for a 2:4 operand (the
 * sparse tensor cores run it at twice the dense rate: above M = 256 beating dense fp16 is possible, issue 18).
 */
export function rooflineFlops(M: number, N: number, K: number, sparsity?: '2:4'): number {
  return sparsity === '2:4' ? gemmFlops(M, N, K) / 2 : gemmFlops(M, N, K);
}

/** The two measured ceilings of a run. */
export interface Ceilings {
  /** HBM bandwidth from the device-to-device copy, GB/s (1e9 bytes/s). */
  readonly bandwidthGBs: number;
  /** Dense fp16 tensor rate from cuBLAS 8192^3, TFLOP/s; null when cuBLAS is missing (memory-only roofline). */
  readonly fp16Tflops: number | null;
}

export interface Roofline {
  /** bytes / bandwidth, microseconds. */
  readonly memoryUs: number;
  /** 2 M N K / fp16 rate, microseconds; null without a measured rate. */
  readonly computeUs: number | null;
  /** max(memory, compute). */
  readonly us: number;
  readonly bound: 'memory' | 'compute';
}

/** Roofline time = max(bytes / measured bandwidth, flops / measured fp16 rate). */
export function roofline(bytes: number, flops: number, c: Ceilings): Roofline {
  if (!(c.bandwidthGBs > 0)) {
    throw new ValueError(`measured bandwidth ${c.bandwidthGBs} GB/s must be positive.`, {
      fix: 'measure the bandwidth on a GPU before computing a roofline.',
    });
  }
  const memoryUs = (bytes / (c.bandwidthGBs * 1e9)) * 1e6;
  const computeUs = c.fp16Tflops !== null && c.fp16Tflops > 0 ? (flops / (c.fp16Tflops * 1e12)) * 1e6 : null;
  if (computeUs !== null && computeUs > memoryUs) return { memoryUs, computeUs, us: computeUs, bound: 'compute' };
  return { memoryUs, computeUs, us: memoryUs, bound: 'memory' };
}

/** Achieved bandwidth in GB/s for `bytes` moved in `us` microseconds. */
export function achievedGBs(bytes: number, us: number): number {
  return bytes / (us * 1e-6) / 1e9;
}

/** Percent of roofline: 100 x roofline time / measured time (100 = at the roofline). */
export function rooflinePercent(rooflineUs: number, us: number): number {
  return (100 * rooflineUs) / us;
}
