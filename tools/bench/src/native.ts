/**
 * The benchmark's own addon (marlin_bench.node, built by tools/bench/CMakeLists.txt from native/bench and
 * native/napi/bench_binding.cc), typed, and how it is found. It compiles no kernel: the addons under test are opened
 * by path (`benchLoadAddon`, see addons.ts for how their paths are found) and called through their C ABI.
 *
 * Search order for marlin_bench.node: $MARLIN_BENCH_BINARY, then next to this script (the GPU bundle puts it there)
 * or in its parent, then tools/bench/build/Release/marlin_bench.node under the repository root (found from this file
 * or the working directory). The first that loads wins; all errors are reported otherwise.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeviceError, ErrorCode, MarlinError } from '@marlin/core';
import type { BenchDtype, Variant } from './protocol.js';
import type { Timing } from './schema.js';

export interface NativeCublasInfo {
  readonly available: boolean;
  readonly version: number;
  readonly library: string;
  readonly error: string;
}

export interface NativeEnv {
  readonly deviceCount: number;
  readonly ordinal: number;
  readonly name: string;
  readonly ccMajor: number;
  readonly ccMinor: number;
  readonly smCount: number;
  readonly clockKHz: number;
  readonly memClockKHz: number;
  readonly memBusBits: number;
  readonly l2Bytes: number;
  readonly maxSmemPerBlockOptin: number;
  readonly maxSmemPerSm: number;
  readonly totalMem: number;
  readonly freeMem: number;
  readonly driverVersion: number;
  readonly runtimeVersion: number;
  readonly cublas: NativeCublasInfo;
  /** cuBLASLt (the FP8 W8A8 baseline); absent from older harness builds. */
  readonly cublasLt?: NativeCublasInfo;
  readonly bandwidthGBs: number | null;
  readonly bandwidthBytes: number | null;
  readonly fp16Tflops: number | null;
}

export interface NativeTiming {
  readonly us: number;
  readonly minUs: number;
  readonly maxUs: number;
  readonly rotations: number;
  readonly calls: number;
  readonly replays: number;
  readonly bytesPerRotation: number;
  readonly workspaceBytes: number;
  /** Dense: blocks per thread-block cluster of the launch (split-K reduced across a cluster), 1 without; cuBLAS: 0. */
  readonly clusterSize: number;
  /** Dense: blocks of the balanced last wave's second launch, 0 without; cuBLAS: 0. */
  readonly tailBlocks: number;
  /** Rows computed: M, or M rounded up to 16 for cuBLASLt FP8 and cuSPARSELt. */
  readonly mRun?: number;
}

export interface BenchGemmArgs {
  /** C-ABI prefix of the addon to call (loaded with benchLoadAddon): 'marlin_dense', 'marlin_fp8', 'marlin_sparse'. */
  readonly addon: AddonPrefix;
  readonly variant: Variant;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly groupSize: number;
  readonly dtype: BenchDtype;
  readonly hasZeros?: boolean;
  readonly configId: number;
  readonly splits: number;
  /** Balanced last wave (marlin_dense_launch.tail_splits): 0 or absent = one launch. */
  readonly tailSplits?: number;
  readonly seed?: number;
  readonly calls?: number;
  readonly replays?: number;
  /** Launch with MARLIN_DENSE_LAUNCH_SERIAL: every call waits for the previous one (no programmatic overlap). */
  readonly serial?: boolean;
}

export interface BenchCublasArgs {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly dtype: BenchDtype;
  readonly seed?: number;
  readonly calls?: number;
  readonly replays?: number;
}

export type AddonPrefix = 'marlin_dense' | 'marlin_fp8' | 'marlin_sparse';

export interface LoadedAddon {
  readonly prefix: AddonPrefix;
  readonly path: string;
  /** Compiled configurations the binary reports, null when it does not say. */
  readonly configCount: number | null;
}

/** marlin_moe.node as benchLoadMoe opened it. */
export interface LoadedMoe {
  readonly path: string;
  /** Compiled kit rows of the moe variants the binary reports, null when it does not say. */
  readonly configCount: number | null;
}

/** Weight formats of benchMoeWeights: the Marlin layer's codecs, and the baseline's dense fp16 / bf16 experts. */
export type MoeWeightFormat = 'int4' | 'int8' | 'fp8' | 'dense';

/** Device weights of one MoE layer (`copies` full copies), owned by marlin_bench.node until benchMoeFree. */
export interface MoeWeights {
  readonly handle: unknown;
  readonly bytes: number;
  readonly format: MoeWeightFormat;
  readonly dtype: BenchDtype;
  readonly copies: number;
}

