import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { halfDecoder, halfMinNormal, halfPrecisionBits, roundToHalf } from '../src/dtypes.js';
import { CancelledError, ErrorCode } from '../src/errors/index.js';
import { pack } from '../src/format/pack.js';
import type { HalfDtype, WeightBits } from '../src/format/types.js';
import { quantizationError, quantizeRtn, quantizeRtnAsync, roundHalfEven } from '../src/quantize/index.js';
import { dequantize } from '../src/reference/index.js';
import { rng, thrown } from './helpers.js';

/** Gaussian-ish weights (sum of uniforms) with a few outliers, like real layers. */
function randomWeights(K: number, N: number, seed: number, outliers = 0.002): Float32Array {
  const r = rng(seed);
  const w = new Float32Array(K * N);
  for (let i = 0; i < w.length; i++) {
    const g = (r() + r() + r() + r() - 2) * 0.05;
    w[i] = r() < outliers ? g * 12 : g;
  }
  return w;
}

const arbSpec = fc
  .record({
    K: fc.constantFrom(16, 32, 48, 64, 80, 160, 208),
    N: fc.constantFrom(16, 48, 64),
    bits: fc.constantFrom<WeightBits>(4, 8),
    group: fc.constantFrom(32, 64, 128, 'per-channel' as const),
    symmetric: fc.boolean(),
    dtype: fc.constantFrom<HalfDtype>('fp16', 'bf16'),
    seed: fc.integer({ min: 0, max: 1e9 }),
    zeroGroupRows: fc.boolean(),
  })
  .filter((s) => s.group === 'per-channel' || s.group <= 128);

function opts(s: {
  K: number;
  N: number;
  bits: WeightBits;
  group: number | 'per-channel';
  symmetric: boolean;
  dtype: HalfDtype;
}) {
  return { K: s.K, N: s.N, bits: s.bits, groupSize: s.group, symmetric: s.symmetric, scaleDtype: s.dtype };
}

function weightsFor(s: { K: number; N: number; seed: number; zeroGroupRows: boolean }): Float32Array {
  const w = randomWeights(s.K, s.N, s.seed);
  if (s.zeroGroupRows) w.fill(0, 0, Math.min(s.K, 32) * s.N); // an all-zero first group
  return w;
}

