import { ErrorCode, referenceGemm, toHalfBits } from '@marlin/core';
import {
  caught,
  commonGemmErrorCases,
  expectCpuGemmIsReference,
  type GemmErrorCase,
  itThrowsTyped,
  randoms,
  metaTensor as t,
  fp8MetaWeight as w,
} from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { gemm, Linear, uploadPacked, validateGemm } from '../src/index.js';
import { fp8Packed } from './helpers.js';

describe('validateGemm: FP8 weights only, every bad operand typed', () => {
  it('accepts an FP8 weight', () => {
    expect(validateGemm(t([5, 128]), w)).toEqual({ dtype: 'fp16', M: 5, N: 80, K: 128, lda: 128 });
    expect(validateGemm(t([5, 128], 'bf16'), { ...w, scaleDtype: 'bf16' }).dtype).toBe('bf16');
  });

  const cases: GemmErrorCase[] = [
    [
      'INT4 weight',
      () => validateGemm(t([5, 128]), { ...w, bits: 4, codeType: undefined }),
      ErrorCode.UNSUPPORTED,
      /INT4 weights are not run by @marlin\/fp8.*Fix: use @marlin\/dense/,
    ],
    [
      'INT8 weight',
      () => validateGemm(t([5, 128]), { ...w, codeType: 'int' }),
      ErrorCode.UNSUPPORTED,
      /INT8 weights are not run by @marlin\/fp8/,
    ],
    ...commonGemmErrorCases(validateGemm, w),
  ];
  itThrowsTyped(cases);
});

describe('host checks before any GPU use', () => {
  it('uploadPacked refuses an INT weight before touching the GPU, naming @marlin/dense', () => {
    const p = fp8Packed(64, 64);
    const int8 = { ...p, codeType: 'int' as const };
    const e = caught(() => uploadPacked(int8));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    expect(e.message).toMatch(/use @marlin\/dense/);
  });

  it('a host matrix given to the GPU gemm is a ValueError with a fix', () => {
    const e = caught(() => gemm({ data: new Uint16Array(64), shape: [1, 64], dtype: 'fp16' } as never, {} as never));
    expect(e.code).toBe(ErrorCode.VALUE);
  });
});

describe("the CPU reference (device: 'cpu')", () => {
  it('gemm on an FP8 packed weight equals referenceGemm, with bias and lda', () => {
    const p = fp8Packed(128, 64, { groupSize: 64 });
    const y = expectCpuGemmIsReference(gemm, p, referenceGemm, { M: 3, lda: 136, biasSeed: 4 });
    expect(y.data.some((v) => v !== 0)).toBe(true);
  });

  for (const scales of ['per-channel', 64, 'block'] as const) {
    it(`Linear.fromFloat(scales: ${scales}, device: 'cpu') quantizes to e4m3 and runs the reference with no GPU`, () => {
      const K = 256;
      const N = 128;
      using layer = Linear.fromFloat(randoms(N * K, 9), { inFeatures: K, outFeatures: N, scales, device: 'cpu' });
      const packed = layer.packed;
      expect(packed.codeType).toBe('e4m3');
      expect(packed.bits).toBe(8);
      expect(packed.zeros).toBeNull();
      expect(packed.groupSize).toBe(scales === 'per-channel' ? K : scales === 'block' ? 128 : 64);
      const x = toHalfBits(randoms(2 * K, 10), 'fp16');
      const y = layer.forward({ data: x, shape: [2, K], dtype: 'fp16' }, { device: 'cpu' });
      expect(Array.from(y.data)).toEqual(Array.from(referenceGemm(x, packed, { M: 2, dtype: 'fp16' }).bits));
    });
  }

  it('Linear.fromPacked refuses an INT weight on the CPU too', () => {
    const e = caught(() => Linear.fromPacked({ ...fp8Packed(64, 64), codeType: 'int' }, { device: 'cpu' }));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
  });
});
