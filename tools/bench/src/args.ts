/** Command-line options of `pnpm bench` (docs/benchmark.md lists them). */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ValueError } from '@marlin/core';
import { MOE_MODEL_IDS, type MoeCodec, type MoeModelId, ROUTINGS, type RoutingKind } from './moe-protocol.js';
import type { MoeBaselineMode } from './native.js';
import {
  type BenchDtype,
  DTYPES,
  M_VALUES,
  MODEL_IDS,
  type ModelId,
  QUICK_M_VALUES,
  VARIANTS,
  type Variant,
} from './protocol.js';

/** The cuBLAS baselines of the MoE layers (the faster is the row's baseline). */
export const MOE_BASELINES: readonly Exclude<MoeBaselineMode, 'routing-only'>[] = ['grouped', 'per-expert'];
/** Codecs the MoE tile sweep can time. */
export const MOE_CODECS: readonly MoeCodec[] = ['int4', 'int8', 'fp8'];

export interface BenchOptions {
  readonly outDir: string;
  /** Where outDir came from, for the log. */
  readonly outSource: '--out' | 'MARLIN_BENCH_OUT' | 'OUT' | 'repository' | 'cwd';
  readonly quick: boolean;
  /** Kernel variants to time (int4 and int8 from @marlin/dense, fp8 from @marlin/fp8, sparse from @marlin/sparse). */
  readonly variants: readonly Variant[];
  /** Time the cuBLASLt FP8 W8A8 baseline (once per shape). */
  readonly w8a8: boolean;
  /** Time the cuSPARSELt fp16 2:4 baseline of the sparse series (once per shape), where cuSPARSELt loads. */
  readonly cusparselt: boolean;
  readonly models: readonly ModelId[];
  readonly dtypes: readonly BenchDtype[];
  readonly mValues: readonly number[];
  readonly jsonOnly: boolean;
  readonly sweepSplits: boolean;
  /** Sweep every table config too (implies sweepSplits). */
  readonly sweepConfigs: boolean;
  readonly replays: number;
  /** Also time every row with serial launches (no overlap with the previous call; Row.serial). */
  readonly serial: boolean;
  readonly eager: boolean;
  readonly eagerCalls: number;
  readonly help: boolean;
  /** Run the MoE layers (--moe, or --variants moe) instead of the GEMM variants. */
  readonly moe: boolean;
  /** MoE: also the tile sweep (--sweep-tiles): every M tile dispatch offers, the measured table written. */
  readonly sweepTiles: boolean;
  /** MoE layers to run (--models in MoE mode). */
  readonly moeModels: readonly MoeModelId[];
  readonly routings: readonly RoutingKind[];
  readonly baselines: readonly Exclude<MoeBaselineMode, 'routing-only'>[];
  /** Codecs of the tile sweep (the benchmark rows are INT4). */
  readonly codecs: readonly MoeCodec[];
  /** Also write the swept tile table here (e.g. packages/core/src/dispatch/moe-tiles.json). */
  readonly tilesOut: string | null;
}

export const USAGE = `Usage: pnpm bench [options]     (node tools/bench/cli.mjs [options])

Runs shared/docs/bench-protocol.md: Llama-3 8B/70B block shapes x M sweep, the Marlin kernels (INT4 g128 and INT8
g128 of @marlin/dense, FP8 per-channel and 128x128-block of @marlin/fp8, INT4 2:4 g128 of @marlin/sparse) vs cuBLAS
fp16 and cuBLASLt FP8 W8A8 (cuSPARSELt fp16 2:4 for the sparse series) in the same run (CUDA graphs, cold L2 by weight
rotation, median of replays), prints tables, writes one current result per package variant and GPU:
dense-<gpu>.json, dense-int8-<gpu>.json, fp8-<gpu>.json, sparse-<gpu>.json (and .svg), replacing the last.

Options:
  --out DIR         output folder (default: $MARLIN_BENCH_OUT, else $OUT, else <repo>/bench/results)
  --variants LIST   int4,int8,fp8,sparse (default all; a variant whose addon binary is missing is reported unavailable);
                    moe: the MoE layers instead (same as --moe)
  --quick           fewer M values (${QUICK_M_VALUES.join(',')}); smoke runs, file names end in -quick
  --models LIST     8b,70b (default both); with --moe: mixtral,deepseek,qwen3,gptoss (default all)
  --dtypes LIST     fp16,bf16 (default both, fp16 first)
  --m LIST          explicit M values (overrides --quick)
  --sweep-splits    also time every split-K factor for the dispatched config and report the best
  --sweep-configs   like --sweep-splits over every kernel-table config (slow: for tuning dispatch)
  --replays N       timed graph replays per problem (default 10, at least 7)
  --no-serial       skip the second timing of every row with serial launches (each call waits for the previous
                    one; by default a call may start during the previous call's tail on sm_90+)
  --eager-calls N   eager gemm() calls for the host-overhead measurement (default 200)
  --no-eager        skip the eager host-overhead measurement
  --no-w8a8         skip the cuBLASLt FP8 W8A8 baseline
  --no-cusparselt   skip the cuSPARSELt fp16 2:4 baseline of the sparse series
  --json-only       no table and no SVG: print the result JSON on stdout (progress stays on stderr)
  -h, --help        this text

MoE layers (docs/benchmark.md "MoE layers"; needs marlin_moe.node):
  --moe             run the MoE layers instead of the GEMMs (same as --variants moe): Mixtral-8x7B, DeepSeek-V3
                    routed experts, Qwen3-30B-A3B, gpt-oss-120b, INT4 g128 vs the cuBLAS fp16 / bf16 layer;
                    writes moe-<gpu>.json (and .svg). With --moe, --models takes ${MOE_MODEL_IDS.join(',')}
  --routing LIST    uniform,skewed (default both)
  --baselines LIST  grouped,per-expert (default both; each row reports the faster)
  --sweep-tiles     the MoE tile sweep: every M tile dispatch offers, per model and M, uniform routing, fp16;
                    writes moe-tiles-<gpu>.json (the dispatch table) and moe-tile-sweep-<gpu>.json (every point)
  --codecs LIST     int4,int8,fp8: codecs of the tile sweep (default int4)
  --tiles-out FILE  also write the swept table to FILE (e.g. packages/core/src/dispatch/moe-tiles.json)

A run that is not the full protocol (--quick, or a subset of models, dtypes or M) writes <name>-quick or
<name>-partial files instead of the current result. A lone "--" (as \`pnpm bench -- --quick\` passes it) is ignored.
`;

