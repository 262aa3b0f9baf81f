import { ValueError } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import { MODELS } from '../src/protocol.js';
import type { Row, Timing } from '../src/schema.js';
import {
  bf16Ratios,
  blockSums,
  EAGER_OVERHEAD_TARGET_US,
  eagerOverhead,
  geoMeans,
  geometricMean,
  makeRow,
} from '../src/summary.js';

const ceilings = { bandwidthGBs: 3000, fp16Tflops: 800 };
const t = (us: number): Timing => ({ us, minUs: us, maxUs: us, rotations: 3, calls: 20, replays: 7 });

function blockRows(
  model: '8b' | '70b',
  M: number,
  dtype: 'fp16' | 'bf16',
  ours: number[],
  cublas: number[],
  serial?: number[],
): Row[] {
  return MODELS[model].layers.map((shape, i) =>
    makeRow(
      {
        series: 'int4-g128',
        model,
        shape,
        M,
        dtype,
        groupSize: 128,
        hasZeros: false,
        configId: 0,
        splits: 1,
        clusterSize: 1,
        tailSplits: 0,
        tailBlocks: 0,
        ours: t(ours[i]!),
        serial: serial === undefined ? null : t(serial[i]!),
        cublas: t(cublas[i]!),
        w8a8: null,
        sweep: null,
      },
      ceilings,
    ),
  );
}

describe('rows', () => {
  it('derives GB/s, % of roofline and speedup from the timings', () => {
    const [qkv] = blockRows('70b', 1, 'fp16', [20, 10, 100, 50], [80, 40, 400, 200]);
    const bytes = 8192 * 10240 * 0.5 + 2 * 64 * 10240 + 2 * 8192 + 2 * 10240;
    expect(qkv!.bytes).toBe(bytes);
    expect(qkv!.gbps).toBeCloseTo(bytes / 20e-6 / 1e9, 6);
    expect(qkv!.rooflineUs).toBeCloseTo((bytes / 3000e9) * 1e6, 9);
    expect(qkv!.rooflinePct).toBeCloseTo((100 * qkv!.rooflineUs) / 20, 9);
    expect(qkv!.speedup).toBe(4);
    expect(qkv!.bound).toBe('memory');
  });
});

