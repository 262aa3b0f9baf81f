import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceError, pack, packedSparseInfo, quantizeRtn, writePacked } from '@marlin/core';
import { gpuAvailability, randoms } from '@marlin/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { Linear, loadLinears, probe, readLinears } from '../src/index.js';
import { sparsePacked } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'marlin-sparse-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const gpuOk = gpuAvailability(probe).ok;

/** A container with one dense and two packed 2:4 layers, as `marlin convert` writes one. */
async function mixedContainer(): Promise<string> {
  const path = join(dir, `m-${Math.random().toString(36).slice(2)}.safetensors`);
  const dense = pack(quantizeRtn(randoms(64 * 32, 1), { K: 64, N: 32, groupSize: 32 }).weight);
  const a = sparsePacked(128, 64, { seed: 2 });
  const b = sparsePacked(256, 80, { groupSize: 128, sym: false, seed: 3 });
  await writePacked(path, [['dense.proj', dense]], {
    sparse: [
      { name: 'sp.a', meta: packedSparseInfo(a), load: async () => a },
      { name: 'sp.b', meta: packedSparseInfo(b), load: async () => b },
    ],
  });
  return path;
}

describe('containers with packed 2:4 layers', () => {
  it('readLinears returns the 2:4 layers exactly (no bias stored: undefined), not the dense one', async () => {
    const path = await mixedContainer();
    const host = await readLinears(path);
    expect([...host.keys()].sort()).toEqual(['sp.a', 'sp.b']);
    const b = host.get('sp.b');
    expect(b?.weight.sparsity).toBe('2:4');
    expect([b?.weight.K, b?.weight.N, b?.weight.groupSize, b?.weight.zeros !== null]).toEqual([256, 80, 128, true]);
    expect(b?.bias).toBeUndefined();
    // Every layer makes a host Linear that runs the CPU reference.
    using layer = Linear.fromPacked(host.get('sp.a')?.weight as never, { device: 'cpu' });
    expect([layer.inFeatures, layer.outFeatures]).toEqual([128, 64]);
    expect((await readLinears(path, { layers: ['sp.b'] })).size).toBe(1);
  });

  it.skipIf(gpuOk)('loadLinears without a GPU fails with the coded DeviceError, not a format error', async () => {
    const path = await mixedContainer();
    await expect(loadLinears(path)).rejects.toBeInstanceOf(DeviceError);
  });
});
