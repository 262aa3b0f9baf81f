// The workspace's shipped packages, found from their package.json files, so an addon added under packages/ (with its
// platform package under npm/) is packed, checked and bundled with no list to edit. Used by ci-pack.mjs and
// tools/gpu-bundle/build.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '..', '..');

/** Every folder of `top` (packages, npm, tools) holding a package.json, with the parsed manifest. */
export function workspacePackages(top, repo = repoRoot) {
  const base = join(repo, top);
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .sort()
    .map((d) => join(base, d))
    .filter((d) => existsSync(join(d, 'package.json')))
    .map((dir) => ({ dir, pkg: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) }));
}

/** The public packages: packages/* and npm/* without "private": true. */
export function publicPackages(repo = repoRoot) {
  return ['packages', 'npm'].flatMap((top) => workspacePackages(top, repo)).filter((p) => p.pkg.private !== true);
}

/**
 * The native addons: workspace packages with a "binary" field (node-addon-api's napi_versions), each building
 * build/Release/marlin_<folder>.node, loadable from MARLIN_<FOLDER>_BINARY. `tops` defaults to the public addons
 * (packages/); tools adds the benchmark harness.
 */
export function addonPackages(repo = repoRoot, tops = ['packages']) {
  return tops
    .flatMap((top) => workspacePackages(top, repo))
    .filter((p) => p.pkg.binary !== undefined)
    .map(({ dir, pkg }) => {
      const short = dir.split('/').at(-1);
      return {
        name: pkg.name,
        short,
        dir,
        private: pkg.private === true,
        binary: `marlin_${short}.node`,
        envVar: `MARLIN_${short.toUpperCase()}_BINARY`,
        platformPackages: Object.keys(pkg.optionalDependencies ?? {}),
      };
    });
}

/**
 * `pnpm pack` of every public package into `dest` (prepack fills the platform packages' .node and the addons'
 * dist/source). Returns the tarballs and the packages that failed (with pnpm's output).
 */
export function packAll(dest, repo = repoRoot) {
  const packs = [];
  const failures = [];
  for (const { dir, pkg } of publicPackages(repo)) {
    const r = spawnSync('pnpm', ['pack', '--pack-destination', dest], {
      cwd: dir,
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    });
    const tgz = join(dest, `${pkg.name.replace('@', '').replace('/', '-')}-${pkg.version}.tgz`);
    if (r.status !== 0 || !existsSync(tgz)) {
      failures.push({ name: pkg.name, out: `${r.stdout ?? ''}${r.stderr ?? ''}` });
      continue;
    }
    packs.push({
      name: pkg.name,
      dir,
      tgz,
      platform: pkg.os !== undefined,
      typed: pkg.types !== undefined,
      addon: pkg.binary !== undefined,
    });
  }
  return { packs, failures };
}
