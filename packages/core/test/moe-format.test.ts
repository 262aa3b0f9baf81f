/**
 * Stacked experts (docs/format.md "Stacked experts"): expert e's slice of the stacked arrays is exactly pack() of that
 * expert, at a fixed stride; round trips, mixed zero points / act-order, fused gate+up columns, and typed refusals.
 */
import { describe, expect, it } from 'vitest';
import { DtypeError, FormatError, ShapeError, UnsupportedError, ValueError } from '../src/errors/index.js';
import {
  concatColumns,
  expertStrides,
  expertWeight,
  packExperts,
  packedExpertsInfo,
  stackExperts,
  unpackExperts,
  validatePackedExperts,
} from '../src/format/experts.js';
import { pack } from '../src/format/pack.js';
import type { HalfDtype, QuantizedWeight } from '../src/format/types.js';
import { quantizeFp8 } from '../src/quantize/index.js';
import { dequantize } from '../src/reference/index.js';
import { randomQuantized, rng, thrown } from './helpers.js';

function experts(E: number, spec: Omit<Parameters<typeof randomQuantized>[0], 'seed'>, seed = 1): QuantizedWeight[] {
  return Array.from({ length: E }, (_, e) => randomQuantized({ ...spec, seed: seed * 100 + e }));
}

function fp8Experts(E: number, K: number, N: number): QuantizedWeight[] {
  const r = rng(7);
  return Array.from({ length: E }, () => {
    const w = Float32Array.from({ length: K * N }, () => (2 * r() - 1) * 0.1);
    return quantizeFp8(w, { K, N, granularity: 'block', scaleDtype: 'bf16' }).weight;
  });
}

const base: { K: number; N: number; groupSize: number; actOrder: boolean; scaleDtype: HalfDtype } = {
  K: 128,
  N: 80,
  groupSize: 64,
  actOrder: false,
  scaleDtype: 'fp16',
};
const cases: { title: string; qs: () => QuantizedWeight[] }[] = [
  { title: 'INT4 symmetric', qs: () => experts(3, { ...base, bits: 4, zeros: false }) },
  { title: 'INT4 asymmetric, bf16', qs: () => experts(2, { ...base, bits: 4, zeros: true, scaleDtype: 'bf16' }) },
  { title: 'INT4 act-order', qs: () => experts(3, { ...base, bits: 4, zeros: false, actOrder: true }) },
  { title: 'INT8 per-channel', qs: () => experts(4, { ...base, bits: 8, zeros: false, groupSize: 128 }) },
  { title: 'FP8 e4m3 128 x 128 blocks', qs: () => fp8Experts(3, 256, 192) },
  { title: 'one expert', qs: () => experts(1, { ...base, bits: 4, zeros: false }) },
];

