import { ValueError } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import {
  achievedGBs,
  bytesMoved,
  fp16BytesMoved,
  gemmFlops,
  groupCount,
  MODELS,
  RESULT_FILE,
  roofline,
  rooflineFlops,
  rooflinePercent,
  SERIES,
  seriesGroupSize,
  targetSpeedup,
} from '../src/protocol.js';

describe('byte formula', () => {
  it('counts packed weights, scales, activations and output (70B o_proj, M = 1)', () => {
    const b = bytesMoved({ M: 1, N: 8192, K: 8192, groupSize: 128, hasZeros: false });
    expect(b.weights).toBe(8192 * 8192 * 0.5);
    expect(b.scales).toBe(2 * 64 * 8192);
    expect(b.zeros).toBe(0);
    expect(b.activations).toBe(2 * 8192);
    expect(b.output).toBe(2 * 8192);
    expect(b.total).toBe(34_635_776);
  });

  it('adds one byte per group per column for zero points and rounds partial groups up', () => {
    const b = bytesMoved({ M: 4, N: 64, K: 200, groupSize: 128, hasZeros: true });
    expect(groupCount(200, 128)).toBe(2);
    expect(b.scales).toBe(2 * 2 * 64);
    expect(b.zeros).toBe(2 * 64);
    expect(b.total).toBe(200 * 64 * 0.5 + 256 + 128 + 2 * 4 * 200 + 2 * 4 * 64);
  });

  it('gives the protocol ratio of INT4 g128 over fp16 weights (2 / 0.5156 = 3.88x)', () => {
    const int4 = bytesMoved({ M: 1, N: 8192, K: 8192, groupSize: 128, hasZeros: false });
    const ratio = (2 * 8192 * 8192) / (int4.weights + int4.scales);
    expect(ratio).toBeCloseTo(2 / 0.515625, 6);
    expect(fp16BytesMoved(1, 8192, 8192)).toBe(2 * 8192 * 8192 + 4 * 8192);
  });

  it('rejects non-positive sizes with a ValueError', () => {
    expect(() => bytesMoved({ M: 0, N: 64, K: 64, groupSize: 64, hasZeros: false })).toThrow(ValueError);
    expect(() => groupCount(64, 0)).toThrow(/groupSize/);
  });
});

describe('roofline', () => {
  const c = { bandwidthGBs: 3000, fp16Tflops: 800 };

  it('is memory-bound for decode: bytes / bandwidth', () => {
    const bytes = 34_635_776;
    const r = roofline(bytes, gemmFlops(1, 8192, 8192), c);
    expect(r.bound).toBe('memory');
    expect(r.us).toBeCloseTo((bytes / 3e12) * 1e6, 9);
    expect(r.computeUs).toBeCloseTo(((2 * 8192 * 8192) / 800e12) * 1e6, 12);
  });

  it('is compute-bound for prefill: 2 M N K / rate', () => {
    const flops = gemmFlops(4096, 8192, 8192);
    const bytes = bytesMoved({ M: 4096, N: 8192, K: 8192, groupSize: 128, hasZeros: false }).total;
    const r = roofline(bytes, flops, c);
    expect(r.bound).toBe('compute');
    expect(r.us).toBeCloseTo((flops / 800e12) * 1e6, 9);
  });

  it('falls back to the memory term without a measured fp16 rate, and refuses a zero bandwidth', () => {
    const r = roofline(1e9, 1e15, { bandwidthGBs: 1000, fp16Tflops: null });
    expect(r.computeUs).toBeNull();
    expect(r.bound).toBe('memory');
    expect(r.us).toBeCloseTo(1000, 9);
    expect(() => roofline(1, 1, { bandwidthGBs: 0, fp16Tflops: 1 })).toThrow(ValueError);
  });

  it('derives GB/s and percent of roofline', () => {
    expect(achievedGBs(3e9, 1000)).toBeCloseTo(3000, 9);
    expect(rooflinePercent(10, 20)).toBe(50);
  });
});

describe('targets', () => {
  it('follows the issue table for both models', () => {
    const at = (m: '8b' | '70b') => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096].map((M) => targetSpeedup(m, M));
    expect(at('70b')).toEqual([3.5, 3.5, 3.5, 3.5, 3.5, 3.3, 2.6, 1.6, 0.95, 0.9, 0.9, 0.9]);
    expect(at('8b')).toEqual([3.0, 3.0, 3.0, 3.0, 3.0, 2.8, 2.3, 1.5, 0.95, 0.9, 0.9, 0.9]);
  });

  it('judges M between columns by the next column', () => {
    expect(targetSpeedup('70b', 17)).toBe(3.3);
    expect(targetSpeedup('8b', 100)).toBe(1.5);
  });

  it('has the Llama-3 block shapes (K x N)', () => {
    expect(MODELS['8b'].layers.map((l) => `${l.layer}:${l.K}x${l.N}`)).toEqual([
      'qkv:4096x6144',
      'o:4096x4096',
      'gate_up:4096x28672',
      'down:14336x4096',
    ]);
    expect(MODELS['70b'].layers.map((l) => `${l.layer}:${l.K}x${l.N}`)).toEqual([
      'qkv:8192x10240',
      'o:8192x8192',
      'gate_up:8192x57344',
      'down:28672x8192',
    ]);
  });
});