describe('quantizeRtn', () => {
  it('keeps |w - (q - z) s| within s/2 (plus the scale-rounding overshoot) for unclipped RTN (property)', () => {
    fc.assert(
      fc.property(arbSpec, (s) => {
        const w = weightsFor(s);
        const { weight } = quantizeRtn(w, opts(s));
        const decode = halfDecoder(s.dtype);
        const maxq = (1 << s.bits) - 1;
        const slack = s.symmetric ? 0 : maxq * 2 ** (1 - halfPrecisionBits(s.dtype));
        const gs = weight.groupSize;
        for (let k = 0; k < s.K; k++) {
          const g = Math.floor(k / gs);
          for (let n = 0; n < s.N; n++) {
            const scale = decode(weight.scales[g * s.N + n]);
            expect(scale).toBeGreaterThan(0);
            const z = weight.zeros ? weight.zeros[g * s.N + n] : 1 << (s.bits - 1);
            const q = weight.codes[k * s.N + n];
            expect(q).toBeLessThanOrEqual(maxq);
            const err = Math.abs(w[k * s.N + n] - (q - z) * scale);
            if (err > scale * (0.5 + slack)) throw new Error(`(${k}, ${n}): error ${err} > ${scale}/2 + slack`);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('reports the error of the dequantized weight correctly (against an independent recomputation)', () => {
    fc.assert(
      fc.property(arbSpec, (s) => {
        const w = weightsFor(s);
        const { weight, error } = quantizeRtn(w, opts(s));
        const deq = dequantize(weight, s.dtype);
        let sse = 0;
        let maxAbs = 0;
        let norm = 0;
        for (let i = 0; i < w.length; i++) {
          sse += (w[i] - deq[i]) ** 2;
          maxAbs = Math.max(maxAbs, Math.abs(w[i] - deq[i]));
          norm += w[i] ** 2;
        }
        expect(error.maxAbs).toBe(maxAbs);
        expect(error.mse).toBeCloseTo(sse / w.length, 14);
        const rel = norm === 0 ? 0 : Math.sqrt(sse / norm);
        expect(Math.abs(error.relFrobenius - rel)).toBeLessThanOrEqual(1e-12 * rel);
        const again = quantizationError(w, weight);
        expect(again.maxAbs).toBe(error.maxAbs);
        expect(Math.abs(again.mse - error.mse)).toBeLessThanOrEqual(1e-12 * error.mse);
      }),
      { numRuns: 40 },
    );
  });

  it('never increases the error with the clipping search (property), and helps on heavy-tailed groups', () => {
    fc.assert(
      fc.property(
        arbSpec,
        fc.integer({ min: 1, max: 24 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        (s, steps, minShrink) => {
          const w = weightsFor(s);
          const plain = quantizeRtn(w, opts(s)).error;
          const clipped = quantizeRtn(w, { ...opts(s), clip: { steps, minShrink } }).error;
          expect(clipped.mse).toBeLessThanOrEqual(plain.mse);
          expect(clipped.relFrobenius).toBeLessThanOrEqual(plain.relFrobenius);
        },
      ),
      { numRuns: 40 },
    );
    const w = randomWeights(256, 64, 11, 0.02);
    const o = { K: 256, N: 64, bits: 4 as const, groupSize: 128 };
    expect(quantizeRtn(w, { ...o, clip: true }).error.mse).toBeLessThan(quantizeRtn(w, o).error.mse);
  });

  it('computes the documented scale and zero point: f32, then RNE to the dtype; codes against the rounded scale', () => {
    const K = 32;
    const N = 16;
    const w = randomWeights(K, N, 3);
    for (const dtype of ['fp16', 'bf16'] as const) {
      const sym = quantizeRtn(w, { K, N, groupSize: 32, scaleDtype: dtype }).weight;
      const asym = quantizeRtn(w, { K, N, groupSize: 32, scaleDtype: dtype, symmetric: false }).weight;
      const decode = halfDecoder(dtype);
      for (let n = 0; n < N; n++) {
        let lo = 0;
        let hi = 0;
        for (let k = 0; k < K; k++) {
          lo = Math.min(lo, w[k * N + n]);
          hi = Math.max(hi, w[k * N + n]);
        }
        const s = roundToHalf(Math.fround(Math.max(-lo, hi) / 7), dtype);
        expect(decode(sym.scales[n])).toBe(s);
        for (let k = 0; k < K; k++) expect(sym.codes[k * N + n]).toBe(roundHalfEven(w[k * N + n] / s) + 8);
        const sa = roundToHalf(Math.fround((hi - lo) / 15), dtype);
        expect(decode(asym.scales[n])).toBe(sa);
        expect(asym.zeros?.[n]).toBe(Math.min(15, Math.max(0, roundHalfEven(-lo / sa))));
      }
      expect(sym.zeros).toBeNull();
    }
  });

  it('gives an all-zero group the smallest normal scale, zero-point codes and zero error', () => {
    for (const dtype of ['fp16', 'bf16'] as const) {
      for (const symmetric of [true, false]) {
        const w = new Float32Array(64 * 16);
        const { weight, error } = quantizeRtn(w, { K: 64, N: 16, groupSize: 32, scaleDtype: dtype, symmetric });
        expect(error).toEqual({ mse: 0, maxAbs: 0, relFrobenius: 0 });
        expect(halfDecoder(dtype)(weight.scales[0])).toBe(halfMinNormal(dtype));
        const z = weight.zeros ? weight.zeros[0] : 8;
        expect(weight.codes.every((c) => c === z)).toBe(true);
        expect(() => pack(weight)).not.toThrow();
      }
    }
  });

  it("accepts nn.Linear's N x K layout and gives the same result as the transposed K x N input", () => {
    const K = 64;
    const N = 48;
    const w = randomWeights(K, N, 5);
    const t = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = w[k * N + n];
    const a = quantizeRtn(w, { K, N, groupSize: 32, symmetric: false });
    const b = quantizeRtn(t, { K, N, groupSize: 32, symmetric: false, layout: 'NxK' });
    expect(Array.from(b.weight.codes)).toEqual(Array.from(a.weight.codes));
    expect(Array.from(b.weight.scales)).toEqual(Array.from(a.weight.scales));
    expect(b.error).toEqual(a.error);
  });

  it('feeds pack and the reference: dequantize(pack(q)) equals dequantize(q)', () => {
    const w = randomWeights(7392, 16, 6);
    const { weight } = quantizeRtn(w, { K: 7392, N: 16, groupSize: 128, symmetric: false, scaleDtype: 'bf16' });
    expect(Array.from(dequantize(pack(weight), 'bf16'))).toEqual(Array.from(dequantize(weight, 'bf16')));
  });

  it('rejects bad input with typed errors that say what to do', () => {
    const w = randomWeights(32, 16, 1);
    const nan = w.slice();
    nan[17] = Number.NaN;
    const inf = w.slice();
    inf[5] = Number.NEGATIVE_INFINITY;
    const cases: [() => unknown, string, RegExp][] = [
      [
        () => quantizeRtn(nan, { K: 32, N: 16, groupSize: 48 }),
        ErrorCode.UNSUPPORTED,
        /groupSize = 48 is not supported for K = 32/,
      ],
      [
        () => quantizeRtn(nan, { K: 32, N: 16, groupSize: 32 }),
        ErrorCode.VALUE,
        /non-finite value NaN at row 1, column 1.*Fix: fix or drop/,
      ],
      [
        () => quantizeRtn(inf, { K: 32, N: 16, groupSize: 32 }),
        ErrorCode.VALUE,
        /non-finite value -Infinity at row 0, column 5/,
      ],
      [
        () => quantizeRtn(w, { K: 32, N: 32, groupSize: 32 }),
        ErrorCode.SHAPE,
        /Float32Array of K x N = 1024 values, got a Float32Array of 512 values/,
      ],
      [() => quantizeRtn(Array.from(w) as never, { K: 32, N: 16, groupSize: 32 }), ErrorCode.SHAPE, /got object/],
      [
        () => quantizeRtn(w, { K: 32, N: 16, groupSize: 32, bits: 2 as never }),
        ErrorCode.UNSUPPORTED,
        /bits = 2 is not supported/,
      ],
      [
        () => quantizeRtn(w, { K: 32, N: 16, groupSize: 32, clip: { steps: 0 } }),
        ErrorCode.VALUE,
        /clip = \{ steps: 0, minShrink: 0.5 \} is invalid/,
      ],
      [
        () => quantizeRtn(w, { K: 32, N: 16, groupSize: 32, layout: 'KN' as never }),
        ErrorCode.VALUE,
        /layout = "KN" is not 'KxN' or 'NxK'/,
      ],
      [
        () =>
          quantizeRtn(
            w.map((v) => v * 1e7),
            { K: 32, N: 16, groupSize: 32 },
          ),
        ErrorCode.VALUE,
        /overflows fp16.*Fix: use scaleDtype 'bf16'/,
      ],
      [
        () => quantizeRtn(w, { K: 32, N: 16, groupSize: 32, scaleDtype: 'fp8' as never }),
        ErrorCode.DTYPE,
        /scaleDtype must be 'fp16' or 'bf16'/,
      ],
    ];
    const q = quantizeRtn(w, { K: 32, N: 16, groupSize: 32 }).weight;
    cases.push([() => quantizationError(w.subarray(1), q), ErrorCode.SHAPE, /needs the K x N = 512 float weight/]);
    for (const [fn, code, re] of cases) {
      const e = thrown(fn);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/Fix: /);
    }
  });

  it('reports progress per group and cancels through an AbortSignal (sync and async)', async () => {
    const w = randomWeights(256, 64, 2);
    const seen: number[] = [];
    quantizeRtn(w, { K: 256, N: 64, groupSize: 64, onProgress: (done, total) => seen.push(done / total) });
    expect(seen).toEqual([0.25, 0.5, 0.75, 1]);

    const ac = new AbortController();
    const e = thrown(() =>
      quantizeRtn(w, { K: 256, N: 64, groupSize: 64, signal: ac.signal, onProgress: (d) => d === 2 && ac.abort() }),
    );
    expect(e).toBeInstanceOf(CancelledError);
    expect(e.message).toMatch(/Quantization was cancelled/);

    const big = randomWeights(4096, 1024, 3);
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 5);
    await expect(
      quantizeRtnAsync(big, { K: 4096, N: 1024, groupSize: 32, clip: true, signal: ac2.signal }),
    ).rejects.toMatchObject({
      code: ErrorCode.CANCELLED,
    });
    const small = await quantizeRtnAsync(w, { K: 256, N: 64, groupSize: 64 });
    expect(Array.from(small.weight.codes)).toEqual(
      Array.from(quantizeRtn(w, { K: 256, N: 64, groupSize: 64 }).weight.codes),
    );
  });

  it("quantizes a full-size 4096 x 4096 matrix (speed is the benchmark's job, not a test's)", () => {
    const w = randomWeights(4096, 4096, 9);
    const { weight, error } = quantizeRtn(w, { K: 4096, N: 4096, groupSize: 128 });
    expect(weight.codes.length).toBe(4096 * 4096);
    expect(error.relFrobenius).toBeLessThan(0.3);
  });
});
