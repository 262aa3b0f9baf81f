/**
 * The benchmark exports of the @marlin/dense addon (native/napi/bench_binding.cc), typed, and how the addon is found.
 *
 * Search order for the binary: $MARLIN_DENSE_BINARY, then `marlin_dense.node` next to this script (the GPU bundle
 * puts it there) or in its parent, then packages/dense/build/Release/marlin_dense.node under the repository root
 * (found from this file or the working directory). The first that loads wins; all errors are reported otherwise.
 * Node caches native modules by path, so when @marlin/dense loads the same file (the eager measurement) both share
 * one addon instance.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DeviceError,
  diagnose,
  ErrorCode,
  MarlinError,
  type NativeRuntime,
  probeFacts,
  UnsupportedError,
} from '@marlin/core';
import type { BenchDtype } from './protocol.js';

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
}

export interface BenchGemmArgs {
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

/** What the CLI needs from the addon; tests substitute a fake. */
export interface BenchNative {
  benchEnv(opts?: { measure?: boolean }): NativeEnv;
  benchGemm(args: BenchGemmArgs): NativeTiming;
  benchCublas(args: BenchCublasArgs): NativeTiming;
}

const ADDON_FILE = 'marlin_dense.node';

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

export function addonCandidates(): string[] {
  const out: string[] = [];
  const env = process.env['MARLIN_DENSE_BINARY'];
  if (env) out.push(resolve(env));
  const roots = new Set<string>();
  for (const d of scriptDirs()) {
    out.push(join(d, ADDON_FILE), join(d, '..', ADDON_FILE));
    const r = findRepoRoot(d);
    if (r) roots.add(r);
  }
  const cwdRoot = findRepoRoot(process.cwd());
  if (cwdRoot) roots.add(cwdRoot);
  for (const r of roots) out.push(join(r, 'packages', 'dense', 'build', 'Release', ADDON_FILE));
  return [...new Set(out)];
}

export function isBenchNative(m: unknown): m is BenchNative {
  const o = m as Record<string, unknown> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o['benchEnv'] === 'function' &&
    typeof o['benchGemm'] === 'function' &&
    typeof o['benchCublas'] === 'function'
  );
}

/** Whether the module carries the shared runtime exports (probe, deviceInfo, hasKernelImage) of every addon. */
export function isRuntime(m: unknown): m is NativeRuntime {
  const o = m as Record<string, unknown> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o['probe'] === 'function' &&
    typeof o['deviceInfo'] === 'function' &&
    typeof o['hasKernelImage'] === 'function'
  );
}

/**
 * Loads the dense addon module (the first candidate path that loads). Throws DeviceError(NO_BINARY) listing every
 * path tried when none does. The module is checked by the caller (`probeGpu`).
 */
export function loadDenseModule(): unknown {
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
    fix: 'build it with `pnpm --filter @marlin/dense build:native`, or set MARLIN_DENSE_BINARY to its path.',
    details: { tried },
  });
}

/**
 * The GPU check before a run, in the project's order: the addon's runtime probe through @marlin/core's `diagnose`
 * (no driver, old driver, no device, old arch, no kernel image: each a coded DeviceError with its own message), then
 * the benchmark exports, then the harness's own device query.
 */
export function probeGpu(mod: unknown): { native: BenchNative } | { error: MarlinError } {
  try {
    if (isRuntime(mod)) {
      const summary = diagnose(probeFacts(mod));
      if (!summary.ok && summary.error) return { error: summary.error };
    }
    if (!isBenchNative(mod)) {
      return {
        error: new UnsupportedError(
          'The loaded marlin_dense.node has no benchmark exports (benchEnv, benchGemm, benchCublas).',
          {
            fix: 'rebuild @marlin/dense (`pnpm --filter @marlin/dense build:native`) with native/bench present: its CMakeLists.txt compiles the harness in when it finds it.',
          },
        ),
      };
    }
    mod.benchEnv({ measure: false });
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