describe('the 8-bit series', () => {
  it('moves 1 byte per weight: FP8 per-channel 70B o_proj at M = 1, and the 8-bit memory-bound bound (1.97x)', () => {
    const b = bytesMoved({ M: 1, N: 8192, K: 8192, groupSize: 8192, hasZeros: false, bits: 8 });
    expect(b.weights).toBe(8192 * 8192);
    expect(b.scales).toBe(2 * 8192);
    expect(b.total).toBe(67_158_016);
    const g128 = bytesMoved({ M: 1, N: 8192, K: 8192, groupSize: 128, hasZeros: false, bits: 8 });
    // fp16 weights / (1 byte + scales) while memory-bound: 2 / 1.0156.
    expect((2 * 8192 * 8192) / (g128.weights + g128.scales)).toBeCloseTo(1.969, 3);
  });

  it('takes the 8-bit targets for int8 and fp8, the INT4 ones for int4', () => {
    expect([1, 16, 32, 64, 128, 256, 512, 4096].map((M) => targetSpeedup('70b', M, 'fp8'))).toEqual([
      1.85, 1.85, 1.8, 1.7, 1.5, 1.0, 0.9, 0.9,
    ]);
    expect([1, 32, 64, 128, 256, 1024].map((M) => targetSpeedup('8b', M, 'int8'))).toEqual([
      1.7, 1.65, 1.5, 1.3, 0.95, 0.9,
    ]);
    expect(targetSpeedup('70b', 1, 'int4')).toBe(3.5);
    expect(targetSpeedup('70b', 1)).toBe(3.5);
  });

  it('runs FP8 per-channel at group size K and every other series at 128, from the addon that ships it', () => {
    expect(SERIES.map((s) => [s.id, s.addon, s.bits, seriesGroupSize(s, 14336)])).toEqual([
      ['int4-g128', 'dense', 4, 128],
      ['int8-g128', 'dense', 8, 128],
      ['fp8-channel', 'fp8', 8, 14336],
      ['fp8-block128', 'fp8', 8, 128],
      ['sparse-g128', 'sparse', 4, 128],
    ]);
    expect(RESULT_FILE).toEqual({ int4: 'dense', int8: 'dense-int8', fp8: 'fp8', sparse: 'sparse' });
  });
});

describe('the 2:4 sparse series', () => {
  it('moves 3 bits per weight (1536-byte tiles) plus the dense g128 scales, activations and output', () => {
    // The doc example: Llama-3-70B o_proj at M = 1.
    const b = bytesMoved({ M: 1, N: 8192, K: 8192, groupSize: 128, hasZeros: false, sparsity: '2:4' });
    expect(b.weights).toBe((8192 * 8192 * 3) / 8);
    expect(b.total).toBe(26_247_168);
    // 0.390625 B/weight with the scales (docs/format.md), against INT4's 0.515625.
    const big = { M: 1, N: 8192, K: 8192 * 64, groupSize: 128, hasZeros: false };
    expect(bytesMoved({ ...big, sparsity: '2:4' }).weights + bytesMoved(big).scales).toBe(0.390625 * 8192 * 8192 * 64);
  });

  it('charges half the dense FLOPs to the compute roofline and judges the issue-18 targets', () => {
    expect(rooflineFlops(4096, 8192, 8192, '2:4')).toBe(gemmFlops(4096, 8192, 8192) / 2);
    expect(rooflineFlops(4096, 8192, 8192)).toBe(gemmFlops(4096, 8192, 8192));
    expect([1, 16, 32, 64, 128, 256, 512, 4096].map((M) => targetSpeedup('70b', M, 'sparse'))).toEqual([
      4.5, 4.5, 4.2, 3.3, 2.2, 1.3, 1.1, 1.1,
    ]);
    expect([1, 32, 64, 128, 256, 1024].map((M) => targetSpeedup('8b', M, 'sparse'))).toEqual([
      3.8, 3.5, 2.8, 1.9, 1.2, 1.05,
    ]);
  });
});
