#!/usr/bin/env node
// Builds a self-contained folder for a GPU host that has no Node and no npm:
//   node.xz            the Node binary of this machine (xz, cached once in <repo>/.cache/node.xz)
//   marlin_<addon>.node every addon: the packages/* and tools/* with a "binary" field (tools/pack/workspace.mjs), each
//                      built with `pnpm --filter <package> build:native` if missing; marlin_bench.node is the
//                      benchmark harness (tools/bench)
//   suite/             the GPU suite; suite/marlin.mjs is @marlin/core and every addon in one ESM file
//   bench/bench.mjs    the benchmark CLI (tools/bench) bundled into one file, when present
//   installed/         with --installed: the packed tarballs (platform packages included) npm-installed here into an
//                      empty project, and the unbundled suite in installed/suite, which imports them from there
//   run.sh             `bash run.sh suite | installed | bench [args] | all`
// Usage: node tools/gpu-bundle/build.mjs [outDir=<repo>/.bundle] [--installed [tarball folder]]
//   --installed alone packs every public package first (needs `pnpm build`); with a folder, installs its *.tgz.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonPackages, packAll, workspacePackages } from '../pack/workspace.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const installedAt = args.indexOf('--installed');
const installed = installedAt >= 0;
const tarballArg = installed && args[installedAt + 1] !== undefined && !args[installedAt + 1].startsWith('--');
const tarballDir = tarballArg ? resolve(args[installedAt + 1]) : null;
const positional = args.filter((a, i) => !a.startsWith('--') && !(tarballArg && i === installedAt + 1));
const out = resolve(positional[0] ?? join(root, '.bundle'));
const cache = join(root, '.cache');
// What the carry of a device run takes (64 MiB), less room for the results it brings back.
const LIMIT_MIB = 60;
const log = (msg) => console.log(`gpu-bundle: ${msg}`);
const die = (msg) => {
  console.error(`gpu-bundle: ${msg}`);
  process.exit(1);
};

// esbuild ships with tsup (a root devDependency).
const requireFromTsup = createRequire(createRequire(join(root, 'package.json')).resolve('tsup'));
const esbuild = requireFromTsup('esbuild');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'suite'), { recursive: true });

// 1. Node binary, xz-compressed once (about 80 s on 2 cores).
mkdirSync(cache, { recursive: true });
const nodeXz = join(cache, 'node.xz');
if (!existsSync(nodeXz) || statSync(nodeXz).size === 0) {
  log(`compressing ${process.execPath} -> ${relative(root, nodeXz)} (once; ~80 s)`);
  const tmp = `${nodeXz}.tmp`;
  execFileSync('sh', ['-c', `xz -T2 -9 -c "${process.execPath}" > "${tmp}" && mv "${tmp}" "${nodeXz}"`], {
    stdio: 'inherit',
  });
}
copyFileSync(nodeXz, join(out, 'node.xz'));

