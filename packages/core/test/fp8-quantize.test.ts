/** The FP8 e4m3 quantizer: documented scale and code semantics, saturation, RNE ties, granularities, errors. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { halfDecoder, halfMinNormal, roundToHalf } from '../src/dtypes.js';
import { CancelledError, ErrorCode, ValueError } from '../src/errors/index.js';
import { pack, unpack } from '../src/format/pack.js';
import type { HalfDtype } from '../src/format/types.js';
import {
  type Fp8Granularity,
  quantizationError,
  quantizeFp8,
  quantizeFp8Async,
  quantizeRtn,
} from '../src/quantize/index.js';
import { dequantize } from '../src/reference/index.js';
import { rng, thrown } from './helpers.js';

/** e4m3fn value of a code, from the OCP definition (bias 7, 3 mantissa bits, S.1111.111 NaN), not from src/. */
function e4m3(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 15;
  const m = code & 7;
  if (e === 15 && m === 7) return Number.NaN;
  return sign * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
}

/** Independent saturating RNE to e4m3: the nearest finite value, ties to the even code; beyond 448 gives +-448. */
function nearestE4m3(x: number): number {
  let best = -1;
  let bestDist = Number.POSITIVE_INFINITY;
  for (let c = 0; c < 256; c++) {
    const v = e4m3(c);
    if (Number.isNaN(v) || (v === 0 && c === 0x80) || Math.sign(v) * Math.sign(x) < 0) continue;
    const d = Math.abs(v - x);
    if (d < bestDist || (d === bestDist && (c & 1) === 0)) {
      best = c;
      bestDist = d;
    }
  }
  return x < 0 && best === 0 ? 0x80 : best;
}

function randomWeights(K: number, N: number, seed: number, amp = 0.05): Float32Array {
  const r = rng(seed);
  const w = new Float32Array(K * N);
  for (let i = 0; i < w.length; i++) {
    const g = (r() + r() + r() + r() - 2) * amp;
    w[i] = r() < 0.002 ? g * 12 : g;
  }
  return w;
}

interface Spec {
  K: number;
  N: number;
  granularity: Fp8Granularity;
  groupSize: number;
  dtype: HalfDtype;
  amp: number;
  seed: number;
}

const arbSpec = fc
  .record({
    K: fc.constantFrom(16, 32, 64, 96, 160, 256),
    N: fc.constantFrom(16, 48, 128, 144, 272),
    granularity: fc.constantFrom<Fp8Granularity>('per-channel', 'group', 'block'),
    group: fc.constantFrom(32, 64, 128),
    dtype: fc.constantFrom<HalfDtype>('fp16', 'bf16'),
    amp: fc.constantFrom(1e-6, 0.05, 3, 1000),
    seed: fc.integer({ min: 0, max: 1e9 }),
  })
  .map((s) => ({ ...s, groupSize: s.granularity === 'group' ? s.group : s.granularity === 'block' ? 128 : s.K }));

/** The documented logical scale of every (group, column), computed here from the definition. */
function expectedScales(w: Float32Array, s: Spec): Float64Array {
  const G = Math.ceil(s.K / s.groupSize);
  const out = new Float64Array(G * s.N);
  for (let g = 0; g < G; g++) {
    for (let n = 0; n < s.N; n++) {
      const c0 = s.granularity === 'block' ? n - (n % 128) : n;
      const c1 = s.granularity === 'block' ? Math.min(s.N, c0 + 128) : n + 1;
      let amax = 0;
      for (let k = g * s.groupSize; k < Math.min(s.K, (g + 1) * s.groupSize); k++) {
        for (let c = c0; c < c1; c++) amax = Math.max(amax, Math.abs(w[k * s.N + c]));
      }
      const r = roundToHalf(Math.fround(amax / 448), s.dtype);
      out[g * s.N + n] = r === 0 ? halfMinNormal(s.dtype) : r;
    }
  }
  return out;
}

