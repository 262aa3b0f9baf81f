/**
 * One protocol run: environment + ceilings, every (dtype, model, M, layer) problem through the dispatched kernel and
 * cuBLAS fp16, optional split/config sweep, eager host overhead, then the derived tables. I/O-free apart from the
 * injected native module, clock and progress sink, so tests drive it with a fake addon.
 */
import { cudaVersionString, type DeviceInfo, ErrorCode, MarlinError } from '@marlin/core';
import type { BenchOptions } from './args.js';
import { deviceInfoFromEnv, dispatchLaunch, gemmProblem, type Launch, sweepCandidates } from './choose.js';
import type { CommitInfo } from './meta.js';
import { type BenchCublasArgs, type BenchNative, type NativeEnv, type NativeTiming, toMarlinError } from './native.js';
import { type BenchDtype, type Ceilings, GROUP_SIZE, type LayerShape, MODELS, type ModelId } from './protocol.js';
import {
  type BenchResult,
  type EagerOverhead,
  type EnvHeader,
  type Row,
  SCHEMA_VERSION,
  type SweepResult,
  type Timing,
} from './schema.js';
import { bf16Ratios, blockSums, eagerOverhead, geoMeans, makeRow } from './summary.js';

export interface RunDeps {
  readonly native: BenchNative;
  readonly commit: CommitInfo;
  readonly now: () => Date;
  /** One line of progress (stderr in the CLI). */
  readonly progress: (line: string) => void;
  /** Timings of `calls` eager gemm() calls on the problem, or a rejection saying why not. */
  readonly eager: ((p: EagerArgs, calls: number) => Promise<EagerTiming>) | null;
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
  readonly model: ModelId;
  readonly shape: LayerShape;
  readonly M: number;
  readonly dtype: BenchDtype;
}

/**
 * The problems of a run in protocol order: M ascending, then each model, fp16 then bf16, each layer. M outermost keeps
 * every memory-bound row away from the heavy large-M rows: the GPU runs memory/issue-bound kernels slower for seconds
 * after compute-heavy work (clocks recovering), which made the bf16 decode rows of a dtype-outermost order (run after
 * the fp16 M = 4096 rows) read 4-12% slower than the same kernels in a sweep (H200, c972a4e).
 */
