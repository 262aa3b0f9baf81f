/**
 * The JSON a benchmark run writes to bench/results/ (schemaVersion 2: one file per package variant, see
 * docs/benchmark.md "Output"), and a dependency-free validator for it. Every number in a result file is measured or
 * derived by the tool in the same run; nothing is typed in by hand.
 *
 * Version 2 (2026-12-06) over 1: `package`, `variant`, `series`, `addon` at the top; `env.cublasLt`; rows and blocks
 * carry `variant`, `series`, `bits`, the cuBLASLt FP8 W8A8 baseline (`w8a8`) and `memRooflinePct`; blocks judge
 * the W8A8 comparison (`w8a8Status`); geomeans are per series and dtype; `options.variants`, `options.w8a8`.
 * Added within version 2 with the 2:4 sparse series: rows' `cusparselt` / `vsCusparseLt`, blocks' `cusparseLtUs`,
 * `cusparseLtSpeedup`, `vsCusparseLt`, the result's `cusparseLt` / `cusparseLtError` (absent in earlier files).
 */
import type { AddonId, BenchDtype, LayerName, ModelId, ScaleLayout, SeriesId, Variant } from './protocol.js';

export const SCHEMA_VERSION = 2 as const;

export interface EnvHeader {
  readonly gpu: string;
  readonly smCount: number;
  readonly computeCapability: string;
  /** Peak SM clock, MHz (cudaDevAttrClockRate). */
  readonly smClockMHz: number;
  /** Peak memory clock, MHz (cudaDevAttrMemoryClockRate). */
  readonly memClockMHz: number;
  readonly memBusBits: number;
  readonly l2Bytes: number;
  readonly totalMemBytes: number;
  /** e.g. "13.0" (cudaDriverGetVersion). */
  readonly driver: string;
  /** CUDA runtime linked into the addon, e.g. "13.0". */
  readonly cudaRuntime: string;
  readonly cublas: { readonly library: string; readonly version: number } | null;
  /** cuBLASLt of the FP8 W8A8 baseline; null when it did not load (`w8a8` then null everywhere). */
  readonly cublasLt: { readonly library: string; readonly version: number } | null;
  readonly commit: string;
  readonly commitSource: 'MARLIN_COMMIT' | 'git' | 'unknown';
  /** ISO 8601 start time of the run. */
  readonly date: string;
  readonly node: string;
  readonly platform: string;
  /** Measured device-to-device copy bandwidth, GB/s (bytes read + written). */
  readonly bandwidthGBs: number;
  readonly bandwidthCopyBytes: number;
  /** Measured cuBLAS fp16 8192^3 rate (fp32 compute), TFLOP/s; null without cuBLAS. */
  readonly fp16Tflops: number | null;
}

export interface Timing {
  /** Median per-call time over the replays, microseconds. */
  readonly us: number;
  readonly minUs: number;
  readonly maxUs: number;
  readonly rotations: number;
  readonly calls: number;
  readonly replays: number;
}

export interface SweepResult {
  readonly configId: number;
  readonly splits: number;
  readonly us: number;
  /** Dispatched time / this time (> 1: the alternative is faster). */
  readonly gainOverDispatch: number;
  /** How many (config, splits) pairs were timed. */
  readonly tried: number;
}

