import { MarlinError, type PackedWeightMeta, planKey, type TensorMeta } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import { quickAccept } from '../src/gemm.js';
import { validateGemm } from '../src/index.js';
import { metaTensor as t, metaWeight as w } from './helpers.js';

// The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form:
// quickAccept must never accept what validateGemm rejects, an INT weight above all.
function validates(x: TensorMeta, weight: PackedWeightMeta, bias?: TensorMeta, out?: TensorMeta): boolean {
  try {
    const v = validateGemm(x, weight, { bias, out });
    return v.lda === weight.K && v.M === x.shape[0];
  } catch (e) {
    if (e instanceof MarlinError) return false;
    throw e;
  }
}

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
    let accepted = 0;
    for (const x of xs)
      for (const weight of weights)
        for (const bias of biases)
          for (const out of outs) {
            if (!quickAccept(x, weight, bias, out)) continue;
            accepted++;
            expect(validates(x, weight, bias, out), JSON.stringify({ x, weight, bias, out })).toBe(true);
          }
    expect(accepted).toBeGreaterThan(3);
  });

  it('plan keys: M alone for the common call', () => {
    expect(planKey(8, 128, 128)).toBe(8);
    expect(planKey(8, 136, 128)).not.toBe(8);
  });
});