export interface BenchMoeWeightsArgs {
  readonly format: MoeWeightFormat;
  readonly dtype: BenchDtype;
  readonly experts: number;
  readonly hidden: number;
  readonly inter: number;
  /** Quantized formats: 32, 64, 128, or <= 0 per channel (default 128). */
  readonly groupSize?: number;
  readonly copies: number;
  readonly seed?: number;
}

/** One routed problem: every rotation's ids and weight copy (tools/bench/src/moe-routing.ts). */
export interface BenchMoeRouting {
  readonly weights: MoeWeights;
  readonly M: number;
  readonly topk: number;
  /** [rotations][M][topk]. */
  readonly ids: Int32Array;
  /** [M][topk]. */
  readonly topkWeights: Float32Array;
  /** [rotations]. */
  readonly copyOf: Int32Array;
  readonly activation: 'silu' | 'swigluoai';
  readonly seed?: number;
  readonly calls?: number;
  readonly replays?: number;
}

export interface BenchMoeArgs extends BenchMoeRouting {
  readonly config13: number;
  readonly splits13: number;
  readonly config2: number;
  readonly splits2: number;
  /** Balanced last wave of each GEMM (0 = none). */
  readonly tail13?: number;
  readonly tail2?: number;
  readonly serial?: boolean;
}

/** 'routing-only': the baseline layer without its GEMMs (alignment, gather, activation, sum): the fixed cost. */
export type MoeBaselineMode = 'grouped' | 'per-expert' | 'routing-only';

export interface BenchMoeCublasArgs extends BenchMoeRouting {
  readonly block: number;
  readonly mode: MoeBaselineMode;
}

export interface MoeTiming extends Timing {
  readonly workspaceBytes: number;
  readonly blockSize: number;
  readonly capacity: number;
  /** GEMM launches per layer call: 2 for Marlin and grouped cuBLAS, 2 x touched experts per expert, 0 routing-only. */
  readonly gemmLaunches: number;
}

/** The MoE entry points of marlin_bench.node (absent from harness builds before them). */
export interface BenchMoeNative {
  benchLoadMoe(args: { path: string }): LoadedMoe;
  benchMoeWeights(args: BenchMoeWeightsArgs): MoeWeights;
  /** Releases the weights' device memory now (idempotent). */
  benchMoeFree(weights: MoeWeights): void;
  benchMoe(args: BenchMoeArgs): MoeTiming;
  benchMoeCublas(args: BenchMoeCublasArgs): MoeTiming;
}

/** Whether `m` is an object with a function under each of `names` (a harness built with those entry points). */
function hasFunctions(m: unknown, names: readonly string[]): boolean {
  const o = m as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && names.every((k) => typeof o[k] === 'function');
}

export function hasMoeExports(m: unknown): m is BenchMoeNative {
  return hasFunctions(m, ['benchLoadMoe', 'benchMoeWeights', 'benchMoeFree', 'benchMoe', 'benchMoeCublas']);
}

/** cuSPARSELt as benchCusparseLtLoad found it. */
export interface NativeCusparseLtInfo {
  readonly available: boolean;
  /** major * 1000 + minor * 100 + patch, e.g. 701; 0 when unknown. */
  readonly version: number;
  /** The path or soname that loaded. */
  readonly library: string;
  readonly error: string;
}

/** The cuSPARSELt entry points of marlin_bench.node (absent from harness builds before the 2:4 series). */
export interface BenchCusparseLtNative {
  /** Loads cuSPARSELt once per process: `paths` in order, then the soname; `deps` preloaded for a retry. */
  benchCusparseLtLoad(args: { paths: readonly string[]; deps: readonly string[] }): NativeCusparseLtInfo;
  /** fp16 / bf16 2:4 through cuSPARSELt on the shape (W [N][K] 2:4 along K, M padded to 16: `mRun`). */
  benchCusparseLt(args: BenchCublasArgs): NativeTiming;
}

export function hasCusparseLtExports(m: unknown): m is BenchCusparseLtNative {
  return hasFunctions(m, ['benchCusparseLtLoad', 'benchCusparseLt']);
}

/** What the CLI needs from marlin_bench.node; tests substitute a fake. */
export interface BenchNative {
  benchEnv(opts?: { measure?: boolean }): NativeEnv;
  /** Opens an addon binary and resolves its C ABI; throws (MARLIN_E_UNSUPPORTED) when it cannot. */
  benchLoadAddon(args: { prefix: AddonPrefix; path: string }): LoadedAddon;
  benchGemm(args: BenchGemmArgs): NativeTiming;
  benchCublas(args: BenchCublasArgs): NativeTiming;
  /** cuBLASLt FP8 W8A8 on the shape (e4m3 x e4m3, per-tensor scales, M padded to 16); `dtype` is the output's. */
  benchCublasLtFp8(args: BenchCublasArgs): NativeTiming;
}

const ADDON_FILE = 'marlin_bench.node';

