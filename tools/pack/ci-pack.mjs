#!/usr/bin/env node
// The packaging step of .ci/run (issue 19): pack every public package as a user gets it, install the tarballs into
// empty projects with npm and no CUDA on PATH, and prove they work there. Needs the addons' build/Release binaries and
// every dist/ (the earlier `pnpm test` builds them). Prints one line per check; exits 1 on the first failure.
//
//   1. `pnpm pack` of each public workspace package (prepack fills the platform packages' .node and the addons'
//      dist/source); publint --strict on each tarball, attw (esm-only profile) on each typed one.
//   2. Binary check of each platform package (check-binary.mjs): glibc floor, no dynamic CUDA libraries, fatbin
//      targets as declared, size budget.
//   3. npm install of all tarballs: ESM import and CJS require of each package, one @marlin/core instance for both,
//      the CPU path, the binary loaded from the platform package, a `module: nodenext` consumer typechecked, and
//      `marlin build` saying nvcc is missing.
//   4. npm install --omit=optional: no platform package, and the documented NO_BINARY error with its solutions.
// The addons are found, not listed (workspace.mjs: packages with a "binary" field, their optionalDependencies).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { checkPlatformPackage } from './check-binary.mjs';
import { addonPackages, packAll } from './workspace.mjs';

const repo = join(import.meta.dirname, '..', '..');
const bin = (name) => join(repo, 'node_modules', '.bin', name);
const work = mkdtempSync(join(tmpdir(), 'marlin-pack-'));
const tarballs = join(work, 'tarballs');
mkdirSync(tarballs);
// biome-ignore lint/suspicious/noUndeclaredEnvVars: a debugging switch of this script, read by no turbo task.
const keep = process.env.MARLIN_PACK_KEEP === '1';
let failed = false;

function ok(msg) {
  console.log(`  ok   ${msg}`);
}
function fail(msg, detail = '') {
  console.error(`  FAIL ${msg}${detail ? `\n${detail.trim().replace(/^/gm, '       ')}` : ''}`);
  failed = true;
}
function check(cond, msg, detail) {
  if (cond) ok(msg);
  else fail(msg, detail);
  return cond;
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20, ...opts });
  return {
    status: r.status,
    out: `${r.stdout ?? ''}${r.stderr ?? ''}`,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
  };
}
function finish() {
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`  (kept ${work})`);
  process.exit(failed ? 1 : 0);
}
function section(name) {
  console.log(`\n--- ${name}`);
}

// A user's machine: no CUDA toolkit on PATH, an empty build cache, no binary override.
const cleanPath = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((d) => d !== '' && !existsSync(join(d, 'nvcc')))
  .join(delimiter);
const userEnv = { ...process.env, PATH: cleanPath, XDG_CACHE_HOME: join(work, 'cache'), npm_config_loglevel: 'error' };
for (const k of Object.keys(userEnv)) {
  if (
    /^MARLIN_.*_BINARY$|^MARLIN_CACHE_DIR$|^CUDACXX$|^NODE_PATH$|^npm_config_(?!cache$|registry$|loglevel$)/.test(k)
  ) {
    delete userEnv[k];
  }
}

