/**
 * 2:4 sparse compressed-tensors checkpoints (marlin-24, sparse-24-bitmask over INT4 codes, pack-quantized under a 2:4
 * sparsity_config): fixtures written with the published encoders (fixtures-checkpoint/sparse-24.ts), decoded through
 * inspect / readSparseLayer, converted to the packed 2:4 layout (docs/format.md "2:4 sparse (packed)") and loaded back;
 * layers that claim 2:4 but are not are refused with a FormatError.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  convertCheckpoint,
  decodeMarlin24,
  inspectCheckpoint,
  loadPacked,
  loadPackedSparse,
  MARLIN24_PERM,
  marlin24MetaOffset,
  readPackedInfo,
  readSparseLayer,
  SafetensorsReader,
} from '../src/checkpoint/index.js';
import { runCli } from '../src/cli/cli.js';
import { FormatError } from '../src/errors/index.js';
import { densifySparse, type SparseQuantizedWeight } from '../src/format/sparse.js';
import { packedSparseBytes, unpackSparse } from '../src/format/sparse-pack.js';
import { referenceGemmSparse } from '../src/reference/sparse.js';
import { referenceGemmPackedSparse } from '../src/reference/sparse-packed.js';
import { tempDirs } from './fixtures-checkpoint/build.js';
import {
  cutlassCompress,
  encodeBitmask,
  encodeMarlin24,
  raw,
  type Tensor,
  writeSparseCheckpoint,
} from './fixtures-checkpoint/sparse-24.js';
import { randomHalfBits, rng } from './helpers.js';
import { randomSparse } from './sparse-helpers.js';

const newDir = tempDirs();
const L = 'model.layers.0.mlp.down_proj';

function ctConfig(format: string, weights: Record<string, unknown>, sparsity?: Record<string, unknown>) {
  return {
    quant_method: 'compressed-tensors',
    format,
    quantization_status: 'compressed',
    config_groups: { group_0: { targets: ['Linear'], weights: { type: 'int', num_bits: 4, ...weights } } },
    ...(sparsity ? { sparsity_config: sparsity } : {}),
  };
}

/** Signed [N, K] int4 values of a sparse weight (pruned = zero point - 8, i.e. weight 0). */
function signedDense(s: SparseQuantizedWeight): Int8Array {
  const d = densifySparse(s);
  const out = new Int8Array(s.N * s.K);
  for (let k = 0; k < s.K; k++) for (let n = 0; n < s.N; n++) out[n * s.K + k] = d.codes[k * s.N + n] - 8;
  return out;
}

function transposeScales(s: SparseQuantizedWeight): Uint16Array {
  const G = s.scales.length / s.N;
  const out = new Uint16Array(G * s.N);
  for (let g = 0; g < G; g++) for (let n = 0; n < s.N; n++) out[n * G + g] = s.scales[g * s.N + n];
  return out;
}

async function marlin24Checkpoint(s: SparseQuantizedWeight, strategy: 'group' | 'channel', corrupt = false) {
  const { K, N } = s;
  const e = encodeMarlin24(signedDense(s), N, K, s.scales, strategy === 'group' && s.groupSize < K / 2);
  if (corrupt) e.meta[marlin24MetaOffset(3, 1, N)] = 0x0010; // nibble 0b0000: positions (0, 0)
  const G = s.scales.length / N;
  const dir = await newDir('m24');
  const tensors: Tensor[] = [
    { name: `${L}.weight_packed`, dtype: 'I32', shape: [K / 32, 2 * N], data: raw(e.weightPacked) },
    { name: `${L}.meta`, dtype: 'I16', shape: [K / 32, 2 * N], data: raw(e.meta) },
    { name: `${L}.scale_packed`, dtype: 'F16', shape: [G, N], data: raw(e.scalePacked) },
    { name: `${L}.weight_shape`, dtype: 'I64', shape: [2], data: raw(new BigInt64Array([BigInt(N), BigInt(K)])) },
  ];
  const weights =
    strategy === 'group'
      ? { symmetric: true, strategy: 'group', group_size: s.groupSize }
      : { symmetric: true, strategy: 'channel' };
  await writeSparseCheckpoint(
    dir,
    tensors,
    ctConfig('marlin-24', weights, { format: 'sparse-24-bitmask', sparsity_structure: '2:4' }),
  );
  return dir;
}

