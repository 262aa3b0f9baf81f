import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { formatDoctor, KNOWN_ADDONS, runDoctor } from '../src/cli/doctor.js';
import { buildCliBundle } from './fixtures-checkpoint/cli-bundle.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const denseBuilt = existsSync(resolve(repo, 'packages/dense/dist/index.js'));

describe('marlin doctor lists every addon package', () => {
  it('looks for dense, fp8, sparse and moe, and says how to get the missing ones', async () => {
    const r = await runDoctor(['@marlin/dense', '@marlin/no-such-addon']);
    expect(r.addons.map((a) => a.package).sort()).toEqual(['@marlin/dense', '@marlin/no-such-addon']);
    const missing = r.addons.find((a) => a.package === '@marlin/no-such-addon');
    expect(missing?.installed).toBe(false);
    expect(formatDoctor(r)).toMatch(
      /@marlin\/no-such-addon {2}not installed \(.*\)\n.*npm install @marlin\/no-such-addon/,
    );
    expect(KNOWN_ADDONS).toEqual(['@marlin/dense', '@marlin/fp8', '@marlin/sparse', '@marlin/moe']);
  });

  // In a clone, the addons are workspace siblings of @marlin/core, not its dependencies: doctor used to report
  // "@marlin/dense not installed" although it was built.
  it.skipIf(!denseBuilt)('finds the built @marlin/dense of this workspace and where its binary came from', async () => {
    const r = await runDoctor(['@marlin/dense']);
    const dense = r.addons[0];
    expect(dense?.installed, String(dense?.error)).toBe(true);
    expect(dense?.from).toMatch(/packages\/dense\/dist\/index\.c?js$/);
    expect(r.dense.installed).toBe(true);
    const probe = dense?.probe as { binaryPath?: string | null; addon?: string };
    expect(probe.addon).toBe('marlin_dense');
    expect(formatDoctor(r)).toMatch(/@marlin\/dense {2}installed \(.*packages\/dense\/dist\/index\.c?js\)/);
  });

  // The same through a real `marlin` process started at the repository root (Node's own resolution, no vitest).
  it.skipIf(!denseBuilt)('`marlin doctor` run at the repository root says @marlin/dense is installed', async () => {
    const bundle = await buildCliBundle('doctor');
    const { stdout } = await promisify(execFile)(process.execPath, [bundle, 'doctor', '--json'], { cwd: repo });
    const report = JSON.parse(stdout) as { addons: { package: string; installed: boolean; from: string | null }[] };
    const dense = report.addons.find((a) => a.package === '@marlin/dense');
    expect(dense?.installed).toBe(true);
    expect(dense?.from).toMatch(/packages\/dense\/dist\/index\.c?js$/);
    expect(report.addons.map((a) => a.package)).toEqual(expect.arrayContaining(['@marlin/fp8', '@marlin/moe']));
  });
});