// ---- 1. pack
section('pack');
const { packs, failures } = packAll(tarballs, repo);
for (const f of failures) fail(`pnpm pack ${f.name}`, f.out);
for (const p of packs) ok(`pnpm pack ${p.name}`);
// The native addons (packages/* with a "binary" field) and the platform packages that carry their binaries.
const addons = addonPackages(repo).filter((a) => !a.private);
for (const a of addons) {
  const missing = a.platformPackages.length === 0 ? ['(none listed)'] : a.platformPackages;
  check(
    a.platformPackages.length > 0 && a.platformPackages.every((n) => packs.some((p) => p.platform && p.name === n)),
    `${a.name}: platform package ${a.platformPackages.join(', ')} packed (optionalDependencies)`,
    `not packed: ${missing.filter((n) => !packs.some((p) => p.name === n)).join(', ')}`,
  );
}
if (failed) finish();
const listing = (tgz) => execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
for (const p of packs) {
  const files = listing(p.tgz);
  const kib = (statSync(p.tgz).size / 1024).toFixed(0);
  check(files.includes('package/README.md'), `${p.name}: ${files.length} files, ${kib} KiB tarball, README.md`);
  const addon = addons.find((a) => a.name === p.name);
  if (addon !== undefined) {
    const short = addon.short;
    const need = [
      'package/dist/source/manifest.json',
      'package/dist/source/native/cmake/MarlinAddon.cmake',
      'package/dist/source/tools/gen-kernel-instances.mjs',
      'package/dist/source/packages/core/src/dispatch/kernel-table.json',
      `package/dist/source/packages/${short}/CMakeLists.txt`,
      `package/dist/source/packages/${short}/native/binding.cc`,
    ];
    const missing = need.filter((f) => !files.includes(f));
    check(missing.length === 0, `${p.name}: ships the native sources for marlin build`, missing.join('\n'));
  }
  const r = run(bin('publint'), ['run', p.tgz, '--strict'], { cwd: work });
  check(r.status === 0, `publint --strict ${p.name}`, r.out);
  if (p.typed) {
    const a = run(bin('attw'), [p.tgz, '--profile', 'esm-only', '--format', 'table-flipped'], { cwd: work });
    check(a.status === 0, `attw --profile esm-only ${p.name}`, a.out);
  }
}

// ---- 2. binaries
section('binaries');
const sizes = {};
for (const p of packs.filter((x) => x.platform)) {
  const x = join(work, 'extract', p.name.replace('/', '_'));
  mkdirSync(x, { recursive: true });
  execFileSync('tar', ['xzf', p.tgz, '-C', x]);
  const r = checkPlatformPackage(join(x, 'package'));
  const f = r.facts;
  sizes[p.name] = { unpackedMiB: f.sizeMiB, tarballMiB: Number((statSync(p.tgz).size / 2 ** 20).toFixed(2)) };
  const targets = Object.keys(f.targets ?? {}).join(' ');
  check(
    r.ok,
    `${p.name}: ${f.binary} ${f.sizeMiB} MiB (budget ${f.budgetMiB}, tarball ${sizes[p.name].tarballMiB} MiB), GLIBC_${f.maxGlibc} <= ${f.glibcFloor}, NEEDED ${f.needed?.join(' ')}, targets ${targets}`,
    r.problems.join('\n'),
  );
}

