/**
 * Where the 2:4 series' second baseline, cuSPARSELt, may be: PyTorch's bundled copy (the nvidia-cusparselt wheel in a
 * site-packages folder, or torch/lib of older wheels), an explicit $MARLIN_CUSPARSELT_LIBRARY, and, in the harness,
 * the soname libcusparseLt.so.0 (LD_LIBRARY_PATH and the loader cache). marlin_bench.node opens the first that loads
 * (benchCusparseLtLoad); finding none is reported in the result, never a failure.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const CUSPARSELT_SONAME = 'libcusparseLt.so.0';

/** Library folders of the wheels that ship cuSPARSELt, relative to a site-packages folder. */
const LIBRARY_DIRS: readonly string[] = [
  'nvidia/cusparselt/lib', // nvidia-cusparselt-cu12 (torch 2.x cu12x wheels)
  'nvidia/cu13/lib', // the CUDA 13 wheels' shared folder
  'cusparselt/lib',
  'torch/lib', // wheels that bundled it inside torch
];

/** CUDA runtimes the wheels' libraries may need, relative to a site-packages folder: loaded for a retry only. */
const DEPENDENCIES: readonly string[] = ['nvidia/cuda_runtime/lib/libcudart.so.12', 'nvidia/cu13/lib/libcudart.so.13'];

/** cusparseLtGetProperty's version as printed: 701 -> "0.7.1". */
export function versionText(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 100)}.${v % 100}`;
}

export interface CusparseLtSearch {
  /** Existing library files to try, in order (the harness tries the soname after them). */
  readonly paths: readonly string[];
  /** Existing runtime libraries to preload when a candidate fails to load. */
  readonly deps: readonly string[];
}

export interface CusparseLtIo {
  readonly env: NodeJS.ProcessEnv;
  readonly exists: (path: string) => boolean;
  /** Entries of a folder ([] when unreadable). */
  readonly list: (dir: string) => readonly string[];
  /** The interpreter's sys.path entries ([] without a python3). */
  readonly pythonPath: () => readonly string[];
  readonly home: string;
}

/** Folders under `root`/lib named python3.* holding site-packages or dist-packages. */
function pythonDirs(io: CusparseLtIo, root: string): string[] {
  const out: string[] = [];
  for (const name of io.list(join(root, 'lib'))) {
    if (!/^python3(\.\d+)?$/.test(name)) continue;
    out.push(join(root, 'lib', name, 'site-packages'), join(root, 'lib', name, 'dist-packages'));
  }
  return out;
}

/** Site-packages folders to look in: python3's sys.path first, then the usual prefixes (PyTorch images: /opt/conda). */
export function sitePackages(io: CusparseLtIo): string[] {
  const dirs: string[] = [...io.pythonPath()];
  for (const v of ['VIRTUAL_ENV', 'CONDA_PREFIX']) {
    const root = io.env[v];
    if (root) dirs.push(...pythonDirs(io, root));
  }
  for (const root of ['/usr/local', '/usr', '/opt/conda']) dirs.push(...pythonDirs(io, root));
  dirs.push('/usr/lib/python3/dist-packages');
  dirs.push(...pythonDirs(io, join(io.home, '.local')));
  return [...new Set(dirs.filter((d) => d !== '' && io.exists(d)))];
}

/** The candidates, explicit path first; only files that exist. */
export function findCusparseLt(io: CusparseLtIo): CusparseLtSearch {
  const paths: string[] = [];
  const explicit = io.env['MARLIN_CUSPARSELT_LIBRARY'];
  if (explicit && io.exists(explicit)) paths.push(explicit);
  const deps: string[] = [];
  for (const site of sitePackages(io)) {
    for (const dir of LIBRARY_DIRS) {
      const p = join(site, dir, CUSPARSELT_SONAME);
      if (io.exists(p)) paths.push(p);
    }
    for (const dep of DEPENDENCIES) {
      const p = join(site, dep);
      if (io.exists(p)) deps.push(p);
    }
  }
  return { paths: [...new Set(paths)], deps: [...new Set(deps)] };
}

export function defaultCusparseLtIo(env: NodeJS.ProcessEnv): CusparseLtIo {
  return {
    env,
    exists: existsSync,
    list: (dir) => {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    },
    pythonPath: () => {
      try {
        const out = execFileSync('python3', ['-c', 'import json, sys; print(json.dumps(sys.path))'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
          timeout: 10_000,
        });
        const parsed: unknown = JSON.parse(out);
        return Array.isArray(parsed) ? parsed.filter((p): p is string => typeof p === 'string') : [];
      } catch {
        // No python3 (or a broken one): the fixed prefixes below still apply.
        return [];
      }
    },
    home: homedir(),
  };
}