export interface Row {
  readonly variant: Variant;
  readonly series: SeriesId;
  readonly bits: 4 | 8;
  readonly scales: ScaleLayout;
  readonly model: ModelId;
  readonly layer: LayerName;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly dtype: BenchDtype;
  readonly groupSize: number;
  readonly hasZeros: boolean;
  readonly configId: number;
  readonly splits: number;
  /**
   * Blocks per thread-block cluster of the dispatched launch: `splits` when its split-K partial sums are added across
   * a cluster through distributed shared memory (sm_90, one wave; docs/kernel-design.md section 5), else 1. Absent
   * from result files written before it was recorded (2026-11-30, eighth session).
   */
  readonly clusterSize: number;
  /**
   * Balanced last wave of the dispatched launch: the split count dispatch asked for (0: one launch) and the blocks of
   * the native plan's second launch (0: none; docs/kernel-design.md "Balanced last wave"). Absent from result files
   * written before it existed (2026-11-30, ninth session).
   */
  readonly tailSplits: number;
  readonly tailBlocks: number;
  /** Dispatched kernel, default launch: on sm_90+ each call may start during the previous call's tail (PDL). */
  readonly ours: Timing;
  /**
   * The same kernel launched serially (MARLIN_DENSE_LAUNCH_SERIAL): no block starts before the previous call has
   * completed, as after a kernel that does not let dependents start early. null when not measured (--no-serial).
   */
  readonly serial: Timing | null;
  /** cuBLAS fp16 on the dequantized shape (fp16 even for bf16 rows: the protocol's baseline). */
  readonly cublas: Timing | null;
  /**
   * The second baseline: cuBLASLt FP8 W8A8 (e4m3 x e4m3, per-tensor scales, fp16 output, M padded to 16: `mRun`) on
   * the shape, activation quantization not counted; null without cuBLASLt or an FP8 algorithm for the device.
   */
  readonly w8a8: W8a8Timing | null;
  /**
   * The 2:4 series' second baseline: cuSPARSELt fp16 2:4 (torch._cslt_sparse_mm's GEMM, M padded to 16: `mRun`) on the
   * shape; null for other series, without cuSPARSELt, or when it rejected the shape.
   */
  readonly cusparselt: W8a8Timing | null;
  readonly bytes: number;
  readonly flops: number;
  readonly gbps: number;
  readonly rooflineUs: number;
  readonly rooflinePct: number;
  /** 100 x bytes / measured bandwidth / our us: the share of the memory roofline alone. */
  readonly memRooflinePct: number;
  readonly bound: 'memory' | 'compute';
  /** cuBLAS us / our us; null without cuBLAS. */
  readonly speedup: number | null;
  /** W8A8 us / our us (> 1: ours is faster); null without the W8A8 baseline. */
  readonly vsW8a8: number | null;
  /** cuSPARSELt us / our us (> 1: ours is faster); null without that baseline. */
  readonly vsCusparseLt: number | null;
  readonly sweep: SweepResult | null;
}

export interface W8a8Timing extends Timing {
  /** Rows computed (M rounded up to 16). */
  readonly mRun: number;
}

export interface Block {
  readonly variant: Variant;
  readonly series: SeriesId;
  readonly model: ModelId;
  readonly M: number;
  readonly dtype: BenchDtype;
  /** Sum over the block's four layers. */
  readonly ourUs: number;
  readonly cublasUs: number | null;
  readonly rooflineUs: number;
  readonly rooflinePct: number;
  readonly speedup: number | null;
  /** Sum of the layers' serial launches (Row.serial); null when any was not measured. */
  readonly ourSerialUs: number | null;
  /** cublasUs / ourSerialUs. */
  readonly serialSpeedup: number | null;
  /** Measured cuBLAS fp16 block time / the series' roofline block time: the best speedup physics allows here. */
  readonly rooflineBoundSpeedup: number | null;
  /** Summed memory roofline / summed ours, percent. */
  readonly memRooflinePct: number;
  /** Summed cuBLASLt FP8 W8A8 time; null when any layer lacks it. */
  readonly w8a8Us: number | null;
  /** cublasUs / w8a8Us: what W8A8 gains over fp16 in this run. */
  readonly w8a8Speedup: number | null;
  /** w8a8Us / ourUs (> 1: ours is faster). */
  readonly vsW8a8: number | null;
  /** 8-bit series at M <= 64: ours must not be slower than W8A8 (vsW8a8 >= 1); 'n/a' elsewhere or unmeasured. */
  readonly w8a8Status: 'met' | 'missed' | 'n/a';
  /** Summed cuSPARSELt fp16 2:4 time; null when any layer lacks it. */
  readonly cusparseLtUs: number | null;
  /** cublasUs / cusparseLtUs: what cuSPARSELt's 2:4 gains over dense fp16 in this run. */
  readonly cusparseLtSpeedup: number | null;
  /** cusparseLtUs / ourUs (> 1: ours is faster). */
  readonly vsCusparseLt: number | null;
  readonly target: number;
  readonly status: 'met' | 'missed' | 'n/a';
  /** speedup - target (negative when missed). */
  readonly gap: number | null;
  /** A measured reason when missed: the roofline bound or the achieved fraction of it. */
  readonly limit: string | null;
}

export interface Bf16Ratio {
  readonly series: SeriesId;
  readonly model: ModelId;
  readonly M: number;
  readonly fp16Us: number;
  readonly bf16Us: number;
  /** bf16 / fp16 block time. */
  readonly ratio: number;
  readonly status: 'met' | 'missed';
}

