/**
 * FP8 e4m3 weights in the packed format (docs/format.md "FP8 e4m3"): pack / unpack / validate / convertScales, the
 * scale fold, NaN refusal, 8-bit padding, and the CPU reference against an independent f64 computation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  fp8E4m3ToF32,
  halfDecoder,
  halfEncoder,
  roundToHalf,
} from '../src/dtypes.js';
import { ErrorCode, UnsupportedError, ValueError } from '../src/errors/index.js';
import { FP8_SCALE_FOLD_EXPONENT, isFp8NaNCode, unfoldFp8Scale } from '../src/format/fp8.js';
import { codeLocation, paddedK, paddedN } from '../src/format/layout.js';
import { convertScales, pack, unpack } from '../src/format/pack.js';
import type { HalfDtype, PackedWeight, QuantizedWeight } from '../src/format/types.js';
import { validatePacked } from '../src/format/validate.js';
import { dequantize, referenceGemm } from '../src/reference/index.js';
import { randInt, randomGIdx, randomHalfBits, rng, thrown } from './helpers.js';

type Granularity = 'per-channel' | 32 | 64 | 128 | 'block';

interface Fp8Spec {
  K: number;
  N: number;
  granularity: Granularity;
  scaleDtype: HalfDtype;
  actOrder?: boolean;
  seed: number;
}

/** A random finite e4m3 code (never 0x7f / 0xff). */
function randomCode(r: () => number): number {
  for (;;) {
    const c = randInt(r, 256);
    if ((c & 0x7f) !== 0x7f) return c;
  }
}

/**
 * A valid random FP8 QuantizedWeight: finite e4m3 codes, positive logical scales in [2^-12, 2^2) (fp16 subnormal
 * scales included), block granularity as group-128 scales repeated over 128 columns.
 */
function randomFp8(spec: Fp8Spec): QuantizedWeight {
  const r = rng(spec.seed);
  const { K, N } = spec;
  const groupSize = spec.granularity === 'per-channel' ? K : spec.granularity === 'block' ? 128 : spec.granularity;
  const G = Math.ceil(K / groupSize);
  const codes = new Uint8Array(K * N);
  for (let i = 0; i < codes.length; i++) codes[i] = randomCode(r);
  const encode = spec.scaleDtype === 'fp16' ? f32ToF16 : f32ToBf16;
  const scales = new Uint16Array(G * N);
  for (let g = 0; g < G; g++) {
    for (let n = 0; n < N; n++) {
      const src = spec.granularity === 'block' ? g * N + (n - (n % 128)) : -1;
      scales[g * N + n] = src >= 0 && n % 128 !== 0 ? scales[src] : encode(2 ** (-12 + 14 * r()));
    }
  }
  const gIdx = spec.actOrder ? randomGIdx(r, K, groupSize) : null;
  return { bits: 8, codeType: 'e4m3', K, N, groupSize, codes, scales, scaleDtype: spec.scaleDtype, zeros: null, gIdx };
}

const DIMS = [16, 32, 48, 64, 80, 96, 128, 144, 208, 256];

const arbSpec = fc.record({
  K: fc.constantFrom(...DIMS),
  N: fc.constantFrom(...DIMS),
  granularity: fc.constantFrom<Granularity>('per-channel', 32, 64, 128, 'block'),
  scaleDtype: fc.constantFrom<HalfDtype>('fp16', 'bf16'),
  actOrder: fc.boolean(),
  seed: fc.integer({ min: 0, max: 1e9 }),
});

function packedCode(p: PackedWeight, k: number, n: number): number {
  const { wordIndex, shift } = codeLocation(k, n, p.Kp, p.bits);
  return (p.qweight[wordIndex] >>> shift) & 0xff;
}

function expectSameFp8(a: QuantizedWeight, b: QuantizedWeight): void {
  expect([a.bits, a.codeType, a.K, a.N, a.groupSize, a.scaleDtype, a.zeros]).toEqual([
    b.bits,
    b.codeType,
    b.K,
    b.N,
    b.groupSize,
    b.scaleDtype,
    b.zeros,
  ]);
  expect(Buffer.from(a.codes).equals(Buffer.from(b.codes))).toBe(true);
  expect(Array.from(a.scales)).toEqual(Array.from(b.scales));
  expect(a.gIdx === null ? null : Array.from(a.gIdx)).toEqual(b.gIdx === null ? null : Array.from(b.gIdx));
}

