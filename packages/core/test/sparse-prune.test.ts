import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHalfBits } from '../src/dtypes.js';
import { ShapeError, UnsupportedError, ValueError } from '../src/errors/index.js';
import { pack } from '../src/format/pack.js';
import { densifySparse, validateSparse } from '../src/format/sparse.js';
import { prune24, pruneAndQuantize24, pruneAndQuantize24Async } from '../src/quantize/prune.js';
import { quantizeRtn } from '../src/quantize/rtn.js';
import { referenceGemm } from '../src/reference/gemm.js';
import {
  dequantizeSparse,
  packSparseAsDense,
  referenceGemmSparse,
  referenceGemmSparseF64,
} from '../src/reference/sparse.js';
import { randomHalfBits, rng, thrown } from './helpers.js';
import { randomSparse } from './sparse-helpers.js';

function randomFloats(seed: number, count: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: count }, () => (2 * r() - 1) * (r() < 0.05 ? 4 : 1));
}

describe('prune24', () => {
  it('keeps the two largest |w| of every 4 along K, ties to the lower index', () => {
    const K = 16;
    const N = 16;
    const w = new Float32Array(K * N);
    // column 0, group 0: [1, -3, 2, 0.5] -> keep rows 1, 2
    [1, -3, 2, 0.5].forEach((v, i) => {
      w[i * N] = v;
    });
    // column 1, group 0: all equal magnitude -> keep rows 0, 1
    [2, -2, 2, -2].forEach((v, i) => {
      w[i * N + 1] = v;
    });
    // column 2, group 1: [0, 5, 5, 1] -> tie between rows 5 and 6 -> both kept (the two largest)
    [0, 5, 5, 1].forEach((v, i) => {
      w[(4 + i) * N + 2] = v;
    });
    // column 3, group 2: [1, 3, 1, 1] -> 3 then the lowest of the tied 1s (row 8)
    [1, 3, 1, 1].forEach((v, i) => {
      w[(8 + i) * N + 3] = v;
    });
    const p = prune24(w, { K, N });
    expect([p.indices[0], p.indices[N]]).toEqual([1, 2]);
    expect([p.indices[1], p.indices[N + 1]]).toEqual([0, 1]);
    expect([p.indices[2 * N + 2], p.indices[3 * N + 2]]).toEqual([1, 2]);
    expect([p.indices[4 * N + 3], p.indices[5 * N + 3]]).toEqual([0, 1]);
    expect(Array.from({ length: 4 }, (_, i) => p.weight[i * N])).toEqual([0, -3, 2, 0]);
    expect(Array.from({ length: 4 }, (_, i) => p.weight[(8 + i) * N + 3])).toEqual([1, 3, 0, 0]);
    const dropped = [1, 0.5, 2, -2, 0, 1, 1, 1];
    const norm2 = [1, 9, 4, 0.25, 4, 4, 4, 4, 25, 25, 1, 1, 9, 1, 1].reduce((a, b) => a + b, 0);
    expect(p.error.maxAbs).toBe(2);
    expect(p.error.relFrobenius).toBeCloseTo(Math.sqrt(dropped.reduce((a, v) => a + v * v, 0) / norm2), 12);
  });

  it('property: every group keeps exactly its 2 largest magnitudes and drops the rest to 0', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer(), (kb, nb, seed) => {
        const K = 16 * kb;
        const N = 16 * nb;
        const w = randomFloats(seed, K * N);
        const p = prune24(w, { K, N });
        for (let j = 0; j < K / 4; j++) {
          for (let n = 0; n < N; n++) {
            const a = p.indices[2 * j * N + n];
            const b = p.indices[(2 * j + 1) * N + n];
            expect(a).toBeLessThan(b);
            const kept = Math.min(Math.abs(w[(4 * j + a) * N + n]), Math.abs(w[(4 * j + b) * N + n]));
            for (let i = 0; i < 4; i++) {
              const v = w[(4 * j + i) * N + n];
              if (i === a || i === b) expect(p.weight[(4 * j + i) * N + n]).toBe(v);
              else {
                expect(p.weight[(4 * j + i) * N + n]).toBe(0);
                expect(Math.abs(v)).toBeLessThanOrEqual(kept);
              }
            }
          }
        }
      }),
      { numRuns: 30 },
    );
  });

  it("reads 'NxK' (nn.Linear.weight) and refuses bad shapes and NaN", () => {
    const K = 32;
    const N = 16;
    const w = randomFloats(7, K * N);
    const t = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = w[k * N + n];
    expect(prune24(t, { K, N, layout: 'NxK' }).weight).toEqual(prune24(w, { K, N }).weight);
    expect(thrown(() => prune24(w, { K: 30, N: 16 }))).toBeInstanceOf(ShapeError);
    const bad = new Float32Array(w);
    bad[5] = Number.NaN;
    expect(thrown(() => prune24(bad, { K, N }))).toBeInstanceOf(ValueError);
  });
});