// 2. The addons (run.sh points MARLIN_<NAME>_BINARY at each).
const ADDONS = addonPackages(root, ['packages', 'tools']);
for (const a of ADDONS) {
  const built = join(a.dir, 'build/Release', a.binary);
  if (!existsSync(built)) {
    log(`${a.binary} missing: running pnpm --filter ${a.name} build:native`);
    const r = spawnSync('pnpm', ['--filter', a.name, 'build:native'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) die(`build:native of ${a.name} failed`);
  }
}
log(`addons: ${ADDONS.map((a) => a.binary).join(', ')}`);

// 3. --installed: the packed tarballs installed with npm into an empty project, as a user installs them.
/** Addon -> the binary file its repository-mode run uses, relative to the bundle. */
const binaryIn = new Map();
if (installed) {
  let tgzDir = tarballDir;
  if (tgzDir === null) {
    tgzDir = mkdtempSync(join(tmpdir(), 'marlin-bundle-pack-'));
    log(`packing every public package into ${tgzDir}`);
    const { failures } = packAll(tgzDir, root);
    for (const f of failures) console.error(f.out);
    if (failures.length > 0)
      die(`pnpm pack failed for ${failures.map((f) => f.name).join(', ')} (run pnpm build first)`);
  }
  const tgzs = readdirSync(tgzDir)
    .filter((f) => f.endsWith('.tgz'))
    .map((f) => join(tgzDir, f));
  if (tgzs.length === 0) die(`${tgzDir} holds no .tgz`);
  const project = join(out, 'installed');
  mkdirSync(project, { recursive: true });
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'marlin-installed', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
  );
  log(`npm install of ${tgzs.length} tarballs into ${relative(root, project)}`);
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--no-bin-links', ...tgzs], {
    cwd: project,
    stdio: 'inherit',
  });
  if (r.status !== 0) die('npm install of the tarballs failed');
  if (tarballDir === null) rmSync(tgzDir, { recursive: true, force: true });
  // The suite unbundled: its marlin.mjs imports @marlin/* from installed/node_modules.
  mkdirSync(join(project, 'suite'));
  for (const f of readdirSync(join(root, 'tools/gpu-suite'))) {
    if (f.endsWith('.mjs')) copyFileSync(join(root, 'tools/gpu-suite', f), join(project, 'suite', f));
  }
  for (const a of ADDONS.filter((x) => !x.private)) {
    const platform = a.platformPackages[0];
    const inTree = platform && join(project, 'node_modules', platform, a.binary);
    if (!inTree || !existsSync(inTree)) die(`${a.name}: ${platform ?? 'no platform package'} not installed`);
    // The same build in both places: the repository-mode run reads the installed copy (one copy in the bundle).
    const same = readFileSync(inTree).equals(readFileSync(join(a.dir, 'build/Release', a.binary)));
    if (same) binaryIn.set(a.short, relative(out, inTree));
  }
  // Which binary each addon loaded: the platform package's, or the run fails (run.sh installed).
  writeFileSync(
    join(project, 'check-installed.mjs'),
    `// Imports every addon as a user would and fails unless its binary came from its platform package.
const addons = ${JSON.stringify(ADDONS.filter((a) => !a.private).map((a) => ({ name: a.name, platform: a.platformPackages[0] })))};
let bad = 0;
for (const a of addons) {
  const p = (await import(a.name)).probe();
  const ok = typeof p.binaryPath === 'string' && p.binaryPath.includes('/node_modules/' + a.platform + '/');
  console.log(\`\${ok ? 'ok  ' : 'FAIL'} \${a.name}: binary \${p.binaryPath ?? 'none'} (\${p.ok ? 'probe ok' : p.error?.code})\`);
  if (!ok) bad++;
}
process.exit(bad === 0 ? 0 : 1);
`,
  );
}
for (const a of ADDONS) {
  if (binaryIn.has(a.short)) continue;
  copyFileSync(join(a.dir, 'build/Release', a.binary), join(out, a.binary));
  binaryIn.set(a.short, a.binary);
}

// 4. Single-file ESM bundles from the TypeScript sources (no dist/ or node_modules needed on the GPU host).
const alias = Object.fromEntries(
  workspacePackages('packages', root)
    .filter((p) => existsSync(join(p.dir, 'src/index.ts')))
    .map((p) => [p.pkg.name, join(p.dir, 'src/index.ts')]),
);
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  alias,
  // CommonJS dependencies bundled into ESM still call require() for Node builtins.
  banner: {
    js: "import { createRequire as __marlinCreateRequire } from 'node:module'; const require = __marlinCreateRequire(import.meta.url);",
  },
};
await esbuild.build({
  ...common,
  entryPoints: [join(root, 'tools/gpu-suite/marlin.mjs')],
  outfile: join(out, 'suite/marlin.mjs'),
});
for (const f of readdirSync(join(root, 'tools/gpu-suite'))) {
  if (f.endsWith('.mjs') && f !== 'marlin.mjs') copyFileSync(join(root, 'tools/gpu-suite', f), join(out, 'suite', f));
}
const benchEntry = join(root, 'tools/bench/src/bin.ts');
if (existsSync(benchEntry)) {
  mkdirSync(join(out, 'bench'), { recursive: true });
  await esbuild.build({ ...common, entryPoints: [benchEntry], outfile: join(out, 'bench/bench.mjs') });
} else {
  log('tools/bench/src/bin.ts not found: bundle has no bench');
}