describe('FP8 pack / unpack', () => {
  it('unpack(pack(q)) === q for per-channel, group and block scales, fp16 and bf16, act-order (property)', () => {
    fc.assert(
      fc.property(arbSpec, (spec) => {
        const q = randomFp8(spec);
        const p = pack(q);
        expect(p.codeType).toBe('e4m3');
        expect(p.zeros).toBeNull();
        expect(p.Kp).toBe(Math.ceil(spec.K / 64) * 64);
        expect(p.Np).toBe(paddedN(spec.N));
        // padding: code 0x00 (+0) in padded rows and columns, scale 0 in padded columns
        for (let k = 0; k < p.Kp; k++) {
          for (let n = 0; n < p.Np; n++) {
            if ((k >= p.K || n >= p.N) && packedCode(p, k, n) !== 0) {
              throw new Error(`padded code at (${k}, ${n}) is ${packedCode(p, k, n)}, want 0`);
            }
          }
        }
        for (let g = 0; g < p.numGroups; g++) for (let n = p.N; n < p.Np; n++) expect(p.scales[g * p.Np + n]).toBe(0);
        expectSameFp8(unpack(p), q);
      }),
      { numRuns: 60 },
    );
  });

  it('uses exactly the INT8 byte layout: the same bytes packed as FP8 and as INT8 give the same tiles', () => {
    const q = randomFp8({ K: 128, N: 128, granularity: 64, scaleDtype: 'fp16', seed: 7 });
    const asInt8: QuantizedWeight = { ...q, codeType: undefined };
    expect(Array.from(pack(q).qweight)).toEqual(Array.from(pack(asInt8).qweight));
  });

  it('stores the scale folded: fp16 bits of s * 2^8, bf16 bits of s * 2^120 (bit patterns written out by hand)', () => {
    expect(FP8_SCALE_FOLD_EXPONENT).toEqual({ fp16: 8, bf16: 120 });
    const q = randomFp8({ K: 64, N: 64, granularity: 'per-channel', scaleDtype: 'fp16', seed: 1 });
    const scales = q.scales as Uint16Array;
    scales[0] = 0x3a00; // fp16 0.75
    scales[1] = 0x2c00; // fp16 2^-4
    scales[2] = 0x0001; // fp16 2^-24 (smallest subnormal)
    const h = pack(q);
    expect(h.scales[0]).toBe(0x5a00); // fp16 192 = 0.75 * 256
    expect(h.scales[1]).toBe(0x4c00); // fp16 16
    expect(h.scales[2]).toBe(0x0100); // fp16 2^-16 = 2^-24 * 2^8 (still subnormal, exact)
    const b = pack(q, { scaleDtype: 'bf16' });
    expect(b.scales[0]).toBe(0x7b40); // bf16 1.5 * 2^119: exponent field 246, mantissa 0x40
    expect(b.scales[1]).toBe(0x7980); // bf16 2^116: exponent field 243
    expect(b.scales[2]).toBe(0x6f80); // bf16 2^96: exponent field 223
    // and unpack gives the logical scale back in either dtype
    expect(unpack(h).scales[0]).toBe(0x3a00);
    expect(bf16ToF32(unpack(b).scales[0])).toBe(0.75);
    expect(unpack(h).scales[2]).toBe(0x0001);
  });

  it('the fold exponents are the ones the kernel shift needs: shifted e4m3 bits decode to e4m3(q) * 2^-e', () => {
    for (let c = 0; c < 256; c++) {
      if (isFp8NaNCode(c)) continue;
      const sign = (c & 0x80) << 8;
      const asF16 = sign | ((c & 0x7f) << 7);
      const asBf16 = sign | ((c & 0x7f) << 4);
      expect(f16ToF32(asF16)).toBe(fp8E4m3ToF32(c) * 2 ** -FP8_SCALE_FOLD_EXPONENT.fp16);
      expect(bf16ToF32(asBf16)).toBe(fp8E4m3ToF32(c) * 2 ** -FP8_SCALE_FOLD_EXPONENT.bf16);
    }
  });

  it('convertScales refolds: fp16 fold -> bf16 fold equals pack(q, bf16), and back to fp16 equals pack(q) on fp16-exact scales', () => {
    fc.assert(
      fc.property(arbSpec, (spec) => {
        const q = randomFp8({ ...spec, scaleDtype: 'fp16' });
        const h = pack(q);
        const b = convertScales(h, 'bf16');
        expect(b.scaleDtype).toBe('bf16');
        expect(Array.from(b.scales)).toEqual(Array.from(pack(q, { scaleDtype: 'bf16' }).scales));
        for (let n = 0; n < q.N; n++) {
          const s = f16ToF32(q.scales[n]);
          expect(b.scales[n]).toBe(f32ToBf16(s * 2 ** 120));
          expect(unfoldFp8Scale(b.scales[n], 'bf16')).toBe(bf16ToF32(f32ToBf16(s)));
        }
        // bf16 -> fp16: every bf16 scale in [2^-12, 4) is fp16-exact once folded (8 significant bits, normal range)
        const qb = randomFp8({ ...spec, scaleDtype: 'bf16' });
        expect(Array.from(convertScales(pack(qb), 'fp16').scales)).toEqual(
          Array.from(pack(qb, { scaleDtype: 'fp16' }).scales),
        );
        expectSameFp8(unpack(convertScales(pack(qb), 'fp16')), {
          ...qb,
          scaleDtype: 'fp16',
          scales: Uint16Array.from(qb.scales, (s) => f32ToF16(bf16ToF32(s))),
        });
      }),
      { numRuns: 30 },
    );
  });

  it('refuses a scale whose fold overflows (s >= 256: fp16 and bf16 folds end at the same place) or underflows', () => {
    const q = randomFp8({ K: 64, N: 16, granularity: 32, scaleDtype: 'fp16', seed: 2 });
    (q.scales as Uint16Array)[16 + 3] = f32ToF16(255.875); // largest fp16 below 256: folds to 65504
    expect(pack(q).scales[64 + 3]).toBe(f32ToF16(65504));
    expect(() => pack(q, { scaleDtype: 'bf16' })).toThrow(/= 255.875 overflows bf16/); // rounds to bf16 256
    (q.scales as Uint16Array)[16 + 3] = f32ToF16(255);
    expect(unfoldFp8Scale(pack(q, { scaleDtype: 'bf16' }).scales[64 + 3], 'bf16')).toBe(255); // bf16 max / 2^120
    (q.scales as Uint16Array)[16 + 3] = f32ToF16(256);
    for (const dtype of ['fp16', 'bf16'] as const) {
      const e = thrown(() => pack(q, { scaleDtype: dtype }));
      expect(e).toBeInstanceOf(ValueError);
      expect(e.message).toMatch(
        new RegExp(`FP8 scale \\[group 1, column 3\\] = 256 overflows ${dtype}.*Fix: FP8 scales must stay below 256`),
      );
    }
    // a tiny bf16 scale underflows the fp16 fold (logical fp16 fold range ends at 2^-32): bf16 is the fix
    const tiny = randomFp8({ K: 64, N: 16, granularity: 32, scaleDtype: 'bf16', seed: 2 });
    (tiny.scales as Uint16Array)[7] = f32ToBf16(2 ** -40);
    expect(thrown(() => pack(tiny, { scaleDtype: 'fp16' })).message).toMatch(
      /\[group 0, column 7\] = 9.094947017729282e-13 underflows fp16.*Fix: pack with scaleDtype 'bf16'/,
    );
    expect(thrown(() => convertScales(pack(tiny), 'fp16')).message).toMatch(/column 7\] = .* underflows fp16/);
    expect(unfoldFp8Scale(pack(tiny).scales[7], 'bf16')).toBe(2 ** -40);
  });

  it('refuses NaN codes 0x7f / 0xff in a QuantizedWeight, naming the first (k, n)', () => {
    for (const nan of [0x7f, 0xff]) {
      const q = randomFp8({ K: 64, N: 48, granularity: 'per-channel', scaleDtype: 'bf16', seed: 3 });
      (q.codes as Uint8Array)[40 * 48 + 17] = nan;
      (q.codes as Uint8Array)[41 * 48 + 2] = nan;
      const e = thrown(() => pack(q));
      expect(e).toBeInstanceOf(ValueError);
      expect(e.code).toBe(ErrorCode.VALUE);
      expect(e.message).toMatch(new RegExp(`\\(k = 40, n = 17\\) is 0x${nan.toString(16)}, an e4m3 NaN.*Fix: `));
    }
  });

  it("validatePacked refuses a NaN code anywhere in packed FP8 tiles, padding included, naming (k', n)", () => {
    const q = randomFp8({ K: 96, N: 80, granularity: 32, scaleDtype: 'fp16', actOrder: true, seed: 4 });
    const p = pack(q);
    expect(() => validatePacked(p)).not.toThrow();
    const poison = (k: number, n: number, code: number): PackedWeight => {
      const qweight = p.qweight.slice();
      const { wordIndex, shift } = codeLocation(k, n, p.Kp, 8);
      qweight[wordIndex] = (qweight[wordIndex] & ~(0xff << shift)) | (code << shift);
      return { ...p, qweight };
    };
    const inside = thrown(() => validatePacked(poison(37, 70, 0xff)));
    expect(inside).toBeInstanceOf(ValueError);
    expect(inside.message).toMatch(
      new RegExp(`\\(k' = 37, n = 70, original row ${p.perm?.[37]}\\) is an e4m3 NaN.*Fix: repack`),
    );
    expect(thrown(() => validatePacked(poison(100, 3, 0x7f))).message).toMatch(/\(k' = 100, n = 3\), in the padding,/);
    expect(thrown(() => unpack(poison(5, 79, 0x7f))).message).toMatch(/\(k' = 5, n = 79, original row \d+\) is/);
    // the first in packed row-major order is named, whichever tile it sits in
    const two = poison(50, 1, 0x7f);
    const { wordIndex, shift } = codeLocation(3, 75, p.Kp, 8);
    two.qweight[wordIndex] |= 0x7f << shift;
    expect(thrown(() => validatePacked(two)).message).toMatch(/k' = 3, n = 75/);
    // 0x7e (448) and 0xfe (-448) are finite
    expect(() => validatePacked(poison(0, 0, 0x7e))).not.toThrow();
    expect(() => validatePacked(poison(0, 0, 0xfe))).not.toThrow();
  });

  it('refuses zero points, bits 4 and unknown code types with UnsupportedError', () => {
    const q = randomFp8({ K: 64, N: 16, granularity: 64, scaleDtype: 'fp16', seed: 5 });
    const cases: [QuantizedWeight, RegExp][] = [
      [{ ...q, zeros: new Uint8Array(16) }, /FP8 e4m3 weight has zero points.*Fix: pass zeros: null/],
      [{ ...q, bits: 4 }, /codeType 'e4m3' needs bits = 8, got bits = 4/],
      [{ ...q, codeType: 'e5m2' as never }, /codeType = "e5m2" is not supported/],
    ];
    for (const [bad, re] of cases) {
      const e = thrown(() => pack(bad));
      expect(e).toBeInstanceOf(UnsupportedError);
      expect(e.message).toMatch(re);
    }
    const p = pack(q);
    expect(thrown(() => validatePacked({ ...p, zeros: new Uint8Array(p.Np) })).message).toMatch(/has zero points/);
  });

  it('refuses to unpack a folded fp16 scale whose logical value fp16 cannot hold', () => {
    const p = pack(randomFp8({ K: 64, N: 16, granularity: 'per-channel', scaleDtype: 'fp16', seed: 6 }));
    const scales = p.scales.slice();
    scales[5] = 0x0003; // 3 * 2^-24 folded: logical 3 * 2^-32, below fp16's subnormal spacing
    const bad = { ...p, scales };
    expect(() => validatePacked(bad)).not.toThrow();
    const e = thrown(() => unpack(bad));
    expect(e).toBeInstanceOf(ValueError);
    expect(e.message).toMatch(/\[group 0, column 5\] \(folded fp16 0x3\) unfolds to .* which fp16 cannot hold/);
  });
});

describe('8-bit padding: Kp = ceil(K / 64) * 64 (an even number of 32-row tiles)', () => {
  for (const K of [16, 32, 96, 160, 7392]) {
    it(`K = ${K}: INT8 pads with the zero point, FP8 with 0x00, both to ${Math.ceil(K / 64) * 64} rows`, () => {
      const fp8 = pack(randomFp8({ K, N: 64, granularity: 'per-channel', scaleDtype: 'fp16', seed: K }));
      const int8 = pack({ ...unpack(fp8), codeType: 'int' });
      for (const p of [fp8, int8]) {
        expect(p.Kp).toBe(Math.ceil(K / 64) * 64);
        expect(p.Kp).toBe(paddedK(K, 8));
        expect(((p.Kp / 32) * p.Np) / 64).toBe(p.qweight.length / 512);
        expect((p.Kp / 32) % 2).toBe(0);
      }
      for (let k = K; k < fp8.Kp; k++) {
        for (const n of [0, 17, 63]) {
          expect(packedCode(fp8, k, n)).toBe(0);
          expect(packedCode(int8, k, n)).toBe(128);
        }
      }
      expect(fp8.paddedBytes).toBe((fp8.Kp - K) * 64);
    });
  }
});

/** e4m3fn value of a code from the OCP definition (bias 7, 3 mantissa bits), written independently of src/. */
function e4m3(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 15;
  const m = code & 7;
  if (e === 15 && m === 7) return Number.NaN;
  return sign * (e === 0 ? m * 2 ** -9 : (8 + m) * 2 ** (e - 10));
}

/** Logical scale of (row k, column n) of a QuantizedWeight, as an exact number. */
function logicalScale(q: QuantizedWeight, k: number, n: number): number {
  const g = q.gIdx ? q.gIdx[k] : Math.floor(k / q.groupSize);
  return halfDecoder(q.scaleDtype)(q.scales[g * q.N + n]);
}

describe('FP8 reference', () => {
  it('dequantizes round_T(e4m3(q) * s) from QuantizedWeight and PackedWeight, every code, any scale (property)', () => {
    fc.assert(
      fc.property(arbSpec, (spec) => {
        const q = randomFp8(spec);
        const fromQ = dequantize(q, spec.scaleDtype);
        const fromP = dequantize(pack(q), spec.scaleDtype);
        for (let k = 0; k < q.K; k++) {
          for (let n = 0; n < q.N; n++) {
            const i = k * q.N + n;
            const want = roundToHalf(e4m3(q.codes[i]) * logicalScale(q, k, n), q.scaleDtype);
            if (!Object.is(fromQ[i], want) || !Object.is(fromP[i], want)) {
              throw new Error(`(${k}, ${n}): q ${fromQ[i]} packed ${fromP[i]} want ${want}`);
            }
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('covers all 254 finite codes, subnormals included, at one scale per column', () => {
    const codes = Array.from({ length: 256 }, (_, c) => c).filter((c) => (c & 0x7f) !== 0x7f);
    const K = 256;
    const N = 16;
    for (const scaleDtype of ['fp16', 'bf16'] as const) {
      const q: QuantizedWeight = {
        bits: 8,
        codeType: 'e4m3',
        K,
        N,
        groupSize: K,
        codes: Uint8Array.from({ length: K * N }, (_, i) => codes[Math.floor(i / N) % codes.length]),
        scales: Uint16Array.from({ length: N }, (_, n) => halfEncoder(scaleDtype)(1.3 ** (n - 8))),
        scaleDtype,
        zeros: null,
        gIdx: null,
      };
      const deq = dequantize(pack(q), scaleDtype);
      for (let i = 0; i < K * N; i++) {
        const want = roundToHalf(e4m3(q.codes[i]) * logicalScale(q, Math.floor(i / N), i % N), scaleDtype);
        expect(Object.is(deq[i], want)).toBe(true);
      }
      expect(deq[1 * N + 8]).toBe(2 ** -9); // code 0x01, scale 1.3^0 = 1: the smallest subnormal
    }
  });

  /**
   * Exact grid: codes with values 1 .. 15 on the e4m3 grid (and 0), power-of-two scales 2^-3 .. 2^1, x = j / 4 with
   * |j| <= 8, K <= 256: every product is a multiple of 2^-8 below 60, every partial sum below 2^14, so f32
   * accumulation is exact in any order and the kernel, this reference and f64 must agree bit for bit.
   */
  function gridWeight(spec: Fp8Spec): QuantizedWeight {
    const q = randomFp8(spec);
    const r = rng(spec.seed + 11);
    const codes = q.codes as Uint8Array;
    for (let i = 0; i < codes.length; i++) {
      codes[i] = r() < 0.1 ? 0 : (r() < 0.5 ? 0x80 : 0) | ((7 + randInt(r, 4)) << 3) | randInt(r, 8);
    }
    const encode = halfEncoder(spec.scaleDtype);
    const scales = q.scales as Uint16Array;
    const G = scales.length / q.N;
    for (let g = 0; g < G; g++) {
      for (let n = 0; n < q.N; n++) {
        const lead = spec.granularity === 'block' ? n - (n % 128) : n;
        scales[g * q.N + n] = lead === n ? encode(2 ** (randInt(r, 5) - 3)) : scales[g * q.N + lead];
      }
    }
    return q;
  }

  it('referenceGemm on an exact grid equals an independent f64 computation bit for bit (fold unfolded exactly once)', () => {
    const grids = fc.record({
      K: fc.constantFrom(64, 96, 128, 256),
      N: fc.constantFrom(16, 80, 256),
      granularity: fc.constantFrom<Granularity>('per-channel', 32, 64, 128, 'block'),
      scaleDtype: fc.constantFrom<HalfDtype>('fp16', 'bf16'),
      actOrder: fc.boolean(),
      M: fc.constantFrom(1, 3, 8),
      bias: fc.boolean(),
      seed: fc.integer({ min: 0, max: 1e9 }),
    });
    fc.assert(
      fc.property(grids, (spec) => {
        const q = gridWeight(spec);
        const { K, N, scaleDtype: dtype } = q;
        const r = rng(spec.seed + 5);
        const encode = halfEncoder(dtype);
        const decode = halfDecoder(dtype);
        const x = Uint16Array.from({ length: spec.M * K }, () => encode((randInt(r, 17) - 8) / 4));
        const bias = spec.bias ? Uint16Array.from({ length: N }, () => encode((randInt(r, 65) - 32) / 4)) : undefined;
        const y64 = new Float64Array(spec.M * N);
        for (let m = 0; m < spec.M; m++) {
          for (let n = 0; n < N; n++) {
            let acc = bias ? decode(bias[n]) : 0;
            for (let k = 0; k < K; k++) acc += decode(x[m * K + k]) * e4m3(q.codes[k * N + n]) * logicalScale(q, k, n);
            y64[m * N + n] = acc;
          }
        }
        const p = pack(q);
        const got = referenceGemm(x, p, { M: spec.M, dtype, bias });
        for (let i = 0; i < y64.length; i++) {
          if (Math.fround(y64[i]) !== y64[i]) throw new Error(`grid not exact at ${i}: ${y64[i]}`);
          if (got.values[i] !== y64[i] || got.bits[i] !== encode(y64[i])) {
            throw new Error(`output ${i}: reference ${got.values[i]}, f64 ${y64[i]}`);
          }
        }
        // the same check sees a missing fold: logical scales stored unfolded give y * 2^-e (bias aside)
        const unfolded = { ...p, scales: p.scales.map((b) => encode(decode(b) / 2 ** FP8_SCALE_FOLD_EXPONENT[dtype])) };
        const wrong = referenceGemm(x, unfolded, { M: spec.M, dtype }).values;
        const nonZero = y64.findIndex((v, i) => v - (bias ? decode(bias[i % N]) : 0) !== 0);
        if (nonZero >= 0) expect(wrong[nonZero]).not.toBe(got.values[nonZero]);
      }),
      { numRuns: 40 },
    );
  });

  it('docs/format.md worked example: one code 0x38 at (k 9, n 8), scale 2^-4: word 1 of tile 0, one product', () => {
    // docs/format.md worked example: q[k = 9, n = 8] = 0x38 (1.0), scale 2^-4, everything else 0x00
    for (const dtype of ['fp16', 'bf16'] as const) {
      const q: QuantizedWeight = {
        bits: 8,
        codeType: 'e4m3',
        K: 64,
        N: 64,
        groupSize: 64,
        codes: new Uint8Array(64 * 64),
        scales: new Uint16Array(64).fill(halfEncoder(dtype)(2 ** -4)),
        scaleDtype: dtype,
        zeros: null,
        gIdx: null,
      };
      (q.codes as Uint8Array)[9 * 64 + 8] = 0x38;
      const p = pack(q);
      expect(p.qweight[1]).toBe(0x38000000);
      expect(p.qweight.every((v, i) => i === 1 || v === 0)).toBe(true);
      expect(p.scales[0]).toBe(dtype === 'fp16' ? 0x4c00 : 0x7980);
      expect(f16ToF32((0x38 & 0x7f) << 7)).toBe(2 ** -8); // the kernel's shift of 0x38 is fp16 0x1c00
      const x = randomHalfBits(rng(1), 64, dtype);
      const y = referenceGemm(x, p, { M: 1, dtype });
      expect(y.values[8]).toBe(halfDecoder(dtype)(x[9]) * 2 ** -4);
      expect(y.values[7]).toBe(0);
    }
  });
});
