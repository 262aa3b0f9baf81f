/**
 * The MoE run (docs/benchmark.md "MoE layers"): per layer, the routed problems (uniform and skewed routing x M), the
 * weights allocated once per layer and dtype, each problem's launch from @marlin/core's moe dispatch, the Marlin layer
 * and the cuBLAS layer timed on the same routing; and the tile sweep. I/O-free apart from the injected native module,
 * clock and progress sink, so tests drive it with a fake.
 */
import {
  type DeviceInfo,
  dispatchMoe,
  MOE_TILES,
  type MoeChoice,
  type MoeDispatchOptions,
  type MoeProblem,
  type MoeTileTable,
  moeConfigs,
  moeRowsPerExpert,
} from '@marlin/core';
import type { BenchOptions } from './args.js';
import { deviceInfoFromEnv } from './choose.js';
import type { CommitInfo } from './meta.js';
import {
  MOE_GROUP_SIZE,
  MOE_MODELS,
  type MoeCodec,
  type MoeModelId,
  type MoeModelSpec,
  moeDenseExpertBytes,
  moeExpertBytes,
  type RoutingKind,
  ZIPF_EXPONENT,
} from './moe-protocol.js';
import {
  generateRouting,
  planRotations,
  type RotationPlan,
  type Routing,
  type RoutingStats,
  rotatedIds,
  routingStats,
  seedOfText,
} from './moe-routing.js';
import type { MoeBenchResult, MoeRow } from './moe-schema.js';
import { makeMoeRow, moeSummaries, moeTargetReport } from './moe-summary.js';
import { bestTile, type TileSweepPoint, tileTable } from './moe-tiles.js';
import {
  type BenchMoeNative,
  type BenchNative,
  type LoadedMoe,
  type MoeTiming,
  type MoeWeights,
  type NativeEnv,
  toMarlinError,
} from './native.js';
import type { BenchDtype, Ceilings } from './protocol.js';
import { measureEnv, readEnv, settle, timing } from './run.js';
import { SCHEMA_VERSION, type Timing } from './schema.js';

/** The launch of one problem (what the harness needs from core's MoeChoice). */
export type MoeLaunch = Pick<
  MoeChoice,
  | 'blockSize'
  | 'tileSource'
  | 'capacity'
  | 'config13'
  | 'splits13'
  | 'config2'
  | 'splits2'
  | 'tail13'
  | 'tail2'
  | 'rowsPerExpert'
>;

export interface MoeRunDeps {
  readonly native: BenchNative & BenchMoeNative;
  readonly moe: LoadedMoe;
  readonly commit: CommitInfo;
  readonly now: () => Date;
  readonly progress: (line: string) => void;
  /** The launch of a problem; default @marlin/core's dispatchMoe (what @marlin/moe does at run time). */
  readonly dispatch?: (problem: MoeProblem, device: DeviceInfo, options?: MoeDispatchOptions) => MoeLaunch;
}

export type MoeRunOptions = Pick<
  BenchOptions,
  'moeModels' | 'routings' | 'dtypes' | 'mValues' | 'baselines' | 'replays' | 'quick' | 'codecs'
>;

const BITS: Readonly<Record<MoeCodec, 4 | 8>> = { int4: 4, int8: 8, fp8: 8 };

/** The dispatch problem of a layer call: M tokens on the model's experts, `codec` g128 symmetric weights. */
export function moeProblem(spec: MoeModelSpec, M: number, dtype: BenchDtype, codec: MoeCodec = 'int4'): MoeProblem {
  const w = (K: number, N: number) => ({
    K,
    N,
    bits: BITS[codec],
    codeType: codec === 'fp8' ? ('e4m3' as const) : ('int' as const),
    groupSize: MOE_GROUP_SIZE,
    hasZeros: false,
    actOrder: false,
  });
  return {
    M,
    topk: spec.topk,
    numExperts: spec.experts,
    dtype,
    w13: w(spec.hidden, 2 * spec.inter),
    w2: w(spec.inter, spec.hidden),
  };
}

/** A routed problem of one layer, its routing generated and its rotation planned. */
export interface PlannedProblem {
  readonly model: MoeModelId;
  readonly routing: RoutingKind;
  readonly M: number;
  readonly data: Routing;
  readonly stats: RoutingStats;
  readonly plan: RotationPlan;
  /** [rotations][M][topk] and [rotations], as benchMoe takes them. */
  readonly ids: Int32Array;
  readonly copyOf: Int32Array;
  readonly seed: number;
}

