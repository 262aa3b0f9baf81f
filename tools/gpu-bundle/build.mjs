#!/usr/bin/env node
// Builds a self-contained folder for a GPU host that has no Node and no npm:
//   node.xz            the Node binary of this machine (xz, cached once in <repo>/.cache/node.xz)
//   marlin_dense.node  the addons (each built with `pnpm --filter <package> build:native` if missing)
//   marlin_fp8.node
//   marlin_bench.node  the benchmark harness addon (tools/bench)
//   suite/             the GPU suite; suite/marlin.mjs is @marlin/core + @marlin/dense + @marlin/fp8 in one ESM file
//   bench/bench.mjs    the benchmark CLI (tools/bench) bundled into one file, when present
//   run.sh             `bash run.sh suite | bench [args] | all`
// Usage: node tools/gpu-bundle/build.mjs [outDir=<repo>/.bundle]
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(process.argv[2] ?? join(root, '.bundle'));
const cache = join(root, '.cache');
const log = (msg) => console.log(`gpu-bundle: ${msg}`);

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

// 2. The addons: every addon package's binary, next to run.sh (run.sh points MARLIN_<NAME>_BINARY at each).
const ADDONS = [
  { pkg: '@marlin/dense', dir: 'packages/dense', file: 'marlin_dense.node' },
  { pkg: '@marlin/fp8', dir: 'packages/fp8', file: 'marlin_fp8.node' },
  // The benchmark's own harness addon (it calls the two above through their exported C ABI).
  { pkg: '@marlin/bench-tool', dir: 'tools/bench', file: 'marlin_bench.node' },
];
for (const a of ADDONS) {
  const addon = join(root, a.dir, 'build/Release', a.file);
  if (!existsSync(addon)) {
    log(`${a.file} missing: running pnpm --filter ${a.pkg} build:native`);
    const r = spawnSync('pnpm', ['--filter', a.pkg, 'build:native'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`build:native of ${a.pkg} failed`);
  }
  copyFileSync(addon, join(out, a.file));
}

// 3. Single-file ESM bundles from the TypeScript sources (no dist/ or node_modules needed on the GPU host).
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'warning',
  alias: {
    '@marlin/core': join(root, 'packages/core/src/index.ts'),
    '@marlin/dense': join(root, 'packages/dense/src/index.ts'),
    '@marlin/fp8': join(root, 'packages/fp8/src/index.ts'),
  },
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

// 4. run.sh
writeFileSync(
  join(out, 'run.sh'),
  `#!/usr/bin/env bash
# Runs the Marlin GPU suite and/or benchmark on a GPU host without Node: bash run.sh suite | bench [args] | all [bench args]
# Env: OUT (results folder; default ./out next to this script), MARLIN_REQUIRE_GPU (default 1: no GPU = failure).
set -uo pipefail
here="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
node_bin="\${MARLIN_NODE:-\${TMPDIR:-/tmp}/marlin-node-$(id -u)}"
if [ ! -x "$node_bin" ]; then
  xz -dc "$here/node.xz" > "$node_bin.tmp" && chmod +x "$node_bin.tmp" && mv "$node_bin.tmp" "$node_bin" || { echo "run.sh: cannot unpack node.xz (is xz installed?)" >&2; exit 2; }
fi
export MARLIN_DENSE_BINARY="$here/marlin_dense.node"
export MARLIN_FP8_BINARY="$here/marlin_fp8.node"
export MARLIN_BENCH_BINARY="$here/marlin_bench.node"
export MARLIN_REQUIRE_GPU="\${MARLIN_REQUIRE_GPU:-1}"
export OUT="\${OUT:-$here/out}"
mkdir -p "$OUT"
cmd="\${1:-all}"; shift || true
status=0
run_suite() { "$node_bin" "$here/suite/run.mjs" "$@" || status=1; }
run_bench() {
  if [ -f "$here/bench/bench.mjs" ]; then "$node_bin" "$here/bench/bench.mjs" "$@" || status=1;
  else echo "run.sh: this bundle has no bench" >&2; status=1; fi
}
echo "run.sh: node $("$node_bin" --version), addons $MARLIN_DENSE_BINARY $MARLIN_FP8_BINARY, OUT=$OUT"
case "$cmd" in
  suite) run_suite "$@" ;;
  bench) run_bench "$@" ;;
  all) run_suite; run_bench "$@" ;;
  *) echo "usage: bash run.sh suite [file filter] | bench [args] | all [bench args]" >&2; exit 2 ;;
esac
exit $status
`,
);
chmodSync(join(out, 'run.sh'), 0o755);

// 5. Size report.
let total = 0;
const walk = (d) => {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else total += statSync(p).size;
  }
};
walk(out);
log(
  `wrote ${out} (${(total / 2 ** 20).toFixed(1)} MiB). On the GPU host: bash ${relative(root, out) || '.'}/run.sh all`,
);
if (total > 60 * 2 ** 20) {
  console.error('gpu-bundle: bundle exceeds 60 MiB');
  process.exit(1);
}