export function problems(o: Pick<BenchOptions, 'dtypes' | 'models' | 'mValues'>): Problem[] {
  const out: Problem[] = [];
  for (const M of o.mValues) {
    for (const model of o.models) {
      for (const dtype of o.dtypes) {
        for (const shape of MODELS[model].layers) out.push({ model, shape, M, dtype });
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

const timing = (t: NativeTiming): Timing => ({
  us: t.us,
  minUs: t.minUs,
  maxUs: t.maxUs,
  rotations: t.rotations,
  calls: t.calls,
  replays: t.replays,
});

/** cuBLAS fp16 depends on the shape only: one timing per (M, N, K), shared by the fp16 and bf16 rows. */
function cublasKey(p: Problem): string {
  return `${p.M}x${p.shape.N}x${p.shape.K}`;
}

/** The baseline's arguments: cuBLAS fp16 on the problem's shape (fp16 also for bf16 rows, as the protocol says). */
function cublasArgs(p: Problem, o: Pick<BenchOptions, 'replays'>): BenchCublasArgs {
  return { M: p.M, N: p.shape.N, K: p.shape.K, dtype: 'fp16', seed: seedOf(p), replays: o.replays };
}

/** Deterministic per-problem seed: results do not depend on which problems ran before. */
function seedOf(p: Problem): number {
  const text = `${p.model}|${p.shape.layer}|${p.M}|${p.dtype}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 1) & 0x3fffffff;
}

function label(p: Problem): string {
  return `${MODELS[p.model].name} ${p.shape.layer} ${p.shape.K}x${p.shape.N} M=${p.M} ${p.dtype}`;
}

export async function runBench(o: BenchOptions, deps: RunDeps): Promise<BenchResult> {
  const started = deps.now();
  deps.progress('measuring HBM bandwidth (d2d copy) and the cuBLAS fp16 8192^3 rate...');
  let env: NativeEnv;
  try {
    env = deps.native.benchEnv({ measure: true });
  } catch (e) {
    throw toMarlinError(e, 'benchEnv');
  }
  const header = envHeader(env, deps.commit, started);
  if (!env.cublas.available) {
    deps.progress(`WARNING: ${env.cublas.error} Speedups and the compute roofline are omitted.`);
  }
  deps.progress(
    `${header.gpu}: ${header.bandwidthGBs.toFixed(0)} GB/s, fp16 ${header.fp16Tflops?.toFixed(0) ?? 'n/a'} TFLOP/s`,
  );
  const ceilings: Ceilings = { bandwidthGBs: header.bandwidthGBs, fp16Tflops: header.fp16Tflops };
  const device = deviceInfoFromEnv(env);

  const list = problems(o);
  const rows: Row[] = [];
  const failures: BenchResult['failures'][number][] = [];
  // cuBLAS fp16 depends on the shape only: measured once per (M, N, K), shared by the fp16 and bf16 rows.
  const cublasCache = new Map<string, Timing | null>();
  const width = String(list.length).length;

  for (const [i, p] of list.entries()) {
    const tag = `[${String(i + 1).padStart(width)}/${list.length}] ${label(p)}`;
    try {
      // Settle: the first M runs right after the heaviest work of the run (the 8192^3 cuBLAS rate), and the GPU runs
      // the next memory-bound kernels slower for seconds (H100, 2026-11-24: 70B M=1 227 us vs 197 us at M=2 with the
      // same config). Every problem of the first M is re-measured until two runs agree (settle), and those runs are
      // discarded; later M follow lighter work only (see problems()).
      if (p.M === o.mValues[0]) {
        settle(() => measure(p, { ...o, serial: false }, deps.native, device, ceilings, false, cublasCache).ours.us);
        // cuBLAS too: its first M = 1 timing once read 5% slower than M = 2-8 (ba12e68, 70B block 416 vs 395 us).
        // Only before the shape's one cuBLAS timing (the bf16 rows reuse the fp16 rows' timing).
        if (env.cublas.available && !cublasCache.has(cublasKey(p))) {
          settle(() => deps.native.benchCublas(cublasArgs(p, o)).us);
        }
      }
      const row = measure(p, o, deps.native, device, ceilings, env.cublas.available, cublasCache);
      rows.push(row);
      deps.progress(
        `${tag}: cfg ${row.configId}/${row.splits} ${row.ours.us.toFixed(2)} us | cuBLAS ${row.cublas?.us.toFixed(2) ?? '-'} us | ` +
          `${row.speedup?.toFixed(2) ?? '-'}x | ${row.rooflinePct.toFixed(1)}% roofline${
            row.sweep ? ` | best ${row.sweep.configId}/${row.sweep.splits} ${row.sweep.us.toFixed(2)} us` : ''
          }`,
      );
    } catch (e) {
      const err = toMarlinError(e, label(p));
      failures.push({ problem: label(p), code: err.code, message: err.message });
      deps.progress(`${tag}: FAILED ${err.code}: ${err.message}`);
    }
  }

  let eager: EagerOverhead | null = null;
  let eagerError: string | null = null;
  if (!o.eager) {
    eagerError = 'disabled by --no-eager';
  } else if (deps.eager === null) {
    eagerError = 'the @marlin/dense TypeScript API is not available in this build';
  } else {
    try {
      eager = await measureEager(deps.eager, deps.native, device, o);
      deps.progress(
        `eager: ${eager.hostUs.toFixed(2)} us host time per call; ${eager.eagerUs.toFixed(2)} us/call wall - ${eager.kernelUs.toFixed(2)} us kernel = ${eager.overheadUs.toFixed(2)} us`,
      );
    } catch (e) {
      const err = toMarlinError(e, 'eager gemm()');
      eagerError = `${err.code}: ${err.message}`;
      deps.progress(`eager: FAILED ${eagerError}`);
    }
  }

  const blocks = blockSums(rows);
  return {
    schemaVersion: SCHEMA_VERSION,
    tool: '@marlin/bench-tool',
    protocol: 'shared/docs/bench-protocol.md',
    env: header,
    options: {
      models: o.models,
      dtypes: o.dtypes,
      mValues: o.mValues,
      quick: o.quick,
      sweepSplits: o.sweepSplits,
      serial: o.serial,
      groupSize: GROUP_SIZE,
    },
    rows,
    blocks,
    bf16Ratios: bf16Ratios(blocks),
    geomean: geoMeans(rows, blocks),
    eager,
    eagerError,
    failures,
  };
}

/** Runs to discard before the first row of a series: until two in a row agree within 2%, at most 8. */
export const SETTLE_TOLERANCE = 0.02;
export const SETTLE_MAX_RUNS = 8;

function settle(run: () => number): void {
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
  device: DeviceInfo,
  ceilings: Ceilings,
  haveCublas: boolean,
  cublasCache: Map<string, Timing | null>,
): Row {
  const { K, N } = p.shape;
  const gp = gemmProblem({ M: p.M, N, K, groupSize: GROUP_SIZE, dtype: p.dtype, hasZeros: false });
  const launch = dispatchLaunch(gp, device);
  const seed = seedOf(p);
  const run = (l: Launch, serial = false): NativeTiming =>
    native.benchGemm({
      M: p.M,
      N,
      K,
      groupSize: GROUP_SIZE,
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

  const key = cublasKey(p);
  let cublas: Timing | null = null;
  if (haveCublas) {
    if (!cublasCache.has(key)) {
      cublasCache.set(key, timing(native.benchCublas(cublasArgs(p, o))));
    }
    cublas = cublasCache.get(key) ?? null;
  }
  // Serial launches last, so `ours` and cuBLAS keep the order of every earlier result file. At compute-heavy M the
  // later of back-to-back timings of one problem reads slower (up to 5-10% on 70B gate_up at M = 64-128, perf-notes
  // v10e), so the serial column overstates the gain of the default launch there; at M <= 16 the bias is < 0.5%.
  const serial = o.serial ? timing(run(launch, true)) : null;

  return makeRow(
    {
      model: p.model,
      shape: p.shape,
      M: p.M,
      dtype: p.dtype,
      groupSize: GROUP_SIZE,
      hasZeros: false,
      configId: launch.configId,
      splits: launch.splits,
      clusterSize: oursNative.clusterSize,
      tailSplits: launch.tailSplits,
      tailBlocks: oursNative.tailBlocks,
      ours,
      serial,
      cublas,
      sweep,
    },
    ceilings,
  );
}

/** The eager problem: Llama-3-8B o_proj at M = 1, where a kernel lasts a few microseconds and host cost shows. */
export const EAGER_PROBLEM = { M: 1, N: 4096, K: 4096, groupSize: GROUP_SIZE } as const;

async function measureEager(
  eager: NonNullable<RunDeps['eager']>,
  native: BenchNative,
  device: DeviceInfo,
  o: BenchOptions,
): Promise<EagerOverhead> {
  const p: EagerArgs = { ...EAGER_PROBLEM, dtype: o.dtypes[0] ?? 'fp16' };
  const launch = dispatchLaunch(gemmProblem({ ...p, hasZeros: false }), device);
  const kernel = native.benchGemm({
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