function scriptDirs(): string[] {
  const dirs: string[] = [];
  try {
    dirs.push(dirname(fileURLToPath(import.meta.url)));
  } catch {
    // Bundled as CommonJS: import.meta.url is empty; the entry script's folder below stands in.
  }
  if (process.argv[1]) dirs.push(dirname(resolve(process.argv[1])));
  return [...new Set(dirs)];
}

/** Walks up from `start` to the folder holding pnpm-workspace.yaml; null when there is none. */
export function findRepoRoot(start: string): string | null {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const explicit = env['MARLIN_BENCH_BINARY'];
  if (explicit) out.push(resolve(explicit));
  const roots = new Set<string>();
  for (const d of scriptDirs()) {
    out.push(join(d, ADDON_FILE), join(d, '..', ADDON_FILE));
    const r = findRepoRoot(d);
    if (r) roots.add(r);
  }
  const cwdRoot = findRepoRoot(process.cwd());
  if (cwdRoot) roots.add(cwdRoot);
  for (const r of roots) out.push(join(r, 'tools', 'bench', 'build', 'Release', ADDON_FILE));
  return [...new Set(out)];
}

/** Folders of this script (the GPU bundle puts the .node files beside it). */
export function benchScriptDirs(): string[] {
  return scriptDirs();
}

export function isBenchNative(m: unknown): m is BenchNative {
  return hasFunctions(m, ['benchEnv', 'benchLoadAddon', 'benchGemm', 'benchCublas', 'benchCublasLtFp8']);
}

/**
 * Loads marlin_bench.node (the first candidate path that loads). Throws DeviceError(NO_BINARY) listing every path
 * tried when none does. The module is checked by the caller (`probeGpu`).
 */
export function loadBenchModule(): unknown {
  const req = createRequire(import.meta.url || join(process.cwd(), 'bench.cjs'));
  const tried: string[] = [];
  for (const path of addonCandidates()) {
    if (!existsSync(path)) {
      tried.push(`${path}: not found`);
      continue;
    }
    try {
      return req(path);
    } catch (e) {
      tried.push(`${path}: ${e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e)}`);
    }
  }
  throw new DeviceError(ErrorCode.NO_BINARY, `No loadable ${ADDON_FILE} found (${tried.join('; ')}).`, {
    fix: 'build it with `pnpm --filter @marlin/bench-tool build:native`, or set MARLIN_BENCH_BINARY to its path.',
    details: { tried },
  });
}

/** Oldest architecture the kernels are built for (sm_80). */
const MIN_CC_MAJOR = 8;

/**
 * The GPU check before a run: the benchmark exports, then the harness's own device query (no driver, old driver,
 * no device: coded DeviceErrors from the addon), then the architecture (sm_80 or newer).
 */
export function probeGpu(mod: unknown): { native: BenchNative } | { error: MarlinError } {
  try {
    if (!isBenchNative(mod)) {
      return {
        error: new MarlinError(
          ErrorCode.UNSUPPORTED,
          'The loaded marlin_bench.node lacks benchmark exports (benchEnv, benchLoadAddon, benchGemm, benchCublas, benchCublasLtFp8).',
          { fix: 'rebuild it: `pnpm --filter @marlin/bench-tool build:native`.' },
        ),
      };
    }
    const env = mod.benchEnv({ measure: false });
    if (env.ccMajor < MIN_CC_MAJOR) {
      return {
        error: new DeviceError(
          ErrorCode.ARCH_TOO_OLD,
          `${env.name} is sm_${env.ccMajor}${env.ccMinor}; the Marlin kernels need sm_80 or newer.`,
          { fix: 'run the benchmark on an Ampere, Ada or Hopper GPU.' },
        ),
      };
    }
    return { native: mod };
  } catch (e) {
    return { error: toMarlinError(e, 'GPU probe') };
  }
}

/** Codes meaning "this machine cannot run the GPU benchmark" (the CLI falls back to the CPU reference). */
export const NO_GPU_CODES: readonly string[] = [
  ErrorCode.NO_BINARY,
  ErrorCode.NO_DRIVER,
  ErrorCode.DRIVER_TOO_OLD,
  ErrorCode.NO_DEVICE,
  ErrorCode.ARCH_TOO_OLD,
];

/** Turns an error thrown by the addon (an Error with a string `code`) into a typed MarlinError. */
export function toMarlinError(e: unknown, what: string): MarlinError {
  if (e instanceof MarlinError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const raw = (err as { code?: unknown }).code;
  const known = Object.values(ErrorCode) as string[];
  const code = (typeof raw === 'string' && known.includes(raw) ? raw : ErrorCode.CUDA) as ErrorCode;
  return new DeviceError(code, `${what}: ${err.message}`, { cause: err });
}
