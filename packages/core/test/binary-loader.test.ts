// The binary loader's order and its NO_BINARY advice, with fake addon and platform packages in temp folders. The
// "binaries" are CommonJS files (binaryName *.cjs) so that require() loads them without native code.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AddonBinarySpec,
  addonCandidatePaths,
  addonNoBinaryError,
  DeviceError,
  defineAddon,
  ErrorCode,
  type HostPlatform,
  loadAddonBinary,
  marlinCacheDir,
  platformKey,
  platformPackageName,
} from '../src/index.js';
import { caught } from './addon-support.js';

const linux: HostPlatform = { platform: 'linux', arch: 'x64', glibc: '2.36' };
const BIN = 'marlin_fakeaddon.cjs';

let root: string;
let app: string;
let spec: AddonBinarySpec;
let env: NodeJS.ProcessEnv;

function fakeBinary(path: string, where: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `module.exports = { where: '${where}', planLaunch() {}, probe() {} };`);
}

function platformPackage(version: string, config: Record<string, unknown> = { glibc: '>=2.34' }): string {
  const dir = join(app, 'node_modules', '@marlin', 'fakeaddon-linux-x64-gnu');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: '@marlin/fakeaddon-linux-x64-gnu', version, config }),
  );
  return dir;
}

function load(host: HostPlatform = linux) {
  return loadAddonBinary(spec, undefined, env, host);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'marlin-loader-'));
  app = join(root, 'app');
  const pkgRoot = join(app, 'node_modules', '@marlin', 'fakeaddon');
  mkdirSync(pkgRoot, { recursive: true });
  writeFileSync(join(pkgRoot, 'package.json'), JSON.stringify({ name: '@marlin/fakeaddon', version: '1.2.3' }));
  spec = {
    packageName: '@marlin/fakeaddon',
    binaryName: BIN,
    envVar: 'MARLIN_FAKEADDON_BINARY',
    packageRoot: pkgRoot,
  };
  env = { XDG_CACHE_HOME: join(root, 'xdg') };
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('loader order: env variable, local build, platform package, build cache', () => {
  it('takes the first that exists and records every earlier attempt with its source', () => {
    const explicit = join(root, 'explicit', BIN);
    const local = join(spec.packageRoot, 'build', 'Release', BIN);
    const platform = join(platformPackage('1.2.3'), BIN);
    const cache = join(root, 'xdg', 'marlin', 'fakeaddon', '1.2.3', BIN);
    for (const [p, w] of [
      [explicit, 'env'],
      [local, 'local'],
      [platform, 'platform'],
      [cache, 'cache'],
    ] as const) {
      fakeBinary(p, w);
    }
    env.MARLIN_FAKEADDON_BINARY = explicit;
    expect(addonCandidatePaths(spec, env, linux)).toEqual([explicit, local, platform, cache]);
    const order: string[] = [];
    for (const p of [explicit, local, platform, cache]) {
      const b = load();
      expect(b.path).toBe(p);
      order.push((b.addon as unknown as { where: string }).where);
      expect(b.attempts.at(-1)).toMatchObject({ path: p, error: null });
      rmSync(p);
      // Node caches a loaded module by path; forget it as a new process would.
      delete createRequire(import.meta.url).cache[p];
    }
    expect(order).toEqual(['env', 'local', 'platform', 'cache']);
    const e = caught(() => load());
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect((e.details.attempts as { source: string }[]).map((a) => a.source)).toEqual([
      'env',
      'local',
      'platform',
      'cache',
    ]);
  });

  it('the cache folder follows MARLIN_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(marlinCacheDir({ MARLIN_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c');
    expect(marlinCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/marlin');
    expect(marlinCacheDir({})).toMatch(/\.cache\/marlin$/);
  });

  it('names the platform package by platform, arch and libc; none for hosts without a prebuilt', () => {
    expect(platformKey(linux)).toBe('linux-x64-gnu');
    expect(platformPackageName('@marlin/fp8', linux)).toBe('@marlin/fp8-linux-x64-gnu');
    expect(platformKey({ platform: 'linux', arch: 'x64', glibc: null })).toBe('linux-x64-musl');
    expect(platformPackageName('@marlin/fp8', { platform: 'linux', arch: 'x64', glibc: null })).toBeNull();
    expect(platformPackageName('@marlin/fp8', { platform: 'linux', arch: 'arm64', glibc: '2.39' })).toBeNull();
    expect(platformPackageName('@marlin/fp8', { platform: 'darwin', arch: 'arm64', glibc: null })).toBeNull();
  });
});