/** Seeded routing of (model, routing, M): the same problem in every run. */
export function routingFor(spec: MoeModelSpec, routing: RoutingKind, M: number): Routing {
  return generateRouting({
    kind: routing,
    M,
    topk: spec.topk,
    experts: spec.experts,
    seed: seedOfText(`${spec.id}|${routing}|${M}`),
    rankSeed: seedOfText(`${spec.id}|zipf`),
    zipfExponent: ZIPF_EXPONENT,
  });
}

export function planProblem(
  spec: MoeModelSpec,
  routing: RoutingKind,
  M: number,
  l2Bytes: number,
  maxCopies: number,
  codec: MoeCodec = 'int4',
): PlannedProblem {
  const data = routingFor(spec, routing, M);
  const stats = routingStats(data.ids, spec.experts);
  const plan = planRotations({
    ids: data.ids,
    experts: spec.experts,
    expertBytes: moeExpertBytes(spec.hidden, spec.inter, MOE_GROUP_SIZE, BITS[codec]).total,
    l2Bytes,
    maxCopies,
  });
  return {
    model: spec.id,
    routing,
    M,
    data,
    stats,
    plan,
    ids: rotatedIds(data.ids, spec.experts, plan),
    copyOf: Int32Array.from(plan.copyOf),
    seed: seedOfText(`${spec.id}|${routing}|${M}|data`),
  };
}

/**
 * How many full layer copies fit: free memory less 5% of the total, 1 GiB and the row buffers of the largest problem
 * (capacity rows of x, h and a at B = 256), over the bytes of one copy (quantized + dense when the baseline runs).
 */
export function maxLayerCopies(
  spec: MoeModelSpec,
  env: Pick<NativeEnv, 'freeMem' | 'totalMem'>,
  maxM: number,
  dense: boolean,
  codec: MoeCodec = 'int4',
): { copies: number; perCopy: number; reserve: number } {
  const perCopy =
    spec.experts *
    (moeExpertBytes(spec.hidden, spec.inter, MOE_GROUP_SIZE, BITS[codec]).total +
      (dense ? moeDenseExpertBytes(spec.hidden, spec.inter) : 0));
  const rows = maxM * spec.topk + spec.experts * 255;
  const reserve = 0.05 * env.totalMem + 2 ** 30 + rows * (spec.hidden + 3 * spec.inter) * 2;
  return { copies: Math.floor((env.freeMem - reserve) / perCopy), perCopy, reserve };
}

function launchOf(c: MoeLaunch): Pick<MoeLaunch, 'config13' | 'splits13' | 'config2' | 'splits2' | 'tail13' | 'tail2'> {
  return {
    config13: c.config13,
    splits13: c.splits13,
    config2: c.config2,
    splits2: c.splits2,
    tail13: c.tail13,
    tail2: c.tail2,
  };
}

function label(spec: MoeModelSpec, routing: RoutingKind, dtype: BenchDtype, M: number): string {
  return `${spec.name} ${routing} ${dtype} M=${M}`;
}

/** The routed arguments benchMoe and benchMoeCublas share. */
function routedArgs(p: PlannedProblem, spec: MoeModelSpec, weights: MoeWeights, replays: number) {
  return {
    weights,
    M: p.M,
    topk: spec.topk,
    ids: p.ids,
    topkWeights: p.data.weights,
    copyOf: p.copyOf,
    activation: spec.activation,
    seed: p.seed,
    replays,
  };
}