describe('marlin-24 layout', () => {
  it('the shuffle and the metadata reorder are permutations', () => {
    expect(new Set(MARLIN24_PERM).size).toBe(1024);
    expect(Math.max(...MARLIN24_PERM)).toBe(1023);
    for (const m of [64, 128, 192]) {
      const seen = new Set<number>();
      for (let r = 0; r < m; r++) for (let c = 0; c < 4; c++) seen.add(marlin24MetaOffset(r, c, m));
      expect(seen.size).toBe(m * 4);
      expect(Math.max(...seen)).toBe(m * 4 - 1);
    }
  });

  it('CUTLASS metadata nibbles follow the published encoding table', () => {
    // Row 0 of a 64 x 32 matrix (the reorder works on 64 rows), checked through the decoder's offset.
    const patterns: [number[], number][] = [
      [[1, 1, 0, 0], 0b0100],
      [[1, 0, 1, 0], 0b1000],
      [[0, 1, 1, 0], 0b1001],
      [[1, 0, 0, 1], 0b1100],
      [[0, 1, 0, 1], 0b1101],
      [[0, 0, 1, 1], 0b1110],
      [[0, 0, 0, 0], 0b1110],
      [[1, 0, 0, 0], 0b1000],
    ];
    const K = 32;
    const dense = new Int8Array(64 * K);
    for (const [g, [p]] of patterns.entries()) for (const [i, v] of p.entries()) dense[4 * g + i] = v * 3;
    const { meta } = cutlassCompress(dense, 64, K);
    patterns.forEach(([, code], g) => {
      const word = meta[marlin24MetaOffset(0, Math.floor(g / 4), 64)];
      expect((word >>> (4 * (g % 4))) & 0xf).toBe(code);
    });
  });

  for (const [K, N, g, strategy] of [
    [512, 64, 128, 'group'],
    [256, 128, 128, 'group'],
    [256, 64, 256, 'channel'],
  ] as const) {
    it(`decodes a marlin-24 layer bit for bit and converts it packed 2:4 (K ${K}, N ${N}, ${strategy} ${g})`, async () => {
      const s = randomSparse({ K, N, groupSize: g, zeros: false, scaleDtype: 'fp16', seed: K + N });
      const dir = await marlin24Checkpoint(s, strategy);
      const report = await inspectCheckpoint(dir);
      const layer = report.layers.find((l) => l.name === L)!;
      expect(layer.status).toBe('convert');
      expect(layer.reason).toBeNull();
      expect(layer.sparse).toMatchObject({ sparsity: '2:4', source: 'marlin-24', decodable: true });
      expect(layer.sparse?.produces).toMatch(/packed 2:4 sparse INT4/);
      expect([layer.K, layer.N, layer.groupSize]).toEqual([K, N, g]);
      expect(layer.packedBytes).toBe(packedSparseBytes(K, N, g, false));
      const got = await readSparseLayer(dir, L);
      expect(densifySparse(got).codes).toEqual(densifySparse(s).codes);
      expect(got.scales).toEqual(s.scales);
      expect(got.zeros).toBeNull();
      // Convert writes the packed 2:4 layer; loaded back it is the decoded layer, and its reference is the logical one.
      const out = join(dir, 'out.safetensors');
      const res = await convertCheckpoint(dir, out);
      expect(res.converted).toEqual([L]);
      expect(res.sparseLayers).toEqual([L]);
      const reader = await SafetensorsReader.open(out);
      const info = readPackedInfo(reader);
      await reader.close();
      expect(Object.keys(info.sparse)).toEqual([L]);
      expect(Object.keys(info.layers)).toEqual([]);
      expect(info.passthrough).toEqual([]);
      expect(await loadPacked(out)).toEqual(new Map());
      const p = (await loadPackedSparse(out)).get(L)!;
      expect(unpackSparse(p)).toEqual(got);
      const x = randomHalfBits(rng(K), 2 * K, 'fp16');
      expect(referenceGemmPackedSparse(x, p, { M: 2, dtype: 'fp16' }).bits).toEqual(
        referenceGemmSparse(x, s, { M: 2, dtype: 'fp16' }).bits,
      );
      const o = { out: '', err: '' };
      const io = {
        stdout: { write: (x: string): unknown => (o.out += x), isTTY: false },
        stderr: { write: (x: string): unknown => (o.err += x), isTTY: false },
      };
      await runCli(['inspect', dir], io);
      expect(o.out).toMatch(/2:4 sparse \(marlin-24\): convert produces a packed 2:4 sparse INT4 layer/);
    });
  }

  it('a metadata nibble that is not two increasing positions is refused as not 2:4 (FormatError)', async () => {
    const s = randomSparse({ K: 512, N: 64, groupSize: 128, zeros: false, scaleDtype: 'fp16', seed: 5 });
    const dir = await marlin24Checkpoint(s, 'group', true);
    const e = await readSparseLayer(dir, L).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).details).toMatchObject({ reason: 'not-2:4', n: 3 });
    expect((e as Error).message).toMatch(/claims 2:4 sparsity but is not 2:4/);
    // inspect reads headers only; convert decodes the layer, refuses it, and leaves no output behind.
    expect((await inspectCheckpoint(dir)).layers[0].status).toBe('convert');
    const out = join(dir, 'out.safetensors');
    const c = await convertCheckpoint(dir, out).catch((x: unknown) => x);
    expect(c).toBeInstanceOf(FormatError);
    expect((c as FormatError).details).toMatchObject({ reason: 'not-2:4', layer: L });
    expect((c as Error).message).toMatch(new RegExp(`^Layer ${L}: .*claims 2:4 sparsity but is not 2:4`));
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('decodeMarlin24 refuses tensors of the wrong length', () => {
    expect(() =>
      decodeMarlin24({
        K: 64,
        N: 32,
        groupSize: 64,
        scalesShuffled: false,
        weightPacked: new Int32Array(3),
        meta: new Uint16Array(64),
        scalePacked: new Uint16Array(32),
        scaleDtype: 'fp16',
      }),
    ).toThrow(FormatError);
  });
});