// 5. run.sh
const exports = ADDONS.map((a) => `export ${a.envVar}="$here/${binaryIn.get(a.short)}"`).join('\n');
const unset = ADDONS.map((a) => a.envVar).join(' ');
writeFileSync(
  join(out, 'run.sh'),
  `#!/usr/bin/env bash
# Runs the Marlin GPU suite and/or benchmark on a GPU host without Node:
#   bash run.sh suite [file filter]      the suite against the repository's sources and binaries
#   bash run.sh installed [file filter]  the suite against the npm-installed tarballs (bundles built with --installed)
#   bash run.sh bench [args]             the benchmark
#   bash run.sh all [bench args]         the suite once (installed when the bundle has it, else suite), then bench
# Env: OUT (results folder; default ./out next to this script), MARLIN_REQUIRE_GPU (default 1: no GPU = failure).
set -uo pipefail
here="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
node_bin="\${MARLIN_NODE:-\${TMPDIR:-/tmp}/marlin-node-$(id -u)}"
if [ ! -x "$node_bin" ]; then
  xz -dc "$here/node.xz" > "$node_bin.tmp" && chmod +x "$node_bin.tmp" && mv "$node_bin.tmp" "$node_bin" || { echo "run.sh: cannot unpack node.xz (is xz installed?)" >&2; exit 2; }
fi
${exports}
export MARLIN_REQUIRE_GPU="\${MARLIN_REQUIRE_GPU:-1}"
export OUT="\${OUT:-$here/out}"
mkdir -p "$OUT"
cmd="\${1:-all}"; shift || true
status=0
run_suite() { "$node_bin" "$here/suite/run.mjs" "$@" || status=1; }
# As a user's project: no binary override and an empty build cache, so each addon loads its platform package.
run_installed() {
  if [ ! -d "$here/installed/node_modules" ]; then echo "run.sh: this bundle has no installed/ (build it with --installed)" >&2; status=1; return; fi
  ( unset ${unset} MARLIN_CACHE_DIR
    export XDG_CACHE_HOME="$OUT/installed-cache"
    cd "$here/installed" && "$node_bin" check-installed.mjs && "$node_bin" suite/run.mjs "$@" ) || status=1
}
run_bench() {
  if [ -f "$here/bench/bench.mjs" ]; then "$node_bin" "$here/bench/bench.mjs" "$@" || status=1;
  else echo "run.sh: this bundle has no bench" >&2; status=1; fi
}
echo "run.sh: node $("$node_bin" --version), OUT=$OUT"
case "$cmd" in
  suite) run_suite "$@" ;;
  installed) run_installed "$@" ;;
  bench) run_bench "$@" ;;
  all) if [ -d "$here/installed/node_modules" ]; then run_installed; else run_suite; fi; run_bench "$@" ;;
  *) echo "usage: bash run.sh suite [file filter] | installed [file filter] | bench [args] | all [bench args]" >&2; exit 2 ;;
esac
exit $status
`,
);
chmodSync(join(out, 'run.sh'), 0o755);

// 6. Size report.
let total = 0;
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else total += statSync(p).size;
  }
};
walk(out);
const mode = installed ? 'installed' : 'all';
log(
  `wrote ${out} (${(total / 2 ** 20).toFixed(1)} MiB). On the GPU host: bash ${relative(root, out) || '.'}/run.sh ${mode}`,
);
if (total > LIMIT_MIB * 2 ** 20) die(`bundle is ${(total / 2 ** 20).toFixed(1)} MiB, over ${LIMIT_MIB} MiB`);
