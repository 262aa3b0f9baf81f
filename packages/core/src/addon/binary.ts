/**
 * The native side every GEMM addon shares: its Node-API exports (GemmAddon), the GemmParam layout of the Int32Array
 * handed to it, and the binary loader: env override, local build, the platform package (@marlin/<addon>-linux-x64-gnu,
 * version equal to the addon's), the `marlin build` cache; the NO_BINARY error lists causes and fixes as sharp's does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
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
  /** glibc the prebuilt binaries need when the platform package does not say (its package.json "config.glibc"). */
  readonly requiredGlibc?: string;
  /** The addon package's version (default: "version" of packageRoot/package.json). */
  readonly version?: string;
}

const DEFAULT_GLIBC = '2.34';
/** Platforms with a prebuilt package, as `<platform>-<arch>-<libc>` (the platform package's name suffix). */
export const PREBUILT_PLATFORMS: readonly string[] = ['linux-x64-gnu'];

/** Where a candidate binary comes from, in the loader's order. */
export type BinarySource = 'env' | 'local' | 'platform' | 'cache';

/** Where the loader looked and what happened, for the NO_BINARY message and for doctor(). */
export interface LoadAttempt {
  readonly path: string;
  readonly error: string | null;
  /** Which step of the loader this path is (absent for paths a caller passed explicitly). */
  readonly source?: BinarySource;
}

export interface LoadedBinary<A extends GemmAddon = GemmAddon> {
  readonly addon: A;
  readonly path: string;
  readonly attempts: readonly LoadAttempt[];
}

/** The host as the loader sees it; tests pass another. */
export interface HostPlatform {
  readonly platform: string;
  readonly arch: string;
  /** glibc version, or null (musl, non-Linux). */
  readonly glibc: string | null;
}

let glibcCache: string | null | undefined;

/** glibc of this process, or null (musl, non-Linux). */
export function glibcVersion(): string | null {
  if (glibcCache !== undefined) return glibcCache;
  if (process.platform !== 'linux' || process.report === undefined) {
    glibcCache = null;
    return null;
  }
  // The report would otherwise resolve the host's network interfaces (slow without a network, as detect-libc notes).
  const report = process.report as { excludeNetwork?: boolean; getReport(): object };
  const exclude = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    glibcCache = header?.glibcVersionRuntime ?? null;
  } finally {
    report.excludeNetwork = exclude;
  }
  return glibcCache;
}

function currentHost(): HostPlatform {
  return { platform: process.platform, arch: process.arch, glibc: glibcVersion() };
}

/** `<platform>-<arch>-<libc>` of a host, e.g. 'linux-x64-gnu' ('musl' when a Linux host has no glibc). */
export function platformKey(host: HostPlatform = currentHost()): string {
  const libc = host.platform === 'linux' ? (host.glibc !== null ? '-gnu' : '-musl') : '';
  return `${host.platform}-${host.arch}${libc}`;
}

/** Name of the addon's prebuilt package for a host, e.g. '@marlin/dense-linux-x64-gnu'; null when none is built. */
export function platformPackageName(packageName: string, host: HostPlatform = currentHost()): string | null {
  const key = platformKey(host);
  return PREBUILT_PLATFORMS.includes(key) ? `${packageName}-${key}` : null;
}

/** The `marlin build` cache root: $MARLIN_CACHE_DIR, else $XDG_CACHE_HOME/marlin, else ~/.cache/marlin. */
export function marlinCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MARLIN_CACHE_DIR) return resolve(env.MARLIN_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return join(resolve(env.XDG_CACHE_HOME), 'marlin');
  return join(homedir(), '.cache', 'marlin');
}

