import type { PackedWeightMeta } from '@marlin/core';
import { int4MetaWeight, quickAcceptViolations, metaTensor as t } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { quickAccept } from '../src/gemm.js';
import { validateGemm } from '../src/index.js';
import { sparseMetaWeight as w } from './helpers.js';

// The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form:
// quickAccept must never accept what validateGemm rejects, a dense weight above all (its bytes are not 2:4 tiles).
describe('quickAccept: the hot path never skips a check validateGemm would fail', () => {
  const xs = [t([5, 128]), t([5, 64]), t([5, 128], 'bf16'), t([5, 128], 'fp16', { disposed: true }), t([1, 5, 128])];
  const weights: PackedWeightMeta[] = [
    w,
    { ...w, sparsity: null },
    { ...w, sparsity: undefined },
    { ...int4MetaWeight, K: 128 },
    { ...w, disposed: true },
    { ...w, scaleDtype: 'bf16' },
    { ...w, device: 1 },
  ];
  const biases = [undefined, t([80]), t([1, 80]), t([64]), t([80], 'bf16')];
  const outs = [undefined, t([5, 80]), t([5, 64]), t([5, 80], 'bf16')];

  it('accepts the common 2:4 call and refuses every dense weight', () => {
    expect(quickAccept(t([5, 128]), w, undefined, undefined)).toBe(true);
    expect(quickAccept(t([5, 128]), { ...w, sparsity: null }, undefined, undefined)).toBe(false);
    expect(quickAccept(t([5, 128]), int4MetaWeight, undefined, undefined)).toBe(false);
  });

  it('implies validateGemm passes with lda = K over every combination', () => {
    const { accepted, violations } = quickAcceptViolations(
      { quickAccept, validateGemm },
      { xs, weights, biases, outs },
    );
    expect(violations).toEqual([]);
    expect(accepted).toBeGreaterThan(3);
  });
});
