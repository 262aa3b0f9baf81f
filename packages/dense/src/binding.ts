import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeviceError, ErrorCode, type NativeBuffer, type NativeRuntime, type NativeStream } from '@marlin/core';

declare const planBrand: unique symbol;
/** Opaque handle of a prepared native gemm plan (a tagged Napi::External; see planCreate). */
export type NativeGemmPlan = { readonly [planBrand]: true };

/** The @marlin/dense exports on top of the shared runtime (packages/dense/native/binding.cc). */
export interface DenseAddon extends NativeRuntime {
  /**
   * A prepared launch: validates the problem in `params` (GemmParam layout) with these weight operands once and
   * resolves the kernel, grid and parameter block. Holds references to the weight handles; throws coded errors
   * (marlin_status) for bad input.
   */
  planCreate(
    qweight: NativeBuffer,
    scales: NativeBuffer,
    zeros: NativeBuffer | null,
    perm: NativeBuffer | null,
    params: Int32Array,
  ): NativeGemmPlan;
  /** Binds the workspace (at least planWorkspaceBytes) and stream that the plan's next launches use. */
  planBind(plan: NativeGemmPlan, workspace: NativeBuffer, stream: NativeStream | null): void;
  /** Enqueues one GEMM with the plan: x [M, lda], out [M, N], bias [N] or null. Returns at once. */
  planLaunch(plan: NativeGemmPlan, x: NativeBuffer, out: NativeBuffer, bias: NativeBuffer | null): void;
  /** Frees the native plan and drops its references (idempotent). */
  planDestroy(plan: NativeGemmPlan): void;
  planWorkspaceBytes(plan: NativeGemmPlan): number;
  /** Native plans created and not yet destroyed. */
  livePlans(): number;
  /** Workspace bytes the native side needs for the problem and launch in `params`. */
  workspaceBytes(params: Int32Array): number;
  /** Zeroes the arrival counters of a fresh workspace. */
  workspaceInit(workspace: NativeBuffer, stream: NativeStream | null): void;
  configCount(): number;
  /** [mTile, nTiles, kTilesPerStage, stages] of a compiled configuration. */
  configInfo(id: number): [number, number, number, number];
  /** Blocks per cluster of the plan's launches on the current device (1: no cluster). */
  planClusterSize(plan: NativeGemmPlan): number;
  /** Blocks of the plan's balanced-last-wave launch (marlin_dense_plan_tail_blocks; 0: one launch). */
  planTailBlocks(plan: NativeGemmPlan): number;
}

/** Index of each number in the Int32Array handed to the native gemm (mirrors `enum Param` in binding.cc). */
export const GemmParam = {
  dtype: 0,
  m: 1,
  n: 2,
  k: 3,
  nPadded: 4,
  kPadded: 5,
  bits: 6,
  groupSize: 7,
  lda: 8,
  ldc: 9,
  configId: 10,
  splits: 11,
  hasPerm: 12,
  flags: 13,
  tailSplits: 14,
  count: 15,
} as const;

/** GemmParam.flags bit: launch without programmatic dependent launch (MARLIN_DENSE_LAUNCH_SERIAL in dense.h). */
export const LAUNCH_SERIAL = 1;

/** Requirements recorded in package.json "config" (what the loader's messages quote). */
const REQUIRED_GLIBC = '2.34';
const SUPPORTED_PLATFORMS = ['linux-x64'];
const BINARY_NAME = 'marlin_dense.node';

/** Where the loader looked and what happened, for the NO_BINARY message and for doctor(). */
export interface LoadAttempt {
  readonly path: string;
  readonly error: string | null;
}

export interface LoadedBinary {
  readonly addon: DenseAddon;
  readonly path: string;
  readonly attempts: readonly LoadAttempt[];
}

function packageRoot(): string {
  // dist/index.js (ESM or CJS) and src/*.ts both sit one level below the package root.
  return resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

/** glibc of this process, or null (musl, non-Linux). */
export function glibcVersion(): string | null {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? null;
}

/** Candidate binary paths, in the order the loader tries them. */
export function candidatePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const explicit = env.MARLIN_DENSE_BINARY;
  if (explicit !== undefined && explicit !== '') out.push(resolve(explicit));
  const root = packageRoot();
  out.push(join(root, 'build', 'Release', BINARY_NAME));
  return out;
}

function describeFailure(path: string, err: unknown): string {
  if (!existsSync(path)) return 'not found';
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}

/** The DeviceError (code NO_BINARY) for a failed load, worded after sharp's: platform, glibc, what to do. */
export function noBinaryError(attempts: readonly LoadAttempt[], glibc: string | null = glibcVersion()): DeviceError {
  const platform = `${process.platform}-${process.arch}`;
  const lines = attempts.map((a) => `  - ${a.path}: ${a.error ?? 'ok'}`);
  const glibcProblem = attempts.some((a) => /GLIBC_|CXXABI_|GLIBCXX_/.test(a.error ?? ''));
  const fixes: string[] = [];
  if (!SUPPORTED_PLATFORMS.includes(platform)) {
    fixes.push(`@marlin/dense supports ${SUPPORTED_PLATFORMS.join(', ')} only (found ${platform}).`);
  }
  if (glibcProblem || (glibc !== null && compareVersions(glibc, REQUIRED_GLIBC) < 0)) {
    fixes.push(
      `Found glibc ${glibc ?? 'unknown'}, requires ${REQUIRED_GLIBC}: use a newer distribution (Ubuntu 22.04+, Debian 12+, RHEL 9+) or build from source.`,
    );
  }
  fixes.push(
    'build it from source with `pnpm --filter @marlin/dense build:native` (needs CUDA 13 nvcc and cmake, no GPU), or point MARLIN_DENSE_BINARY at a marlin_dense.node.',
  );
  return new DeviceError(
    ErrorCode.NO_BINARY,
    `Could not load the @marlin/dense native addon for ${platform} (glibc ${glibc ?? 'n/a'}). Tried:\n${lines.join('\n')}\n`,
    { fix: fixes.join(' '), details: { platform, glibc, requiredGlibc: REQUIRED_GLIBC, attempts } },
  );
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Loads the addon: MARLIN_DENSE_BINARY (explicit path), then build/Release/marlin_dense.node of this package.
 * Throws DeviceError NO_BINARY listing every attempt. Loading needs no GPU (static cudart, driver dlopen'ed lazily).
 */
export function loadDenseBinary(paths: readonly string[] = candidatePaths()): LoadedBinary {
  const require = createRequire(import.meta.url);
  const attempts: LoadAttempt[] = [];
  for (const path of paths) {
    try {
      const addon = require(path) as DenseAddon;
      if (typeof addon.planLaunch !== 'function' || typeof addon.probe !== 'function') {
        attempts.push({ path, error: 'loaded, but it is not a @marlin/dense addon (no planLaunch/probe export)' });
        continue;
      }
      attempts.push({ path, error: null });
      return { addon, path, attempts };
    } catch (err) {
      attempts.push({ path, error: describeFailure(path, err) });
    }
  }
  throw noBinaryError(attempts);
}
