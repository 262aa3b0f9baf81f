/**
 * Where the addons under test are: the binaries marlin_bench.node opens by path (dlopen) to time their kernels
 * (@marlin/dense, @marlin/fp8, @marlin/sparse, and @marlin/moe for the MoE layers).
 *
 * Each addon's own loader knows its binary best (its explicit-path variable, its build folder, later its platform
 * package), so the path comes first from the package: `probe().binaryPath` of @marlin/dense / @marlin/fp8 (the file
 * Node loaded; the harness's dlopen of the same path shares that instance). When the package cannot be imported or
 * finds no binary, the bench looks where a checkout or the GPU bundle keeps one: $MARLIN_DENSE_BINARY /
 * $MARLIN_FP8_BINARY, next to the bench script (the bundle), packages/<name>/build/Release under the repository root.
 * An addon found nowhere is `unavailable` with every reason: its rows are reported as such, not as failures.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AddonPrefix } from './native.js';
import type { AddonId } from './protocol.js';

/** What locating a binary needs: its package, file name, explicit-path variable and packages/<id> folder. */
export interface LocatableAddon {
  readonly id: string;
  readonly packageName: string;
  readonly file: string;
  readonly envVar: string;
}

export interface AddonSpec extends LocatableAddon {
  readonly id: AddonId;
  readonly packageName: '@marlin/dense' | '@marlin/fp8' | '@marlin/sparse';
  readonly prefix: AddonPrefix;
}

export const ADDONS: Readonly<Record<AddonId, AddonSpec>> = {
  dense: {
    id: 'dense',
    packageName: '@marlin/dense',
    prefix: 'marlin_dense',
    file: 'marlin_dense.node',
    envVar: 'MARLIN_DENSE_BINARY',
  },
  fp8: {
    id: 'fp8',
    packageName: '@marlin/fp8',
    prefix: 'marlin_fp8',
    file: 'marlin_fp8.node',
    envVar: 'MARLIN_FP8_BINARY',
  },
  sparse: {
    id: 'sparse',
    packageName: '@marlin/sparse',
    prefix: 'marlin_sparse',
    file: 'marlin_sparse.node',
    envVar: 'MARLIN_SPARSE_BINARY',
  },
};

/** @marlin/moe's binary: opened by benchLoadMoe (its own C ABI, moe.h), not a GEMM addon. */
export const MOE_ADDON: LocatableAddon = {
  id: 'moe',
  packageName: '@marlin/moe',
  file: 'marlin_moe.node',
  envVar: 'MARLIN_MOE_BINARY',
};

export type AddonLocation =
  | { readonly path: string; readonly source: 'package' | 'env' | 'bundle' | 'repository' }
  | { readonly path: null; readonly reason: string };

/** What locating needs from the outside world; tests pass fakes. */
export interface LocateIo {
  /** Imports an addon package (rejects when it is not installed). */
  readonly importPackage: (name: string) => Promise<unknown>;
  readonly env: NodeJS.ProcessEnv;
  /** Folders of the bench script (the GPU bundle keeps the .node files beside it). */
  readonly scriptDirs: readonly string[];
  readonly repoRoot: string | null;
  readonly exists: (path: string) => boolean;
}

/** The loaded binary's path from the package's `probe()`, or why there is none. */
async function fromPackage(spec: LocatableAddon, io: LocateIo): Promise<{ path: string } | { reason: string }> {
  let mod: unknown;
  try {
    mod = await io.importPackage(spec.packageName);
  } catch (e) {
    return { reason: `${spec.packageName} is not importable (${firstLine(e)})` };
  }
  const probe = (mod as { probe?: unknown }).probe;
  if (typeof probe !== 'function') return { reason: `${spec.packageName} has no probe()` };
  try {
    const p = (probe as () => { binaryPath?: string | null; error?: { code?: string; message?: string } | null })();
    if (typeof p.binaryPath === 'string' && p.binaryPath !== '') return { path: p.binaryPath };
    const err = p.error;
    return {
      reason: `${spec.packageName} found no binary${err ? ` (${err.code ?? 'error'}: ${firstLine(err.message ?? '')})` : ''}`,
    };
  } catch (e) {
    return { reason: `${spec.packageName} probe() failed (${firstLine(e)})` };
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0] ?? msg;
}

/** Finds one addon's binary (see the file comment for the order). Never throws. */
export async function locateAddon(spec: LocatableAddon, io: LocateIo): Promise<AddonLocation> {
  const pkg = await fromPackage(spec, io);
  if ('path' in pkg) return { path: pkg.path, source: 'package' };
  const reasons = [pkg.reason];
  const candidates: { path: string; source: 'env' | 'bundle' | 'repository' }[] = [];
  const explicit = io.env[spec.envVar];
  if (explicit) candidates.push({ path: resolve(explicit), source: 'env' });
  for (const d of io.scriptDirs) candidates.push({ path: join(d, spec.file), source: 'bundle' });
  if (io.repoRoot) {
    candidates.push({
      path: join(io.repoRoot, 'packages', spec.id, 'build', 'Release', spec.file),
      source: 'repository',
    });
  }
  for (const c of candidates) {
    if (io.exists(c.path)) return c;
    reasons.push(`${c.path}: not found`);
  }
  return { path: null, reason: reasons.join('; ') };
}

export function defaultLocateIo(
  env: NodeJS.ProcessEnv,
  scriptDirs: readonly string[],
  repoRoot: string | null,
): LocateIo {
  return {
    // A computed specifier: @marlin/fp8 is optional (installing only one addon is supported).
    importPackage: (name) => import(/* @vite-ignore */ name),
    env,
    scriptDirs,
    repoRoot,
    exists: existsSync,
  };
}
