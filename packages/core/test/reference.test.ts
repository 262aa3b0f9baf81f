import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToBf16, f32ToF16, halfDecoder, roundToHalf } from '../src/dtypes.js';
import { DtypeError, ErrorCode, ShapeError } from '../src/errors/index.js';
import { pack } from '../src/format/pack.js';
import type { HalfDtype, QuantizedWeight, WeightBits } from '../src/format/types.js';
import {
  denseErrorBound,
  dequantize,
  maxAbsDeviation,
  referenceGemm,
  referenceGemmF64,
  ulpOf,
} from '../src/reference/index.js';
import { randomHalfBits, randomQuantized, rng, thrown } from './helpers.js';

/** Naive dequantization straight from the docs formula, original row order, group from g_idx or floor(k / g). */
function naiveWeight(q: QuantizedWeight): Float64Array {
  const decode = halfDecoder(q.scaleDtype);
  const w = new Float64Array(q.K * q.N);
  for (let k = 0; k < q.K; k++) {
    const g = q.gIdx ? q.gIdx[k] : Math.floor(k / q.groupSize);
    for (let n = 0; n < q.N; n++) {
      const z = q.zeros ? q.zeros[g * q.N + n] : 2 ** (q.bits - 1);
      w[k * q.N + n] = roundToHalf((q.codes[k * q.N + n] - z) * decode(q.scales[g * q.N + n]), q.scaleDtype);
    }
  }
  return w;
}

/** Packed row order derived independently: rows sorted by (group, original index). */
function naiveOrder(q: QuantizedWeight): number[] {
  const rows = Array.from({ length: q.K }, (_, k) => k);
  if (!q.gIdx) return rows;
  const gIdx = q.gIdx;
  return rows.sort((a, b) => gIdx[a] - gIdx[b] || a - b);
}

interface Case {
  q: QuantizedWeight;
  x: Uint16Array;
  bias: Uint16Array | undefined;
  M: number;
  lda: number;
}

function makeCase(spec: {
  M: number;
  K: number;
  N: number;
  bits: WeightBits;
  groupSize: number;
  zeros: boolean;
  actOrder: boolean;
  dtype: HalfDtype;
  bias: boolean;
  ldaExtra: number;
  seed: number;
}): Case {
  const q = randomQuantized({ ...spec, scaleDtype: spec.dtype });
  const r = rng(spec.seed + 1);
  const lda = spec.K + spec.ldaExtra;
  const x = randomHalfBits(r, (spec.M - 1) * lda + spec.K, spec.dtype);
  const bias = spec.bias ? randomHalfBits(r, spec.N, spec.dtype, 4) : undefined;
  return { q, x, bias, M: spec.M, lda };
}

function naiveGemm(c: Case, sumF32: boolean): Float64Array {
  const { q, x, M, lda } = c;
  const decode = halfDecoder(q.scaleDtype);
  const w = naiveWeight(q);
  const order = naiveOrder(q);
  const y = new Float64Array(M * q.N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < q.N; n++) {
      let acc = 0;
      for (const k of order) {
        acc += decode(x[m * lda + k]) * w[k * q.N + n];
        if (sumF32) acc = Math.fround(acc);
      }
      if (c.bias) acc += decode(c.bias[n]);
      y[m * q.N + n] = sumF32 ? Math.fround(acc) : acc;
    }
  }
  return y;
}

const arbCase = fc
  .record({
    M: fc.constantFrom(1, 2, 3, 5, 8),
    K: fc.constantFrom(64, 80, 128, 160, 208),
    N: fc.constantFrom(16, 48, 80),
    bits: fc.constantFrom<WeightBits>(4, 8),
    group: fc.constantFrom(32, 64, 128, 'per-channel' as const),
    zeros: fc.boolean(),
    actOrder: fc.boolean(),
    dtype: fc.constantFrom<HalfDtype>('fp16', 'bf16'),
    bias: fc.boolean(),
    ldaExtra: fc.constantFrom(0, 0, 16),
    seed: fc.integer({ min: 0, max: 1e9 }),
  })
  .map((s) => ({ ...s, groupSize: s.group === 'per-channel' ? s.K : s.group }));

