#!/usr/bin/env node
// prepack of an addon package (packages/<addon>/): copies what `npx marlin build <addon>` compiles into
// dist/source/, laid out as in this repository (the addon's CMakeLists.txt includes ../../native/cmake), so the
// published package can be built from source without a clone. dist/ is never committed; tsup's clean wipes it.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const dir = resolve(process.argv[2] ?? process.cwd());
const repo = resolve(dir, '..', '..');
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const addon = pkg.name.replace(/^@marlin\//, '');
const out = join(dir, 'dist', 'source');

// native/bench (the benchmark harness) and native/tests (the self-test) are not part of an addon.
const NATIVE_DIRS = ['cmake', 'common', 'include', 'kernels', 'kit', 'napi', 'runtime'];
const FILES = ['tools/gen-kernel-instances.mjs', 'packages/core/src/dispatch/kernel-table.json'];

if (!existsSync(join(dir, 'dist', 'index.js'))) {
  console.error(`addon-sources: ${pkg.name} has no dist/index.js; run \`pnpm --filter ${pkg.name} build\` first.`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
const copy = (from) => {
  const src = join(repo, from);
  if (!existsSync(src)) {
    console.error(`addon-sources: ${src} is missing.`);
    process.exit(1);
  }
  mkdirSync(dirname(join(out, from)), { recursive: true });
  cpSync(src, join(out, from), { recursive: true });
};
for (const d of NATIVE_DIRS) copy(join('native', d));
for (const f of FILES) copy(f);
const own = relative(repo, dir);
copy(join(own, 'CMakeLists.txt'));
copy(join(own, 'native'));
writeFileSync(
  join(out, 'manifest.json'),
  `${JSON.stringify({ addon, package: pkg.name, version: pkg.version, cmakeSource: own }, null, 2)}\n`,
);
console.log(`${pkg.name}: native sources copied to ${relative(dir, out)}/`);
