/**
 * One protocol run: environment + ceilings, every (M, model, dtype, series, layer) problem through the dispatched
 * kernel of its addon, cuBLAS fp16 and cuBLASLt FP8 W8A8 (each baseline once per shape), optional split/config sweep,
 * eager host overhead, then the derived tables, one result per variant. I/O-free apart from the injected native
 * module, clock and progress sink, so tests drive it with a fake addon.
 */
import { cudaVersionString, type DeviceInfo, ErrorCode, type GemmProblem, MarlinError } from '@marlin/core';
import { ADDONS } from './addons.js';
import type { BenchOptions } from './args.js';
import { deviceInfoFromEnv, dispatchLaunch, gemmProblem, type Launch, sweepCandidates } from './choose.js';
import { type CusparseLtSearch, versionText } from './cusparselt.js';
import type { CommitInfo } from './meta.js';
import {
  type BenchCublasArgs,
  type BenchNative,
  hasCusparseLtExports,
  type LoadedAddon,
  type NativeCusparseLtInfo,
  type NativeEnv,
  type NativeTiming,
  toMarlinError,
} from './native.js';
import {
  type AddonId,
  type BenchDtype,
  type Ceilings,
  GROUP_SIZE,
  type LayerShape,
  MODELS,
  type ModelId,
  SERIES,
  type SeriesSpec,
  seriesGroupSize,
  type Variant,
} from './protocol.js';
import {
  type BenchResult,
  type EagerOverhead,
  type EnvHeader,
  type Row,
  SCHEMA_VERSION,
  type SweepResult,
  type Timing,
  type W8a8Timing,
} from './schema.js';
import { bf16Ratios, blockSums, eagerOverhead, geoMeans, makeRow } from './summary.js';

/** An addon the run can time (loaded into the harness), or why it cannot. */
export type AddonState = { readonly loaded: LoadedAddon } | { readonly unavailable: string };

export interface RunDeps {
  readonly native: BenchNative;
  /** Each addon the requested variants need: loaded, or unavailable with the reason. */
  readonly addons: Partial<Record<AddonId, AddonState>>;
  readonly commit: CommitInfo;
  readonly now: () => Date;
  /** One line of progress (stderr in the CLI). */
  readonly progress: (line: string) => void;
  /** Timings of `calls` eager gemm() calls on the problem, or a rejection saying why not. */
  readonly eager: ((p: EagerArgs, calls: number) => Promise<EagerTiming>) | null;
  /** The launch of a problem; default: @marlin/core dispatch (what gemm() does). Tests pass a stand-in. */
  readonly dispatch?: (problem: GemmProblem, device: DeviceInfo) => Launch;
  /** Where cuSPARSELt may be (the 2:4 series' second baseline); absent: the harness tries the soname only. */
  readonly findCusparseLt?: () => CusparseLtSearch;
}

/** Totals over one batch of eager calls, microseconds: the launch loop alone, and the loop plus the stream sync. */
export interface EagerTiming {
  readonly enqueueUs: number;
  readonly totalUs: number;
}

export interface EagerArgs {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly groupSize: number;
  readonly dtype: BenchDtype;
}

export interface Problem {
  readonly series: SeriesSpec;
  readonly model: ModelId;
  readonly shape: LayerShape;
  readonly M: number;
  readonly dtype: BenchDtype;
}

/** A run's outcome: one result per variant that ran, and the variants that could not (addon missing). */
export interface BenchRun {
  readonly results: readonly BenchResult[];
  readonly unavailable: readonly { readonly variant: Variant; readonly addon: AddonId; readonly reason: string }[];
}

/**
 * The problems of a run in protocol order: M ascending, then each model, fp16 then bf16, each series, each layer.
 * M outermost keeps every memory-bound row away from the heavy large-M rows: the GPU runs memory/issue-bound kernels
 * slower for seconds after compute-heavy work (clocks recovering), which made the bf16 decode rows of a
 * dtype-outermost order (run after the fp16 M = 4096 rows) read 4-12% slower than the same kernels in a sweep (H200).
 */
