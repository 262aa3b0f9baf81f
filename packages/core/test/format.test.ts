import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f32ToBf16, f32ToF16 } from '../src/dtypes.js';
import { ErrorCode, FormatError, ShapeError, UnsupportedError, ValueError } from '../src/errors/index.js';
import {
  codeLocation,
  elementInTile,
  paddedK,
  paddedN,
  positionInTile,
  TILE_WORDS,
  tileIndex,
} from '../src/format/layout.js';
import { actOrderPermutation, convertScales, isTrivialGIdx, pack, unpack } from '../src/format/pack.js';
import type { PackedWeight, QuantizedWeight, WeightBits } from '../src/format/types.js';
import { validatePacked } from '../src/format/validate.js';
import { randomGIdx, randomQuantized, rng, thrown } from './helpers.js';

/**
 * docs/format.md "Inside a tile", written out again here independently of src/format/layout.ts: for word index
 * (w*32 + l)*4 + j and nibble p (int4) or word index (w*32 + l)*4 + 2j + h and byte b (int8), the element it holds.
 */
function docElement(word: number, slot: number, bits: WeightBits): { kLocal: number; nLocal: number } {
  const w = Math.floor(word / 128);
  const l = Math.floor(word / 4) % 32;
  const g = l >> 2;
  const t = l & 3;
  if (bits === 4) {
    const j = word % 4;
    const p = slot;
    return { nLocal: 16 * w + g + 8 * (p & 1), kLocal: 16 * j + 2 * t + ((p >> 2) & 1) + 8 * ((p >> 1) & 1) };
  }
  const j = Math.floor((word % 4) / 2);
  const second = word % 2;
  const b = slot;
  return { nLocal: 16 * w + g + 8 * (b >> 1), kLocal: 16 * j + 2 * t + 8 * second + (b & 1) };
}

function docCode(p: PackedWeight, tile: number, word: number, slot: number): number {
  const v = p.qweight[tile * 512 + word];
  return p.bits === 4 ? (v >>> (4 * slot)) & 15 : (v >>> (8 * slot)) & 255;
}

describe('layout formulas', () => {
  for (const bits of [4, 8] as const) {
    it(`positionInTile and elementInTile are inverse bijections over a ${bits}-bit tile`, () => {
      const kt = bits === 4 ? 64 : 32;
      const seen = new Set<number>();
      for (let k = 0; k < kt; k++) {
        for (let n = 0; n < 64; n++) {
          const pos = positionInTile(k, n, bits);
          expect(pos.word).toBeGreaterThanOrEqual(0);
          expect(pos.word).toBeLessThan(TILE_WORDS);
          expect(pos.shift % bits).toBe(0);
          seen.add(pos.word * 32 + pos.shift);
          expect(elementInTile(pos.word, pos.shift, bits)).toEqual({ kLocal: k, nLocal: n });
          expect(docElement(pos.word, pos.shift / bits, bits)).toEqual({ kLocal: k, nLocal: n });
        }
      }
      expect(seen.size).toBe(kt * 64);
    });
  }

  it('pads K to 64 for every bit width (8-bit: an even number of 32-row tiles) and N to 64; tiles column-block-major', () => {
    expect(paddedK(7392, 4)).toBe(7424);
    expect(paddedK(7392, 8)).toBe(7424); // 231 rows of 32 would be odd: 232 tiles
    expect(paddedK(10944, 4)).toBe(10944);
    expect(paddedK(10944, 8)).toBe(10944);
    expect(paddedK(16, 8)).toBe(64);
    expect(paddedK(96, 8)).toBe(128);
    expect(paddedK(128, 8)).toBe(128);
    expect(paddedN(80)).toBe(128);
    expect(tileIndex(2, 1, 256, 4)).toBe(4 + 2);
    expect(codeLocation(64 + 1, 64, 256, 4)).toEqual({ wordIndex: (4 + 1) * 512 + 0, shift: 16 });
  });

  it('the mma fragment reading of docs/format.md holds: (word & 0x000F000F) is (row g, cols 2t, 2t+1)', () => {
    for (let lane = 0; lane < 32; lane++) {
      const g = lane >> 2;
      const t = lane & 3;
      for (let j = 0; j < 4; j++) {
        const word = lane * 4 + j;
        expect(docElement(word, 0, 4)).toEqual({ nLocal: g, kLocal: 16 * j + 2 * t });
        expect(docElement(word, 4, 4)).toEqual({ nLocal: g, kLocal: 16 * j + 2 * t + 1 });
        expect(docElement(word, 1, 4)).toEqual({ nLocal: g + 8, kLocal: 16 * j + 2 * t });
        expect(docElement(word, 2, 4)).toEqual({ nLocal: g, kLocal: 16 * j + 2 * t + 8 });
      }
    }
  });
});