function parseList<T extends string>(raw: string, allowed: readonly T[], what: string): T[] {
  const items = raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
  if (items.length === 0)
    throw new ValueError(`--${what} is empty.`, { fix: `pass one or more of ${allowed.join(',')}.` });
  const out: T[] = [];
  for (const it of items) {
    if (!(allowed as readonly string[]).includes(it)) {
      throw new ValueError(`--${what}: unknown value '${it}'.`, { fix: `use one or more of ${allowed.join(',')}.` });
    }
    if (!out.includes(it as T)) out.push(it as T);
  }
  // Keep the protocol's order (fp16 before bf16, 8b before 70b) whatever order was typed.
  return allowed.filter((a) => out.includes(a));
}

function parseIntOpt(raw: string | undefined, name: string, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    throw new ValueError(`--${name} ${raw} is not an integer >= ${min}.`, { fix: `pass --${name} ${fallback}.` });
  }
  return v;
}

function parseMList(raw: string): number[] {
  const ms = raw.split(',').map((s) => Number(s.trim()));
  for (const m of ms) {
    if (!Number.isInteger(m) || m < 1) {
      throw new ValueError(`--m: '${raw}' must be a comma-separated list of positive integers.`, {
        fix: `e.g. --m ${M_VALUES.slice(0, 4).join(',')}.`,
      });
    }
  }
  return [...new Set(ms)].sort((a, b) => a - b);
}