export function problems(o: Pick<BenchOptions, 'dtypes' | 'models' | 'mValues' | 'variants'>): Problem[] {
  const series = SERIES.filter((s) => o.variants.includes(s.variant));
  const out: Problem[] = [];
  for (const M of o.mValues) {
    for (const model of o.models) {
      for (const dtype of o.dtypes) {
        for (const s of series) {
          for (const shape of MODELS[model].layers) out.push({ series: s, model, shape, M, dtype });
        }
      }
    }
  }
  return out;
}

export function envHeader(env: NativeEnv, commit: CommitInfo, date: Date): EnvHeader {
  if (env.bandwidthGBs === null || env.bandwidthBytes === null) {
    throw new MarlinError(ErrorCode.CUDA, 'benchEnv returned no measured bandwidth.', {
      fix: 'call benchEnv({ measure: true }).',
    });
  }
  return {
    gpu: env.name,
    smCount: env.smCount,
    computeCapability: `${env.ccMajor}.${env.ccMinor}`,
    smClockMHz: env.clockKHz / 1000,
    memClockMHz: env.memClockKHz / 1000,
    memBusBits: env.memBusBits,
    l2Bytes: env.l2Bytes,
    totalMemBytes: env.totalMem,
    driver: cudaVersionString(env.driverVersion),
    cudaRuntime: cudaVersionString(env.runtimeVersion),
    cublas: env.cublas.available ? { library: env.cublas.library, version: env.cublas.version } : null,
    cublasLt: env.cublasLt?.available ? { library: env.cublasLt.library, version: env.cublasLt.version } : null,
    commit: commit.commit,
    commitSource: commit.source,
    date: date.toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    bandwidthGBs: env.bandwidthGBs,
    bandwidthCopyBytes: env.bandwidthBytes,
    fp16Tflops: env.fp16Tflops,
  };
}

/** The protocol's timing fields of a native timing (which carries more: bytes, workspace, cluster, ...). */
export const timing = (t: Timing): Timing => ({
  us: t.us,
  minUs: t.minUs,
  maxUs: t.maxUs,
  rotations: t.rotations,
  calls: t.calls,
  replays: t.replays,
});

/** The baselines depend on the shape only: one timing per (M, N, K), shared by every series and dtype. */
function shapeKey(p: Problem): string {
  return `${p.M}x${p.shape.N}x${p.shape.K}`;
}

/** A baseline's arguments: fp16 on the problem's shape (also for bf16 rows: the protocol's baseline). */
function baselineArgs(p: Problem, o: Pick<BenchOptions, 'replays'>): BenchCublasArgs {
  return { M: p.M, N: p.shape.N, K: p.shape.K, dtype: 'fp16', seed: seedOf(p, false), replays: o.replays };
}

/**
 * Deterministic per-problem seed: results do not depend on which problems ran before. The INT4 series keeps the
 * seeds of earlier result files (no series in the text).
 */