describe('pruneAndQuantize24', () => {
  const K = 256;
  const N = 32;
  const w = randomFloats(11, K * N);

  for (const symmetric of [true, false]) {
    for (const groupSize of [32, 64, 128, 'per-channel'] as const) {
      it(`gives a valid 2:4 weight equal to quantizeRtn of the pruned weight (${symmetric ? 'sym' : 'asym'}, g ${groupSize})`, () => {
        const r = pruneAndQuantize24(w, { K, N, groupSize, symmetric });
        validateSparse(r.weight);
        const pruned = prune24(w, { K, N });
        const dense = quantizeRtn(pruned.weight, { K, N, groupSize, symmetric, bits: 4 });
        expect(densifySparse(r.weight).codes).toEqual(dense.weight.codes);
        expect(r.weight.indices).toEqual(pruned.indices);
        expect(r.quantization).toEqual(dense.error);
        expect(r.pruning).toEqual(pruned.error);
        // Pruned positions dequantize to exactly 0.
        const deq = dequantizeSparse(r.weight, 'fp16');
        for (let i = 0; i < deq.length; i++) if (pruned.weight[i] === 0 && w[i] !== 0) expect(deq[i]).toBe(0);
        // Errors are reported separately and the total is at least the pruning part.
        expect(r.pruning.relFrobenius).toBeGreaterThan(0.1);
        expect(r.quantization.relFrobenius).toBeGreaterThan(0);
        expect(r.quantization.relFrobenius).toBeLessThan(0.2);
        expect(r.total.relFrobenius).toBeGreaterThanOrEqual(r.pruning.relFrobenius * 0.99);
      });
    }
  }

  it('async gives the same result; bits 8 is refused', async () => {
    const a = await pruneAndQuantize24Async(w, { K, N, groupSize: 64 });
    const b = pruneAndQuantize24(w, { K, N, groupSize: 64 });
    expect(a.weight.codes).toEqual(b.weight.codes);
    expect(a.weight.scales).toEqual(b.weight.scales);
    expect(thrown(() => pruneAndQuantize24(w, { K, N, bits: 8 as 4 }))).toBeInstanceOf(UnsupportedError);
  });
});

describe('referenceGemmSparse', () => {
  it('is bit-exact with the dense reference of the equivalent dense weight, and with a sum over kept weights only', () => {
    for (const [dtype, zeros, g] of [
      ['fp16', false, 32],
      ['bf16', true, 128],
      ['fp16', true, 'K'],
    ] as const) {
      const K = 128;
      const N = 48;
      const M = 5;
      const s = randomSparse({ K, N, groupSize: g === 'K' ? K : g, zeros, scaleDtype: dtype, seed: 21 });
      const r = rng(3);
      const x = randomHalfBits(r, M * K, dtype, 2);
      const bias = randomHalfBits(r, N, dtype);
      const y = referenceGemmSparse(x, s, { M, dtype, bias });
      const dense = referenceGemm(x, pack(densifySparse(s)), { M, dtype, bias });
      expect(y.bits).toEqual(dense.bits);
      expect(y.values).toEqual(dense.values);
      // Independent: accumulate only the kept products, in k order, f32.
      const xs = fromHalfBits(x, dtype);
      const wd = dequantizeSparse(s, dtype);
      const bs = fromHalfBits(bias, dtype);
      const acc = new Float32Array(M * N);
      for (let j = 0; j < K / 4; j++) {
        for (let n = 0; n < N; n++) {
          for (const i of [s.indices[2 * j * N + n], s.indices[(2 * j + 1) * N + n]]) {
            const k = 4 * j + i;
            for (let m = 0; m < M; m++) acc[m * N + n] += xs[m * K + k] * wd[k * N + n];
          }
        }
      }
      for (let i = 0; i < acc.length; i++) acc[i] += bs[i % N];
      expect(y.values).toEqual(acc);
      const f64 = referenceGemmSparseF64(x, s, { M, dtype, bias });
      expect(f64.values.length).toBe(M * N);
      expect(packSparseAsDense(s).K).toBe(K);
    }
  });
});
