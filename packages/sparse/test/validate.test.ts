import { ErrorCode, pack, quantizeRtn, referenceGemmPackedSparse, toHalfBits } from '@marlin/core';
import {
  caught,
  commonGemmErrorCases,
  expectCpuGemmIsReference,
  type GemmErrorCase,
  int4MetaWeight,
  itThrowsTyped,
  randoms,
  metaTensor as t,
} from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { gemm, Linear, uploadPacked, validateGemm } from '../src/index.js';
import { sparsePacked, sparseMetaWeight as w } from './helpers.js';

describe('validateGemm: 2:4 weights only, every bad operand typed', () => {
  it('accepts a 2:4 weight', () => {
    expect(validateGemm(t([5, 128]), w)).toEqual({ dtype: 'fp16', M: 5, N: 80, K: 128, lda: 128 });
    expect(validateGemm(t([5, 128], 'bf16'), { ...w, scaleDtype: 'bf16' }).dtype).toBe('bf16');
  });

  const cases: GemmErrorCase[] = [
    [
      'dense INT4 weight',
      () => validateGemm(t([5, 128]), int4MetaWeight),
      ErrorCode.UNSUPPORTED,
      /INT4 weights are not run by @marlin\/sparse.*Fix: use @marlin\/dense/,
    ],
    [
      'FP8 weight',
      () => validateGemm(t([5, 128]), { ...w, sparsity: null, bits: 8, codeType: 'e4m3' }),
      ErrorCode.UNSUPPORTED,
      /FP8 \(e4m3\) weights are not run by @marlin\/sparse.*Fix: use @marlin\/fp8/,
    ],
    ...commonGemmErrorCases(validateGemm, w),
    [
      'a dense row forced',
      () => validateGemm(t([5, 128]), w, { config: { configId: 0 } }),
      ErrorCode.VALUE,
      /config id 0 is not a compiled configuration/,
    ],
  ];
  itThrowsTyped(cases);
});

describe('host checks before any GPU use', () => {
  it('uploadPacked refuses a dense weight before touching the GPU, naming @marlin/dense', () => {
    const dense = pack(quantizeRtn(randoms(64 * 64, 3), { K: 64, N: 64, groupSize: 64 }).weight);
    const e = caught(() => uploadPacked(dense));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    expect(e.message).toMatch(/use @marlin\/dense/);
  });

  it('a weight that is not 2:4 is refused: a corrupt metadata nibble, and float weights cannot be packed unpruned', () => {
    const p = sparsePacked(64, 64);
    const bad = { ...p, qweight: p.qweight.slice() };
    bad.qweight[256] = 0x44444400; // nibbles 0b0000: equal positions, undefined on the sparse tensor cores
    const e = caught(() => uploadPacked(bad));
    expect(e.code).toBe(ErrorCode.VALUE);
    expect(e.details?.reason).toBe('indices-out-of-order');
    expect(caught(() => Linear.fromPacked(bad, { device: 'cpu' })).code).toBe(ErrorCode.VALUE);
  });

  it('a host matrix given to the GPU gemm is a ValueError with a fix', () => {
    const e = caught(() => gemm({ data: new Uint16Array(64), shape: [1, 64], dtype: 'fp16' } as never, {} as never));
    expect(e.code).toBe(ErrorCode.VALUE);
  });
});

describe("the CPU reference (device: 'cpu')", () => {
  it('gemm on a packed 2:4 weight equals referenceGemmPackedSparse, with bias and lda', () => {
    const p = sparsePacked(128, 64, { groupSize: 64, sym: false });
    const y = expectCpuGemmIsReference(gemm, p, referenceGemmPackedSparse, { M: 3, lda: 136, biasSeed: 4 });
    expect(y.data.some((v) => v !== 0)).toBe(true);
  });

  for (const groupSize of [32, 128, 'per-channel'] as const) {
    it(`Linear.fromFloat(groupSize: ${groupSize}, device: 'cpu') prunes 2:4, reports the errors, runs the reference`, () => {
      const K = 256;
      const N = 128;
      const weights = randoms(N * K, 9);
      using layer = Linear.fromFloat(weights, { inFeatures: K, outFeatures: N, groupSize, device: 'cpu' });
      const packed = layer.packed;
      expect(packed.sparsity).toBe('2:4');
      expect(packed.groupSize).toBe(groupSize === 'per-channel' ? K : groupSize);
      // Magnitude pruning of uniform weights drops about a quarter of the energy; the error says so.
      const e = layer.errors;
      expect(e?.pruning.relFrobenius).toBeGreaterThan(0.2);
      expect(e?.pruning.relFrobenius).toBeLessThan(0.6);
      expect(e?.total.relFrobenius).toBeGreaterThanOrEqual(e?.pruning.relFrobenius ?? 1);
      const x = toHalfBits(randoms(2 * K, 10), 'fp16');
      const y = layer.forward({ data: x, shape: [2, K], dtype: 'fp16' }, { device: 'cpu' });
      expect(Array.from(y.data)).toEqual(
        Array.from(referenceGemmPackedSparse(x, packed, { M: 2, dtype: 'fp16' }).bits),
      );
    });
  }

  it('Linear.fromPacked keeps a host layer; fromPacked of a packed layer has no fromFloat errors', () => {
    const p = sparsePacked(64, 64);
    using layer = Linear.fromPacked(p, { device: 'cpu' });
    expect(layer.packed).toBe(p);
    expect(layer.errors).toBeNull();
    expect([layer.inFeatures, layer.outFeatures]).toEqual([64, 64]);
  });
});