function seedOf(p: Problem, withSeries = true): number {
  const series = withSeries && p.series.id !== 'int4-g128' ? `|${p.series.id}` : '';
  const text = `${p.model}|${p.shape.layer}|${p.M}|${p.dtype}${series}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 1) & 0x3fffffff;
}

function label(p: Problem): string {
  return `${p.series.label} ${MODELS[p.model].name} ${p.shape.layer} ${p.shape.K}x${p.shape.N} M=${p.M} ${p.dtype}`;
}

/** Baseline timings of a run, one per shape; null = not available (the reason is kept once). */
interface Baselines {
  readonly cublas: Map<string, Timing | null>;
  readonly w8a8: Map<string, W8a8Timing | null>;
  w8a8Error: string | null;
  /** cuSPARSELt fp16 2:4, for the sparse series only. */
  readonly cusparselt: Map<string, W8a8Timing | null>;
  cusparseLtError: string | null;
}

/** The device facts (`measure`: the HBM bandwidth and cuBLAS rate too); benchEnv's failure as a MarlinError. */
export function readEnv(native: Pick<BenchNative, 'benchEnv'>, measure: boolean): NativeEnv {
  try {
    return native.benchEnv({ measure });
  } catch (e) {
    throw toMarlinError(e, 'benchEnv');
  }
}

/** Measures the environment of a run started at `started` (saying so first) and its report header. */
export function measureEnv(
  deps: { readonly native: Pick<BenchNative, 'benchEnv'>; readonly commit: CommitInfo; progress(line: string): void },
  started: Date,
): { env: NativeEnv; header: EnvHeader } {
  deps.progress('measuring HBM bandwidth (d2d copy) and the cuBLAS fp16 8192^3 rate...');
  const env = readEnv(deps.native, true);
  return { env, header: envHeader(env, deps.commit, started) };
}

export async function runBench(o: BenchOptions, deps: RunDeps): Promise<BenchRun> {
  const started = deps.now();
  const { env, header } = measureEnv(deps, started);
  if (!env.cublas.available) {
    deps.progress(`WARNING: ${env.cublas.error} Speedups and the compute roofline are omitted.`);
  }
  const haveW8a8 = o.w8a8 && env.cublasLt?.available === true;
  const base: Baselines = {
    cublas: new Map(),
    w8a8: new Map(),
    w8a8Error: !o.w8a8
      ? 'disabled by --no-w8a8'
      : haveW8a8
        ? null
        : `cuBLASLt not available: ${env.cublasLt?.error || 'this harness build has no cuBLASLt probe'}`,
    cusparselt: new Map(),
    cusparseLtError: null,
  };
  if (o.w8a8 && !haveW8a8) deps.progress(`WARNING: ${base.w8a8Error}; the W8A8 baseline is omitted.`);
  deps.progress(
    `${header.gpu}: ${header.bandwidthGBs.toFixed(0)} GB/s, fp16 ${header.fp16Tflops?.toFixed(0) ?? 'n/a'} TFLOP/s`,
  );
  const ceilings: Ceilings = { bandwidthGBs: header.bandwidthGBs, fp16Tflops: header.fp16Tflops };
  const device = deviceInfoFromEnv(env);
  const choose = deps.dispatch ?? dispatchLaunch;

  const unavailable: BenchRun['unavailable'][number][] = [];
  const runnable: Variant[] = [];
  for (const variant of o.variants) {
    const addon = SERIES.find((s) => s.variant === variant)!.addon;
    const state = deps.addons[addon];
    if (state !== undefined && 'loaded' in state) {
      runnable.push(variant);
    } else {
      const reason = state?.unavailable ?? `${ADDONS[addon].packageName} was not looked for`;
      unavailable.push({ variant, addon, reason });
      deps.progress(`${variant}: unavailable (${ADDONS[addon].file}: ${reason}); its rows are not measured`);
    }
  }

  const cusparseLt = runnable.includes('sparse') ? loadCusparseLt(o, deps, base) : null;
  // The 2:4 series is compared with cuBLAS and cuSPARSELt (issue 18), not W8A8; the others never with cuSPARSELt.
  const w8a8For = (p: Problem): boolean => haveW8a8 && p.series.sparsity === undefined;
  const cusparseLtFor = (p: Problem): boolean => cusparseLt !== null && p.series.sparsity === '2:4';

  const list = problems({ ...o, variants: runnable });
  const rows: Row[] = [];
  const failures: (BenchResult['failures'][number] & { variant: Variant })[] = [];
  const width = String(list.length).length;

  for (const [i, p] of list.entries()) {
    const tag = `[${String(i + 1).padStart(width)}/${list.length}] ${label(p)}`;
    const loaded = (deps.addons[p.series.addon] as { loaded: LoadedAddon }).loaded;
    try {
      // Settle: the first M runs right after the heaviest work of the run (the 8192^3 cuBLAS rate), and the GPU runs
      // the next memory-bound kernels slower for seconds (H100: 70B M=1 227 us vs 197 us at M=2 with the same
      // config). Every problem of the first M is re-measured until two runs agree (settle), and those runs are
      // discarded; later M follow lighter work only (see problems()).
      if (p.M === o.mValues[0]) {
        settle(
          () => measure(p, { ...o, serial: false }, deps.native, loaded, device, choose, ceilings, false, base).ours.us,
        );
        // The baselines too (cuBLAS's first M = 1 timing once read 5% slower than M = 2-8), only before the shape's
        // one timing (later series and dtypes reuse it).
        if (env.cublas.available && !base.cublas.has(shapeKey(p))) {
          settle(() => deps.native.benchCublas(baselineArgs(p, o)).us);
        }
        if (w8a8For(p) && !base.w8a8.has(shapeKey(p))) {
          try {
            settle(() => deps.native.benchCublasLtFp8(baselineArgs(p, o)).us);
          } catch {
            // measure() records why W8A8 is missing for this shape.
          }
        }
        if (cusparseLtFor(p) && !base.cusparselt.has(shapeKey(p))) {
          try {
            settle(() => cusparseLt!.benchCusparseLt(baselineArgs(p, o)).us);
          } catch {
            // measure() records why cuSPARSELt is missing for this shape.
          }
        }
      }
      const row = measure(p, o, deps.native, loaded, device, choose, ceilings, env.cublas.available, base, {
        w8a8: w8a8For(p),
        cusparseLt: cusparseLtFor(p) ? cusparseLt : null,
      });
      rows.push(row);
      deps.progress(
        `${tag}: cfg ${row.configId}/${row.splits} ${row.ours.us.toFixed(2)} us | cuBLAS ${row.cublas?.us.toFixed(2) ?? '-'} us | ` +
          `${row.speedup?.toFixed(2) ?? '-'}x | ${
            p.series.sparsity
              ? `cuSPARSELt ${row.cusparselt?.us.toFixed(2) ?? '-'}`
              : `W8A8 ${row.w8a8?.us.toFixed(2) ?? '-'}`
          } us | ${row.rooflinePct.toFixed(1)}% roofline${
            row.sweep ? ` | best ${row.sweep.configId}/${row.sweep.splits} ${row.sweep.us.toFixed(2)} us` : ''
          }`,
      );
    } catch (e) {
      const err = toMarlinError(e, label(p));
      failures.push({ variant: p.series.variant, problem: label(p), code: err.code, message: err.message });
      deps.progress(`${tag}: FAILED ${err.code}: ${err.message}`);
    }
  }

  let eager: EagerOverhead | null = null;
  let eagerError: string | null = null;
  if (runnable.includes('int4')) {
    if (!o.eager) {
      eagerError = 'disabled by --no-eager';
    } else if (deps.eager === null) {
      eagerError = 'the @marlin/dense TypeScript API is not available in this build';
    } else {
      try {
        const dense = (deps.addons.dense as { loaded: LoadedAddon }).loaded;
        eager = await measureEager(deps.eager, deps.native, dense, device, o);
        deps.progress(
          `eager: ${eager.hostUs.toFixed(2)} us host time per call; ${eager.eagerUs.toFixed(2)} us/call wall - ${eager.kernelUs.toFixed(2)} us kernel = ${eager.overheadUs.toFixed(2)} us`,
        );
      } catch (e) {
        const err = toMarlinError(e, 'eager gemm()');
        eagerError = `${err.code}: ${err.message}`;
        deps.progress(`eager: FAILED ${eagerError}`);
      }
    }
  }

  const results: BenchResult[] = runnable.map((variant) => {
    const series = SERIES.filter((s) => s.variant === variant);
    const addon = series[0]!.addon;
    const loaded = (deps.addons[addon] as { loaded: LoadedAddon }).loaded;
    const vRows = rows.filter((r) => r.variant === variant);
    const blocks = blockSums(vRows);
    return {
      schemaVersion: SCHEMA_VERSION,
      tool: '@marlin/bench-tool',
      protocol: 'shared/docs/bench-protocol.md',
      package: addon,
      variant,
      series: series.map((s) => s.id),
      addon: { prefix: loaded.prefix, path: loaded.path, configCount: loaded.configCount },
      env: header,
      options: {
        variants: o.variants,
        w8a8: o.w8a8,
        models: o.models,
        dtypes: o.dtypes,
        mValues: o.mValues,
        quick: o.quick,
        sweepSplits: o.sweepSplits,
        serial: o.serial,
      },
      rows: vRows,
      blocks,
      bf16Ratios: bf16Ratios(blocks),
      geomean: geoMeans(vRows, blocks),
      w8a8Error:
        variant === 'sparse' ? 'not measured for the 2:4 series (its baselines: cuBLAS, cuSPARSELt)' : base.w8a8Error,
      cusparseLt:
        variant === 'sparse' && cusparseLt !== null
          ? { library: cusparseLt.info.library, version: cusparseLt.info.version }
          : null,
      cusparseLtError: variant === 'sparse' ? base.cusparseLtError : null,
      eager: variant === 'int4' ? eager : null,
      eagerError: variant === 'int4' ? eagerError : 'measured for the INT4 series only (the dense result)',
      failures: failures.filter((f) => f.variant === variant).map(({ variant: _v, ...f }) => f),
    };
  });
  return { results, unavailable };
}
/** Runs to discard before the first row of a series: until two in a row agree within 2%, at most 8. */
export const SETTLE_TOLERANCE = 0.02;
export const SETTLE_MAX_RUNS = 8;

export function settle(run: () => number): void {
  let previous = run();
  for (let i = 1; i < SETTLE_MAX_RUNS; i++) {
    const current = run();
    if (Math.abs(current - previous) <= SETTLE_TOLERANCE * previous) return;
    previous = current;
  }
}

function measure(
  p: Problem,
  o: BenchOptions,
  native: BenchNative,
  addon: LoadedAddon,
  device: DeviceInfo,
  choose: (problem: GemmProblem, device: DeviceInfo) => Launch,
  ceilings: Ceilings,
  haveCublas: boolean,
  base: Baselines,
  extra: { readonly w8a8: boolean; readonly cusparseLt: LoadedCusparseLt | null } = { w8a8: false, cusparseLt: null },
): Row {
  const { K, N } = p.shape;
  const s = p.series;
  const groupSize = seriesGroupSize(s, K);
  const gp = gemmProblem({
    M: p.M,
    N,
    K,
    groupSize,
    dtype: p.dtype,
    hasZeros: false,
    bits: s.bits,
    codeType: s.codeType,
    sparsity: s.sparsity,
  });
  const launch = choose(gp, device);
  const haveW8a8 = extra.w8a8;
  const seed = seedOf(p);
  const run = (l: Launch, serial = false): NativeTiming =>
    native.benchGemm({
      addon: addon.prefix,
      variant: s.variant,
      M: p.M,
      N,
      K,
      groupSize,
      dtype: p.dtype,
      hasZeros: false,
      configId: l.configId,
      splits: l.splits,
      tailSplits: l.tailSplits,
      seed,
      replays: o.replays,
      serial,
    });
  const oursNative = run(launch);
  const ours = timing(oursNative);

  let sweep: SweepResult | null = null;
  if (o.sweepSplits) {
    const candidates = sweepCandidates(gp, device, launch, o.sweepConfigs);
    let best: { launch: Launch; us: number } = { launch, us: ours.us };
    let tried = 1;
    for (const c of candidates) {
      let t: NativeTiming;
      try {
        t = run(c);
      } catch (e) {
        // A combination the kernel rejects (unsupported split for this config) is not a failure of the row.
        const err = toMarlinError(e, 'sweep');
        if (err.code === ErrorCode.UNSUPPORTED || err.code === ErrorCode.VALUE) continue;
        throw err;
      }
      tried++;
      if (t.us < best.us) best = { launch: c, us: t.us };
    }
    sweep = {
      configId: best.launch.configId,
      splits: best.launch.splits,
      us: best.us,
      gainOverDispatch: ours.us / best.us,
      tried,
    };
  }

  const key = shapeKey(p);
  let cublas: Timing | null = null;
  if (haveCublas) {
    if (!base.cublas.has(key)) base.cublas.set(key, timing(native.benchCublas(baselineArgs(p, o))));
    cublas = base.cublas.get(key) ?? null;
  }
  let w8a8: W8a8Timing | null = null;
  if (haveW8a8) {
    if (!base.w8a8.has(key)) {
      try {
        const t = native.benchCublasLtFp8(baselineArgs(p, o));
        base.w8a8.set(key, { ...timing(t), mRun: t.mRun ?? Math.ceil(p.M / 16) * 16 });
      } catch (e) {
        // The baseline missing (no FP8 algorithm before sm_89, a cuBLASLt error) never fails our row.
        const err = toMarlinError(e, `cuBLASLt FP8 W8A8 ${key}`);
        base.w8a8.set(key, null);
        base.w8a8Error ??= `${err.code}: ${err.message}`;
      }
    }
    w8a8 = base.w8a8.get(key) ?? null;
  }
  let cusparselt: W8a8Timing | null = null;
  if (extra.cusparseLt !== null) {
    if (!base.cusparselt.has(key)) {
      try {
        const t = extra.cusparseLt.benchCusparseLt(baselineArgs(p, o));
        base.cusparselt.set(key, { ...timing(t), mRun: t.mRun ?? Math.ceil(p.M / 16) * 16 });
      } catch (e) {
        // As W8A8: a shape cuSPARSELt rejects never fails our row.
        const err = toMarlinError(e, `cuSPARSELt 2:4 ${key}`);
        base.cusparselt.set(key, null);
        base.cusparseLtError ??= `${err.code}: ${err.message}`;
      }
    }
    cusparselt = base.cusparselt.get(key) ?? null;
  }
  // Serial launches last, so `ours` and the baselines keep the order of every earlier result file. At compute-heavy
  // M the later of back-to-back timings of one problem reads slower (up to 5-10% on 70B gate_up at M = 64-128), so
  // the serial column overstates the gain of the default launch there; at M <= 16 the bias is < 0.5%.
  const serial = o.serial ? timing(run(launch, true)) : null;

  return makeRow(
    {
      series: s.id,
      model: p.model,
      shape: p.shape,
      M: p.M,
      dtype: p.dtype,
      groupSize,
      hasZeros: false,
      configId: launch.configId,
      splits: launch.splits,
      clusterSize: oursNative.clusterSize,
      tailSplits: launch.tailSplits,
      tailBlocks: oursNative.tailBlocks,
      ours,
      serial,
      cublas,
      w8a8,
      cusparselt,
      sweep,
    },
    ceilings,
  );
}

/** cuSPARSELt as loaded for a run: the harness's entry points and what loaded. */
export interface LoadedCusparseLt {
  readonly benchCusparseLt: (args: BenchCublasArgs) => NativeTiming;
  readonly info: NativeCusparseLtInfo;
}

/**
 * Loads the 2:4 series' second baseline, or records why it is missing (`base.cusparseLtError`): disabled, a harness
 * build without it, or no loadable cuSPARSELt of a declared version. Its absence is reported, never a failure.
 */
function loadCusparseLt(
  o: Pick<BenchOptions, 'cusparselt'>,
  deps: Pick<RunDeps, 'native' | 'findCusparseLt' | 'progress'>,
  base: Baselines,
): LoadedCusparseLt | null {
  const native: unknown = deps.native;
  if (!o.cusparselt) {
    base.cusparseLtError = 'disabled by --no-cusparselt';
  } else if (!hasCusparseLtExports(native)) {
    base.cusparseLtError = 'this marlin_bench.node has no cuSPARSELt entry points (rebuild it)';
  } else {
    const search = deps.findCusparseLt?.() ?? { paths: [], deps: [] };
    const info = native.benchCusparseLtLoad({ paths: search.paths, deps: search.deps });
    if (info.available) {
      deps.progress(`cuSPARSELt ${versionText(info.version)}: ${info.library}`);
      return { benchCusparseLt: (a) => native.benchCusparseLt(a), info };
    }
    base.cusparseLtError = `unavailable: ${info.error}`;
  }
  deps.progress(`cuSPARSELt: ${base.cusparseLtError}; the 2:4 series' second baseline is omitted`);
  return null;
}

/** The eager problem: Llama-3-8B o_proj at M = 1, where a kernel lasts a few microseconds and host cost shows. */
export const EAGER_PROBLEM = { M: 1, N: 4096, K: 4096, groupSize: GROUP_SIZE } as const;

async function measureEager(
  eager: NonNullable<RunDeps['eager']>,
  native: BenchNative,
  dense: LoadedAddon,
  device: DeviceInfo,
  o: BenchOptions,
): Promise<EagerOverhead> {
  const p: EagerArgs = { ...EAGER_PROBLEM, dtype: o.dtypes[0] ?? 'fp16' };
  const launch = dispatchLaunch(gemmProblem({ ...p, hasZeros: false, bits: 4, codeType: 'int' }), device);
  const kernel = native.benchGemm({
    addon: dense.prefix,
    variant: 'int4',
    ...p,
    hasZeros: false,
    configId: launch.configId,
    splits: launch.splits,
    tailSplits: launch.tailSplits,
    replays: o.replays,
  });
  const t = await eager(p, o.eagerCalls);
  return eagerOverhead({ ...p, calls: o.eagerCalls, totalUs: t.totalUs, enqueueUs: t.enqueueUs, kernelUs: kernel.us });
}
