import { int4MetaWeight, itNeverSkipsValidation, metaTensor as t } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { quickAccept } from '../src/gemm.js';
import { validateGemm } from '../src/index.js';
import { sparseMetaWeight as w } from './helpers.js';

// The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form:
// quickAccept must never accept what validateGemm rejects, a dense weight above all (its bytes are not 2:4 tiles).
describe('quickAccept: the hot path never skips a check validateGemm would fail', () => {
  it('accepts the common 2:4 call and refuses every dense weight', () => {
    expect(quickAccept(t([5, 128]), w, undefined, undefined)).toBe(true);
    expect(quickAccept(t([5, 128]), { ...w, sparsity: null }, undefined, undefined)).toBe(false);
    expect(quickAccept(t([5, 128]), int4MetaWeight, undefined, undefined)).toBe(false);
  });

  itNeverSkipsValidation({ quickAccept, validateGemm }, w, [
    { ...w, sparsity: null },
    { ...w, sparsity: undefined },
    { ...int4MetaWeight, K: 128 },
  ]);
});
