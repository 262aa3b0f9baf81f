import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fromHalfBits,
  pack,
  quantizeRtn,
  SafetensorsReader,
  SafetensorsWriter,
  toHalfBits,
  writePacked,
} from '@marlin/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLinears } from '../src/index.js';

// readLinears is the host half of loadLinears (which then only uploads): layers and their copied-through biases.
describe('readLinears', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'marlin-load-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const K = 128;
  const N = 64;
  const weights = (seed: number) => Float32Array.from({ length: K * N }, (_, i) => Math.sin(i * 0.37 + seed));

  async function container(biasDtype: 'F16' | 'BF16'): Promise<{ path: string; bias: Float32Array }> {
    const bias = Float32Array.from({ length: N }, (_, i) => (i - 32) / 16);
    const src = join(dir, `bias-${biasDtype}.safetensors`);
    const writer = await SafetensorsWriter.create(src, [{ name: 'proj.bias', dtype: biasDtype, shape: [N] }]);
    await writer.write('proj.bias', toHalfBits(bias, biasDtype === 'F16' ? 'fp16' : 'bf16'));
    await writer.finish();
    const q = quantizeRtn(weights(1), { K, N, groupSize: 64 }).weight;
    const noBias = quantizeRtn(weights(2), { K, N, groupSize: 64 }).weight;
    const path = join(dir, `packed-${biasDtype}.safetensors`);
    const source = await SafetensorsReader.open(src);
    try {
      await writePacked(
        path,
        [
          ['proj', pack(q)],
          ['other', pack(noBias)],
        ],
        { passthrough: { source, names: ['proj.bias'] } },
      );
    } finally {
      await source.close();
    }
    return { path, bias };
  }

  it('returns every packed layer with the <layer>.bias tensor of the container, in the layer dtype', async () => {
    const { path, bias } = await container('F16');
    const layers = await readLinears(path);
    expect([...layers.keys()].sort()).toEqual(['other', 'proj']);
    expect(layers.get('other')?.bias).toBeUndefined();
    const b = layers.get('proj')?.bias;
    expect(b).toBeInstanceOf(Uint16Array);
    expect(Array.from(fromHalfBits(b as Uint16Array, 'fp16'))).toEqual(Array.from(bias));
    expect(layers.get('proj')?.weight.N).toBe(N);
  });

  it('re-encodes a bf16 bias for an fp16 layer and honours `layers`', async () => {
    const { path, bias } = await container('BF16');
    const layers = await readLinears(path, { layers: ['proj'] });
    expect([...layers.keys()]).toEqual(['proj']);
    expect(Array.from(fromHalfBits(layers.get('proj')?.bias as Uint16Array, 'fp16'))).toEqual(Array.from(bias));
  });
});