export async function runMoeBench(o: MoeRunOptions, deps: MoeRunDeps): Promise<MoeBenchResult> {
  const started = deps.now();
  const { env, header } = measureEnv(deps, started);
  const haveCublas = env.cublas.available;
  if (!haveCublas) deps.progress(`WARNING: ${env.cublas.error} The cuBLAS baseline and speedups are omitted.`);
  deps.progress(
    `${header.gpu}: ${header.bandwidthGBs.toFixed(0)} GB/s, fp16 ${header.fp16Tflops?.toFixed(0) ?? 'n/a'} TFLOP/s`,
  );
  const ceilings: Ceilings = { bandwidthGBs: header.bandwidthGBs, fp16Tflops: header.fp16Tflops };
  const device = deviceInfoFromEnv(env);
  const rows: MoeRow[] = [];
  const failures: MoeBenchResult['failures'][number][] = [];
  const total = o.moeModels.length * o.dtypes.length * o.routings.length * o.mValues.length;
  const width = String(total).length;
  let index = 0;

  for (const model of o.moeModels) {
    const spec = MOE_MODELS[model];
    const maxM = Math.max(...o.mValues);
    const fit = maxLayerCopies(spec, env, maxM, haveCublas);
    const problems: PlannedProblem[] = [];
    for (const routing of o.routings) {
      for (const M of o.mValues) problems.push(planProblem(spec, routing, M, env.l2Bytes, Math.max(1, fit.copies)));
    }
    const copies = Math.max(...problems.map((p) => p.plan.copies));
    for (const p of problems) {
      if (!p.plan.ok) {
        deps.progress(
          `WARNING: ${spec.name} ${p.routing} M=${p.M}: ${fit.copies} layer copies fit; one expert copy is re-read after ${(p.plan.streamedBetween / 1e6).toFixed(0)} MB of other weights (< 4 x L2)`,
        );
      }
    }
    for (const dtype of o.dtypes) {
      let quant: MoeWeights | null = null;
      let dense: MoeWeights | null = null;
      try {
        try {
          const w = { dtype, experts: spec.experts, hidden: spec.hidden, inter: spec.inter, copies };
          quant = deps.native.benchMoeWeights({
            ...w,
            format: 'int4',
            groupSize: MOE_GROUP_SIZE,
            seed: seedOfText(`${model}|int4|${dtype}`),
          });
          if (haveCublas)
            dense = deps.native.benchMoeWeights({ ...w, format: 'dense', seed: seedOfText(`${model}|dense|${dtype}`) });
          deps.progress(
            `${spec.name} ${dtype}: ${copies} layer cop${copies === 1 ? 'y' : 'ies'}, ${((quant.bytes + (dense?.bytes ?? 0)) / 1e9).toFixed(1)} GB of weights`,
          );
        } catch (e) {
          const err = toMarlinError(e, `${spec.name} ${dtype} weights (${copies} copies)`);
          for (const p of problems) {
            index++;
            failures.push({ problem: label(spec, p.routing, dtype, p.M), code: err.code, message: err.message });
          }
          deps.progress(`${spec.name} ${dtype}: FAILED ${err.code}: ${err.message}`);
          continue;
        }
        for (const [i, p] of problems.entries()) {
          index++;
          const tag = `[${String(index).padStart(width)}/${total}] ${label(spec, p.routing, dtype, p.M)}`;
          const first = i === 0 || problems[i - 1]!.routing !== p.routing;
          try {
            const row = measureProblem(p, spec, dtype, quant, dense, o, deps, device, ceilings, first);
            rows.push(row);
            deps.progress(
              `${tag}: B ${row.blockSize} (${row.tileSource}) cfg ${row.config13}/${row.splits13} ${row.config2}/${row.splits2} ` +
                `${row.ours.us.toFixed(2)} us | cuBLAS ${row.grouped?.us.toFixed(2) ?? '-'} grouped, ${row.perExpert?.us.toFixed(2) ?? '-'} per-expert | ` +
                `${row.speedup?.toFixed(2) ?? '-'}x | ${row.memRooflinePct.toFixed(1)}% mem roofline | routing alone ${row.routingOnly?.us.toFixed(2) ?? '-'} us`,
            );
          } catch (e) {
            const err = toMarlinError(e, label(spec, p.routing, dtype, p.M));
            failures.push({ problem: label(spec, p.routing, dtype, p.M), code: err.code, message: err.message });
            deps.progress(`${tag}: FAILED ${err.code}: ${err.message}`);
          }
        }
      } finally {
        if (quant) deps.native.benchMoeFree(quant);
        if (dense) deps.native.benchMoeFree(dense);
      }
    }
  }

  return {
    schemaVersion: SCHEMA_VERSION,
    tool: '@marlin/bench-tool',
    protocol: 'shared/docs/bench-protocol.md',
    package: 'moe',
    variant: 'int4-moe',
    addon: { path: deps.moe.path, configCount: deps.moe.configCount },
    env: header,
    options: {
      models: o.moeModels,
      routings: o.routings,
      dtypes: o.dtypes,
      mValues: o.mValues,
      baselines: o.baselines,
      quick: o.quick,
      replays: o.replays,
      groupSize: MOE_GROUP_SIZE,
      zipfExponent: ZIPF_EXPONENT,
    },
    rows,
    summary: moeSummaries(rows),
    targets: moeTargetReport(rows),
    failures,
  };
}