function constantWeight(bits: WeightBits, K: number, N: number, code: number): QuantizedWeight {
  const G = 1;
  return {
    bits,
    K,
    N,
    groupSize: K,
    codes: new Uint8Array(K * N).fill(code),
    scales: new Uint16Array(G * N).fill(f32ToF16(1)),
    scaleDtype: 'fp16',
    zeros: null,
    gIdx: null,
  };
}

describe('pack bytes against the docs/format.md formulas', () => {
  it('places a single int4 code where the formula says, by hand', () => {
    const q = constantWeight(4, 64, 64, 8);
    (q.codes as Uint8Array)[1 * 64 + 0] = 5; // k = 1, n = 0 -> w 0, lane 0, j 0, nibble p = 4 (bits 16..19)
    (q.codes as Uint8Array)[17 * 64 + 9] = 3; // k = 17 -> j 1, c 1, t 0, odd; n = 9 -> g 1, high row -> lane 4, p = 5
    (q.codes as Uint8Array)[63 * 64 + 63] = 1; // k 63 -> j 3, c 15: t 3, odd, high; n 63 -> w 3, g 7, high -> p 7
    const p = pack(q);
    expect(p.qweight[0]).toBe(0x88858888);
    expect(p.qweight[(0 * 32 + 4) * 4 + 1]).toBe(0x88388888);
    expect(p.qweight[(3 * 32 + 31) * 4 + 3]).toBe(0x18888888);
    expect(p.qweight[1]).toBe(0x88888888);
  });

  it('places a single int8 code where the formula says, by hand', () => {
    const q = constantWeight(8, 32, 64, 128);
    (q.codes as Uint8Array)[9 * 64 + 8] = 7; // k 9: j 0, c 9: t 0, odd, high -> word 2j+1 = 1; n 8: g 0, high -> b 3
    const p = pack(q);
    expect(p.qweight[1]).toBe(0x07808080);
    expect(p.qweight[0]).toBe(0x80808080);
  });

  for (const bits of [4, 8] as const) {
    it(`every ${bits}-bit code of random weights sits at the doc's (tile, word, slot)`, () => {
      const K = 160;
      const N = 80;
      const q = randomQuantized({
        K,
        N,
        bits,
        groupSize: 32,
        zeros: false,
        actOrder: false,
        scaleDtype: 'fp16',
        seed: bits,
      });
      const p = pack(q);
      const kt = bits === 4 ? 64 : 32;
      const slots = 32 / bits;
      for (let nb = 0; nb < p.Np / 64; nb++) {
        for (let kb = 0; kb < p.Kp / kt; kb++) {
          const tile = nb * (p.Kp / kt) + kb;
          for (let word = 0; word < 512; word++) {
            for (let s = 0; s < slots; s++) {
              const { kLocal, nLocal } = docElement(word, s, bits);
              const k = kb * kt + kLocal;
              const n = nb * 64 + nLocal;
              const expected = k < K && n < N ? q.codes[k * N + n] : 1 << (bits - 1);
              if (docCode(p, tile, word, s) !== expected) {
                throw new Error(
                  `tile ${tile} word ${word} slot ${s}: got ${docCode(p, tile, word, s)}, want ${expected}`,
                );
              }
            }
          }
        }
      }
    });
  }
});

const SAMPLED_DIMS = [16, 32, 48, 64, 80, 112, 128, 144, 208, 256];

function arbSpec() {
  return fc
    .record({
      K: fc.constantFrom(...SAMPLED_DIMS),
      N: fc.constantFrom(...SAMPLED_DIMS),
      bits: fc.constantFrom<WeightBits>(4, 8),
      group: fc.constantFrom(32, 64, 128, 'per-channel' as const),
      zeros: fc.boolean(),
      actOrder: fc.boolean(),
      scaleDtype: fc.constantFrom('fp16' as const, 'bf16' as const),
      seed: fc.integer({ min: 0, max: 1e9 }),
    })
    .map((s) => ({ ...s, groupSize: s.group === 'per-channel' ? s.K : s.group }));
}

