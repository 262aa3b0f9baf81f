import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  f32ToFp8E4m3,
  fp8E4m3ToF32,
  fromFp8E4m3Bits,
  fromHalfBits,
  roundToHalf,
  toFp8E4m3Bits,
  toHalfBits,
} from '../src/dtypes.js';
import { DtypeError, ErrorCode } from '../src/errors/index.js';

/**
 * Independent oracle: a binary format described by its field widths, decoded with plain Float64 arithmetic, and a
 * nearest-value search over the sorted finite values (ties to the even code). Shares no code with src/dtypes.ts.
 */
interface Format {
  expBits: number;
  mantBits: number;
  bias: number;
  /** true for IEEE-style (all-ones exponent = Inf/NaN); false for e4m3fn (only S.1111.111 is NaN). */
  ieee: boolean;
}

const FP16: Format = { expBits: 5, mantBits: 10, bias: 15, ieee: true };
const BF16: Format = { expBits: 8, mantBits: 7, bias: 127, ieee: true };
const E4M3: Format = { expBits: 4, mantBits: 3, bias: 7, ieee: false };

function decode(f: Format, code: number): number {
  const total = 1 + f.expBits + f.mantBits;
  const sign = Math.floor(code / 2 ** (total - 1)) % 2 === 1 ? -1 : 1;
  const exp = Math.floor(code / 2 ** f.mantBits) % 2 ** f.expBits;
  const mant = code % 2 ** f.mantBits;
  const expMax = 2 ** f.expBits - 1;
  if (f.ieee && exp === expMax) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (!f.ieee && exp === expMax && mant === 2 ** f.mantBits - 1) return Number.NaN;
  if (exp === 0) return sign * mant * 2 ** (1 - f.bias - f.mantBits);
  return sign * (1 + mant / 2 ** f.mantBits) * 2 ** (exp - f.bias);
}

interface Oracle {
  /** Finite non-negative values, ascending, with their codes. */
  values: number[];
  codes: number[];
  max: number;
  maxUlp: number;
  signBit: number;
}

function buildOracle(f: Format): Oracle {
  const total = 1 + f.expBits + f.mantBits;
  const signBit = 2 ** (total - 1);
  const values: number[] = [];
  const codes: number[] = [];
  for (let c = 0; c < signBit; c++) {
    const v = decode(f, c);
    if (Number.isFinite(v)) {
      values.push(v);
      codes.push(c);
    }
  }
  const max = values[values.length - 1];
  return { values, codes, max, maxUlp: max - values[values.length - 2], signBit };
}

/**
 * Nearest code to |x| (x already an f32 value), ties to even; 'overflow' when |x| > max + ulp/2, or at the tie
 * max + ulp/2 when the code of max is odd (the next, unrepresentable code would be the even one).
 */
function nearestCode(o: Oracle, ax: number): number | 'overflow' {
  const edge = o.max + o.maxUlp / 2;
  if (ax > edge || (ax === edge && o.codes[o.codes.length - 1] % 2 === 1)) return 'overflow';
  if (ax === edge) return o.codes[o.codes.length - 1];
  let lo = 0;
  let hi = o.values.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (o.values[mid] <= ax) lo = mid;
    else hi = mid;
  }
  if (ax >= o.values[hi]) return o.codes[hi];
  const dLo = ax - o.values[lo];
  const dHi = o.values[hi] - ax;
  if (dLo < dHi) return o.codes[lo];
  if (dHi < dLo) return o.codes[hi];
  return o.codes[lo] % 2 === 0 ? o.codes[lo] : o.codes[hi];
}