function measureProblem(
  p: PlannedProblem,
  spec: MoeModelSpec,
  dtype: BenchDtype,
  quant: MoeWeights,
  dense: MoeWeights | null,
  o: MoeRunOptions,
  deps: MoeRunDeps,
  device: DeviceInfo,
  ceilings: Ceilings,
  first: boolean,
): MoeRow {
  const choose = deps.dispatch ?? dispatchMoe;
  const launch = choose(moeProblem(spec, p.M, dtype), device);
  const ours = (): MoeTiming => deps.native.benchMoe({ ...routedArgs(p, spec, quant, o.replays), ...launchOf(launch) });
  // Settle: the first M of a routing runs right after the heaviest work (the ceilings, or M = 4096 of the previous
  // routing), and the GPU runs memory-bound kernels slower for seconds after it (run.ts): discard runs until two agree.
  if (first) settle(() => ours().us);
  const t = ours();
  // The baseline aligns in the Marlin plan's blocks: the same alignment, gather, activation and sum.
  const block = t.blockSize;
  const base = (w: MoeWeights, mode: 'grouped' | 'per-expert' | 'routing-only') =>
    deps.native.benchMoeCublas({ ...routedArgs(p, spec, w, o.replays), block, mode });
  const timed: Record<'grouped' | 'per-expert', { t: Timing | null; error: string | null }> = {
    grouped: { t: null, error: null },
    'per-expert': { t: null, error: null },
  };
  for (const mode of o.baselines) {
    if (dense === null) {
      timed[mode].error = 'cuBLAS is not available';
      continue;
    }
    try {
      if (first) settle(() => base(dense, mode).us);
      timed[mode].t = timing(base(dense, mode));
    } catch (e) {
      const err = toMarlinError(e, `cuBLAS ${mode}`);
      timed[mode].error = `${err.code}: ${err.message}`;
    }
  }
  let routingOnly: Timing | null = null;
  try {
    routingOnly = timing(base(dense ?? quant, 'routing-only'));
  } catch {
    // The fixed-cost figure is a diagnostic: its absence never fails the row.
  }
  return makeMoeRow(
    {
      model: spec.id,
      routing: p.routing,
      dtype,
      M: p.M,
      groupSize: MOE_GROUP_SIZE,
      touched: p.stats.touched,
      maxRows: p.stats.maxRows,
      rowsPerExpert: p.stats.rowsPerTouched,
      expectedRowsPerExpert: moeRowsPerExpert({ M: p.M, topk: spec.topk, numExperts: spec.experts }),
      launch: {
        blockSize: t.blockSize,
        tileSource: launch.tileSource,
        config13: launch.config13,
        splits13: launch.splits13,
        config2: launch.config2,
        splits2: launch.splits2,
        tail13: launch.tail13,
        tail2: launch.tail2,
        capacity: t.capacity,
        workspaceBytes: t.workspaceBytes,
      },
      rotation: {
        rotations: p.plan.rotations,
        copies: p.plan.copies,
        streamedBetween: p.plan.streamedBetween,
        ok: p.plan.ok,
      },
      ours: timing(t),
      grouped: timed.grouped.t,
      perExpert: timed['per-expert'].t,
      groupedError: timed.grouped.error,
      perExpertError: timed['per-expert'].error,
      routingOnly,
    },
    ceilings,
  );
}

/** The tile sweep's outcome: every point, the table to write, and the run's header facts. */
export interface TileSweepRun {
  readonly points: readonly TileSweepPoint[];
  readonly table: MoeTileTable;
  readonly gpu: string;
  readonly failures: readonly { readonly problem: string; readonly code: string; readonly message: string }[];
}

/** The M tiles of a codec's rows that dispatch accepts on the device for this problem (ascending). */
export function candidateTiles(
  problem: MoeProblem,
  codec: MoeCodec,
  device: DeviceInfo,
  choose: NonNullable<MoeRunDeps['dispatch']>,
): Map<number, MoeLaunch> {
  const out = new Map<number, MoeLaunch>();
  const tiles = [...new Set(moeConfigs(codec).map((c) => c.mTile))].sort((a, b) => a - b);
  for (const blockSize of tiles) {
    try {
      out.set(blockSize, choose(problem, device, { blockSize }));
    } catch {
      // No row of this tile runs on the device (or the tile cannot take the problem): not a candidate.
    }
  }
  return out;
}