// ---- 3. a user's project with every tarball
section('npm install (all tarballs, no CUDA on PATH)');
const project = (name) => {
  const d = join(work, name);
  mkdirSync(d);
  writeFileSync(join(d, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
  return d;
};
// Found on the caller's PATH: the user PATH below drops every folder holding nvcc, which may hold npm too.
const npmBin =
  (process.env.PATH ?? '')
    .split(delimiter)
    .map((d) => join(d, 'npm'))
    .find((p) => existsSync(p)) ?? 'npm';
const npmInstall = (cwd, args) =>
  run(npmBin, ['install', '--no-audit', '--no-fund', '--ignore-scripts=false', ...args], { cwd, env: userEnv });
const app = project('app');
const inst = npmInstall(
  app,
  packs.map((p) => p.tgz),
);
if (!check(inst.status === 0, 'npm install of every tarball', inst.out)) finish();
const platformsInstalled = readdirSync(join(app, 'node_modules', '@marlin')).filter((n) => n.includes('-linux-'));
check(
  platformsInstalled.length === packs.filter((p) => p.platform).length,
  `platform packages installed: ${platformsInstalled.join(', ')}`,
);
const node = (cwd, args, env = userEnv) => run(process.execPath, args, { cwd, env });

// The CPU path of the GEMM addons (Linear.fromFloat options per addon); every addon is imported and probed.
const CPU_GEMM = { dense: { bits: 4, groupSize: 64 }, fp8: {} };
const addonNames = addons.map((a) => a.short);
const esm = `
import * as core from '@marlin/core';
import { referenceGemm } from '@marlin/core/reference';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const out = {};
// One instance of core whether loaded by require or import.
out.oneCore = require('@marlin/core') === core && require('@marlin/core').MarlinError === core.MarlinError;
// The CPU path: no GPU, no binary needed.
const K = 128, N = 64, M = 3;
const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37));
const xs = Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 0.11));
const x = { data: core.toHalfBits(xs, 'fp16'), shape: [M, K], dtype: 'fp16' };
const cpuGemm = ${JSON.stringify(CPU_GEMM)};
for (const name of ${JSON.stringify(addonNames)}) {
  const mod = await import('@marlin/' + name);
  const opts = cpuGemm[name];
  if (opts !== undefined) {
    const layer = mod.Linear.fromFloat(w, { inFeatures: K, outFeatures: N, device: 'cpu', ...opts });
    const y = mod.gemm(x, layer.packed, { device: 'cpu' });
    const ref = referenceGemm(x.data, layer.packed, { M, dtype: 'fp16' });
    out[name + 'Cpu'] = y.shape.join('x') === M + 'x' + N && y.data.every((v, i) => v === ref.bits[i]);
  }
  const p = mod.probe();
  out[name + 'Binary'] = p.binaryPath;
  out[name + 'Probe'] = p.ok ? 'ok' : p.error?.code;
}
console.log(JSON.stringify(out));
`;
const e = node(app, ['--input-type=module', '-e', esm]);
let res = null;
try {
  res = JSON.parse(e.stdout.trim().split('\n').at(-1));
} catch {
  fail(`ESM import of @marlin/core, /reference, ${addonNames.join(', ')}`, e.out);
}
if (res) {
  check(res.oneCore, 'ESM import + CJS require of @marlin/core give one instance (one registry, one MarlinError)');
  for (const k of addonNames) {
    if (k in CPU_GEMM) {
      check(
        res[`${k}Cpu`] === true,
        `@marlin/${k}: Linear.fromFloat + gemm(..., { device: 'cpu' }) equals referenceGemm`,
      );
    }
    check(
      typeof res[`${k}Binary`] === 'string' && res[`${k}Binary`].includes(`node_modules/@marlin/${k}-linux-x64-gnu/`),
      `@marlin/${k}: binary loaded from the platform package (probe: ${res[`${k}Probe`]})`,
      JSON.stringify(res),
    );
  }
}
const cjs = `
const core = require('@marlin/core');
const mods = ${JSON.stringify(addonNames)}.map((n) => require('@marlin/' + n));
const ok = mods.every((m) => typeof m.probe === 'function') && typeof core.pack === 'function';
process.stdout.write(String(ok));
`;
const c = node(app, ['-e', cjs]);
check(c.status === 0 && c.stdout === 'true', `CJS require of @marlin/core, ${addonNames.join(', ')}`, c.out);

writeFileSync(
  join(app, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      lib: ['es2023', 'esnext.disposable'],
      strict: true,
      noEmit: true,
      types: ['node'],
      typeRoots: [join(repo, 'node_modules', '@types')],
    },
    files: ['consumer.ts'],
  }),
);
writeFileSync(
  join(app, 'consumer.ts'),
  `import { type PackedWeight, MarlinError, toHalfBits } from '@marlin/core';
import { gemm, Linear, probe, type DenseProbe } from '@marlin/dense';
import * as fp8 from '@marlin/fp8';
const w = new Float32Array(64 * 128);
const layer = Linear.fromFloat(w, { inFeatures: 128, outFeatures: 64, bits: 4, groupSize: 64, device: 'cpu' });
const packed: PackedWeight = layer.packed;
const y = gemm({ data: toHalfBits(new Float32Array(128), 'fp16'), shape: [1, 128], dtype: 'fp16' }, packed, { device: 'cpu' });
const shape: readonly number[] = y.shape;
const p: DenseProbe = probe();
const q: ReturnType<typeof fp8.probe> | undefined = undefined;
export const facts = { shape, ok: p.ok, isError: p.error instanceof MarlinError, q };
`,
);
const t = run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
  cwd: app,
});
check(t.status === 0, 'a consumer typechecks under module: nodenext', t.out);