function expectSameQuantized(a: QuantizedWeight, b: QuantizedWeight): void {
  expect(a.bits).toBe(b.bits);
  expect([a.K, a.N, a.groupSize, a.scaleDtype]).toEqual([b.K, b.N, b.groupSize, b.scaleDtype]);
  expect(Buffer.from(a.codes.buffer, a.codes.byteOffset, a.codes.byteLength).equals(Buffer.from(b.codes))).toBe(true);
  expect(Array.from(a.scales)).toEqual(Array.from(b.scales));
  expect(a.zeros === null ? null : Array.from(a.zeros)).toEqual(b.zeros === null ? null : Array.from(b.zeros));
  expect(a.gIdx === null ? null : Array.from(a.gIdx)).toEqual(b.gIdx === null ? null : Array.from(b.gIdx));
}

/** Every padded code must be the zero point of its (clamped) group, so the padded weight is exactly 0. */
function expectPaddingIsZeroPoint(p: PackedWeight): void {
  const zp = 1 << (p.bits - 1);
  const mask = (1 << p.bits) - 1;
  for (let k = 0; k < p.Kp; k++) {
    const g = Math.min(Math.floor(k / p.groupSize), p.numGroups - 1);
    for (let n = 0; n < p.Np; n++) {
      if (k < p.K && n < p.N) continue;
      const { wordIndex, shift } = codeLocation(k, n, p.Kp, p.bits);
      const code = (p.qweight[wordIndex] >>> shift) & mask;
      const z = p.zeros === null || n >= p.N ? zp : p.zeros[g * p.Np + n];
      if (code !== z) throw new Error(`padded code at (${k}, ${n}) is ${code}, want zero point ${z}`);
    }
  }
  for (let g = 0; g < p.numGroups; g++) {
    for (let n = p.N; n < p.Np; n++) {
      expect(p.scales[g * p.Np + n]).toBe(0);
      if (p.zeros) expect(p.zeros[g * p.Np + n]).toBe(zp);
    }
  }
}

describe('pack / unpack round trip', () => {
  it('unpack(pack(q)) === q for random shapes, bits, groups, zeros and act-order (property)', () => {
    fc.assert(
      fc.property(arbSpec(), (spec) => {
        const q = randomQuantized(spec);
        const p = pack(q);
        expect(p.Kp).toBe(paddedK(spec.K, spec.bits));
        expect(p.Np).toBe(paddedN(spec.N));
        expect(p.perm !== null).toBe(spec.actOrder);
        expectPaddingIsZeroPoint(p);
        expectSameQuantized(unpack(p), q);
      }),
      { numRuns: 60 },
    );
  });

  for (const K of [10944, 7392, 14784]) {
    for (const bits of [4, 8] as const) {
      it(`round-trips the tensor-parallel shard K = ${K} (${bits}-bit, g=128, zeros, act-order)`, () => {
        const q = randomQuantized({
          K,
          N: 80,
          bits,
          groupSize: 128,
          zeros: true,
          actOrder: true,
          scaleDtype: 'bf16',
          seed: K,
        });
        const p = pack(q);
        expect(p.numGroups).toBe(Math.ceil(K / 128));
        expectPaddingIsZeroPoint(p);
        expectSameQuantized(unpack(p), q);
      });
    }
  }

  it('handles the partial last group K = 7392, g = 128 (57 full groups + 96 rows) and reports padded bytes', () => {
    const q = randomQuantized({
      K: 7392,
      N: 48,
      bits: 4,
      groupSize: 128,
      zeros: true,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 5,
    });
    const p = pack(q);
    expect(p.numGroups).toBe(58);
    expect(p.Kp).toBe(7424);
    expect(p.Np).toBe(64);
    const codeBytes = ((7424 * 64 - 7392 * 48) * 4) / 8;
    expect(p.paddedBytes).toBe(codeBytes + 58 * 16 * 3);
    expectSameQuantized(unpack(p), q);
  });

  it('sorts act-order rows stably by group id and rebuilds g_idx exactly', () => {
    const gIdx = new Int32Array([1, 0, 1, 0]);
    expect(Array.from(actOrderPermutation(gIdx, 2))).toEqual([1, 3, 0, 2]);
    const r = rng(9);
    const big = randomGIdx(r, 256, 64);
    const perm = actOrderPermutation(big, 64);
    for (let k = 0; k < 256; k++) expect(big[perm[k]]).toBe(Math.floor(k / 64));
    expect(isTrivialGIdx(new Int32Array([0, 0, 1, 1]), 2)).toBe(true);
    expect(isTrivialGIdx(gIdx, 2)).toBe(false);
  });

  it('convertScales re-encodes fp16 <-> bf16 with RNE and rejects overflow', () => {
    const q = randomQuantized({
      K: 64,
      N: 64,
      bits: 4,
      groupSize: 32,
      zeros: false,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 1,
    });
    const p = pack(q);
    const b = convertScales(p, 'bf16');
    expect(b.scaleDtype).toBe('bf16');
    const viaPack = pack(q, { scaleDtype: 'bf16' });
    expect(Array.from(b.scales)).toEqual(Array.from(viaPack.scales));
    for (let g = 0; g < p.numGroups; g++) {
      for (let n = 0; n < 64; n++) expect(b.scales[g * 64 + n]).toBe(f32ToBf16(decodeF16(q.scales[g * 64 + n])));
    }
    const huge = { ...q, scales: new Uint16Array(q.scales.length).fill(f32ToBf16(1e6)), scaleDtype: 'bf16' as const };
    const e = thrown(() => convertScales(pack(huge), 'fp16'));
    expect(e).toBeInstanceOf(ValueError);
    expect(e.message).toMatch(/scale \[group 0, column 0\] is infinite.*Fix:/);
  });
});