/**
 * docs/benchmark.md "MoE tile sweep": per codec, layer and M (uniform routing, fp16), the layer timed at every M tile
 * dispatch offers; the fastest per point, bucketed by expected rows per touched expert into the table dispatch reads.
 */
export async function runMoeTileSweep(o: MoeRunOptions, deps: MoeRunDeps): Promise<TileSweepRun> {
  deps.progress('tile sweep: reading the device...');
  const env = readEnv(deps.native, false);
  const device = deviceInfoFromEnv(env);
  const choose = deps.dispatch ?? dispatchMoe;
  const noTable: MoeTileTable = {
    formatVersion: 1,
    computeCapability: env.ccMajor * 10 + env.ccMinor,
    measuredOn: null,
    tiles: { int4: [], int8: [], fp8: [] },
  };
  const dtype: BenchDtype = 'fp16';
  const points: TileSweepPoint[] = [];
  const failures: TileSweepRun['failures'][number][] = [];
  for (const codec of o.codecs) {
    for (const model of o.moeModels) {
      const spec = MOE_MODELS[model];
      const fit = maxLayerCopies(spec, env, Math.max(...o.mValues), false, codec);
      const problems = o.mValues.map((M) =>
        planProblem(spec, 'uniform', M, env.l2Bytes, Math.max(1, fit.copies), codec),
      );
      const copies = Math.max(...problems.map((p) => p.plan.copies));
      let weights: MoeWeights;
      try {
        weights = deps.native.benchMoeWeights({
          format: codec,
          dtype,
          experts: spec.experts,
          hidden: spec.hidden,
          inter: spec.inter,
          groupSize: MOE_GROUP_SIZE,
          copies,
          seed: seedOfText(`${model}|${codec}|${dtype}`),
        });
      } catch (e) {
        const err = toMarlinError(e, `${spec.name} ${codec} weights`);
        failures.push({ problem: `${codec} ${spec.name}`, code: err.code, message: err.message });
        deps.progress(`${codec} ${spec.name}: FAILED ${err.code}: ${err.message}`);
        continue;
      }
      try {
        for (const [i, p] of problems.entries()) {
          const problem = moeProblem(spec, p.M, dtype, codec);
          const tiles = candidateTiles(problem, codec, device, choose);
          const times: Record<number, number> = {};
          const errors: Record<number, string> = {};
          for (const [blockSize, launch] of tiles) {
            const run = () =>
              deps.native.benchMoe({ ...routedArgs(p, spec, weights, o.replays), ...launchOf(launch) }).us;
            try {
              if (i === 0 && blockSize === [...tiles.keys()][0]) settle(run);
              times[blockSize] = run();
            } catch (e) {
              const err = toMarlinError(e, `tile ${blockSize}`);
              errors[blockSize] = `${err.code}: ${err.message}`;
            }
          }
          const point: TileSweepPoint = {
            codec,
            model,
            M: p.M,
            rowsPerExpert: moeRowsPerExpert(problem),
            times,
            errors,
            best: bestTile(times),
            costModel: choose(problem, device, { tiles: noTable }).blockSize,
            dispatched: choose(problem, device).blockSize,
          };
          points.push(point);
          deps.progress(
            `${codec} ${spec.name} M=${p.M} (${point.rowsPerExpert.toFixed(2)} rows/expert): ` +
              `${Object.entries(times)
                .map(([b, us]) => `B${b} ${us.toFixed(2)}`)
                .join(
                  ', ',
                )} us; best B${point.best ?? '-'}, cost model B${point.costModel}, table B${point.dispatched}` +
              `${
                Object.keys(errors).length > 0
                  ? `; failed: ${Object.entries(errors)
                      .map(([b, m]) => `B${b} ${m}`)
                      .join('; ')}`
                  : ''
              }`,
          );
        }
      } finally {
        deps.native.benchMoeFree(weights);
      }
    }
  }
  const date = deps.now().toISOString().slice(0, 10);
  const table = tileTable({
    points,
    codecs: o.codecs,
    computeCapability: noTable.computeCapability,
    measuredOn: `${env.name}, ${date}`,
    current: MOE_TILES,
  });
  return { points, table, gpu: env.name, failures };
}
