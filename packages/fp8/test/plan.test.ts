import { planKey } from '@marlin/core';
import { itNeverSkipsValidation, metaTensor as t, fp8MetaWeight as w } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { quickAccept } from '../src/gemm.js';
import { validateGemm } from '../src/index.js';

// The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form:
// quickAccept must never accept what validateGemm rejects (quickAcceptViolations), an INT weight above all.
describe('quickAccept: the hot path never skips a check validateGemm would fail', () => {
  it('accepts the common FP8 call and refuses every INT weight', () => {
    expect(quickAccept(t([5, 128]), w, undefined, undefined)).toBe(true);
    expect(quickAccept(t([5, 128]), { ...w, codeType: 'int' }, undefined, undefined)).toBe(false);
    expect(quickAccept(t([5, 128]), { ...w, bits: 4, codeType: undefined }, undefined, undefined)).toBe(false);
  });

  itNeverSkipsValidation({ quickAccept, validateGemm }, w, [
    { ...w, codeType: 'int' },
    { ...w, codeType: undefined },
    { ...w, bits: 4, codeType: undefined },
  ]);

  it('plan keys: M alone for the common call', () => {
    expect(planKey(8, 128, 128)).toBe(8);
    expect(planKey(8, 136, 128)).not.toBe(8);
  });
});