function decodeF16(bits: number): number {
  const exp = (bits >> 10) & 31;
  const m = bits & 1023;
  const s = bits & 0x8000 ? -1 : 1;
  return exp === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (exp - 15);
}

describe('validation errors', () => {
  const base = () =>
    randomQuantized({
      K: 64,
      N: 32,
      bits: 4,
      groupSize: 32,
      zeros: true,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 2,
    });

  const cases: [string, () => QuantizedWeight, new (...a: never[]) => Error, string, RegExp][] = [
    [
      'K not a multiple of 16',
      () => ({ ...base(), K: 40 }),
      ShapeError,
      ErrorCode.SHAPE,
      /K = 40 must be a positive multiple of 16.*Fix: pad K/,
    ],
    [
      'N not a multiple of 16',
      () => ({ ...base(), N: 20 }),
      ShapeError,
      ErrorCode.SHAPE,
      /N = 20 must be a positive multiple of 16/,
    ],
    [
      'codes length',
      () => ({ ...base(), codes: new Uint8Array(10) }),
      ShapeError,
      ErrorCode.SHAPE,
      /codes has 10 elements but K x N = 64 x 32 needs 2048/,
    ],
    [
      'scales length',
      () => ({ ...base(), scales: new Uint16Array(3) }),
      ShapeError,
      ErrorCode.SHAPE,
      /scales has 3 elements.*needs 64/,
    ],
    [
      'zeros length',
      () => ({ ...base(), zeros: new Uint8Array(1) }),
      ShapeError,
      ErrorCode.SHAPE,
      /zeros has 1 elements/,
    ],
    [
      'group size',
      () => ({ ...base(), groupSize: 48 }),
      UnsupportedError,
      ErrorCode.UNSUPPORTED,
      /groupSize = 48 is not supported for K = 64.*per-channel/,
    ],
    [
      'bits',
      () => ({ ...base(), bits: 3 as never }),
      UnsupportedError,
      ErrorCode.UNSUPPORTED,
      /bits = 3 is not supported.*Fix: quantize to bits 4/,
    ],
    [
      'code >= 16',
      () => {
        const q = base();
        (q.codes as Uint8Array)[33] = 16;
        return q;
      },
      ValueError,
      ErrorCode.VALUE,
      /codes\[33\] \(row 1, column 1\) = 16 does not fit in 4 bits/,
    ],
    [
      'NaN scale',
      () => {
        const q = base();
        (q.scales as Uint16Array)[5] = 0x7e00;
        return q;
      },
      ValueError,
      ErrorCode.VALUE,
      /scale \[group 0, column 5\] is NaN.*Fix: every scale must be finite and non-zero/,
    ],
    [
      'Inf scale',
      () => {
        const q = base();
        (q.scales as Uint16Array)[32] = 0x7c00;
        return q;
      },
      ValueError,
      ErrorCode.VALUE,
      /scale \[group 1, column 0\] is infinite/,
    ],
    [
      'zero scale',
      () => {
        const q = base();
        (q.scales as Uint16Array)[1] = 0x8000;
        return q;
      },
      ValueError,
      ErrorCode.VALUE,
      /scale \[group 0, column 1\] is zero/,
    ],
    [
      'zero point out of range',
      () => {
        const q = base();
        (q.zeros as Uint8Array)[2] = 16;
        return q;
      },
      ValueError,
      ErrorCode.VALUE,
      /zero point \[group 0, column 2\] = 16 is out of range 0..15/,
    ],
    [
      'g_idx length',
      () => ({ ...base(), gIdx: new Int32Array(3) }),
      ShapeError,
      ErrorCode.SHAPE,
      /gIdx has 3 elements but one group id per input row/,
    ],
    [
      'g_idx range',
      () => ({ ...base(), gIdx: new Int32Array(64).fill(2) }),
      ValueError,
      ErrorCode.VALUE,
      /gIdx\[0\] = 2 is not a group id in 0..1/,
    ],
    [
      'uneven act-order groups',
      () => ({ ...base(), gIdx: new Int32Array(64).fill(1) }),
      UnsupportedError,
      ErrorCode.UNSUPPORTED,
      /g_idx assigns 0 rows to group 0.*exactly 32 rows.*Fix: this checkpoint uses uneven act-order groups/,
    ],
  ];

  for (const [name, make, cls, code, re] of cases) {
    it(`rejects ${name}`, () => {
      const e = thrown(() => pack(make()));
      expect(e).toBeInstanceOf(cls);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
    });
  }

  it('validatePacked rejects a foreign format version, truncated arrays, bad Kp and a non-permutation', () => {
    const p = pack(
      randomQuantized({
        K: 64,
        N: 64,
        bits: 4,
        groupSize: 64,
        zeros: false,
        actOrder: true,
        scaleDtype: 'fp16',
        seed: 3,
      }),
    );
    const checks: [PackedWeight, RegExp][] = [
      [{ ...p, formatVersion: 2 as never }, /formatVersion is 2, this build reads 1.*Fix: repack/],
      [{ ...p, qweight: p.qweight.subarray(1) }, /qweight has 511 elements, expected 512 \(truncated/],
      [{ ...p, Kp: 128 }, /Kp = 128 but K = 64.*give 64/],
      [{ ...p, scales: new Float32Array(64) as never }, /scales is not a Uint16Array/],
      [{ ...p, perm: new Int32Array(64) }, /perm\[1\] = 0 makes perm not a permutation of 0..63 \(repeated\)/],
    ];
    for (const [bad, re] of checks) {
      const e = thrown(() => validatePacked(bad));
      expect(e).toBeInstanceOf(FormatError);
      expect(e.code).toBe(ErrorCode.FORMAT);
      expect(e.message).toMatch(re);
    }
    expect(() => validatePacked(p)).not.toThrow();
    expect(() => unpack({ ...p, numGroups: 2 })).toThrowError(/numGroups = 2/);
  });

  it('rejects codes, scales and g_idx of the wrong array type', () => {
    const checks: [QuantizedWeight, RegExp][] = [
      [
        { ...base(), codes: Array.from(base().codes) as never },
        /codes must be a Uint8Array.*Fix: wrap the data in a Uint8Array/,
      ],
      [{ ...base(), scales: new Int16Array(64) as never }, /scales must be a Uint16Array/],
      [{ ...base(), gIdx: new Uint32Array(64) as never }, /gIdx must be an Int32Array/],
    ];
    for (const [q, re] of checks) {
      const e = thrown(() => pack(q));
      expect(e.code).toBe(ErrorCode.SHAPE);
      expect(e.message).toMatch(re);
    }
  });

  it('pack rejects a bad scaleDtype option with DtypeError', () => {
    const e = thrown(() => pack(base(), { scaleDtype: 'fp32' as never }));
    expect(e.code).toBe(ErrorCode.DTYPE);
    expect(e.message).toMatch(/opts.scaleDtype must be 'fp16' or 'bf16'/);
  });

  it('pads per-channel weights whose K is not a multiple of the tile depth (groupOfRow clamps to the last group)', () => {
    const q = randomQuantized({
      K: 7392,
      N: 16,
      bits: 4,
      groupSize: 7392,
      zeros: true,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 4,
    });
    const p = pack(q);
    expect(p.numGroups).toBe(1);
    expectPaddingIsZeroPoint(p);
    expect(tileIndex(0, 0, p.Kp, 4)).toBe(0);
  });
});