const same = (a: readonly unknown[], b: readonly unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Whether a run covers the whole protocol (both models, both dtypes, every M): only then is it the current result. */
export function isProtocolRun(o: Pick<BenchOptions, 'quick' | 'models' | 'dtypes' | 'mValues'>): boolean {
  return !o.quick && same(o.models, MODEL_IDS) && same(o.dtypes, DTYPES) && same(o.mValues, M_VALUES);
}

/** The MoE run's counterpart: every layer, both routings, both dtypes, every M, both baselines. */
export function isMoeProtocolRun(
  o: Pick<BenchOptions, 'quick' | 'moeModels' | 'routings' | 'dtypes' | 'mValues' | 'baselines'>,
): boolean {
  return (
    !o.quick &&
    same(o.moeModels, MOE_MODEL_IDS) &&
    same(o.routings, ROUTINGS) &&
    same(o.dtypes, DTYPES) &&
    same(o.mValues, M_VALUES) &&
    same(o.baselines, MOE_BASELINES)
  );
}

export function resolveOutDir(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  repoRoot: string | null,
  cwd: string,
): { dir: string; source: BenchOptions['outSource'] } {
  if (flag) return { dir: resolve(cwd, flag), source: '--out' };
  const benchOut = env['MARLIN_BENCH_OUT'];
  if (benchOut) return { dir: resolve(cwd, benchOut), source: 'MARLIN_BENCH_OUT' };
  const out = env['OUT'];
  if (out) return { dir: resolve(cwd, out), source: 'OUT' };
  if (repoRoot) return { dir: join(repoRoot, 'bench', 'results'), source: 'repository' };
  return { dir: join(cwd, 'bench', 'results'), source: 'cwd' };
}

/**
 * The arguments without "--" separators. pnpm appends `-- --quick` of `pnpm bench -- --quick` verbatim to the script's
 * command line, so node hands the CLI a "--", after which parseArgs reads every option as a positional (this CLI
 * takes none): the documented commands exited 2.
 */
export function dropSeparators(argv: readonly string[]): string[] {
  return argv.filter((a) => a !== '--');
}

export function parseBenchArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  repoRoot: string | null,
  cwd: string,
): BenchOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(dropSeparators(argv));
  } catch (e) {
    throw new ValueError(e instanceof Error ? e.message : String(e), { fix: 'run with --help for the options.' });
  }
  const v = parsed.values;
  const quick = v.quick ?? false;
  const out = resolveOutDir(v.out, env, repoRoot, cwd);
  // `moe` is a variant on the command line only: the MoE layers run on their own (their own problems and file).
  const variantList = v.variants ? parseList(v.variants, [...VARIANTS, 'moe'] as const, 'variants') : null;
  const sweepTiles = v['sweep-tiles'] ?? false;
  const moe = (v.moe ?? false) || sweepTiles || (variantList?.includes('moe') ?? false);
  if (moe && variantList?.some((x) => x !== 'moe')) {
    throw new ValueError(`--variants ${v.variants}: the MoE layers run on their own.`, {
      fix: 'run `--moe` and the GEMM variants in two invocations.',
    });
  }
  if (moe && ((v['sweep-splits'] ?? false) || (v['sweep-configs'] ?? false))) {
    throw new ValueError('--sweep-splits / --sweep-configs time the GEMM variants, not the MoE layers.', {
      fix: 'use --sweep-tiles for the MoE tile sweep.',
    });
  }
  for (const flag of ['routing', 'baselines', 'codecs', 'tiles-out'] as const) {
    if (!moe && v[flag] !== undefined) {
      throw new ValueError(`--${flag} applies to the MoE layers only.`, { fix: 'add --moe.' });
    }
  }
  if (v.codecs !== undefined && !sweepTiles) {
    throw new ValueError('--codecs selects the codecs of the tile sweep; the MoE benchmark rows are INT4.', {
      fix: 'add --sweep-tiles, or drop --codecs.',
    });
  }
  return {
    outDir: out.dir,
    outSource: out.source,
    quick,
    variants: variantList !== null && !moe ? (variantList as Variant[]) : [...VARIANTS],
    w8a8: !(v['no-w8a8'] ?? false),
    cusparselt: !(v['no-cusparselt'] ?? false),
    models: v.models && !moe ? parseList(v.models, MODEL_IDS, 'models') : [...MODEL_IDS],
    dtypes: v.dtypes ? parseList(v.dtypes, DTYPES, 'dtypes') : [...DTYPES],
    mValues: v.m ? parseMList(v.m) : [...(quick ? QUICK_M_VALUES : M_VALUES)],
    jsonOnly: v['json-only'] ?? false,
    sweepSplits: (v['sweep-splits'] ?? false) || (v['sweep-configs'] ?? false),
    sweepConfigs: v['sweep-configs'] ?? false,
    replays: parseIntOpt(v.replays, 'replays', 10, 7),
    serial: !(v['no-serial'] ?? false),
    eager: !(v['no-eager'] ?? false),
    eagerCalls: parseIntOpt(v['eager-calls'], 'eager-calls', 200, 1),
    help: v.help ?? false,
    moe,
    sweepTiles,
    moeModels: v.models && moe ? parseList(v.models, MOE_MODEL_IDS, 'models') : [...MOE_MODEL_IDS],
    routings: v.routing ? parseList(v.routing, ROUTINGS, 'routing') : [...ROUTINGS],
    baselines: v.baselines ? parseList(v.baselines, MOE_BASELINES, 'baselines') : [...MOE_BASELINES],
    codecs: v.codecs ? parseList(v.codecs, MOE_CODECS, 'codecs') : ['int4'],
    tilesOut: v['tiles-out'] ? resolve(cwd, v['tiles-out']) : null,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: 'string' },
      quick: { type: 'boolean' },
      variants: { type: 'string' },
      'no-w8a8': { type: 'boolean' },
      'no-cusparselt': { type: 'boolean' },
      models: { type: 'string' },
      dtypes: { type: 'string' },
      m: { type: 'string' },
      'sweep-splits': { type: 'boolean' },
      'sweep-configs': { type: 'boolean' },
      replays: { type: 'string' },
      'no-serial': { type: 'boolean' },
      'eager-calls': { type: 'string' },
      'no-eager': { type: 'boolean' },
      'json-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      moe: { type: 'boolean' },
      routing: { type: 'string' },
      baselines: { type: 'string' },
      'sweep-tiles': { type: 'boolean' },
      codecs: { type: 'string' },
      'tiles-out': { type: 'string' },
    },
  });
}
