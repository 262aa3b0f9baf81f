/**
 * Loading MoE blocks from a marlin-ts container (what `marlin convert` writes): one block by name, every block of
 * the file, and the typed error for a block that is not there. Host layers, so no GPU is needed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError, type PackedExperts, packedExpertsInfo, referenceMoe, writePackedContainer } from '@marlin/core';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMoeLayers, MoeLayer } from '../src/index.js';
import { cpuLayer, routing, xBits } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'marlin-moe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const H = 64;
const I = 32;
const blocks = {
  'model.layers.0.mlp': cpuLayer(4, H, I, { seed: 1 }).packed,
  'model.layers.1.mlp': cpuLayer(6, H, I, { seed: 2, codec: 'int8' }).packed,
};

async function container(): Promise<string> {
  const path = join(dir, 'moe.marlin.safetensors');
  const experts = Object.entries(blocks).flatMap(([name, b]) =>
    (['w13', 'w2'] as const).map((kind) => {
      const pe: PackedExperts = b[kind];
      return { name: `${name}.experts.${kind}`, meta: packedExpertsInfo(pe), load: async () => pe };
    }),
  );
  await writePackedContainer(path, [], null, { experts });
  return path;
}

describe('MoE blocks from a converted container', () => {
  it('MoeLayer.load and loadMoeLayers give the stacked weights back, and the same outputs', async () => {
    const path = await container();
    const one = await MoeLayer.load(path, 'model.layers.1.mlp', { device: 'cpu' });
    expect([one.localExperts, one.codec]).toEqual([6, 'int8']);
    const all = await loadMoeLayers(path, { device: 'cpu' });
    expect([...all.keys()]).toEqual(['model.layers.0.mlp', 'model.layers.1.mlp']);
    for (const [name, layer] of all) {
      const b = blocks[name as keyof typeof blocks];
      expect(layer.packed.w13.qweight).toEqual(b.w13.qweight);
      const M = 5;
      const x = xBits(M, H);
      const r = routing(M, layer.localExperts, 2, 3);
      const got = layer.forward({ data: x, shape: [M, H], dtype: 'fp16' }, r, { device: 'cpu' });
      expect(got.data).toEqual(referenceMoe(x, b.w13, b.w2, { M, dtype: 'fp16', ...r }).bits);
    }
    const some = await loadMoeLayers(path, { device: 'cpu', layers: ['model.layers.0.mlp'] });
    expect([...some.keys()]).toEqual(['model.layers.0.mlp']);
  });

  it('a block that is not in the file is a FormatError naming it', async () => {
    const path = await container();
    await expect(MoeLayer.load(path, 'model.layers.7.mlp', { device: 'cpu' })).rejects.toThrow(FormatError);
    await expect(MoeLayer.load(path, 'model.layers.7.mlp', { device: 'cpu' })).rejects.toThrow(/model\.layers\.7\.mlp/);
  });
});