async function bitmaskCheckpoint(s: SparseQuantizedWeight, breakGroup = false) {
  const { K, N } = s;
  const dense = signedDense(s);
  const keep = new Uint8Array(N * K);
  for (let j = 0; j < K / 4; j++) {
    for (let n = 0; n < N; n++) {
      keep[n * K + 4 * j + s.indices[2 * j * N + n]] = 1;
      keep[n * K + 4 * j + s.indices[(2 * j + 1) * N + n]] = 1;
    }
  }
  const { compressed, bitmask } = encodeBitmask(dense, keep, N, K);
  if (breakGroup) bitmask[2 * Math.ceil(K / 8)] |= 0x0f; // row 2, columns 0..3 all kept
  const G = s.scales.length / N;
  const zp = new Int8Array(G * N);
  if (s.zeros) for (let g = 0; g < G; g++) for (let n = 0; n < N; n++) zp[n * G + g] = s.zeros[g * N + n] - 8;
  const dir = await newDir('bm');
  const tensors: Tensor[] = [
    { name: `${L}.compressed`, dtype: 'I8', shape: [N, K / 2], data: raw(compressed) },
    { name: `${L}.bitmask`, dtype: 'U8', shape: [N, Math.ceil(K / 8)], data: bitmask },
    { name: `${L}.shape`, dtype: 'I64', shape: [2, 1], data: raw(new BigInt64Array([BigInt(N), BigInt(K)])) },
    { name: `${L}.weight_scale`, dtype: 'F16', shape: [N, G], data: raw(transposeScales(s)) },
    ...(s.zeros ? [{ name: `${L}.weight_zero_point`, dtype: 'I8' as const, shape: [N, G], data: raw(zp) }] : []),
  ];
  await writeSparseCheckpoint(
    dir,
    tensors,
    ctConfig(
      'naive-quantized',
      { symmetric: s.zeros === null, strategy: 'group', group_size: s.groupSize },
      { format: 'sparse-24-bitmask', sparsity_structure: '2:4', targets: ['Linear'] },
    ),
  );
  return dir;
}

