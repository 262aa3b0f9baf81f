import { AlignmentError, DisposedError, DtypeError, ErrorCode, referenceGemm, ShapeError } from '@marlin/core';
import {
  caught,
  expectCpuGemmIsReference,
  type GemmErrorCase,
  itThrowsTyped,
  metaTensor as t,
  int4MetaWeight as w,
} from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { gemm, validateGemm } from '../src/index.js';
import { smallPacked } from './helpers.js';

describe('validateGemm: every bad operand is rejected with its code and a fix, before any launch', () => {
  it('accepts a well-formed call and reports the problem', () => {
    expect(validateGemm(t([5, 128]), w)).toEqual({ dtype: 'fp16', M: 5, N: 80, K: 128, lda: 128 });
    // INT8 (GPTQ 8-bit) runs on the GPU too: no INT4-only refusal.
    expect(validateGemm(t([5, 128]), { ...w, bits: 8 })).toEqual({ dtype: 'fp16', M: 5, N: 80, K: 128, lda: 128 });
    expect(validateGemm(t([5, 256]), w, { lda: 256 })).toEqual({ dtype: 'fp16', M: 5, N: 80, K: 128, lda: 256 });
  });

  const cases: GemmErrorCase[] = [
    ['x dtype f32', () => validateGemm(t([5, 128], 'f32'), w), ErrorCode.DTYPE, /fp16 or bf16/],
    ['x 3-D', () => validateGemm(t([1, 5, 128]), w), ErrorCode.SHAPE, /2-D/],
    ['K mismatch', () => validateGemm(t([5, 64]), w), ErrorCode.SHAPE, /K = 128/],
    ['lda < K', () => validateGemm(t([5, 120]), w, { lda: 120 }), ErrorCode.SHAPE, />= K = 128/],
    ['lda not the row length', () => validateGemm(t([5, 128]), w, { lda: 136 }), ErrorCode.SHAPE, /\[M, 136\]/],
    ['lda misaligned', () => validateGemm(t([5, 132]), w, { lda: 132 }), ErrorCode.ALIGNMENT, /multiple of 8/],
    ['scale dtype mismatch', () => validateGemm(t([5, 128], 'bf16'), w), ErrorCode.DTYPE, /convertScales/],
    [
      'FP8 weight (run by @marlin/fp8)',
      () => validateGemm(t([5, 128]), { ...w, bits: 8, codeType: 'e4m3' }),
      ErrorCode.UNSUPPORTED,
      /FP8 \(e4m3\) weights are not run by @marlin\/dense/,
    ],
    ['3-bit weight', () => validateGemm(t([5, 128]), { ...w, bits: 3 as 4 }), ErrorCode.UNSUPPORTED, /4 or 8 bits/],
    ['bias length', () => validateGemm(t([5, 128]), w, { bias: t([64]) }), ErrorCode.SHAPE, /N = 80/],
    ['bias dtype', () => validateGemm(t([5, 128]), w, { bias: t([80], 'bf16') }), ErrorCode.DTYPE, /bias is bf16/],
    ['out shape', () => validateGemm(t([5, 128]), w, { out: t([5, 64]) }), ErrorCode.SHAPE, /\[5, 80\]/],
    ['out dtype', () => validateGemm(t([5, 128]), w, { out: t([5, 80], 'bf16') }), ErrorCode.DTYPE, /out is bf16/],
    ['x disposed', () => validateGemm(t([5, 128], 'fp16', { disposed: true }), w), ErrorCode.DISPOSED, /after dispose/],
    ['w disposed', () => validateGemm(t([5, 128]), { ...w, disposed: true }), ErrorCode.DISPOSED, /weight/],
    [
      'bias disposed',
      () => validateGemm(t([5, 128]), w, { bias: t([80], 'fp16', { disposed: true }) }),
      ErrorCode.DISPOSED,
      /bias/,
    ],
    [
      'out disposed',
      () => validateGemm(t([5, 128]), w, { out: t([5, 80], 'fp16', { disposed: true }) }),
      ErrorCode.DISPOSED,
      /out/,
    ],
    ['devices differ', () => validateGemm(t([5, 128], 'fp16', { device: 1 }), w), ErrorCode.VALUE, /device 1/],
    [
      'unknown config (ids are not contiguous: 4 was removed from the table)',
      () => validateGemm(t([5, 128]), w, { config: { configId: 4 } }),
      ErrorCode.VALUE,
      /config id 4 is not a compiled configuration \(ids 0, 1, 2, 3, /,
    ],
    ['bad splits', () => validateGemm(t([5, 128]), w, { config: { configId: 0, splits: 0 } }), ErrorCode.VALUE, />= 1/],
    [
      'bad tailSplits',
      () => validateGemm(t([5, 128]), w, { config: { configId: 0, tailSplits: 1.5 } }),
      ErrorCode.VALUE,
      /tailSplits = 1.5 must be an integer in 0 .. 64/,
    ],
    [
      'tailSplits with split-K',
      () => validateGemm(t([5, 128]), w, { config: { configId: 0, splits: 2, tailSplits: 4 } }),
      ErrorCode.VALUE,
      /needs splits = 1/,
    ],
    [
      'overlap not a boolean',
      () => validateGemm(t([5, 128]), w, { overlap: 'no' as unknown as boolean }),
      ErrorCode.VALUE,
      /overlap = no must be true or false/,
    ],
  ];
  itThrowsTyped(cases);

  it('typed classes match the codes', () => {
    expect(caught(() => validateGemm(t([5, 64]), w))).toBeInstanceOf(ShapeError);
    expect(caught(() => validateGemm(t([5, 132]), w, { lda: 132 }))).toBeInstanceOf(AlignmentError);
    expect(caught(() => validateGemm(t([5, 128], 'u8'), w))).toBeInstanceOf(DtypeError);
  });
});

describe('gemm() rejects foreign operands before touching the GPU', () => {
  it('a plain object as x is a DisposedError naming x', () => {
    const r = caught(() => gemm({ shape: [5, 128], dtype: 'fp16' } as never, {} as never));
    expect(r).toBeInstanceOf(DisposedError);
    expect(r.message).toMatch(/x is not a @marlin Tensor/);
  });
});

describe("gemm({ device: 'cpu' }) is the explicit CPU reference", () => {
  it('equals referenceGemm of @marlin/core, with bias and lda', () => {
    expectCpuGemmIsReference(gemm, smallPacked(64, 48), referenceGemm, { M: 3, lda: 72, biasSeed: 5 });
  });

  it('still validates: a bf16 x against fp16 scales is a DtypeError', () => {
    const p = smallPacked(64, 48);
    const r = caught(() => gemm({ data: new Uint16Array(64), shape: [1, 64], dtype: 'bf16' }, p, { device: 'cpu' }));
    expect(r.code).toBe(ErrorCode.DTYPE);
  });
});