const b = node(app, [join(app, 'node_modules', '@marlin', 'core', 'dist', 'cli.js'), 'build', 'fp8', '--dry-run']);
check(
  b.status === 1 && /nvcc: (not found|not on PATH)/.test(b.out) && !/sources:/.test(b.out),
  'npx marlin build fp8 without CUDA on PATH: exit 1 naming nvcc (sources found in the package)',
  b.out,
);

// ---- 4. optional dependencies omitted
section('npm install --omit=optional');
const bare = project('bare');
const inst2 = npmInstall(bare, ['--omit=optional', ...packs.filter((p) => !p.platform).map((p) => p.tgz)]);
if (check(inst2.status === 0, 'npm install --omit=optional of the addon tarballs', inst2.out)) {
  const names = readdirSync(join(bare, 'node_modules', '@marlin'));
  check(!names.some((n) => n.includes('-linux-')), `no platform package installed (${names.join(', ')})`);
  const script = `
import * as dense from '@marlin/dense';
import { ErrorCode, MarlinError } from '@marlin/core';
const p = dense.probe();
let thrown = null;
try { dense.loadDenseBinary(); } catch (e) { thrown = e; }
console.log(JSON.stringify({ probe: p.error?.code, code: thrown?.code, typed: thrown instanceof MarlinError, message: thrown?.message }));
`;
  const r = node(bare, ['--input-type=module', '-e', script]);
  let o = null;
  try {
    o = JSON.parse(r.stdout.trim().split('\n').at(-1));
  } catch {
    fail('import @marlin/dense without its platform package', r.out);
  }
  if (o) {
    const msg = o.message ?? '';
    check(
      o.probe === 'MARLIN_E_NO_BINARY' && o.code === 'MARLIN_E_NO_BINARY' && o.typed,
      'probe() and the loader give MARLIN_E_NO_BINARY',
    );
    const expected = [
      'Could not load the @marlin/dense native addon for linux-x64-gnu',
      '[platform] @marlin/dense-linux-x64-gnu/marlin_dense.node: @marlin/dense-linux-x64-gnu is not installed',
      'Possible solutions:',
      'npm install --include=optional @marlin/dense',
      'npm install --os=linux --cpu=x64 --libc=glibc @marlin/dense',
      'npx marlin build dense',
    ];
    const missing = expected.filter((s) => !msg.includes(s));
    check(
      missing.length === 0,
      'the error is the documented one (causes and fixes)',
      `missing: ${missing.join(' | ')}\n${msg}`,
    );
  }
  // Every addon, the same way: probe() names the missing platform package and the build-from-source fix.
  const each = `
const out = {};
for (const name of ${JSON.stringify(addonNames)}) {
  const p = (await import('@marlin/' + name)).probe();
  out[name] = { code: p.error?.code, message: p.error?.message ?? '' };
}
console.log(JSON.stringify(out));
`;
  const r2 = node(bare, ['--input-type=module', '-e', each]);
  let all = null;
  try {
    all = JSON.parse(r2.stdout.trim().split('\n').at(-1));
  } catch {
    fail(`import ${addonNames.join(', ')} without their platform packages`, r2.out);
  }
  for (const a of all === null ? [] : addons) {
    const got = all[a.short] ?? {};
    const want = [`${a.platformPackages[0]} is not installed`, `npx marlin build ${a.short}`];
    check(
      got.code === 'MARLIN_E_NO_BINARY' && want.every((w) => got.message.includes(w)),
      `${a.name}: probe() gives MARLIN_E_NO_BINARY naming ${a.platformPackages[0]}`,
      JSON.stringify(got),
    );
  }
}

console.log(`\n::: platform package sizes ${JSON.stringify(sizes)}`);
finish();