describe('dequantize', () => {
  it('equals the naive formula for QuantizedWeight and PackedWeight, in original row order (property)', () => {
    fc.assert(
      fc.property(arbCase, (spec) => {
        const c = makeCase(spec);
        const naive = naiveWeight(c.q);
        const fromQ = dequantize(c.q, spec.dtype);
        const fromP = dequantize(pack(c.q), spec.dtype);
        for (let i = 0; i < naive.length; i++) {
          if (!Object.is(fromQ[i], naive[i]) || !Object.is(fromP[i], naive[i])) {
            throw new Error(`element ${i}: q ${fromQ[i]} packed ${fromP[i]} naive ${naive[i]}`);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('rounds the product once to the activation dtype (a case where the rounding matters)', () => {
    const s = f32ToF16(1.0009765625); // 1 + 2^-10 is exact in fp16
    const q: QuantizedWeight = {
      bits: 4,
      K: 16,
      N: 16,
      groupSize: 16,
      codes: new Uint8Array(256).fill(15),
      scales: new Uint16Array(16).fill(s),
      scaleDtype: 'fp16',
      zeros: new Uint8Array(16).fill(0),
      gIdx: null,
    };
    // 15 * (1 + 2^-10) = 15.0146484375 is not an fp16 value (spacing 2^-7 at 8..16): rounds to 15.015625
    expect(dequantize(q, 'fp16')[0]).toBe(15.015625);
  });

  it('rejects a scale dtype that differs from the activation dtype with DtypeError', () => {
    const q = randomQuantized({
      K: 64,
      N: 16,
      bits: 4,
      groupSize: 64,
      zeros: false,
      actOrder: false,
      scaleDtype: 'fp16',
      seed: 1,
    });
    const e = thrown(() => dequantize(q, 'bf16'));
    expect(e).toBeInstanceOf(DtypeError);
    expect(e.message).toMatch(
      /scales are fp16 but the activation dtype is bf16.*Fix: re-encode the scales first: convertScales/,
    );
  });
});

describe('referenceGemm', () => {
  it('f32 accumulation equals an independent sequential f32 sum in packed order, bit for bit (property)', () => {
    fc.assert(
      fc.property(arbCase, (spec) => {
        const c = makeCase(spec);
        const p = pack(c.q);
        const res = referenceGemm(c.x, p, { M: c.M, dtype: spec.dtype, bias: c.bias, lda: c.lda });
        const naive = naiveGemm(c, true);
        const encode = spec.dtype === 'fp16' ? f32ToF16 : f32ToBf16;
        for (let i = 0; i < naive.length; i++) {
          if (!Object.is(res.values[i], naive[i])) throw new Error(`value ${i}: ${res.values[i]} vs ${naive[i]}`);
          if (res.bits[i] !== encode(naive[i])) throw new Error(`bits ${i}`);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('the f64 oracle matches a naive f64 sum in original order, and f32 stays within the summation bound', () => {
    fc.assert(
      fc.property(arbCase, (spec) => {
        const c = makeCase(spec);
        const p = pack(c.q);
        const opts = { M: c.M, dtype: spec.dtype, bias: c.bias, lda: c.lda };
        const exact = referenceGemmF64(c.x, p, opts).values;
        const naive = naiveGemm(c, false);
        const f32 = referenceGemm(c.x, p, opts).values;
        const w = naiveWeight(c.q);
        const decode = halfDecoder(spec.dtype);
        for (let m = 0; m < c.M; m++) {
          for (let n = 0; n < c.q.N; n++) {
            let absSum = 0;
            for (let k = 0; k < c.q.K; k++) absSum += Math.abs(decode(c.x[m * c.lda + k]) * w[k * c.q.N + n]);
            const i = m * c.q.N + n;
            expect(Math.abs(exact[i] - naive[i])).toBeLessThanOrEqual(absSum * 2 ** -50);
            const bound = (c.q.K + 1) * 2 ** -24 * (absSum + Math.abs(naive[i]) + 8);
            expect(Math.abs(f32[i] - naive[i])).toBeLessThanOrEqual(bound);
          }
        }
      }),
      { numRuns: 30 },
    );
  });

  it("accumulate: 'f64' rounds the f64 sum once", () => {
    const c = makeCase({
      M: 2,
      K: 128,
      N: 16,
      bits: 4,
      groupSize: 32,
      zeros: true,
      actOrder: true,
      dtype: 'fp16',
      bias: true,
      ldaExtra: 0,
      seed: 4,
    });
    const p = pack(c.q);
    const opts = { M: 2, dtype: 'fp16' as const, bias: c.bias };
    const r64 = referenceGemm(c.x, p, { ...opts, accumulate: 'f64' });
    const exact = referenceGemmF64(c.x, p, opts).values;
    for (let i = 0; i < exact.length; i++) expect(r64.values[i]).toBe(Math.fround(exact[i]));
  });

  it('denseErrorBound measures the dense GEMM error against the oracle and suggests 2x + one ulp', () => {
    const c = makeCase({
      M: 3,
      K: 512,
      N: 64,
      bits: 4,
      groupSize: 128,
      zeros: false,
      actOrder: false,
      dtype: 'fp16',
      bias: false,
      ldaExtra: 0,
      seed: 8,
    });
    const p = pack(c.q);
    const b = denseErrorBound(c.x, p, { M: 3, dtype: 'fp16' });
    const dense = referenceGemm(c.x, p, { M: 3, dtype: 'fp16' });
    expect(maxAbsDeviation(dense.bits, 'fp16', b.oracle)).toBe(b.maxAbs);
    expect(b.maxAbs).toBeGreaterThan(0);
    expect(b.maxAbs).toBeLessThanOrEqual(ulpOf(b.maxMagnitude, 'fp16'));
    expect(b.tolerance).toBe(2 * b.maxAbs + ulpOf(b.maxMagnitude, 'fp16'));
    const shifted = Uint16Array.from(dense.bits, (v) => v + 8);
    expect(maxAbsDeviation(shifted, 'fp16', b.oracle)).toBeGreaterThan(b.tolerance);
    expect(ulpOf(1, 'fp16')).toBe(2 ** -10);
    expect(ulpOf(0, 'bf16')).toBe(2 ** -133);
    expect(f16ToF32(0x3c00)).toBe(1);
  });

  it('rejects bad x, lda, bias and dtype with typed errors', () => {
    const p = pack(
      randomQuantized({
        K: 64,
        N: 16,
        bits: 4,
        groupSize: 64,
        zeros: false,
        actOrder: false,
        scaleDtype: 'fp16',
        seed: 1,
      }),
    );
    const x = new Uint16Array(64);
    const checks: [() => unknown, string, RegExp][] = [
      [
        () => referenceGemm(new Uint16Array(10), p, { M: 1, dtype: 'fp16' }),
        ErrorCode.SHAPE,
        /at least \(M - 1\) \* lda \+ K = 64 fp16 elements, got 10/,
      ],
      [() => referenceGemm(x, p, { M: 1, dtype: 'fp16', lda: 32 }), ErrorCode.SHAPE, /lda = 32 is smaller than K = 64/],
      [
        () => referenceGemm(x, p, { M: 1, dtype: 'fp16', bias: new Uint16Array(3) }),
        ErrorCode.SHAPE,
        /bias must be a Uint16Array of N = 16/,
      ],
      [() => referenceGemm(x, p, { M: 0, dtype: 'fp16' }), ErrorCode.VALUE, /M = 0 must be a positive integer/],
      [
        () => referenceGemm(x, p, { M: 1, dtype: 'bf16' }),
        ErrorCode.DTYPE,
        /scales are fp16 but the activation dtype is bf16/,
      ],
      [
        () => maxAbsDeviation(x, 'fp16', new Float64Array(3)),
        ErrorCode.SHAPE,
        /bits has 64 elements but the oracle has 3/,
      ],
    ];
    for (const [fn, code, re] of checks) {
      const e = thrown(fn);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/Fix: /);
    }
    expect(thrown(() => referenceGemm(new Uint16Array(1), p, { M: 1, dtype: 'fp16' }))).toBeInstanceOf(ShapeError);
  });

  it("runs a full-size layer on the CPU: M = 16, K = N = 4096 int4 g128, act-order (speed is the benchmark's job)", () => {
    const q = randomQuantized({
      K: 4096,
      N: 4096,
      bits: 4,
      groupSize: 128,
      zeros: false,
      actOrder: true,
      scaleDtype: 'fp16',
      seed: 3,
    });
    const p = pack(q);
    const x = randomHalfBits(rng(1), 16 * 4096, 'fp16');
    const y = referenceGemm(x, p, { M: 16, dtype: 'fp16' });
    expect(y.bits.length).toBe(16 * 4096);
    expect(y.values.every(Number.isFinite)).toBe(true);
    expect(y.values.some((v) => v !== 0)).toBe(true);
  });
});
