#!/usr/bin/env node
// prepack of a platform package (npm/<addon>-<platform>/): copies the addon's freshly built binary in, so the tarball
// holds exactly one .node and the binary is never committed. Refuses when the parent's version differs (the loader
// would refuse the pair at run time) or when no binary was built.
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const dir = resolve(process.argv[2] ?? process.cwd());
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const parentName = pkg.config?.addon;
if (typeof parentName !== 'string' || !parentName.startsWith('@marlin/')) {
  fail(`${pkg.name}: package.json config.addon must name the parent addon package (e.g. "@marlin/dense").`);
}
const short = parentName.slice('@marlin/'.length);
const repo = resolve(dir, '..', '..');
const parentDir = join(repo, 'packages', short);
const parent = JSON.parse(readFileSync(join(parentDir, 'package.json'), 'utf8'));
if (parent.version !== pkg.version) {
  fail(
    `${pkg.name}@${pkg.version} and ${parentName}@${parent.version} differ; both are in the changesets fixed group, so run \`pnpm changeset version\` instead of editing one of them.`,
  );
}
const binary = `marlin_${short}.node`;
if (!pkg.files?.includes(binary)) fail(`${pkg.name}: "files" must list ${binary}.`);
const envVar = `MARLIN_${short.toUpperCase()}_BINARY`;
const source = process.env[envVar] ? resolve(process.env[envVar]) : join(parentDir, 'build', 'Release', binary);
if (!existsSync(source)) {
  fail(
    `${source} does not exist: build it first (\`pnpm --filter ${parentName} build:native\`, release archs in MARLIN_CUDA_ARCHS) or point ${envVar} at one.`,
  );
}
copyFileSync(source, join(dir, binary));
const mib = (statSync(source).size / 2 ** 20).toFixed(1);
console.log(`${pkg.name}: copied ${source} (${mib} MiB)`);

function fail(msg) {
  console.error(`platform-binary: ${msg}`);
  process.exit(1);
}