describe('quantizeFp8', () => {
  it('computes s = round_T(amax / 448) and q = nearest e4m3 of f32(w / s), saturating (property)', () => {
    fc.assert(
      fc.property(arbSpec, (s) => {
        const w = randomWeights(s.K, s.N, s.seed, s.amp);
        const opts = { K: s.K, N: s.N, granularity: s.granularity, groupSize: s.groupSize, scaleDtype: s.dtype };
        const { weight } = quantizeFp8(w, opts);
        expect([weight.bits, weight.codeType, weight.groupSize, weight.zeros, weight.gIdx]).toEqual([
          8,
          'e4m3',
          s.groupSize,
          null,
          null,
        ]);
        const decode = halfDecoder(s.dtype);
        const scales = expectedScales(w, s);
        for (let i = 0; i < scales.length; i++) {
          if (decode(weight.scales[i]) !== scales[i]) throw new Error(`scale ${i}: ${decode(weight.scales[i])}`);
        }
        for (let k = 0; k < s.K; k++) {
          const g = Math.floor(k / s.groupSize);
          for (let n = 0; n < s.N; n++) {
            const x = Math.fround(w[k * s.N + n] / scales[g * s.N + n]);
            const want = nearestE4m3(x);
            if (weight.codes[k * s.N + n] !== want) {
              throw new Error(`(${k}, ${n}): w / s = ${x} gave code ${weight.codes[k * s.N + n]}, want ${want}`);
            }
          }
        }
      }),
      { numRuns: 25 },
    );
  });

  it('rounds ties to the even code, in the normal and the subnormal range', () => {
    // column 0 holds 448, so its scale is exactly 1 and the codes are RNE of the weights themselves
    const values = [448, 1.0625, 1.1875, 17, 19, -17, 2 ** -10, 3 * 2 ** -10, 5 * 2 ** -10, 0.5 + 2 ** -5];
    const want = [0x7e, 0x38, 0x3a, 0x58, 0x5a, 0xd8, 0x00, 0x02, 0x02, 0x30];
    const K = 16;
    const w = new Float32Array(K * 16);
    values.forEach((v, k) => {
      w[k * 16] = v;
    });
    const { weight } = quantizeFp8(w, { K, N: 16 });
    expect(halfDecoder('fp16')(weight.scales[0])).toBe(1);
    expect(values.map((_, k) => weight.codes[k * 16])).toEqual(want);
    expect(want.map(e4m3)).toEqual([448, 1, 1.25, 16, 20, -16, 0, 2 ** -8, 2 ** -8, 0.5]);
  });

  it('saturates to +-448 when the rounded scale is below amax / 448 (fp16 subnormal scales)', () => {
    // amax / 448 = 1.4 * 2^-24 rounds down to the smallest fp16 subnormal 2^-24: amax / s = 627.2 > 448
    const amax = 448 * 1.4 * 2 ** -24;
    const w = new Float32Array(32 * 16);
    w[0] = amax;
    w[16] = -amax;
    w[32] = amax / 2;
    const { weight, error } = quantizeFp8(w, { K: 32, N: 16, scaleDtype: 'fp16' });
    expect(weight.scales[0]).toBe(0x0001);
    expect([weight.codes[0], weight.codes[16]]).toEqual([0x7e, 0xfe]); // not the NaN codes 0x7f / 0xff
    expect(weight.codes[32]).toBe(nearestE4m3(Math.fround(amax / 2 / 2 ** -24)));
    expect(error.maxAbs).toBe(Math.fround(amax) - 448 * 2 ** -24);
    expect(() => pack(weight)).not.toThrow();
  });

  it('stores block scales as group-128 scales repeated over each 128-column block (partial blocks too)', () => {
    const K = 208;
    const N = 272;
    const w = randomWeights(K, N, 8);
    w[150 * N + 200] = 9; // an outlier in block (1, 1) only
    const { weight } = quantizeFp8(w, { K, N, granularity: 'block', scaleDtype: 'bf16' });
    expect(weight.groupSize).toBe(128);
    expect(weight.scales.length).toBe(2 * N);
    const decode = halfDecoder('bf16');
    for (let g = 0; g < 2; g++) {
      for (let n = 0; n < N; n++) expect(weight.scales[g * N + n]).toBe(weight.scales[g * N + (n - (n % 128))]);
    }
    expect(decode(weight.scales[N + 128])).toBe(roundToHalf(Math.fround(9 / 448), 'bf16'));
    expect(decode(weight.scales[N + 127])).toBeLessThan(0.01);
    expect(decode(weight.scales[128])).toBeLessThan(0.01);
    const viaBlockSize = quantizeFp8(w, { K, N, blockSize: 128, scaleDtype: 'bf16' }).weight;
    expect(Array.from(viaBlockSize.scales)).toEqual(Array.from(weight.scales));
    // per-group scales of the same weight differ across the block's columns
    const grouped = quantizeFp8(w, { K, N, groupSize: 128, scaleDtype: 'bf16' }).weight;
    expect(new Set(grouped.scales.subarray(0, 128)).size).toBeGreaterThan(1);
  });

  it('gives an all-zero group the smallest normal scale, code 0 and zero error', () => {
    for (const dtype of ['fp16', 'bf16'] as const) {
      for (const granularity of ['per-channel', 'group', 'block'] as const) {
        const w = new Float32Array(64 * 16);
        const { weight, error } = quantizeFp8(w, { K: 64, N: 16, granularity, scaleDtype: dtype });
        expect(error).toEqual({ mse: 0, maxAbs: 0, relFrobenius: 0 });
        expect(halfDecoder(dtype)(weight.scales[0])).toBe(halfMinNormal(dtype));
        expect(weight.codes.every((c) => c === 0)).toBe(true);
        expect(() => pack(weight)).not.toThrow();
      }
    }
  });

  it("accepts nn.Linear's N x K layout and gives the same result as the transposed K x N input", () => {
    const K = 96;
    const N = 48;
    const w = randomWeights(K, N, 5);
    const t = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = w[k * N + n];
    for (const granularity of ['per-channel', 'group', 'block'] as const) {
      const a = quantizeFp8(w, { K, N, granularity });
      const b = quantizeFp8(t, { K, N, granularity, layout: 'NxK' });
      expect(Buffer.from(b.weight.codes).equals(Buffer.from(a.weight.codes))).toBe(true);
      expect(Array.from(b.weight.scales)).toEqual(Array.from(a.weight.scales));
      expect(b.error).toEqual(a.error);
    }
  });

  it('reports the error of the dequantized weight, feeds pack and the reference, and stays within the e4m3 precision', () => {
    fc.assert(
      fc.property(arbSpec, (s) => {
        const w = randomWeights(s.K, s.N, s.seed, s.amp);
        const { weight, error } = quantizeFp8(w, {
          K: s.K,
          N: s.N,
          granularity: s.granularity,
          groupSize: s.groupSize,
          scaleDtype: s.dtype,
        });
        const again = quantizationError(w, weight);
        expect(again.maxAbs).toBe(error.maxAbs);
        expect(Math.abs(again.mse - error.mse)).toBeLessThanOrEqual(1e-12 * error.mse);
        const packed = pack(weight);
        expect(Array.from(dequantize(packed, s.dtype))).toEqual(Array.from(dequantize(weight, s.dtype)));
        expect(Array.from(unpack(packed).codes)).toEqual(Array.from(weight.codes));
        // 3 mantissa bits: relative error of a normal e4m3 value <= 2^-4, plus the scale-dtype rounding
        if (s.amp >= 0.05) expect(error.relFrobenius).toBeLessThan(0.05);
      }),
      { numRuns: 25 },
    );
  });

  it('rejects bad input with typed errors that say what to do', () => {
    const w = randomWeights(32, 16, 1);
    const nan = w.slice();
    nan[17] = Number.NaN;
    const inf = w.slice();
    inf[5] = Number.POSITIVE_INFINITY;
    const huge = w.slice();
    huge[3] = 448 * 256;
    const cases: [() => unknown, string, RegExp][] = [
      [() => quantizeFp8(nan, { K: 32, N: 16 }), ErrorCode.VALUE, /non-finite value NaN at row 1, column 1/],
      [() => quantizeFp8(inf, { K: 32, N: 16 }), ErrorCode.VALUE, /non-finite value Infinity at row 0, column 5/],
      [
        () => quantizeFp8(huge, { K: 32, N: 16, scaleDtype: 'bf16' }),
        ErrorCode.VALUE,
        /FP8 scale of group 0, column 3 .* is 256 or more/,
      ],
      [() => quantizeFp8(w, { K: 32, N: 16, groupSize: 48 }), ErrorCode.UNSUPPORTED, /groupSize = 48/],
      [
        () => quantizeFp8(w, { K: 32, N: 16, granularity: 'block', groupSize: 64 }),
        ErrorCode.VALUE,
        /granularity "block" with groupSize 64: blocks are 128 x 128/,
      ],
      [
        () => quantizeFp8(w, { K: 32, N: 16, granularity: 'per-channel', groupSize: 64 }),
        ErrorCode.VALUE,
        /a per-channel scale spans all K rows/,
      ],
      [
        () => quantizeFp8(w, { K: 32, N: 16, granularity: 'tensor' as never }),
        ErrorCode.VALUE,
        /granularity is not 'per-channel', 'group' or 'block'/,
      ],
      [
        () => quantizeFp8(w, { K: 32, N: 16, blockSize: 64 as never }),
        ErrorCode.UNSUPPORTED,
        /blockSize = 64 is not supported; blocks are 128 x 128/,
      ],
      [
        () => quantizeFp8(w, { K: 32, N: 16, blockSize: 128, groupSize: 32 }),
        ErrorCode.VALUE,
        /blockSize 128 asks for block scales, but granularity undefined \/ groupSize 32/,
      ],
      [() => quantizeFp8(w, { K: 32, N: 32 }), ErrorCode.SHAPE, /Float32Array of K x N = 1024 values/],
      [() => quantizeFp8(w, { K: 32, N: 16, layout: 'KN' as never }), ErrorCode.VALUE, /layout = "KN"/],
      [() => quantizeFp8(w, { K: 32, N: 16, scaleDtype: 'fp8' as never }), ErrorCode.DTYPE, /scaleDtype must be/],
    ];
    for (const [fn, code, re] of cases) {
      const e = thrown(fn);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/Fix: /);
    }
    expect(thrown(() => quantizeFp8(huge, { K: 32, N: 16 }))).toBeInstanceOf(ValueError);
    // just below: 448 * 255 folds in bf16 (255 * 2^120 is bf16's largest value)
    huge[3] = 448 * 255;
    expect(() => pack(quantizeFp8(huge, { K: 32, N: 16, scaleDtype: 'bf16' }).weight)).not.toThrow();
  });

  it('reports progress per step and cancels through an AbortSignal (sync and async)', async () => {
    const w = randomWeights(256, 64, 2);
    const seen: number[] = [];
    quantizeFp8(w, { K: 256, N: 64, groupSize: 64, onProgress: (done, total) => seen.push(done / total) });
    expect(seen).toEqual([0.25, 0.5, 0.75, 1]);
    const perChannel: [number, number][] = [];
    quantizeFp8(w, { K: 256, N: 64, onProgress: (d, t) => perChannel.push([d, t]) });
    expect(perChannel).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
    ]);

    const ac = new AbortController();
    const e = thrown(() =>
      quantizeFp8(w, { K: 256, N: 64, granularity: 'block', signal: ac.signal, onProgress: () => ac.abort() }),
    );
    expect(e).toBeInstanceOf(CancelledError);

    const big = randomWeights(4096, 1024, 3);
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 5);
    await expect(quantizeFp8Async(big, { K: 4096, N: 1024, signal: ac2.signal })).rejects.toMatchObject({
      code: ErrorCode.CANCELLED,
    });
    const small = await quantizeFp8Async(w, { K: 256, N: 64, granularity: 'block' });
    const sync = quantizeFp8(w, { K: 256, N: 64, granularity: 'block' });
    expect(Array.from(small.weight.codes)).toEqual(Array.from(sync.weight.codes));
    expect(small.error).toEqual(sync.error);
  });

  it('is more accurate than INT8 RTN per-channel on heavy-tailed weights (its reason to exist), and fast enough', () => {
    const w = randomWeights(4096, 1024, 9);
    for (let i = 0; i < w.length; i += 997) w[i] *= 40;
    const fp8 = quantizeFp8(w, { K: 4096, N: 1024 }).error;
    const int8 = quantizeRtn(w, { K: 4096, N: 1024, bits: 8, groupSize: 'per-channel' }).error;
    expect(fp8.relFrobenius).toBeLessThan(int8.relFrobenius);
  });
});