describe('block sums and targets', () => {
  it('sums the four layers and marks a met target with its margin', () => {
    const rows = blockRows('70b', 16, 'fp16', [20, 10, 100, 50], [80, 40, 400, 200]);
    const [b] = blockSums(rows);
    expect(b!.ourUs).toBe(180);
    expect(b!.cublasUs).toBe(720);
    expect(b!.speedup).toBe(4);
    expect(b!.target).toBe(3.5);
    expect(b!.status).toBe('met');
    expect(b!.gap).toBeCloseTo(0.5, 12);
    expect(b!.limit).toBeNull();
    expect(b!.rooflineBoundSpeedup).toBeCloseTo(720 / b!.rooflineUs, 9);
  });

  it('sums the serial launches next to the default ones, only when every layer has one', () => {
    const [b] = blockSums(blockRows('70b', 1, 'fp16', [20, 10, 100, 50], [80, 40, 400, 200], [25, 12, 110, 53]));
    expect(b!.ourSerialUs).toBe(200);
    expect(b!.serialSpeedup).toBeCloseTo(720 / 200, 12);
    const [none] = blockSums(blockRows('70b', 1, 'fp16', [20, 10, 100, 50], [80, 40, 400, 200]));
    expect(none!.ourSerialUs).toBeNull();
    expect(none!.serialSpeedup).toBeNull();
  });

  it('marks a missed target with the gap and a measured limit', () => {
    const rows = blockRows('8b', 64, 'fp16', [10, 10, 10, 10], [20, 20, 20, 20]);
    const [b] = blockSums(rows);
    expect(b!.speedup).toBe(2);
    expect(b!.target).toBe(2.3);
    expect(b!.status).toBe('missed');
    expect(b!.gap).toBeCloseTo(-0.3, 12);
    expect(b!.limit).toMatch(/roofline/);
  });

  it('names a target above the roofline bound as the limit', () => {
    // cuBLAS barely slower than the INT4 roofline: no kernel can reach 3.0x.
    const shapes = MODELS['8b'].layers;
    const roofs = shapes.map(
      (s) =>
        makeRow(
          {
            series: 'int4-g128',
            model: '8b',
            shape: s,
            M: 1,
            dtype: 'fp16',
            groupSize: 128,
            hasZeros: false,
            configId: 0,
            splits: 1,
            clusterSize: 1,
            tailSplits: 0,
            tailBlocks: 0,
            ours: t(1),
            serial: null,
            cublas: t(1),
            w8a8: null,
            sweep: null,
          },
          ceilings,
        ).rooflineUs,
    );
    const rows = blockRows(
      '8b',
      1,
      'fp16',
      roofs.map((r) => r * 2),
      roofs.map((r) => r * 1.5),
    );
    const [b] = blockSums(rows);
    expect(b!.status).toBe('missed');
    expect(b!.rooflineBoundSpeedup).toBeCloseTo(1.5, 9);
    expect(b!.limit).toMatch(/above this run's roofline bound 1\.50x/);
  });

  it('leaves out incomplete blocks and reports n/a without cuBLAS', () => {
    const rows = blockRows('8b', 1, 'fp16', [1, 1, 1, 1], [2, 2, 2, 2]);
    expect(blockSums(rows.slice(0, 3))).toEqual([]);
    const noCublas = rows.map((r) => ({ ...r, cublas: null, speedup: null }));
    const [b] = blockSums(noCublas);
    expect(b!.status).toBe('n/a');
    expect(b!.speedup).toBeNull();
    expect(b!.gap).toBeNull();
  });

  it('orders blocks by model, dtype, M', () => {
    const rows = [
      ...blockRows('70b', 1, 'fp16', [1, 1, 1, 1], [2, 2, 2, 2]),
      ...blockRows('8b', 16, 'bf16', [1, 1, 1, 1], [2, 2, 2, 2]),
      ...blockRows('8b', 1, 'fp16', [1, 1, 1, 1], [2, 2, 2, 2]),
      ...blockRows('8b', 1, 'bf16', [1, 1, 1, 1], [2, 2, 2, 2]),
    ];
    expect(blockSums(rows).map((b) => `${b.model}/${b.dtype}/${b.M}`)).toEqual([
      '8b/fp16/1',
      '8b/bf16/1',
      '8b/bf16/16',
      '70b/fp16/1',
    ]);
  });
});

describe('bf16 vs fp16', () => {
  it('passes within 5% and fails beyond', () => {
    const rows = [
      ...blockRows('8b', 1, 'fp16', [10, 10, 10, 10], [20, 20, 20, 20]),
      ...blockRows('8b', 1, 'bf16', [10.4, 10.4, 10.4, 10.4], [20, 20, 20, 20]),
      ...blockRows('8b', 2, 'fp16', [10, 10, 10, 10], [20, 20, 20, 20]),
      ...blockRows('8b', 2, 'bf16', [11, 11, 11, 11], [20, 20, 20, 20]),
    ];
    const r = bf16Ratios(blockSums(rows));
    expect(r.map((x) => [x.M, Number(x.ratio.toFixed(3)), x.status])).toEqual([
      [1, 1.04, 'met'],
      [2, 1.1, 'missed'],
    ]);
  });
});

describe('geometric mean', () => {
  it('is the n-th root of the product', () => {
    expect(geometricMean([1, 4])).toBeCloseTo(2, 12);
    expect(geometricMean([2, 8, 4])).toBeCloseTo(4, 12);
  });

  it('rejects empty lists and non-positive values', () => {
    expect(() => geometricMean([])).toThrow(ValueError);
    expect(() => geometricMean([1, 0])).toThrow(/positive/);
  });

  it('averages row and block speedups per dtype', () => {
    const rows = [
      ...blockRows('8b', 1, 'fp16', [1, 1, 1, 1], [2, 2, 2, 2]),
      ...blockRows('8b', 2, 'fp16', [1, 1, 1, 1], [8, 8, 8, 8]),
    ];
    const [g] = geoMeans(rows, blockSums(rows));
    expect(g!.dtype).toBe('fp16');
    expect(g!.rowSpeedup).toBeCloseTo(4, 12);
    expect(g!.blockSpeedup).toBeCloseTo(4, 12);
  });
});

describe('eager overhead', () => {
  it('reports host time per call (judged against the target) and wall time per call minus the kernel time', () => {
    const e = eagerOverhead({
      M: 1,
      N: 4096,
      K: 4096,
      dtype: 'fp16',
      calls: 100,
      totalUs: 900,
      enqueueUs: 250,
      kernelUs: 6,
    });
    expect(e.eagerUs).toBe(9);
    expect(e.overheadUs).toBe(3);
    expect(e.hostUs).toBe(2.5);
    expect(e.targetUs).toBe(EAGER_OVERHEAD_TARGET_US);
    expect(e.status).toBe('met');
    // Wall time far above the kernel but a cheap launch loop: GPU-bound, the host cost is what counts.
    const gpuBound = { M: 1, N: 1, K: 1, dtype: 'fp16' as const, calls: 10, totalUs: 200, kernelUs: 6 };
    expect(eagerOverhead({ ...gpuBound, enqueueUs: 30 }).status).toBe('met');
    expect(eagerOverhead({ ...gpuBound, enqueueUs: 80 }).status).toBe('missed');
    expect(() =>
      eagerOverhead({ M: 1, N: 1, K: 1, dtype: 'fp16', calls: 0, totalUs: 1, enqueueUs: 1, kernelUs: 1 }),
    ).toThrow(ValueError);
  });
});
