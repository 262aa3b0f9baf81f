/**
 * The JSON of an MoE run (bench/results/moe-<gpu>.json, docs/benchmark.md "MoE layers") and its validator. Same
 * schema version and environment header as the GEMM results; its own rows (one per model, routing, dtype and M).
 */
import type { MoeChoice } from '@marlin/core';
import type { MoeActivation, MoeModelId, RoutingKind } from './moe-protocol.js';
import type { BenchDtype } from './protocol.js';
import {
  arr,
  bool,
  type Check,
  type EnvHeader,
  envCheck,
  isObj,
  num,
  obj,
  oneOf,
  SCHEMA_VERSION,
  str,
  type Timing,
  timing,
} from './schema.js';

export type TargetStatus = 'met' | 'missed' | 'n/a';

/**
 * The launch from @marlin/core's moe dispatch: M tile (alignment block), where it came from, both GEMMs' configs,
 * splits and balanced last waves (0 = none), and the buffers it sizes.
 */
export interface MoeLaunchRecord
  extends Pick<MoeChoice, 'config13' | 'splits13' | 'config2' | 'splits2' | 'tail13' | 'tail2'> {
  readonly blockSize: number;
  readonly tileSource: string;
  /** Rows of the sorted, padded buffers. */
  readonly capacity: number;
  readonly workspaceBytes: number;
}

export interface MoeRow extends MoeLaunchRecord {
  readonly model: MoeModelId;
  readonly routing: RoutingKind;
  readonly dtype: BenchDtype;
  readonly M: number;
  readonly experts: number;
  readonly hidden: number;
  readonly inter: number;
  readonly topk: number;
  readonly activation: MoeActivation;
  readonly groupSize: number;
  /** Experts with at least one row in this routing. */
  readonly touched: number;
  /** Most rows of one expert. */
  readonly maxRows: number;
  /** Routed slots / touched experts, this routing. */
  readonly rowsPerExpert: number;
  /** Dispatch's key: expected rows per touched expert under uniform routing (core moeRowsPerExpert). */
  readonly expectedRowsPerExpert: number;
  /** Rotation of the weights: rotations per cycle, full copies, and the weight bytes streamed between two reads of
   * one expert copy (>= 4 x L2 where rotationOk). */
  readonly rotations: number;
  readonly copies: number;
  readonly streamedBetween: number;
  readonly rotationOk: boolean;
  /** The Marlin layer (marlin_moe_plan_launch). */
  readonly ours: Timing;
  /** The cuBLAS layer with one cublasGemmGroupedBatchedEx per GEMM, and with one cublasGemmEx per touched expert. */
  readonly grouped: Timing | null;
  readonly perExpert: Timing | null;
  /** Why a baseline is missing (null when measured or not asked for). */
  readonly groupedError: string | null;
  readonly perExpertError: string | null;
  /** The faster of the two, the row's baseline. */
  readonly baseline: 'grouped' | 'per-expert' | null;
  readonly baselineUs: number | null;
  /** Alignment, gather, activation and sum alone (no GEMM): the layer's fixed cost. */
  readonly routingOnly: Timing | null;
  /** INT4 bytes of the touched experts + rows + routing; the dense baseline's bytes. */
  readonly bytes: number;
  readonly denseBytes: number;
  /** 6 x routed slots x H x I. */
  readonly flops: number;
  readonly gbps: number;
  readonly memRooflineUs: number;
  readonly rooflineUs: number;
  readonly bound: 'memory' | 'compute';
  /** 100 x memory roofline / ours: the target's measure. */
  readonly memRooflinePct: number;
  readonly rooflinePct: number;
  /** 100 x dense bytes / bandwidth / baseline us. */
  readonly baselineMemRooflinePct: number | null;
  /** baselineUs / ours us. */
  readonly speedup: number | null;
  /** baselineUs / INT4 roofline us: the best speedup physics allows here. */
  readonly rooflineBoundSpeedup: number | null;
  /** 100 x routingOnly us / ours us. */
  readonly routingOnlyPct: number | null;
  /** Targets at this M (uniform routing only; null: none). */
  readonly memRooflineTarget: number | null;
  readonly speedupTarget: number | null;
  readonly memStatus: TargetStatus;
  readonly speedupStatus: TargetStatus;
  /** What bounds a missed target, from this run's numbers; null when met or not judged. */
  readonly limit: string | null;
}

/** Per model, routing and dtype over the M sweep. */
export interface MoeSummary {
  readonly model: MoeModelId;
  readonly routing: RoutingKind;
  readonly dtype: BenchDtype;
  /** Geometric mean of speedups (rows with a baseline). */
  readonly geomeanSpeedup: number | null;
  /** Geometric mean of % memory roofline at M <= 16. */
  readonly decodeMemRooflinePct: number | null;
  readonly judged: number;
  readonly met: number;
}

export interface MoeMiss {
  readonly model: MoeModelId;
  readonly routing: RoutingKind;
  readonly dtype: BenchDtype;
  readonly M: number;
  readonly target: 'memRoofline' | 'speedup';
  readonly value: number;
  readonly goal: number;
  readonly limit: string;
}