/** Every f32 input worth checking near a format's values: midpoints, their f32 neighbours, and random bit patterns. */
function probeInputs(o: Oracle, randomCount: number, seed: number): number[] {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const out: number[] = [];
  const push = (x: number) => {
    f32[0] = x;
    const b = u32[0];
    for (const d of [-1, 0, 1]) {
      u32[0] = b + d;
      out.push(f32[0], -f32[0]);
    }
  };
  for (let i = 0; i + 1 < o.values.length; i++) push((o.values[i] + o.values[i + 1]) / 2);
  push(o.max + o.maxUlp / 2);
  let s = seed;
  for (let i = 0; i < randomCount; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u32[0] = s;
    out.push(f32[0]);
  }
  out.push(0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN);
  return out;
}

function expectedBits(o: Oracle, x: number, overflowCode: number, nanCode: number): number {
  if (Number.isNaN(x)) return nanCode;
  const sign = x < 0 || Object.is(x, -0) ? o.signBit : 0;
  const r = nearestCode(o, Math.abs(Math.fround(x)));
  return sign + (r === 'overflow' ? overflowCode : r);
}

describe('fp16', () => {
  const oracle = buildOracle(FP16);

  it('decodes all 65,536 codes exactly and round-trips every non-NaN code bit-exactly', () => {
    let nan = 0;
    for (let b = 0; b < 65536; b++) {
      const v = f16ToF32(b);
      const ref = decode(FP16, b);
      if (Number.isNaN(ref)) {
        expect(Number.isNaN(v)).toBe(true);
        const back = f32ToF16(v);
        expect((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0).toBe(true);
        nan++;
        continue;
      }
      expect(Object.is(v, ref)).toBe(true);
      if (f32ToF16(v) !== b) throw new Error(`fp16 code ${b.toString(16)} did not round-trip`);
    }
    expect(nan).toBe(2 * 1023);
  });

  it('rounds f32 -> fp16 exactly like the independent nearest-even oracle (midpoints, neighbours, random)', () => {
    for (const x of probeInputs(oracle, 200_000, 1)) {
      const got = f32ToF16(x);
      const want = expectedBits(oracle, x, 0x7c00, got);
      if (got !== want) throw new Error(`f32ToF16(${x}) = 0x${got.toString(16)}, want 0x${want.toString(16)}`);
    }
  });

  it('handles the named edge cases', () => {
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65519.99)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie -> even (0)
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 -> 2
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(Number.NaN)).toBe(0x7e00);
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the smallest normal
  });
});

describe('bf16', () => {
  const oracle = buildOracle(BF16);

  it('round-trips all 65,536 codes (non-NaN bit-exact, NaN stays NaN)', () => {
    for (let b = 0; b < 65536; b++) {
      const v = bf16ToF32(b);
      const ref = decode(BF16, b);
      if (Number.isNaN(ref)) {
        expect(Number.isNaN(v)).toBe(true);
        expect(Number.isNaN(bf16ToF32(f32ToBf16(v)))).toBe(true);
        continue;
      }
      if (!Object.is(v, ref)) throw new Error(`bf16 code ${b.toString(16)} decodes to ${v}, want ${ref}`);
      if (f32ToBf16(v) !== b) throw new Error(`bf16 code ${b.toString(16)} did not round-trip`);
    }
  });

  it('rounds f32 -> bf16 exactly like the independent nearest-even oracle', () => {
    for (const x of probeInputs(oracle, 200_000, 7)) {
      const got = f32ToBf16(x);
      const want = expectedBits(oracle, x, 0x7f80, got);
      if (got !== want) throw new Error(`f32ToBf16(${x}) = 0x${got.toString(16)}, want 0x${want.toString(16)}`);
    }
  });

  it('handles overflow, NaN and ties', () => {
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80);
    expect(f32ToBf16(Number.NaN)).toBe(0x7fc0);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });
});