/** Short name of an addon package: '@marlin/dense' -> 'dense'. */
function shortName(packageName: string): string {
  return packageName.replace(/^@[^/]+\//, '');
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The addon package's own version (spec.version, else its package.json). */
export function addonVersion(spec: AddonBinarySpec): string {
  if (spec.version !== undefined) return spec.version;
  const v = readJson(join(spec.packageRoot, 'package.json'))?.version;
  return typeof v === 'string' ? v : '0.0.0';
}

/** Folder `marlin build <addon>` writes to and the loader's last candidate reads: <cache>/<addon>/<version>/. */
export function addonCacheDir(spec: AddonBinarySpec, env: NodeJS.ProcessEnv = process.env): string {
  return join(marlinCacheDir(env), shortName(spec.packageName), addonVersion(spec));
}

/** What the loader found of the platform package: where its binary is, or why it cannot be used. */
export interface PlatformPackageState {
  readonly name: string;
  /** Installed version, or null when not installed. */
  readonly version: string | null;
  /** Folder of the installed package, or null. */
  readonly dir: string | null;
  /** The package's "config" (glibc, cuda, driver, sm), or null. */
  readonly config: Record<string, unknown> | null;
}

/** Looks up the addon's platform package from the addon package (as Node resolves its optionalDependencies). */
export function findPlatformPackage(
  spec: AddonBinarySpec,
  host: HostPlatform = currentHost(),
): PlatformPackageState | null {
  const name = platformPackageName(spec.packageName, host);
  if (name === null) return null;
  let manifest: string;
  try {
    manifest = createRequire(join(spec.packageRoot, 'package.json')).resolve(`${name}/package.json`);
  } catch {
    return { name, version: null, dir: null, config: null };
  }
  const pkg = readJson(manifest);
  const config = pkg?.config;
  return {
    name,
    version: typeof pkg?.version === 'string' ? pkg.version : null,
    dir: dirname(manifest),
    config: typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : null,
  };
}

/** A loader candidate: a path to try, or (error set) a step that has no usable path, e.g. a version mismatch. */
interface Candidate {
  readonly path: string;
  readonly source: BinarySource;
  readonly error: string | null;
}

function addonCandidates(spec: AddonBinarySpec, env: NodeJS.ProcessEnv, host: HostPlatform): Candidate[] {
  const out: Candidate[] = [];
  const explicit = env[spec.envVar];
  if (explicit !== undefined && explicit !== '') out.push({ path: resolve(explicit), source: 'env', error: null });
  out.push({ path: join(spec.packageRoot, 'build', 'Release', spec.binaryName), source: 'local', error: null });
  const p = findPlatformPackage(spec, host);
  if (p !== null) {
    const own = addonVersion(spec);
    if (p.dir === null) {
      out.push({ path: `${p.name}/${spec.binaryName}`, source: 'platform', error: `${p.name} is not installed` });
    } else if (p.version !== own) {
      out.push({
        path: join(p.dir, spec.binaryName),
        source: 'platform',
        error: `version mismatch: ${p.name}@${p.version} is installed, ${spec.packageName} is ${own}`,
      });
    } else {
      out.push({ path: join(p.dir, spec.binaryName), source: 'platform', error: null });
    }
  }
  out.push({ path: join(addonCacheDir(spec, env), spec.binaryName), source: 'cache', error: null });
  return out;
}

/**
 * Candidate binary paths of an addon, in the order the loader tries them: the env override, the local build
 * (build/Release), the platform package's binary (when one is built for this host), the `marlin build` cache.
 */
export function addonCandidatePaths(
  spec: AddonBinarySpec,
  env: NodeJS.ProcessEnv = process.env,
  host: HostPlatform = currentHost(),
): string[] {
  return addonCandidates(spec, env, host).map((c) => c.path);
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

/** Options of addonNoBinaryError beyond the attempts (tests pass another host or environment). */
export interface NoBinaryContext {
  readonly host?: HostPlatform;
  readonly env?: NodeJS.ProcessEnv;
  readonly execArgv?: readonly string[];
}

/**
 * The DeviceError (code NO_BINARY) for a failed load, worded after sharp's: what was tried, then the possible
 * solutions for each cause the attempts point at (platform without a prebuilt package, optional dependencies omitted,
 * lockfile from another OS, registry mirror, glibc too old with found and required versions, version mismatch,
 * Node run without addons, and always how to build from source).
 */
export function addonNoBinaryError(
  spec: AddonBinarySpec,
  attempts: readonly LoadAttempt[],
  glibc: string | null = glibcVersion(),
  context: NoBinaryContext = {},
): DeviceError {
  const host = context.host ?? { platform: process.platform, arch: process.arch, glibc };
  const env = context.env ?? process.env;
  const execArgv = context.execArgv ?? process.execArgv;
  const key = platformKey(host);
  const version = addonVersion(spec);
  const platformPkg = findPlatformPackage(spec, host);
  const configGlibc = platformPkg?.config?.glibc;
  const requiredGlibc =
    typeof configGlibc === 'string' ? configGlibc.replace(/^[>=\s]+/, '') : (spec.requiredGlibc ?? DEFAULT_GLIBC);
  const lines = attempts.map(
    (a) => `  - ${a.source !== undefined ? `[${a.source}] ` : ''}${a.path}: ${a.error ?? 'ok'}`,
  );

  const fixes: string[] = [];
  if (platformPkg === null) {
    const supported = PREBUILT_PLATFORMS.map((p) => p.replace(/-gnu$/, ' (glibc)')).join(', ');
    fixes.push(
      `${spec.packageName} has prebuilt binaries for ${supported} only; this is ${key}. Build from source (below).`,
    );
  } else if (platformPkg.dir === null) {
    const arch = key.replace(/-gnu$/, '').split('-');
    fixes.push(
      `Optional dependencies were omitted (npm --omit=optional / --no-optional, pnpm --no-optional): reinstall with them: npm install --include=optional ${spec.packageName}`,
      `A lockfile made on another OS or CPU has no ${platformPkg.name}: npm install --os=${arch[0]} --cpu=${arch[1]} --libc=glibc ${spec.packageName}; with pnpm add {"os": "${arch[0]}", "cpu": "${arch[1]}", "libc": "glibc"} to supportedArchitectures in pnpm-workspace.yaml and reinstall.`,
      `A registry mirror in .npmrc may lack ${platformPkg.name}@${version}: check with \`npm view ${platformPkg.name}@${version} version\`.`,
    );
  } else if (platformPkg.version !== version) {
    fixes.push(
      `Version mismatch: found ${platformPkg.name}@${platformPkg.version}, requires ${version} (the version of ${spec.packageName}); an override or a hand-edited lockfile pinned it. Reinstall so both match: npm install ${spec.packageName}@${version}`,
    );
  }
  const glibcProblem = attempts.some((a) => /GLIBC_|CXXABI_|GLIBCXX_/.test(a.error ?? ''));
  if (glibcProblem || (glibc !== null && compareVersions(glibc, requiredGlibc) < 0)) {
    fixes.push(
      `Found glibc ${glibc ?? 'unknown'}, requires ${requiredGlibc}: use a newer distribution (Ubuntu 22.04+, Debian 12+, RHEL 9+) or build from source on this machine.`,
    );
  }
  const noAddons = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--no-addons');
  if (noAddons)
    fixes.push('Node runs with --no-addons (command line or NODE_OPTIONS): native addons cannot load; drop the flag.');
  const cacheBinary = join(addonCacheDir(spec, env), spec.binaryName);
  fixes.push(
    `Build from source: npx marlin build ${shortName(spec.packageName)} (needs nvcc from CUDA 13.0+ and cmake 3.25+, no GPU; writes ${cacheBinary}, which this loader tries last), or point ${spec.envVar} at a ${spec.binaryName}.`,
  );
  if (existsSync(join(spec.packageRoot, 'CMakeLists.txt')) && !spec.packageRoot.includes('node_modules')) {
    fixes.push(`In a clone of the repository: pnpm --filter ${spec.packageName} build:native`);
  }
  fixes.push(`\`npx marlin doctor\` prints what was found; the ${spec.packageName} README has an Install section.`);

  const mismatch =
    platformPkg !== null && platformPkg.dir !== null && platformPkg.version !== version
      ? { package: platformPkg.name, found: platformPkg.version, expected: version }
      : null;
  return new DeviceError(
    ErrorCode.NO_BINARY,
    `Could not load the ${spec.packageName} native addon for ${key} (glibc ${glibc ?? 'n/a'}, Node ${process.version}). Tried:\n${lines.join('\n')}\n`,
    {
      fix: `Possible solutions:\n${fixes.map((f) => `- ${f}`).join('\n')}`,
      details: {
        platform: key,
        glibc,
        requiredGlibc,
        attempts,
        package: spec.packageName,
        version,
        platformPackage: platformPkg?.name ?? null,
        versionMismatch: mismatch,
      },
    },
  );
}

function tryLoad<A extends GemmAddon>(spec: AddonBinarySpec, path: string): { addon: A } | { error: string } {
  const require = createRequire(join(spec.packageRoot, 'package.json'));
  try {
    const addon = require(path) as A;
    if (typeof addon.planLaunch !== 'function' || typeof addon.probe !== 'function') {
      return { error: `loaded, but it is not a ${spec.packageName} addon (no planLaunch/probe export)` };
    }
    // Another addon's binary has the same exports: an env override pointing at the wrong file must not run it.
    const expected = spec.binaryName.replace(/\.node$/, '');
    if (typeof addon.addon === 'string' && addon.addon !== expected) {
      return { error: `loaded, but it is ${addon.addon}, not ${expected}` };
    }
    return { addon };
  } catch (err) {
    return { error: describeFailure(path, err) };
  }
}

/**
 * Loads an addon binary from the first candidate that yields one: MARLIN_<NAME>_BINARY, build/Release, the platform
 * package (only at the addon's own version), the `marlin build` cache; or from `paths` when given. Throws DeviceError
 * NO_BINARY listing every attempt and the possible solutions. Loading needs no GPU (static cudart, driver dlopen'ed
 * lazily).
 */
export function loadAddonBinary<A extends GemmAddon = GemmAddon>(
  spec: AddonBinarySpec,
  paths?: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  host: HostPlatform = currentHost(),
): LoadedBinary<A> {
  const candidates: Candidate[] =
    paths?.map((path) => ({ path, source: 'env' as const, error: null })) ?? addonCandidates(spec, env, host);
  const attempts: LoadAttempt[] = [];
  for (const c of candidates) {
    const source = paths === undefined ? { source: c.source } : {};
    if (c.error !== null) {
      attempts.push({ path: c.path, error: c.error, ...source });
      continue;
    }
    const r = tryLoad<A>(spec, c.path);
    if ('addon' in r) {
      attempts.push({ path: c.path, error: null, ...source });
      return { addon: r.addon, path: c.path, attempts };
    }
    attempts.push({ path: c.path, error: r.error, ...source });
  }
  throw addonNoBinaryError(spec, attempts, host.glibc, { host, env });
}