export interface MoeBenchResult {
  readonly schemaVersion: typeof SCHEMA_VERSION;
  readonly tool: '@marlin/bench-tool';
  readonly protocol: 'shared/docs/bench-protocol.md';
  readonly package: 'moe';
  readonly variant: 'int4-moe';
  readonly addon: { readonly path: string; readonly configCount: number | null };
  readonly env: EnvHeader;
  readonly options: {
    readonly models: readonly MoeModelId[];
    readonly routings: readonly RoutingKind[];
    readonly dtypes: readonly BenchDtype[];
    readonly mValues: readonly number[];
    readonly baselines: readonly string[];
    readonly quick: boolean;
    readonly replays: number;
    readonly groupSize: number;
    readonly zipfExponent: number;
  };
  readonly rows: readonly MoeRow[];
  readonly summary: readonly MoeSummary[];
  /** Targets judged (uniform routing) and met, and every miss with what bounds it. */
  readonly targets: { readonly judged: number; readonly met: number; readonly missed: readonly MoeMiss[] };
  readonly failures: readonly { readonly problem: string; readonly code: string; readonly message: string }[];
}

const models = oneOf(['mixtral', 'deepseek', 'qwen3', 'gptoss']);
const routings = oneOf(['uniform', 'skewed']);
const dtypes = oneOf(['fp16', 'bf16']);
const status = oneOf(['met', 'missed', 'n/a']);
const posInt = num({ integer: true, positive: true });
const pos = num({ positive: true });
const posOrNull = num({ positive: true, nullable: true });
const strOrNull = str(true);

const rowCheck: Check = obj({
  model: models,
  routing: routings,
  dtype: dtypes,
  M: posInt,
  experts: posInt,
  hidden: posInt,
  inter: posInt,
  topk: posInt,
  activation: oneOf(['silu', 'swigluoai']),
  groupSize: posInt,
  touched: posInt,
  maxRows: posInt,
  rowsPerExpert: pos,
  expectedRowsPerExpert: pos,
  blockSize: posInt,
  tileSource: str(),
  config13: num({ integer: true }),
  splits13: posInt,
  config2: num({ integer: true }),
  splits2: posInt,
  tail13: num({ integer: true, nonNegative: true }),
  tail2: num({ integer: true, nonNegative: true }),
  capacity: posInt,
  workspaceBytes: num({ integer: true, nonNegative: true }),
  rotations: posInt,
  copies: posInt,
  streamedBetween: num({ nonNegative: true }),
  rotationOk: bool,
  ours: timing(false),
  grouped: timing(true),
  perExpert: timing(true),
  groupedError: strOrNull,
  perExpertError: strOrNull,
  baseline: oneOf(['grouped', 'per-expert', null]),
  baselineUs: posOrNull,
  routingOnly: timing(true),
  bytes: pos,
  denseBytes: pos,
  flops: pos,
  gbps: pos,
  memRooflineUs: pos,
  rooflineUs: pos,
  bound: oneOf(['memory', 'compute']),
  memRooflinePct: pos,
  rooflinePct: pos,
  baselineMemRooflinePct: posOrNull,
  speedup: posOrNull,
  rooflineBoundSpeedup: posOrNull,
  routingOnlyPct: posOrNull,
  memRooflineTarget: posOrNull,
  speedupTarget: posOrNull,
  memStatus: status,
  speedupStatus: status,
  limit: strOrNull,
});

const resultCheck: Check = obj({
  schemaVersion: oneOf([SCHEMA_VERSION]),
  tool: oneOf(['@marlin/bench-tool']),
  protocol: oneOf(['shared/docs/bench-protocol.md']),
  package: oneOf(['moe']),
  variant: oneOf(['int4-moe']),
  addon: obj({ path: str(), configCount: num({ integer: true, nullable: true }) }),
  env: envCheck,
  options: obj({
    models: arr(models),
    routings: arr(routings),
    dtypes: arr(dtypes),
    mValues: arr(posInt),
    baselines: arr(oneOf(['grouped', 'per-expert'])),
    quick: bool,
    replays: posInt,
    groupSize: posInt,
    zipfExponent: pos,
  }),
  rows: arr(rowCheck),
  summary: arr(
    obj({
      model: models,
      routing: routings,
      dtype: dtypes,
      geomeanSpeedup: posOrNull,
      decodeMemRooflinePct: posOrNull,
      judged: num({ integer: true, nonNegative: true }),
      met: num({ integer: true, nonNegative: true }),
    }),
  ),
  targets: obj({
    judged: num({ integer: true, nonNegative: true }),
    met: num({ integer: true, nonNegative: true }),
    missed: arr(
      obj({
        model: models,
        routing: routings,
        dtype: dtypes,
        M: posInt,
        target: oneOf(['memRoofline', 'speedup']),
        value: pos,
        goal: pos,
        limit: str(),
      }),
    ),
  }),
  failures: arr(obj({ problem: str(), code: str(), message: str() })),
});

/** Every schema violation of an MoE result as "path: problem" (empty when valid). */
export function validateMoeResult(value: unknown): string[] {
  const errs: string[] = [];
  resultCheck(value, '$', errs);
  if (isObj(value) && errs.length === 0) {
    const t = value['targets'] as { judged: number; met: number; missed: unknown[] };
    if (t.met + t.missed.length !== t.judged) {
      errs.push(`$.targets: met ${t.met} + missed ${t.missed.length} != judged ${t.judged}`);
    }
  }
  return errs;
}
