import { planKey } from '@marlin/core';
import { quickAcceptViolations, metaTensor as t, int4MetaWeight as w } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { quickAccept } from '../src/gemm.js';
import { type PackedWeightMeta, type TensorMeta, validateGemm } from '../src/index.js';

// The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form.
// These tests hold it to that (quickAcceptViolations): every bad input must still reach validateGemm and its typed
// error.

describe('quickAccept: the hot path never skips a check validateGemm would fail', () => {
  it('accepts the common valid calls', () => {
    expect(quickAccept(t([5, 128]), w, undefined, undefined)).toBe(true);
    expect(quickAccept(t([1, 128]), w, t([80]), t([1, 80]))).toBe(true);
    expect(quickAccept(t([7, 128]), w, t([1, 80]), undefined)).toBe(true);
    expect(quickAccept(t([3, 128], 'bf16'), { ...w, scaleDtype: 'bf16' }, undefined, t([3, 80], 'bf16'))).toBe(true);
  });

  it('refuses out === x (validateGemm names it)', () => {
    const x = t([80, 128]);
    expect(quickAccept(x, { ...w, K: 128, N: 128 }, undefined, x)).toBe(false);
  });

  // Every operand varied one property at a time, and in pairs: quickAccept(...) must imply validateGemm passes.
  const xs: TensorMeta[] = [
    t([5, 128]),
    t([0, 128]),
    t([5, 64]),
    t([5, 136]),
    t([1, 5, 128]),
    t([640]),
    t([5, 128], 'bf16'),
    t([5, 128], 'f32'),
    t([5, 128], 'u8'),
    t([5, 128], 'fp16', { disposed: true }),
    t([5, 128], 'fp16', { device: 1 }),
  ];
  const weights: PackedWeightMeta[] = [
    w,
    { ...w, disposed: true },
    { ...w, bits: 8 as 4 },
    { ...w, scaleDtype: 'bf16' },
    { ...w, device: 1 },
    { ...w, K: 132, Kp: 192 },
  ];
  const biases: (TensorMeta | undefined)[] = [
    undefined,
    t([80]),
    t([1, 80]),
    t([2, 40]),
    t([64]),
    t([80, 1]),
    t([1, 1, 80]),
    t([80], 'bf16'),
    t([80], 'fp16', { disposed: true }),
    t([80], 'fp16', { device: 1 }),
  ];
  const outs: (TensorMeta | undefined)[] = [
    undefined,
    t([5, 80]),
    t([5, 64]),
    t([4, 80]),
    t([400]),
    t([5, 80], 'bf16'),
    t([5, 80], 'fp16', { disposed: true }),
    t([5, 80], 'fp16', { device: 1 }),
  ];

  it(`implies validateGemm passes with lda = K, over ${xs.length * weights.length * biases.length * outs.length} combinations`, () => {
    const { accepted, violations } = quickAcceptViolations(
      { quickAccept, validateGemm },
      { xs, weights, biases, outs },
    );
    expect(violations).toEqual([]);
    expect(accepted).toBeGreaterThan(10);
  });
});

describe('planKey', () => {
  it('is M alone for the common call and distinct for lda, forced configs and serial launches', () => {
    expect(planKey(8, 4096, 4096)).toBe(8);
    const keys = new Set([
      planKey(8, 4096, 4096),
      planKey(8, 4104, 4096),
      planKey(8, 4096, 4096, { configId: 0 }),
      planKey(8, 4096, 4096, { configId: 0, splits: 2 }),
      planKey(8, 4096, 4096, { configId: 1 }),
      planKey(9, 4096, 4096),
      planKey(8, 4096, 4096, undefined, true),
      planKey(8, 4096, 4096, { configId: 0 }, true),
      planKey(8, 4096, 4096, { configId: 0, splits: 1, tailSplits: 2 }),
      planKey(8, 4096, 4096, { configId: 0, splits: 1 }),
    ]);
    expect(keys.size).toBe(10);
  });
});
