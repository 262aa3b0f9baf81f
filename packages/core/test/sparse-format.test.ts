import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHalfBits } from '../src/dtypes.js';
import { ShapeError, UnsupportedError, ValueError } from '../src/errors/index.js';
import { defaultZeroPoint } from '../src/format/layout.js';
import {
  densifySparse,
  findTwoFourViolation,
  type SparseQuantizedWeight,
  sparsifyQuantized,
  validateSparse,
} from '../src/format/sparse.js';
import type { QuantizedWeight } from '../src/format/types.js';
import { dequantize } from '../src/reference/dequantize.js';
import { dequantizeSparse } from '../src/reference/sparse.js';
import { randomQuantized, thrown } from './helpers.js';
import { randomSparse } from './sparse-helpers.js';

const GROUPS = [32, 64, 128, 'K'] as const;

function spec(K: number, N: number, g: (typeof GROUPS)[number], zeros: boolean, seed: number) {
  return { K, N, groupSize: g === 'K' ? K : g, zeros, scaleDtype: 'fp16' as const, seed };
}

describe('SparseQuantizedWeight <-> QuantizedWeight', () => {
  it('densify puts the kept codes at their positions and the zero point elsewhere', () => {
    const s = randomSparse(spec(64, 16, 32, true, 1));
    const d = densifySparse(s);
    for (let j = 0; j < 16; j++) {
      const g = Math.floor((4 * j) / 32);
      for (let n = 0; n < 16; n++) {
        const a = s.indices[2 * j * 16 + n];
        const b = s.indices[(2 * j + 1) * 16 + n];
        for (let i = 0; i < 4; i++) {
          const want =
            i === a ? s.codes[2 * j * 16 + n] : i === b ? s.codes[(2 * j + 1) * 16 + n] : s.zeros![g * 16 + n];
          expect(d.codes[(4 * j + i) * 16 + n]).toBe(want);
        }
      }
    }
  });

  it('pruned weights dequantize to exactly 0 (symmetric: code 8; asymmetric: the zero point)', () => {
    for (const zeros of [false, true]) {
      const s = randomSparse(spec(128, 32, 64, zeros, 2));
      const w = dequantizeSparse(s, 'fp16');
      let zerosSeen = 0;
      for (let j = 0; j < 32; j++) {
        for (let n = 0; n < 32; n++) {
          const kept = [s.indices[2 * j * 32 + n], s.indices[(2 * j + 1) * 32 + n]];
          for (let i = 0; i < 4; i++) {
            if (kept.includes(i)) continue;
            expect(Object.is(w[(4 * j + i) * 32 + n], 0) || Object.is(w[(4 * j + i) * 32 + n], -0)).toBe(true);
            zerosSeen++;
          }
        }
      }
      expect(zerosSeen).toBe(64 * 32);
    }
  });

  it('property: sparse -> dense -> sparse -> dense is the identity on the dense form and on dequantized values', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(...GROUPS),
        fc.boolean(),
        fc.integer(),
        (kb, nb, g, zeros, seed) => {
          const s = randomSparse(spec(32 * kb, 16 * nb, g === 'K' || g <= 32 * kb ? g : 'K', zeros, seed));
          const d = densifySparse(s);
          const back = sparsifyQuantized(d);
          expect(densifySparse(back).codes).toEqual(d.codes);
          expect(dequantizeSparse(back, 'fp16')).toEqual(dequantize(d, 'fp16'));
          // With the original positions given, the round trip is exact field by field.
          const exact = sparsifyQuantized(d, { indices: s.indices });
          expect(exact.codes).toEqual(s.codes);
          expect(exact.indices).toEqual(s.indices);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('sparsify picks the non-zero positions, padded with the lowest zero positions', () => {
    const K = 16;
    const N = 16;
    const codes = new Uint8Array(K * N).fill(8);
    codes[3 * N] = 5; // group 0: only row 3 non-zero -> (0, 3)
    codes[(4 + 1) * N] = 1; // group 1: rows 1 and 2 non-zero -> (1, 2)
    codes[(4 + 2) * N] = 2;
    const q: QuantizedWeight = {
      bits: 4,
      K,
      N,
      groupSize: K,
      codes,
      scales: new Uint16Array(N).fill(0x3c00),
      scaleDtype: 'fp16',
      zeros: null,
      gIdx: null,
    };
    const s = sparsifyQuantized(q);
    expect([s.indices[0], s.indices[N]]).toEqual([0, 3]);
    expect([s.codes[0], s.codes[N]]).toEqual([8, 5]);
    expect([s.indices[2 * N], s.indices[3 * N]]).toEqual([1, 2]);
    expect([s.indices[4 * N], s.indices[5 * N]]).toEqual([0, 1]); // all-zero group
    expect(findTwoFourViolation(q)).toBeNull();
  });

  it('a dense weight with 3 non-zero codes in a group is refused (not 2:4), naming the group', () => {
    const q = randomQuantized({
      K: 32,
      N: 16,
      bits: 4,
      groupSize: 32,
      zeros: false,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 3,
    });
    const codes = new Uint8Array(q.codes).fill(defaultZeroPoint(4));
    codes[(8 + 0) * 16 + 5] = 1;
    codes[(8 + 1) * 16 + 5] = 2;
    codes[(8 + 3) * 16 + 5] = 3;
    const bad = { ...q, codes };
    const e = thrown(() => sparsifyQuantized(bad));
    expect(e).toBeInstanceOf(ValueError);
    expect((e as ValueError).details).toMatchObject({ reason: 'not-2:4', group: 2, n: 5 });
    expect(e.message).toMatch(/rows 8\.\.11 of column 5/);
    expect(findTwoFourViolation(bad)).toEqual({ k: 8, n: 5 });
    // With explicit positions, a non-zero code at a pruned position is refused too.
    const indices = new Uint8Array(16 * 16);
    for (let r = 0; r < 16; r += 2) for (let n = 0; n < 16; n++) indices[(r + 1) * 16 + n] = 1;
    expect((thrown(() => sparsifyQuantized(bad, { indices })) as ValueError).details).toMatchObject({
      reason: 'not-2:4',
    });
  });
});

describe('validateSparse', () => {
  const good = (): SparseQuantizedWeight => randomSparse(spec(64, 16, 32, false, 9));

  it('accepts a valid weight', () => {
    expect(() => validateSparse(good())).not.toThrow();
  });

  it('refuses indices out of order or repeated, with a typed error naming the group', () => {
    for (const [a, b] of [
      [2, 1],
      [1, 1],
      [0, 4],
    ]) {
      const s = good();
      const indices = new Uint8Array(s.indices);
      indices[2 * 3 * 16 + 7] = a;
      indices[(2 * 3 + 1) * 16 + 7] = b;
      const e = thrown(() => validateSparse({ ...s, indices }));
      expect(e).toBeInstanceOf(ValueError);
      expect((e as ValueError).details).toMatchObject({ reason: 'indices-out-of-order', group: 3, n: 7 });
    }
  });

  it('refuses K that is not a multiple of 4 or of the k step 16, wrong lengths, codes > 15, bits 8', () => {
    const s = good();
    expect(thrown(() => validateSparse({ ...s, K: 62 }))).toBeInstanceOf(ShapeError);
    expect(thrown(() => validateSparse({ ...s, K: 62 })).message).toMatch(/multiple of 4/);
    expect(thrown(() => validateSparse({ ...s, K: 68 }))).toBeInstanceOf(ShapeError);
    expect(thrown(() => validateSparse({ ...s, codes: s.codes.subarray(1) }))).toBeInstanceOf(ShapeError);
    const codes = new Uint8Array(s.codes);
    codes[10] = 16;
    expect(thrown(() => validateSparse({ ...s, codes }))).toBeInstanceOf(ValueError);
    expect(thrown(() => validateSparse({ ...s, bits: 8 as 4 }))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => validateSparse({ ...s, groupSize: 16 }))).toBeInstanceOf(UnsupportedError);
  });

  it('refuses act-order and 8-bit dense weights in sparsify', () => {
    const q = randomQuantized({
      K: 64,
      N: 16,
      bits: 4,
      groupSize: 32,
      zeros: false,
      actOrder: true,
      scaleDtype: 'fp16',
      seed: 4,
    });
    expect(thrown(() => sparsifyQuantized(q))).toBeInstanceOf(UnsupportedError);
    const q8 = randomQuantized({
      K: 64,
      N: 16,
      bits: 8,
      groupSize: 32,
      zeros: false,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 4,
    });
    expect(thrown(() => sparsifyQuantized(q8))).toBeInstanceOf(UnsupportedError);
  });

  it('dequantized scales go through unchanged (bf16 too)', () => {
    const s = randomSparse({ ...spec(32, 16, 'K', false, 5), scaleDtype: 'bf16' });
    const w = dequantizeSparse(s, 'bf16');
    const sc = fromHalfBits(s.scales, 'bf16');
    const k = 4 * 2 + s.indices[2 * 2 * 16 + 3];
    expect(w[k * 16 + 3]).toBe((s.codes[2 * 2 * 16 + 3] - 8) * sc[3]);
  });
});