describe('fp8 e4m3fn', () => {
  const oracle = buildOracle(E4M3);

  it('decodes and round-trips all 256 codes; 0x7f and 0xff are the only NaNs; max is 448', () => {
    const nans: number[] = [];
    for (let b = 0; b < 256; b++) {
      const v = fp8E4m3ToF32(b);
      const ref = decode(E4M3, b);
      if (Number.isNaN(ref)) {
        expect(Number.isNaN(v)).toBe(true);
        expect([0x7f, 0xff]).toContain(f32ToFp8E4m3(v));
        nans.push(b);
        continue;
      }
      expect(Object.is(v, ref)).toBe(true);
      expect(f32ToFp8E4m3(v)).toBe(b);
    }
    expect(nans).toEqual([0x7f, 0xff]);
    expect(fp8E4m3ToF32(0x7e)).toBe(448);
    expect(oracle.max).toBe(448);
  });

  it('rounds like the oracle with saturation (overflow -> +-448) and without (overflow -> NaN)', () => {
    for (const x of probeInputs(oracle, 100_000, 3)) {
      if (Number.isNaN(x)) continue;
      const sat = f32ToFp8E4m3(x, true);
      expect(sat).toBe(expectedBits(oracle, x, 0x7e, -1));
      const nonSat = f32ToFp8E4m3(x, false);
      expect(nonSat).toBe(expectedBits(oracle, x, 0x7f, -1));
    }
  });

  it('documents its overflow edges', () => {
    expect(f32ToFp8E4m3(463.99)).toBe(0x7e);
    expect(f32ToFp8E4m3(464, false)).toBe(0x7e); // tie between 448 (even code 0x7e) and 480 -> 448, no overflow
    expect(f32ToFp8E4m3(464.00003)).toBe(0x7e); // saturate
    expect(f32ToFp8E4m3(464.00003, false)).toBe(0x7f);
    expect(f32ToFp8E4m3(Number.POSITIVE_INFINITY)).toBe(0x7e);
    expect(f32ToFp8E4m3(Number.NEGATIVE_INFINITY, false)).toBe(0xff);
    expect(f32ToFp8E4m3(2 ** -10)).toBe(0x00); // tie with the smallest subnormal -> even (0)
    expect(f32ToFp8E4m3(-(2 ** -9))).toBe(0x81);
    expect(Array.from(fromFp8E4m3Bits(toFp8E4m3Bits([1, -2, 448, 1000])))).toEqual([1, -2, 448, 448]);
  });
});

describe('array helpers', () => {
  it('toHalfBits / fromHalfBits / roundToHalf agree with the scalar functions', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true }), { maxLength: 64 }), fc.constantFrom('fp16', 'bf16'), (xs, dt) => {
        const bits = toHalfBits(xs, dt);
        const back = fromHalfBits(bits, dt);
        for (let i = 0; i < xs.length; i++) {
          const single = dt === 'fp16' ? f32ToF16(xs[i]) : f32ToBf16(xs[i]);
          expect(bits[i]).toBe(single);
          expect(Object.is(back[i], roundToHalf(xs[i], dt))).toBe(true);
        }
      }),
    );
  });

  it('rejects a wrong dtype and non-Uint16Array input with DtypeError', () => {
    expect(() => toHalfBits([1], 'fp32' as never)).toThrowError(/must be 'fp16' or 'bf16'/);
    try {
      fromHalfBits(new Float32Array(2) as never, 'fp16');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DtypeError);
      expect((e as DtypeError).code).toBe(ErrorCode.DTYPE);
      expect((e as DtypeError).message).toMatch(/Uint16Array.*Fix: convert with toHalfBits/);
    }
  });

  it('accepts Float16Array only where the runtime has one', () => {
    const ctor = (globalThis as { Float16Array?: new (xs: number[]) => ArrayLike<number> }).Float16Array;
    if (!ctor) {
      expect(() => fromHalfBits({ length: 1, 0: 1, BYTES_PER_ELEMENT: 2 }, 'fp16')).toThrowError(DtypeError);
      return;
    }
    const arr = new ctor([1, 0.5, 65504]);
    expect(Array.from(fromHalfBits(arr as never, 'fp16'))).toEqual([1, 0.5, 65504]);
    expect(() => fromHalfBits(arr as never, 'bf16')).toThrowError(/Float16Array holds fp16/);
  });
});