describe('sparse-24-bitmask over INT4 codes', () => {
  for (const zeros of [false, true]) {
    it(`decodes exactly (${zeros ? 'zero points' : 'symmetric'}) and converts it packed 2:4`, async () => {
      const s = randomSparse({ K: 128, N: 32, groupSize: 64, zeros, scaleDtype: 'fp16', seed: 77 });
      const dir = await bitmaskCheckpoint(s);
      const layer = (await inspectCheckpoint(dir)).layers.find((l) => l.name === L)!;
      expect(layer.sparse).toMatchObject({ source: 'sparse-24-bitmask', decodable: true });
      expect(layer.hasZeros).toBe(zeros);
      const got = await readSparseLayer(dir, L);
      expect(got.indices).toEqual(s.indices);
      expect(got.codes).toEqual(s.codes);
      expect(got.scales).toEqual(s.scales);
      expect(got.zeros).toEqual(s.zeros);
      const out = join(dir, 'o.safetensors');
      expect((await convertCheckpoint(dir, out, { scaleDtype: 'bf16' })).sparseLayers).toEqual([L]);
      const p = (await loadPackedSparse(out, { layers: [L] })).get(L)!;
      expect(p.scaleDtype).toBe('bf16');
      const back = unpackSparse(p);
      expect([back.codes, back.indices, back.zeros]).toEqual([s.codes, s.indices, s.zeros]);
    });
  }

  it('zero points that are all 8 under an asymmetric config convert as declared (stored zero points)', async () => {
    const s = randomSparse({ K: 128, N: 32, groupSize: 64, zeros: true, scaleDtype: 'fp16', seed: 79 });
    s.zeros!.fill(8);
    const dir = await bitmaskCheckpoint(s);
    const layer = (await inspectCheckpoint(dir)).layers[0];
    expect(layer.hasZeros).toBe(true);
    expect((await readSparseLayer(dir, L)).zeros).toBeNull();
    const out = join(dir, 'o.safetensors');
    await convertCheckpoint(dir, out);
    const p = (await loadPackedSparse(out)).get(L)!;
    expect(p.zeros).not.toBeNull();
    const x = randomHalfBits(rng(3), 128, 'fp16');
    expect(referenceGemmPackedSparse(x, p, { M: 1, dtype: 'fp16' }).bits).toEqual(
      referenceGemmSparse(x, s, { M: 1, dtype: 'fp16' }).bits,
    );
  });

  it('a bitmask keeping 3 or 4 of a group is refused as not 2:4', async () => {
    const s = randomSparse({ K: 128, N: 32, groupSize: 128, zeros: false, scaleDtype: 'fp16', seed: 78 });
    const dir = await bitmaskCheckpoint(s, true);
    const e = await readSparseLayer(dir, L).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).details).toMatchObject({ reason: 'not-2:4', n: 2, group: 0, kept: 4 });
  });
});

describe('pack-quantized INT4 under a 2:4 sparsity_config', () => {
  async function packQuantized(codesKxN: Uint8Array, s: SparseQuantizedWeight) {
    const { K, N } = s;
    const wp = new Int32Array((N * K) / 8);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) wp[n * (K / 8) + (k >> 3)] |= codesKxN[k * N + n] << (4 * (k & 7));
    const G = s.scales.length / N;
    const dir = await newDir('pq');
    await writeSparseCheckpoint(
      dir,
      [
        { name: `${L}.weight_packed`, dtype: 'I32', shape: [N, K / 8], data: raw(wp) },
        { name: `${L}.weight_scale`, dtype: 'F16', shape: [N, G], data: raw(transposeScales(s)) },
        { name: `${L}.weight_shape`, dtype: 'I64', shape: [2], data: raw(new BigInt64Array([BigInt(N), BigInt(K)])) },
      ],
      ctConfig(
        'pack-quantized',
        { symmetric: true, strategy: 'group', group_size: 128 },
        {
          format: 'dense',
          sparsity_structure: '2:4',
          targets: ['Linear'],
        },
      ),
    );
    return dir;
  }

  it('still converts dense, and decodes as 2:4', async () => {
    const s = randomSparse({ K: 256, N: 32, groupSize: 128, zeros: false, scaleDtype: 'fp16', seed: 9 });
    const dir = await packQuantized(densifySparse(s).codes, s);
    const layer = (await inspectCheckpoint(dir)).layers.find((l) => l.name === L)!;
    expect(layer.status).toBe('convert');
    expect(layer.sparse).toMatchObject({ source: 'pack-quantized', decodable: true });
    const got = await readSparseLayer(dir, L);
    expect(densifySparse(got).codes).toEqual(densifySparse(s).codes);
    const res = await convertCheckpoint(dir, join(dir, 'o.safetensors'));
    expect(res.converted).toEqual([L]);
  });

  it('a layer that claims 2:4 but has 3 non-zero weights in a group is refused (FormatError)', async () => {
    const s = randomSparse({ K: 256, N: 32, groupSize: 128, zeros: false, scaleDtype: 'fp16', seed: 10 });
    const codes = densifySparse(s).codes;
    for (let i = 0; i < 4; i++) codes[(40 + i) * 32 + 7] = 1 + i;
    const dir = await packQuantized(codes, s);
    const e = await readSparseLayer(dir, L).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).details).toMatchObject({ reason: 'not-2:4', group: 10, n: 7 });
  });
});
