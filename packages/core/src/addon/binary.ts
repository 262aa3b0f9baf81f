/**
 * The native side every GEMM addon shares: its Node-API exports (GemmAddon), the GemmParam layout of the Int32Array
 * handed to it, and the binary loader (candidate paths, env override, the NO_BINARY error worded after sharp's).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { NativeBuffer, NativeRuntime, NativeStream } from '../device/native.js';
import { DeviceError, ErrorCode } from '../errors/index.js';

declare const planBrand: unique symbol;
/** Opaque handle of a prepared native gemm plan (a tagged Napi::External; see planCreate). */
export type NativeGemmPlan = { readonly [planBrand]: true };

/** The exports of every GEMM addon (packages/dense/native/binding.cc, packages/fp8/native/binding.cc) on top of the runtime. */
export interface GemmAddon extends NativeRuntime {
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
  /** Blocks of the plan's balanced-last-wave launch (0: one launch). */
  planTailBlocks(plan: NativeGemmPlan): number;
}

/** Index of each number in the Int32Array handed to an addon's gemm (mirrors `enum Param` in the bindings). */
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

/** GemmParam.flags bit: launch without programmatic dependent launch (MARLIN_LAUNCH_SERIAL in gemm.h). */
export const LAUNCH_SERIAL = 1;

/** What an addon package tells the loader about its binary. */
export interface AddonBinarySpec {
  /** npm package, e.g. '@marlin/dense'. */
  readonly packageName: string;
  /** File name of the binary, e.g. 'marlin_dense.node'. */
  readonly binaryName: string;
  /** Environment variable holding an explicit binary path, e.g. 'MARLIN_DENSE_BINARY'. */
  readonly envVar: string;
  /** The package's root folder (where build/Release lies). */
  readonly packageRoot: string;
  /** glibc the prebuilt binaries need (package.json "config.glibc"). */
  readonly requiredGlibc?: string;
}

const DEFAULT_GLIBC = '2.34';
const SUPPORTED_PLATFORMS = ['linux-x64'];

/** Where the loader looked and what happened, for the NO_BINARY message and for doctor(). */
export interface LoadAttempt {
  readonly path: string;
  readonly error: string | null;
}

export interface LoadedBinary<A extends GemmAddon = GemmAddon> {
  readonly addon: A;
  readonly path: string;
  readonly attempts: readonly LoadAttempt[];
}

/** glibc of this process, or null (musl, non-Linux). */
export function glibcVersion(): string | null {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? null;
}

/** Candidate binary paths of an addon, in the order the loader tries them: the env override, then the local build. */
export function addonCandidatePaths(spec: AddonBinarySpec, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const explicit = env[spec.envVar];
  if (explicit !== undefined && explicit !== '') out.push(resolve(explicit));
  out.push(join(spec.packageRoot, 'build', 'Release', spec.binaryName));
  return out;
}

function describeFailure(path: string, err: unknown): string {
  if (!existsSync(path)) return 'not found';
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
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

/** The DeviceError (code NO_BINARY) for a failed load, worded after sharp's: platform, glibc, what to do. */
export function addonNoBinaryError(
  spec: AddonBinarySpec,
  attempts: readonly LoadAttempt[],
  glibc: string | null = glibcVersion(),
): DeviceError {
  const platform = `${process.platform}-${process.arch}`;
  const requiredGlibc = spec.requiredGlibc ?? DEFAULT_GLIBC;
  const lines = attempts.map((a) => `  - ${a.path}: ${a.error ?? 'ok'}`);
  const glibcProblem = attempts.some((a) => /GLIBC_|CXXABI_|GLIBCXX_/.test(a.error ?? ''));
  const fixes: string[] = [];
  if (!SUPPORTED_PLATFORMS.includes(platform)) {
    fixes.push(`${spec.packageName} supports ${SUPPORTED_PLATFORMS.join(', ')} only (found ${platform}).`);
  }
  if (glibcProblem || (glibc !== null && compareVersions(glibc, requiredGlibc) < 0)) {
    fixes.push(
      `Found glibc ${glibc ?? 'unknown'}, requires ${requiredGlibc}: use a newer distribution (Ubuntu 22.04+, Debian 12+, RHEL 9+) or build from source.`,
    );
  }
  fixes.push(
    `build it from source with \`pnpm --filter ${spec.packageName} build:native\` (needs CUDA 13 nvcc and cmake, no GPU), or point ${spec.envVar} at a ${spec.binaryName}.`,
  );
  return new DeviceError(
    ErrorCode.NO_BINARY,
    `Could not load the ${spec.packageName} native addon for ${platform} (glibc ${glibc ?? 'n/a'}). Tried:\n${lines.join('\n')}\n`,
    { fix: fixes.join(' '), details: { platform, glibc, requiredGlibc, attempts, package: spec.packageName } },
  );
}

/**
 * Loads an addon binary from the first path that yields one (default: addonCandidatePaths). Throws DeviceError
 * NO_BINARY listing every attempt. Loading needs no GPU (static cudart, driver dlopen'ed lazily).
 */
export function loadAddonBinary<A extends GemmAddon = GemmAddon>(
  spec: AddonBinarySpec,
  paths: readonly string[] = addonCandidatePaths(spec),
): LoadedBinary<A> {
  const require = createRequire(join(spec.packageRoot, 'package.json'));
  const attempts: LoadAttempt[] = [];
  for (const path of paths) {
    try {
      const addon = require(path) as A;
      if (typeof addon.planLaunch !== 'function' || typeof addon.probe !== 'function') {
        attempts.push({
          path,
          error: `loaded, but it is not a ${spec.packageName} addon (no planLaunch/probe export)`,
        });
        continue;
      }
      // Another addon's binary has the same exports: an env override pointing at the wrong file must not run it.
      const expected = spec.binaryName.replace(/\.node$/, '');
      if (typeof addon.addon === 'string' && addon.addon !== expected) {
        attempts.push({ path, error: `loaded, but it is ${addon.addon}, not ${expected}` });
        continue;
      }
      attempts.push({ path, error: null });
      return { addon, path, attempts };
    } catch (err) {
      attempts.push({ path, error: describeFailure(path, err) });
    }
  }
  throw addonNoBinaryError(spec, attempts);
}