describe('packExperts / stackExperts', () => {
  for (const c of cases) {
    it(`${c.title}: expert e's slice is pack(expert e), at a fixed stride, and unpacks to the input`, () => {
      const qs = c.qs();
      const pe = packExperts(qs);
      const s = expertStrides(pe);
      expect(pe.numExperts).toBe(qs.length);
      expect(pe.qweight.length).toBe(qs.length * s.qweight);
      expect(pe.scales.length).toBe(qs.length * s.scales);
      let padded = 0;
      qs.forEach((q, e) => {
        const p = pack(q);
        padded += p.paddedBytes;
        expect(pe.qweight.subarray(e * s.qweight, (e + 1) * s.qweight)).toEqual(p.qweight);
        expect(pe.scales.subarray(e * s.scales, (e + 1) * s.scales)).toEqual(p.scales);
        if (p.zeros) expect(pe.zeros!.subarray(e * s.zeros, (e + 1) * s.zeros)).toEqual(p.zeros);
        if (p.perm) expect(pe.perm!.subarray(e * s.perm, (e + 1) * s.perm)).toEqual(p.perm);
        expect(expertWeight(pe, e)).toEqual(p);
      });
      expect(pe.paddedBytes).toBe(padded);
      expect(pe.codeType).toBe(qs[0].codeType);
      validatePackedExperts(pe);
      expect(unpackExperts(pe)).toEqual(qs.map((q) => ({ ...q, scaleDtype: q.scaleDtype })));
      expect(packedExpertsInfo(pe)).toMatchObject({ numExperts: qs.length, K: qs[0].K, N: qs[0].N });
    });
  }

  it('mixes symmetric and zero-point experts, and act-order with plain ones, without changing any weight', () => {
    const a = randomQuantized({ ...base, bits: 4, zeros: false, seed: 1 });
    const b = randomQuantized({ ...base, bits: 4, zeros: true, actOrder: true, seed: 2 });
    const pe = packExperts([a, b]);
    expect(pe.zeros).not.toBeNull();
    expect(pe.perm).not.toBeNull();
    // The symmetric expert gets the default zero point 8 and the identity permutation.
    expect(new Set(pe.zeros!.subarray(0, expertStrides(pe).zeros))).toEqual(new Set([8]));
    expect(Array.from(pe.perm!.subarray(0, base.K))).toEqual(Array.from({ length: base.K }, (_, k) => k));
    expect(dequantize(expertWeight(pe, 0), 'fp16')).toEqual(dequantize(a, 'fp16'));
    expect(dequantize(expertWeight(pe, 1), 'fp16')).toEqual(dequantize(b, 'fp16'));
  });

  it('refuses experts of different formats with typed errors naming the expert', () => {
    const a = randomQuantized({ ...base, bits: 4, zeros: false, seed: 1 });
    const other = (o: Partial<typeof base> & { bits?: 4 | 8 }) =>
      pack(randomQuantized({ ...base, bits: 4, zeros: false, seed: 2, ...o }));
    const e1 = thrown(() => stackExperts([pack(a), other({ N: 64 })]));
    expect(e1).toBeInstanceOf(ShapeError);
    expect(e1.message).toMatch(/expert 1 has N = 64 but expert 0 has 80/);
    expect(thrown(() => stackExperts([pack(a), other({ bits: 8 })]))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => stackExperts([pack(a), other({ groupSize: 32 })]))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => stackExperts([pack(a), other({ scaleDtype: 'bf16' })]))).toBeInstanceOf(DtypeError);
    expect(thrown(() => stackExperts([]))).toBeInstanceOf(ValueError);
    expect(thrown(() => expertWeight(packExperts([a]), 1))).toBeInstanceOf(ValueError);
  });

  it('validatePackedExperts refuses truncated arrays and bad values inside one expert', () => {
    const pe = packExperts(experts(3, { ...base, bits: 4, zeros: false }));
    const short = { ...pe, qweight: pe.qweight.subarray(1) };
    expect(thrown(() => validatePackedExperts(short))).toBeInstanceOf(FormatError);
    expect(thrown(() => validatePackedExperts({ ...pe, numExperts: 0 }))).toBeInstanceOf(FormatError);
    const scales = pe.scales.slice();
    scales[2 * expertStrides(pe).scales + 5] = 0; // expert 2, group 0, column 5: zero scale
    const e = thrown(() => validatePackedExperts({ ...pe, scales }));
    expect(e).toBeInstanceOf(ValueError);
    expect(e.message).toMatch(/^Expert 2: scale \[group 0, column 5\] is zero/);
  });
});

describe('concatColumns (fused gate + up)', () => {
  it('puts the parts side by side along N, each dequantizing as before', () => {
    for (const zeros of [false, true]) {
      const gate = randomQuantized({ ...base, N: 48, bits: 4, zeros: false, seed: 3 });
      const up = randomQuantized({ ...base, N: 48, bits: 4, zeros, seed: 4 });
      const fused = concatColumns([gate, up]);
      expect(fused.N).toBe(96);
      const [dg, du, df] = [dequantize(gate, 'fp16'), dequantize(up, 'fp16'), dequantize(fused, 'fp16')];
      for (let k = 0; k < base.K; k++) {
        expect(df.subarray(k * 96, k * 96 + 48)).toEqual(dg.subarray(k * 48, (k + 1) * 48));
        expect(df.subarray(k * 96 + 48, (k + 1) * 96)).toEqual(du.subarray(k * 48, (k + 1) * 48));
      }
      expect(fused.zeros === null).toBe(!zeros);
    }
  });

  it('keeps a shared act-order g_idx and refuses parts that disagree', () => {
    const gate = randomQuantized({ ...base, bits: 4, zeros: false, actOrder: true, seed: 5 });
    const up = { ...randomQuantized({ ...base, bits: 4, zeros: false, seed: 6 }), gIdx: gate.gIdx };
    expect(concatColumns([gate, up]).gIdx).toBe(gate.gIdx);
    const other = randomQuantized({ ...base, bits: 4, zeros: false, actOrder: true, seed: 7 });
    expect(thrown(() => concatColumns([gate, other]))).toBeInstanceOf(UnsupportedError);
    expect(
      thrown(() => concatColumns([gate, randomQuantized({ ...base, bits: 4, zeros: false, seed: 8 })])),
    ).toBeInstanceOf(UnsupportedError);
    const k64 = randomQuantized({ ...base, K: 64, bits: 4, zeros: false, seed: 9 });
    expect(thrown(() => concatColumns([up, k64]))).toBeInstanceOf(ShapeError);
  });
});
