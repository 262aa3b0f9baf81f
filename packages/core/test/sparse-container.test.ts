/**
 * Packed 2:4 layers in the marlin-ts container (`__metadata__["sparse"]`): written next to dense layers, read back
 * exactly, and refused with typed errors when the header or the metadata nibbles are wrong.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadPacked,
  loadPackedSparse,
  type PackedSparseSource,
  readPackedInfo,
  SafetensorsReader,
  writePacked,
} from '../src/checkpoint/index.js';
import { FormatError, ValueError } from '../src/errors/index.js';
import { sparseGroupInTile } from '../src/format/sparse-layout.js';
import { type PackedSparseWeight, packedSparseInfo, packSparse } from '../src/format/sparse-pack.js';
import { tempDirs } from './fixtures-checkpoint/build.js';
import { randomSparse, smallDenseInt4 } from './sparse-helpers.js';

const newDir = tempDirs();

function source(name: string, p: PackedSparseWeight, meta = packedSparseInfo(p)): PackedSparseSource {
  return { name, meta, load: async () => p };
}

const sparseWeight = (zeros: boolean) =>
  packSparse(randomSparse({ K: 192, N: 80, groupSize: 64, zeros, scaleDtype: 'bf16', seed: zeros ? 1 : 2 }));

describe('packed 2:4 layers in the container', () => {
  it('round trip next to a dense layer: each kind in its table, tensors owned, nothing else passthrough', async () => {
    const path = join(await newDir('sc'), 'm.safetensors');
    const dense = smallDenseInt4(3);
    const a = sparseWeight(false);
    const b = sparseWeight(true);
    await writePacked(path, [['dense.proj', dense]], { sparse: [source('sp.a', a), source('sp.b', b)] });
    const reader = await SafetensorsReader.open(path);
    const info = readPackedInfo(reader);
    expect(reader.info('sp.a.qweight').shape).toEqual([(192 / 64) * (128 / 64), 384]);
    await reader.close();
    expect(Object.keys(info.layers)).toEqual(['dense.proj']);
    expect(info.sparse).toEqual({ 'sp.a': packedSparseInfo(a), 'sp.b': packedSparseInfo(b) });
    expect(info.passthrough).toEqual([]);
    expect((await loadPacked(path)).get('dense.proj')).toEqual(dense);
    const loaded = await loadPackedSparse(path);
    expect(loaded.get('sp.a')).toEqual(a);
    expect(loaded.get('sp.b')).toEqual(b);
    expect(await loadPackedSparse(path, { layers: ['sp.b'] })).toEqual(new Map([['sp.b', b]]));
    const e = await loadPackedSparse(path, { layers: ['dense.proj'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect((e as Error).message).toMatch(/has no packed 2:4 layer "dense.proj"/);
  });

  it('a weight that does not match its declared header is refused while writing', async () => {
    const path = join(await newDir('sc'), 'm.safetensors');
    const a = sparseWeight(false);
    const e = await writePacked(path, [], {
      sparse: [source('sp.a', a, { ...packedSparseInfo(a), scaleDtype: 'fp16' })],
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect((e as Error).message).toMatch(/sp\.a: packed scaleDtype = bf16 but the header declared fp16/);
  });

  it('a header field that contradicts the others is a FormatError naming the layer and the field', async () => {
    const path = join(await newDir('sc'), 'm.safetensors');
    const a = sparseWeight(false);
    // numGroups 2 instead of 3, with scales sized to match, so the file itself is consistent.
    const bad = { ...a, numGroups: 2, scales: a.scales.subarray(0, 2 * a.Np) };
    await writePacked(path, [], { sparse: [source('sp.a', bad)] });
    const reader = await SafetensorsReader.open(path);
    const e = (() => {
      try {
        readPackedInfo(reader);
      } catch (x) {
        return x;
      }
    })();
    await reader.close();
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).details).toMatchObject({ layer: 'sp.a', field: 'numGroups' });
  });

  it('a metadata nibble corrupted in the file is a ValueError naming the file, the layer, rows and column', async () => {
    const path = join(await newDir('sc'), 'm.safetensors');
    const a = sparseWeight(false);
    const qweight = new Uint32Array(a.qweight);
    const pos = sparseGroupInTile(9, 40); // tile 0: rows 36..39, column 40
    qweight[pos.metaWord] = (qweight[pos.metaWord] & ~(15 << pos.metaShift)) | (0b0110 << pos.metaShift);
    await writePacked(path, [], { sparse: [source('sp.a', { ...a, qweight })] });
    const e = await loadPackedSparse(path).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ValueError);
    expect((e as ValueError).details).toMatchObject({ reason: 'indices-out-of-order', k: 36, n: 40, nibble: 0b0110 });
    expect((e as Error).message).toContain(`${path}, sparse layer sp.a:`);
  });
});
