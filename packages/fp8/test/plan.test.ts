import { type PackedWeightMeta, planKey } from '@marlin/core';
import { quickAcceptViolations, metaTensor as t, fp8MetaWeight as w } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { quickAccept } from '../src/gemm.js';
import { validateGemm } from '../src/index.js';

// The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form:
// quickAccept must never accept what validateGemm rejects (quickAcceptViolations), an INT weight above all.
describe('quickAccept: the hot path never skips a check validateGemm would fail', () => {
  const xs = [t([5, 128]), t([5, 64]), t([5, 128], 'bf16'), t([5, 128], 'fp16', { disposed: true }), t([1, 5, 128])];
  const weights: PackedWeightMeta[] = [
    w,
    { ...w, codeType: 'int' },
    { ...w, codeType: undefined },
    { ...w, bits: 4, codeType: undefined },
    { ...w, disposed: true },
    { ...w, scaleDtype: 'bf16' },
    { ...w, device: 1 },
  ];
  const biases = [undefined, t([80]), t([1, 80]), t([64]), t([80], 'bf16')];
  const outs = [undefined, t([5, 80]), t([5, 64]), t([5, 80], 'bf16')];

  it('accepts the common FP8 call and refuses every INT weight', () => {
    expect(quickAccept(t([5, 128]), w, undefined, undefined)).toBe(true);
    expect(quickAccept(t([5, 128]), { ...w, codeType: 'int' }, undefined, undefined)).toBe(false);
    expect(quickAccept(t([5, 128]), { ...w, bits: 4, codeType: undefined }, undefined, undefined)).toBe(false);
  });

  it('implies validateGemm passes with lda = K over every combination', () => {
    const { accepted, violations } = quickAcceptViolations(
      { quickAccept, validateGemm },
      { xs, weights, biases, outs },
    );
    expect(violations).toEqual([]);
    expect(accepted).toBeGreaterThan(3);
  });

  it('plan keys: M alone for the common call', () => {
    expect(planKey(8, 128, 128)).toBe(8);
    expect(planKey(8, 136, 128)).not.toBe(8);
  });
});