export interface GeoMean {
  readonly series: SeriesId;
  readonly dtype: BenchDtype;
  readonly rowSpeedup: number | null;
  readonly blockSpeedup: number | null;
  readonly rooflinePct: number;
}

export interface EagerOverhead {
  /** Problem timed (M x N x K). */
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly dtype: BenchDtype;
  readonly calls: number;
  /** Wall time per eager gemm() call from TypeScript, microseconds (N calls + one stream sync). */
  readonly eagerUs: number;
  /** Graph-replayed kernel time of the same problem, microseconds. */
  readonly kernelUs: number;
  /**
   * eagerUs - kernelUs. Biased low (can be negative): the calls overlap the GPU, and the eager loop reuses one
   * L2-resident weight while the graph time rotates cold ones.
   */
  readonly overheadUs: number;
  /** Host time to issue one gemm() call (the launch loop alone, median batch / calls): what `status` judges. */
  readonly hostUs: number;
  readonly targetUs: number;
  readonly status: 'met' | 'missed';
}

export interface BenchResult {
  readonly schemaVersion: typeof SCHEMA_VERSION;
  readonly tool: '@marlin/bench-tool';
  readonly protocol: 'shared/docs/bench-protocol.md';
  /** The package whose kernels the file measures, and the variant. */
  readonly package: AddonId;
  readonly variant: Variant;
  readonly series: readonly SeriesId[];
  /** The binary that was timed (opened by path by marlin_bench.node). */
  readonly addon: { readonly prefix: string; readonly path: string; readonly configCount: number | null };
  readonly env: EnvHeader;
  readonly options: {
    readonly variants: readonly Variant[];
    /** Whether the cuBLASLt FP8 W8A8 baseline was asked for (--no-w8a8 turns it off). */
    readonly w8a8: boolean;
    readonly models: readonly ModelId[];
    readonly dtypes: readonly BenchDtype[];
    readonly mValues: readonly number[];
    readonly quick: boolean;
    readonly sweepSplits: boolean;
    /** Whether every row was also timed with serial launches (Row.serial). */
    readonly serial: boolean;
  };
  readonly rows: readonly Row[];
  readonly blocks: readonly Block[];
  readonly bf16Ratios: readonly Bf16Ratio[];
  readonly geomean: readonly GeoMean[];
  /** Why the W8A8 baseline is missing (from the run or for some shape), null when it was measured everywhere. */
  readonly w8a8Error: string | null;
  /** The cuSPARSELt that timed the 2:4 baseline (sparse results), null when none did. */
  readonly cusparseLt: { readonly library: string; readonly version: number } | null;
  /** Why the cuSPARSELt baseline is missing (sparse results: not found, or an error for some shape); else null. */
  readonly cusparseLtError: string | null;
  /** null when not measured; `eagerError` then says why. */
  readonly eager: EagerOverhead | null;
  readonly eagerError: string | null;
  /** Problems that failed (config unsupported, out of memory...), with the error; they have no row. */
  readonly failures: readonly { readonly problem: string; readonly code: string; readonly message: string }[];
}

/** A schema check: appends "path: problem" for each violation of `v` (shared with moe-schema.ts). */
export type Check = (v: unknown, path: string, errs: string[]) => void;