describe('platform package version must equal the addon version', () => {
  it('a mismatched platform package is skipped (not loaded) and the error says found vs required', () => {
    const dir = platformPackage('1.2.4');
    fakeBinary(join(dir, BIN), 'platform');
    const e = caught(() => load());
    expect(e).toBeInstanceOf(DeviceError);
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect(e.message).toContain(
      'version mismatch: @marlin/fakeaddon-linux-x64-gnu@1.2.4 is installed, @marlin/fakeaddon is 1.2.3',
    );
    expect(e.message).toContain('Version mismatch: found @marlin/fakeaddon-linux-x64-gnu@1.2.4, requires 1.2.3');
    expect(e.message).toContain('npm install @marlin/fakeaddon@1.2.3');
    expect(e.details.versionMismatch).toEqual({
      package: '@marlin/fakeaddon-linux-x64-gnu',
      found: '1.2.4',
      expected: '1.2.3',
    });
  });

  it('after a mismatch, a binary built with `marlin build` for this version still loads', () => {
    fakeBinary(join(platformPackage('1.2.4'), BIN), 'platform');
    const cache = join(root, 'xdg', 'marlin', 'fakeaddon', '1.2.3', BIN);
    fakeBinary(cache, 'cache');
    const b = load();
    expect(b.path).toBe(cache);
    expect(b.attempts.find((a) => a.source === 'platform')?.error).toMatch(/version mismatch/);
  });
});

describe('NO_BINARY explains the causes, sharp style', () => {
  it('platform package not installed: optional deps omitted, lockfile from another OS, mirror, build from source', () => {
    const e = caught(() => load());
    expect(e.message).toMatch(/^Could not load the @marlin\/fakeaddon native addon for linux-x64-gnu \(glibc 2\.36/);
    expect(e.message).toContain(
      '[platform] @marlin/fakeaddon-linux-x64-gnu/marlin_fakeaddon.cjs: @marlin/fakeaddon-linux-x64-gnu is not installed',
    );
    expect(e.message).toContain('Possible solutions:');
    expect(e.message).toContain('npm install --include=optional @marlin/fakeaddon');
    expect(e.message).toContain('npm install --os=linux --cpu=x64 --libc=glibc @marlin/fakeaddon');
    expect(e.message).toContain('supportedArchitectures');
    expect(e.message).toContain('npm view @marlin/fakeaddon-linux-x64-gnu@1.2.3 version');
    expect(e.message).toContain(`npx marlin build fakeaddon`);
    expect(e.message).toContain(join(root, 'xdg', 'marlin', 'fakeaddon', '1.2.3', BIN));
    expect(e.message).toContain('MARLIN_FAKEADDON_BINARY');
    expect(e.message).not.toContain('Version mismatch');
    expect(e.message).not.toContain('Found glibc');
  });

  it('glibc older than the platform package states: found and required, from its config.glibc', () => {
    platformPackage('1.2.3', { glibc: '>=2.35' });
    const e = caught(() => load({ ...linux, glibc: '2.31' }));
    expect(e.message).toContain('Found glibc 2.31, requires 2.35');
    expect(e.details.requiredGlibc).toBe('2.35');
    // A loader error naming a glibc symbol says it too, even when the version compares fine.
    const f = addonNoBinaryError(spec, [{ path: '/x.node', error: "version `GLIBC_2.38' not found" }], '2.36', {
      host: linux,
      env,
    });
    expect(f.message).toContain('Found glibc 2.36, requires 2.35');
  });

  it('a host without a prebuilt package is told which platforms have one, and no platform candidate is tried', () => {
    const mac: HostPlatform = { platform: 'darwin', arch: 'arm64', glibc: null };
    expect(addonCandidatePaths(spec, env, mac)).toHaveLength(2);
    const e = caught(() => load(mac));
    expect(e.message).toContain('prebuilt binaries for linux-x64 (glibc) only; this is darwin-arm64');
    expect(e.message).not.toContain('--include=optional');
    const musl = caught(() => load({ platform: 'linux', arch: 'x64', glibc: null }));
    expect(musl.message).toContain('this is linux-x64-musl');
  });

  it('Node run with --no-addons is named', () => {
    const e = addonNoBinaryError(spec, [], '2.36', { host: linux, env, execArgv: ['--no-addons'] });
    expect(e.message).toContain('--no-addons');
    const f = addonNoBinaryError(spec, [], '2.36', { host: linux, env: { NODE_OPTIONS: '--no-addons' }, execArgv: [] });
    expect(f.message).toContain('--no-addons');
    expect(addonNoBinaryError(spec, [], '2.36', { host: linux, env, execArgv: [] }).message).not.toContain(
      '--no-addons',
    );
  });
});

describe('defineAddon wires the loader', () => {
  it('an addon defined on the kit takes its version from package.json and looks for its platform package', () => {
    const kit = defineAddon({
      name: 'fakeaddon',
      packageName: '@marlin/fakeaddon',
      packageRoot: spec.packageRoot,
      binaryName: BIN,
      variants: ['fp8'],
    });
    expect(kit.spec.version).toBe('1.2.3');
    const paths = kit.candidatePaths(env);
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(paths).toContain(`@marlin/fakeaddon-linux-x64-gnu/${BIN}`);
    }
    expect(paths.at(-1)).toBe(join(root, 'xdg', 'marlin', 'fakeaddon', '1.2.3', BIN));
  });
});
