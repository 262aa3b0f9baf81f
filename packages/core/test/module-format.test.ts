// Issue 19, module format: @marlin/core is ESM only, so `require('@marlin/core')` (require(esm), Node >= 20.19) and
// `import('@marlin/core')` in one process give one module instance: one device registry, one MarlinError class.
// Runs the built package (dist/, `pnpm --filter @marlin/core build`) through its exports map, in a child process.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const pkgRoot = resolve(__dirname, '..');
const app = mkdtempSync(join(tmpdir(), 'marlin-format-'));
afterAll(() => rmSync(app, { recursive: true, force: true }));

describe('@marlin/core through require and import', () => {
  it('is built, and its exports map has no CommonJS build to split state into', () => {
    expect(existsSync(join(pkgRoot, 'dist', 'index.js')), 'run pnpm --filter @marlin/core build first').toBe(true);
    const pkg = JSON.parse(readFileSync(join(pkgRoot, 'package.json'), 'utf8'));
    expect(JSON.stringify(pkg.exports)).not.toMatch(/require|\.cjs/);
    expect(existsSync(join(pkgRoot, 'dist', 'index.cjs'))).toBe(false);
  });

  it('one registry and one MarlinError class in a process that loads core both ways', () => {
    mkdirSync(join(app, 'node_modules', '@marlin'), { recursive: true });
    symlinkSync(pkgRoot, join(app, 'node_modules', '@marlin', 'core'), 'dir');
    // A CommonJS dependency requires core; the application imports it.
    writeFileSync(
      join(app, 'cjs-dep.cjs'),
      `const core = require('@marlin/core');
core.registerRuntime({ name: 'from_cjs', load: () => { throw new Error('not loaded in this test'); } });
module.exports = { core, error: new core.DeviceError(core.ErrorCode.NO_BINARY, 'x') };`,
    );
    writeFileSync(
      join(app, 'main.mjs'),
      `import * as esm from '@marlin/core';
import { createRequire } from 'node:module';
const dep = createRequire(import.meta.url)('./cjs-dep.cjs');
console.log(JSON.stringify({
  sameNamespace: dep.core === esm,
  sameMarlinError: dep.core.MarlinError === esm.MarlinError,
  instanceofAcross: dep.error instanceof esm.MarlinError && dep.error instanceof esm.DeviceError,
  registryShared: esm.registeredRuntimes().includes('from_cjs'),
}));`,
    );
    const out = execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({
      sameNamespace: true,
      sameMarlinError: true,
      instanceofAcross: true,
      registryShared: true,
    });
  });
});