export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export const num =
  (opts: { positive?: boolean; nonNegative?: boolean; integer?: boolean; nullable?: boolean } = {}): Check =>
  (v, path, errs) => {
    if (v === null && opts.nullable) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      errs.push(`${path}: expected a finite number${opts.nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
      return;
    }
    if (opts.integer && !Number.isInteger(v)) errs.push(`${path}: expected an integer, got ${v}`);
    if (opts.positive && !(v > 0)) errs.push(`${path}: expected > 0, got ${v}`);
    if (opts.nonNegative && !(v >= 0)) errs.push(`${path}: expected >= 0, got ${v}`);
  };

export const str =
  (nullable = false): Check =>
  (v, path, errs) => {
    if (v === null && nullable) return;
    if (typeof v !== 'string') errs.push(`${path}: expected a string, got ${JSON.stringify(v)}`);
  };

export const oneOf =
  (values: readonly unknown[]): Check =>
  (v, path, errs) => {
    if (!values.includes(v)) errs.push(`${path}: expected one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  };

export const obj =
  (fields: Record<string, Check>, nullable = false): Check =>
  (v, path, errs) => {
    if (v === null && nullable) return;
    if (!isObj(v)) {
      errs.push(`${path}: expected an object, got ${JSON.stringify(v)}`);
      return;
    }
    for (const [k, check] of Object.entries(fields)) check(v[k], `${path}.${k}`, errs);
  };

export const arr =
  (item: Check): Check =>
  (v, path, errs) => {
    if (!Array.isArray(v)) {
      errs.push(`${path}: expected an array`);
      return;
    }
    for (const [i, x] of v.entries()) item(x, `${path}[${i}]`, errs);
  };

export const bool: Check = (v, path, errs) => {
  if (typeof v !== 'boolean') errs.push(`${path}: expected a boolean, got ${JSON.stringify(v)}`);
};

export const timing = (nullable: boolean): Check =>
  obj(
    {
      us: num({ positive: true }),
      minUs: num({ positive: true }),
      maxUs: num({ positive: true }),
      rotations: num({ integer: true, positive: true }),
      calls: num({ integer: true, positive: true }),
      replays: num({ integer: true, positive: true }),
    },
    nullable,
  );

const models = oneOf(['8b', '70b']);
const dtypes = oneOf(['fp16', 'bf16']);
const variants = oneOf(['int4', 'int8', 'fp8', 'sparse']);
const seriesIds = oneOf(['int4-g128', 'int8-g128', 'fp8-channel', 'fp8-block128', 'sparse-g128']);
/** A field added within schema version 2: absent in files written before it. */
const added =
  (check: Check): Check =>
  (v, path, errs) => {
    if (v !== undefined) check(v, path, errs);
  };
const status3 = oneOf(['met', 'missed', 'n/a']);
const library = obj({ library: str(), version: num({ integer: true }) }, true);

const w8a8Timing: Check = (v, path, errs) => {
  timing(true)(v, path, errs);
  if (v !== null && isObj(v)) num({ integer: true, positive: true })(v['mRun'], `${path}.mRun`, errs);
};

/** The run's environment header (EnvHeader), shared by every result kind. */
export const envCheck: Check = obj({
  gpu: str(),
  smCount: num({ integer: true, positive: true }),
  computeCapability: str(),
  smClockMHz: num(),
  memClockMHz: num(),
  memBusBits: num({ integer: true }),
  l2Bytes: num({ integer: true, positive: true }),
  totalMemBytes: num({ integer: true, positive: true }),
  driver: str(),
  cudaRuntime: str(),
  cublas: library,
  cublasLt: library,
  commit: str(),
  commitSource: oneOf(['MARLIN_COMMIT', 'git', 'unknown']),
  date: str(),
  node: str(),
  platform: str(),
  bandwidthGBs: num({ positive: true }),
  bandwidthCopyBytes: num({ integer: true, positive: true }),
  fp16Tflops: num({ positive: true, nullable: true }),
});

const resultCheck: Check = obj({
  schemaVersion: oneOf([SCHEMA_VERSION]),
  tool: oneOf(['@marlin/bench-tool']),
  protocol: oneOf(['shared/docs/bench-protocol.md']),
  package: oneOf(['dense', 'fp8', 'sparse']),
  variant: variants,
  series: arr(seriesIds),
  addon: obj({ prefix: str(), path: str(), configCount: num({ integer: true, nullable: true }) }),
  env: envCheck,
  options: obj({
    variants: arr(variants),
    w8a8: bool,
    models: arr(models),
    dtypes: arr(dtypes),
    mValues: arr(num({ integer: true, positive: true })),
    quick: bool,
    sweepSplits: bool,
    serial: bool,
  }),
  rows: arr(
    obj({
      variant: variants,
      series: seriesIds,
      bits: oneOf([4, 8]),
      scales: oneOf(['g128', 'channel', 'block128']),
      model: models,
      layer: oneOf(['qkv', 'o', 'gate_up', 'down']),
      M: num({ integer: true, positive: true }),
      N: num({ integer: true, positive: true }),
      K: num({ integer: true, positive: true }),
      dtype: dtypes,
      groupSize: num({ integer: true, positive: true }),
      hasZeros: bool,
      configId: num({ integer: true }),
      splits: num({ integer: true, positive: true }),
      clusterSize: num({ integer: true, positive: true }),
      tailSplits: num({ integer: true, nonNegative: true }),
      tailBlocks: num({ integer: true, nonNegative: true }),
      ours: timing(false),
      serial: timing(true),
      cublas: timing(true),
      w8a8: w8a8Timing,
      cusparselt: added(w8a8Timing),
      bytes: num({ positive: true }),
      flops: num({ positive: true }),
      gbps: num({ positive: true }),
      rooflineUs: num({ positive: true }),
      rooflinePct: num({ positive: true }),
      memRooflinePct: num({ positive: true }),
      bound: oneOf(['memory', 'compute']),
      speedup: num({ positive: true, nullable: true }),
      vsW8a8: num({ positive: true, nullable: true }),
      vsCusparseLt: added(num({ positive: true, nullable: true })),
      sweep: obj(
        {
          configId: num({ integer: true }),
          splits: num({ integer: true, positive: true }),
          us: num({ positive: true }),
          gainOverDispatch: num({ positive: true }),
          tried: num({ integer: true, positive: true }),
        },
        true,
      ),
    }),
  ),
  blocks: arr(
    obj({
      variant: variants,
      series: seriesIds,
      model: models,
      M: num({ integer: true, positive: true }),
      dtype: dtypes,
      ourUs: num({ positive: true }),
      cublasUs: num({ positive: true, nullable: true }),
      rooflineUs: num({ positive: true }),
      rooflinePct: num({ positive: true }),
      speedup: num({ positive: true, nullable: true }),
      ourSerialUs: num({ positive: true, nullable: true }),
      serialSpeedup: num({ positive: true, nullable: true }),
      rooflineBoundSpeedup: num({ positive: true, nullable: true }),
      memRooflinePct: num({ positive: true }),
      w8a8Us: num({ positive: true, nullable: true }),
      w8a8Speedup: num({ positive: true, nullable: true }),
      vsW8a8: num({ positive: true, nullable: true }),
      w8a8Status: status3,
      cusparseLtUs: added(num({ positive: true, nullable: true })),
      cusparseLtSpeedup: added(num({ positive: true, nullable: true })),
      vsCusparseLt: added(num({ positive: true, nullable: true })),
      target: num({ positive: true }),
      status: status3,
      gap: num({ nullable: true }),
      limit: str(true),
    }),
  ),
  bf16Ratios: arr(
    obj({
      series: seriesIds,
      model: models,
      M: num({ integer: true, positive: true }),
      fp16Us: num({ positive: true }),
      bf16Us: num({ positive: true }),
      ratio: num({ positive: true }),
      status: oneOf(['met', 'missed']),
    }),
  ),
  geomean: arr(
    obj({
      series: seriesIds,
      dtype: dtypes,
      rowSpeedup: num({ positive: true, nullable: true }),
      blockSpeedup: num({ positive: true, nullable: true }),
      rooflinePct: num({ positive: true }),
    }),
  ),
  w8a8Error: str(true),
  cusparseLt: added(library),
  cusparseLtError: added(str(true)),
  eager: obj(
    {
      M: num({ integer: true, positive: true }),
      N: num({ integer: true, positive: true }),
      K: num({ integer: true, positive: true }),
      dtype: dtypes,
      calls: num({ integer: true, positive: true }),
      eagerUs: num({ positive: true }),
      kernelUs: num({ positive: true }),
      overheadUs: num(),
      hostUs: num({ positive: true }),
      targetUs: num({ positive: true }),
      status: oneOf(['met', 'missed']),
    },
    true,
  ),
  eagerError: str(true),
  failures: arr(obj({ problem: str(), code: str(), message: str() })),
});

/** Every schema violation of `value` as "path: problem" (empty when valid). */
export function validateBenchResult(value: unknown): string[] {
  const errs: string[] = [];
  resultCheck(value, '$', errs);
  // One file holds one variant: every row and block must be of it.
  if (isObj(value) && errs.length === 0) {
    for (const key of ['rows', 'blocks'] as const) {
      for (const [i, r] of (value[key] as Record<string, unknown>[]).entries()) {
        if (r['variant'] !== value['variant']) {
          errs.push(
            `$.${key}[${i}].variant: ${JSON.stringify(r['variant'])} in a ${JSON.stringify(value['variant'])} result`,
          );
        }
      }
    }
  }
  return errs;
}
