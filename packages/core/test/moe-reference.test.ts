/**
 * MoE CPU reference: the router, the routing alignment (property tests of its invariants) and the whole layer against
 * an independent per-token implementation with the same rounding points, plus routing edge cases, expert parallelism
 * and typed refusals.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16, halfDecoder, halfEncoder } from '../src/dtypes.js';
import { DtypeError, ShapeError, ValueError } from '../src/errors/index.js';
import { expertWeight, type PackedExperts, packExperts, splitExperts, stackExperts } from '../src/format/experts.js';
import { unpack } from '../src/format/pack.js';
import type { HalfDtype, QuantizedWeight } from '../src/format/types.js';
import { dequantize } from '../src/reference/dequantize.js';
import {
  moeAlignBlockSize,
  moeAlignCapacity,
  moeRouterTopK,
  type ReferenceMoeOptions,
  referenceMoe,
  swigluOai,
} from '../src/reference/moe.js';
import { randInt, randomHalfBits, randomQuantized, rng, thrown } from './helpers.js';

// ------------------------------------------------------------------------------------------------------- router

describe('moeRouterTopK', () => {
  it('picks the k largest logits, ties to the lower expert id, with softmax weights', () => {
    const logits = new Float32Array([0.5, 2, 2, -1, 2, 0, /* token 1 */ 1, 1, 1, 1, 1, 1]);
    const { topkIds, topkWeights } = moeRouterTopK(logits, { M: 2, numExperts: 6, topk: 2 });
    expect(Array.from(topkIds)).toEqual([1, 2, 0, 1]);
    const z = [0.5, 2, 2, -1, 2, 0].reduce((s, v) => s + Math.exp(v), 0);
    expect(topkWeights[0]).toBe(Math.fround(Math.exp(2) / z));
    expect(topkWeights[2]).toBe(Math.fround(1 / 6));
  });

  it('renormalises over the chosen k, and reads fp16 logits', () => {
    const r = rng(3);
    const M = 5;
    const E = 8;
    const bits = randomHalfBits(r, M * E, 'fp16', 4);
    const { topkIds, topkWeights } = moeRouterTopK(bits, {
      M,
      numExperts: E,
      topk: 3,
      renormalize: true,
      dtype: 'fp16',
    });
    for (let m = 0; m < M; m++) {
      const row = Array.from({ length: E }, (_, e) => f16ToF32(bits[m * E + e]));
      const want = row
        .map((v, e) => [v, e] as const)
        .sort((a, b) => b[0] - a[0] || a[1] - b[1])
        .slice(0, 3);
      expect(Array.from(topkIds.subarray(m * 3, m * 3 + 3))).toEqual(want.map((w) => w[1]));
      const s = want.reduce((acc, w) => acc + Math.exp(w[0]), 0);
      for (let j = 0; j < 3; j++) expect(topkWeights[m * 3 + j]).toBeCloseTo(Math.exp(want[j][0]) / s, 6);
    }
  });

  it('refuses k > E, NaN logits, a wrong length and 16-bit logits without a dtype', () => {
    expect(thrown(() => moeRouterTopK(new Float32Array(8), { M: 2, numExperts: 4, topk: 5 }))).toBeInstanceOf(
      ValueError,
    );
    const nan = new Float32Array(8);
    nan[5] = Number.NaN;
    expect(thrown(() => moeRouterTopK(nan, { M: 2, numExperts: 4, topk: 2 })).message).toMatch(/token 1, expert 1/);
    expect(thrown(() => moeRouterTopK(new Float32Array(7), { M: 2, numExperts: 4, topk: 2 }))).toBeInstanceOf(
      ShapeError,
    );
    expect(thrown(() => moeRouterTopK(new Uint16Array(8), { M: 2, numExperts: 4, topk: 2 }))).toBeInstanceOf(
      DtypeError,
    );
  });
});

// ---------------------------------------------------------------------------------------------------- alignment

const routing = fc
  .record({
    M: fc.integer({ min: 0, max: 40 }),
    E: fc.integer({ min: 1, max: 12 }),
    k: fc.integer({ min: 1, max: 4 }),
    blockSize: fc.integer({ min: 1, max: 20 }),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    ep: fc.boolean(),
  })
  .filter((c) => c.k <= c.E)
  .map((c) => {
    const r = rng(c.seed);
    // Some "no expert" slots (-1) and, one time in four, every token on one expert.
    const skew = r() < 0.25;
    const ids = Int32Array.from({ length: c.M * c.k }, () => (r() < 0.1 ? -1 : skew ? c.E - 1 : randInt(r, c.E)));
    let expertMap: Int32Array | undefined;
    if (c.ep) {
      expertMap = new Int32Array(c.E).fill(-1);
      let next = 0;
      for (let e = 0; e < c.E; e++) if (r() < 0.5) expertMap[e] = next++;
    }
    return { ...c, ids, expertMap };
  });

describe('moeAlignBlockSize', () => {
  it('every routed local slot appears exactly once, padding only at block ends, deterministic order', () => {
    fc.assert(
      fc.property(routing, ({ M, E, k, blockSize, ids, expertMap }) => {
        const a = moeAlignBlockSize(ids, { topk: k, numExperts: E, blockSize, expertMap });
        const local = (id: number): number => (id < 0 ? -1 : expertMap ? expertMap[id] : id);
        expect(a.paddingId).toBe(M * k);
        expect(a.sortedTokenIds.length).toBe(a.numTokensPostPadded);
        expect(a.numTokensPostPadded % blockSize).toBe(0);
        expect(a.expertIds.length).toBe(a.numTokensPostPadded / blockSize);
        expect(a.numTokensPostPadded).toBeLessThanOrEqual(moeAlignCapacity(M, k, a.numLocalExperts, blockSize));
        const seen = new Int32Array(M * k);
        for (let b = 0; b < a.expertIds.length; b++) {
          if (b > 0) expect(a.expertIds[b]).toBeGreaterThanOrEqual(a.expertIds[b - 1]);
          let padded = false;
          let prev = -1;
          for (let i = b * blockSize; i < (b + 1) * blockSize; i++) {
            const t = a.sortedTokenIds[i];
            if (t === a.paddingId) {
              padded = true;
              continue;
            }
            expect(padded, 'a routed slot after padding inside a block').toBe(false);
            expect(local(ids[t])).toBe(a.expertIds[b]);
            expect(t).toBeGreaterThan(prev);
            prev = t;
            seen[t]++;
          }
          // Padding ends an expert's run: the next block belongs to another expert.
          if (padded && b + 1 < a.expertIds.length) expect(a.expertIds[b + 1]).toBeGreaterThan(a.expertIds[b]);
        }
        for (let t = 0; t < M * k; t++) expect(seen[t]).toBe(local(ids[t]) >= 0 ? 1 : 0);
        for (let e = 0; e < a.numLocalExperts; e++) {
          const blocks = a.expertIds.filter((x) => x === e).length;
          expect(blocks).toBe(Math.ceil(a.tokensPerExpert[e] / blockSize));
        }
        expect(moeAlignBlockSize(ids, { topk: k, numExperts: E, blockSize, expertMap })).toEqual(a);
      }),
      { numRuns: 300 },
    );
  });

  it('matches a worked example', () => {
    // M 3, k 2: slots 0..5 route to experts 2,0 | 2,2 | 1,-1; blockSize 2.
    const a = moeAlignBlockSize(new Int32Array([2, 0, 2, 2, 1, -1]), { topk: 2, numExperts: 4, blockSize: 2 });
    expect(Array.from(a.sortedTokenIds)).toEqual([1, 6, 4, 6, 0, 2, 3, 6]);
    expect(Array.from(a.expertIds)).toEqual([0, 1, 2, 2]);
    expect(a.numTokensPostPadded).toBe(8);
  });

  it('refuses ids out of range, k > E, a bad block size and bad expert maps', () => {
    const o = { topk: 2, numExperts: 4, blockSize: 16 };
    expect(thrown(() => moeAlignBlockSize(new Int32Array([0, 4]), o)).message).toMatch(/token 0, slot 1\) = 4/);
    expect(thrown(() => moeAlignBlockSize(new Int32Array([0, -2]), o))).toBeInstanceOf(ValueError);
    expect(thrown(() => moeAlignBlockSize(new Int32Array(5), { ...o, topk: 5 }))).toBeInstanceOf(ValueError);
    expect(thrown(() => moeAlignBlockSize(new Int32Array(3), o))).toBeInstanceOf(ShapeError);
    expect(thrown(() => moeAlignBlockSize(new Int32Array(2), { ...o, blockSize: 0 }))).toBeInstanceOf(ValueError);
    const dup = new Int32Array([0, 0, -1, -1]);
    expect(thrown(() => moeAlignBlockSize(new Int32Array(2), { ...o, expertMap: dup }))).toBeInstanceOf(ValueError);
    const gap = new Int32Array([0, 2, -1, -1]);
    expect(thrown(() => moeAlignBlockSize(new Int32Array(2), { ...o, expertMap: gap }))).toBeInstanceOf(ValueError);
    expect(thrown(() => moeAlignBlockSize(new Int32Array(2), { ...o, expertMap: new Int32Array(3) }))).toBeInstanceOf(
      ShapeError,
    );
  });
});

// ---------------------------------------------------------------------------------------------------- the layer

interface Layer {
  H: number;
  I: number;
  E: number;
  w13: PackedExperts;
  w2: PackedExperts;
  dtype: HalfDtype;
}

function makeLayer(E: number, H: number, I: number, dtype: HalfDtype, bits: 4 | 8, seed: number): Layer {
  const spec = { bits, groupSize: 32, zeros: bits === 4, actOrder: false, scaleDtype: dtype };
  const w13 = packExperts(
    Array.from({ length: E }, (_, e) => randomQuantized({ ...spec, K: H, N: 2 * I, seed: seed + e })),
  );
  const w2 = packExperts(
    Array.from({ length: E }, (_, e) => randomQuantized({ ...spec, K: I, N: H, seed: seed + 100 + e })),
  );
  return { H, I, E, w13, w2, dtype };
}

/**
 * Independent per-token implementation with the documented rounding points: weights dequantized in original row
 * order, every sum in f64 then rounded to f32 (what referenceMoe's accumulate 'f64' does), T roundings where documented.
 */
function naiveMoe(x: Uint16Array, L: Layer, o: ReferenceMoeOptions): Float32Array {
  const { H, I, dtype } = L;
  const dec = halfDecoder(dtype);
  const enc = halfEncoder(dtype);
  const T = (v: number): number => dec(enc(v));
  const k = o.topkIds.length / o.M;
  const w13 = Array.from({ length: L.E }, (_, e) => dequantize(expertWeight(L.w13, e), dtype));
  const w2 = Array.from({ length: L.E }, (_, e) => dequantize(expertWeight(L.w2, e), dtype));
  const out = new Float32Array(o.M * H);
  for (let m = 0; m < o.M; m++) {
    const sum = new Float64Array(H);
    for (let j = 0; j < k; j++) {
      const g = o.topkIds[m * k + j];
      const e = g < 0 ? -1 : o.expertMap ? o.expertMap[g] : g;
      if (e < 0) continue;
      const wt = o.topkWeights[m * k + j];
      const xs = Float64Array.from({ length: H }, (_, c) => {
        const v = dec(x[m * H + c]);
        return o.applyRouterWeightOnInput ? T(Math.fround(wt * v)) : v;
      });
      const h = new Float64Array(2 * I);
      for (let c = 0; c < 2 * I; c++) {
        let s = 0;
        for (let kk = 0; kk < H; kk++) s += xs[kk] * w13[e][kk * 2 * I + c];
        let v = Math.fround(s);
        if (o.bias13) v += dec(o.bias13[e * 2 * I + c]);
        h[c] = T(v);
      }
      const a = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        const [gv, uv] = [h[i], h[I + i]];
        a[i] = T(o.activation === 'swigluoai' ? swigluOai(gv, uv) : (gv / (1 + Math.exp(-gv))) * uv);
      }
      for (let n = 0; n < H; n++) {
        let s = 0;
        for (let i = 0; i < I; i++) s += a[i] * w2[e][i * H + n];
        let v = Math.fround(s);
        if (o.bias2) v += dec(o.bias2[e * H + n]);
        const y2 = T(v);
        sum[n] += o.applyRouterWeightOnInput ? y2 : wt * y2;
      }
    }
    for (let n = 0; n < H; n++) out[m * H + n] = T(sum[n]);
  }
  return out;
}

function route(M: number, E: number, k: number, seed: number): { topkIds: Int32Array; topkWeights: Float32Array } {
  const r = rng(seed);
  const logits = Float32Array.from({ length: M * E }, () => 4 * r() - 2);
  return moeRouterTopK(logits, { M, numExperts: E, topk: k, renormalize: true });
}

function maxDiff(bits: Uint16Array, want: Float32Array, dtype: HalfDtype): { diff: number; scale: number } {
  const dec = halfDecoder(dtype);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < bits.length; i++) {
    diff = Math.max(diff, Math.abs(dec(bits[i]) - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { diff, scale };
}

describe('referenceMoe', () => {
  const variants = [
    { title: 'INT4 zero points, fp16, silu', dtype: 'fp16' as const, bits: 4 as const, act: 'silu' as const },
    {
      title: 'INT8, bf16, gpt-oss swiglu, biases',
      dtype: 'bf16' as const,
      bits: 8 as const,
      act: 'swigluoai' as const,
    },
    {
      title: 'INT4, fp16, weight on input',
      dtype: 'fp16' as const,
      bits: 4 as const,
      act: 'silu' as const,
      onInput: true,
    },
  ];
  for (const v of variants) {
    it(`${v.title}: equals an independent per-token implementation`, () => {
      const L = makeLayer(4, 64, 32, v.dtype, v.bits, 11);
      const M = 7;
      const k = 2;
      const r = rng(5);
      const x = randomHalfBits(r, M * L.H, v.dtype, 2);
      const bias = v.act === 'swigluoai';
      const o: ReferenceMoeOptions = {
        M,
        dtype: v.dtype,
        ...route(M, L.E, k, 9),
        activation: v.act,
        applyRouterWeightOnInput: v.onInput,
        bias13: bias ? randomHalfBits(r, L.E * 2 * L.I, v.dtype, 0.5) : undefined,
        bias2: bias ? randomHalfBits(r, L.E * L.H, v.dtype, 0.5) : undefined,
      };
      const got = referenceMoe(x, L.w13, L.w2, { ...o, accumulate: 'f64' });
      const { diff, scale } = maxDiff(got.bits, naiveMoe(x, L, o), v.dtype);
      expect(scale).toBeGreaterThan(0);
      // Same rounding points, sums in another order: at most a flipped last-place rounding, carried through.
      expect(diff).toBeLessThanOrEqual(scale * (v.dtype === 'fp16' ? 2 ** -9 : 2 ** -6));
      const f32 = referenceMoe(x, L.w13, L.w2, o);
      expect(maxDiff(f32.bits, naiveMoe(x, L, o), v.dtype).diff).toBeLessThanOrEqual(scale * 2 ** -5);
    });
  }

  it('rounding points: y2 carries no routing weight; out = round_T(f32 sum in slot order of fround(w * y2))', () => {
    for (const dtype of ['fp16', 'bf16'] as const) {
      const L = makeLayer(3, 32, 16, dtype, 4, 81);
      const M = 5;
      const k = 3;
      const x = randomHalfBits(rng(6), M * L.H, dtype, 2);
      const r = route(M, L.E, k, 12);
      r.topkIds[4] = -1; // token 1, slot 1: routed nowhere
      const got = referenceMoe(x, L.w13, L.w2, { M, dtype, ...r });
      // Other routing weights, same ids: every y2 stays bit for bit.
      const reweighted = referenceMoe(x, L.w13, L.w2, { M, dtype, ...r, topkWeights: r.topkWeights.map((w) => w / 3) });
      expect(reweighted.slotBits).toEqual(got.slotBits);
      expect(Array.from(got.routed)).toEqual(Array.from(r.topkIds, (id) => (id < 0 ? 0 : 1)));
      const dec = halfDecoder(dtype);
      const enc = halfEncoder(dtype);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < L.H; n++) {
          let acc = 0;
          for (let j = 0; j < k; j++) {
            const s = m * k + j;
            if (r.topkIds[s] >= 0)
              acc = Math.fround(acc + Math.fround(r.topkWeights[s] * dec(got.slotBits[s * L.H + n])));
          }
          expect(got.bits[m * L.H + n]).toBe(enc(acc));
        }
    }
  });

  it('weight on the input: the first GEMM sees round_T(fround(w * x)), the sum adds y2 unweighted', () => {
    const dtype = 'bf16';
    const L = makeLayer(2, 32, 16, dtype, 8, 91);
    const M = 4;
    const x = randomHalfBits(rng(7), M * L.H, dtype, 3);
    const topkIds = new Int32Array([1, 0, 1, 1]);
    const topkWeights = new Float32Array([0.3, 0.71, 1.9, 0.05]);
    const got = referenceMoe(x, L.w13, L.w2, { M, dtype, topkIds, topkWeights, applyRouterWeightOnInput: true });
    // The same layer on pre-scaled inputs with weight 1 on the output gives the same bits.
    const dec = halfDecoder(dtype);
    const enc = halfEncoder(dtype);
    const scaled = x.map((b, i) => enc(Math.fround(topkWeights[Math.floor(i / L.H)] * dec(b))));
    const ones = new Float32Array(M).fill(1);
    const want = referenceMoe(scaled, L.w13, L.w2, { M, dtype, topkIds, topkWeights: ones });
    expect(got.slotBits).toEqual(want.slotBits);
    expect(got.bits).toEqual(want.bits);
    // On the output instead: different bits (the weight is applied after the nonlinearity).
    const onOutput = referenceMoe(x, L.w13, L.w2, { M, dtype, topkIds, topkWeights });
    expect(onOutput.bits).not.toEqual(got.bits);
  });

  it('routing edge cases: tokens routed nowhere give 0, all tokens on one expert, experts without tokens', () => {
    const L = makeLayer(3, 32, 16, 'fp16', 4, 21);
    const M = 4;
    const x = randomHalfBits(rng(1), M * L.H, 'fp16');
    const topkIds = new Int32Array([-1, -1, 2, 2, 2, -1, 2, 2]);
    const topkWeights = new Float32Array([0.5, 0.5, 0.25, 0.75, 1, 0, 0.5, 0.5]);
    const o = { M, dtype: 'fp16' as const, topkIds, topkWeights };
    const got = referenceMoe(x, L.w13, L.w2, o);
    expect(Array.from(got.bits.subarray(0, L.H)).every((b) => b === 0)).toBe(true);
    const { diff } = maxDiff(got.bits, naiveMoe(x, L, o), 'fp16');
    expect(diff).toBeLessThan(1e-2);
  });

  it('swapping two slots of a token changes nothing (a + b = b + a), bit for bit', () => {
    const L = makeLayer(4, 32, 16, 'bf16', 4, 31);
    const M = 5;
    const x = randomHalfBits(rng(2), M * L.H, 'bf16');
    const r = route(M, L.E, 2, 4);
    const swap = <T extends Int32Array | Float32Array>(a: T): T => {
      const b = a.slice() as T;
      for (let m = 0; m < M; m++) [b[2 * m], b[2 * m + 1]] = [a[2 * m + 1], a[2 * m]];
      return b;
    };
    const a = referenceMoe(x, L.w13, L.w2, { M, dtype: 'bf16', ...r });
    const b = referenceMoe(x, L.w13, L.w2, {
      M,
      dtype: 'bf16',
      topkIds: swap(r.topkIds),
      topkWeights: swap(r.topkWeights),
    });
    expect(b.bits).toEqual(a.bits);
  });

  it('expert parallelism: each GPU computes exactly its local slots, the rest contribute zero', () => {
    const L = makeLayer(4, 32, 16, 'fp16', 8, 41);
    const M = 6;
    const k = 2;
    const x = randomHalfBits(rng(3), M * L.H, 'fp16');
    const r = route(M, L.E, k, 8);
    const full = referenceMoe(x, L.w13, L.w2, { M, dtype: 'fp16', ...r });
    // GPU 1 holds global experts 1 and 3 as local 0 and 1.
    const take = (pe: PackedExperts, es: number[]): PackedExperts => packExperts(es.map((e) => expertWeightQ(pe, e)));
    const w13 = take(L.w13, [1, 3]);
    const w2 = take(L.w2, [1, 3]);
    const expertMap = new Int32Array([-1, 0, -1, 1]);
    const ep = referenceMoe(x, w13, w2, { M, dtype: 'fp16', ...r, numExperts: 4, expertMap });
    for (let s = 0; s < M * k; s++) {
      const localSlot = r.topkIds[s] === 1 || r.topkIds[s] === 3;
      const want = localSlot ? full.slotBits.subarray(s * L.H, (s + 1) * L.H) : new Uint16Array(L.H);
      expect(ep.slotBits.subarray(s * L.H, (s + 1) * L.H)).toEqual(want);
    }
  });

  it('property: renumbering the experts (weights and ids together) changes no output bit', () => {
    const L = makeLayer(5, 32, 16, 'bf16', 4, 71);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 1 << 30 }),
        (M, k, seed) => {
          const r = rng(seed);
          const topkIds = Int32Array.from({ length: M * k }, () => (r() < 0.15 ? -1 : randInt(r, L.E)));
          const topkWeights = Float32Array.from({ length: M * k }, () => r());
          const x = randomHalfBits(r, M * L.H, 'bf16', 2);
          const order = Array.from({ length: L.E }, (_, e) => e).sort(() => r() - 0.5); // new expert i = old order[i]
          const renumber = new Int32Array(L.E);
          order.forEach((old, i) => {
            renumber[old] = i;
          });
          const pick = (pe: PackedExperts): PackedExperts => {
            const all = splitExperts(pe);
            return stackExperts(order.map((old) => all[old]));
          };
          const ids2 = topkIds.map((id) => (id < 0 ? -1 : renumber[id]));
          const a = referenceMoe(x, L.w13, L.w2, { M, dtype: 'bf16', topkIds, topkWeights });
          const b = referenceMoe(x, pick(L.w13), pick(L.w2), { M, dtype: 'bf16', topkIds: ids2, topkWeights });
          expect(b.bits).toEqual(a.bits);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('with routing weight 1 and k = 1, applying it on the input or the output is the same', () => {
    const L = makeLayer(2, 32, 16, 'fp16', 4, 51);
    const M = 3;
    const x = randomHalfBits(rng(4), M * L.H, 'fp16');
    const o = {
      M,
      dtype: 'fp16' as const,
      topkIds: new Int32Array([1, 0, 1]),
      topkWeights: new Float32Array([1, 1, 1]),
    };
    expect(referenceMoe(x, L.w13, L.w2, { ...o, applyRouterWeightOnInput: true }).bits).toEqual(
      referenceMoe(x, L.w13, L.w2, o).bits,
    );
  });

  it('gpt-oss swiglu clamps the gate from above and the linear part on both sides', () => {
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    expect(swigluOai(10, 0)).toBeCloseTo(7 * sig(1.702 * 7), 12);
    expect(swigluOai(1, 100)).toBeCloseTo(sig(1.702) * 8, 12);
    expect(swigluOai(1, -100)).toBeCloseTo(sig(1.702) * -6, 12);
    expect(swigluOai(-20, 2)).toBeCloseTo(-20 * sig(-1.702 * 20) * 3, 12);
  });

  it('refuses bad input with typed errors before computing anything', () => {
    const L = makeLayer(2, 32, 16, 'fp16', 4, 61);
    const x = new Uint16Array(2 * L.H).fill(f32ToF16(0.5));
    const o = { M: 2, dtype: 'fp16' as const, topkIds: new Int32Array([0, 1]), topkWeights: new Float32Array([1, 1]) };
    expect(thrown(() => referenceMoe(x, L.w13, L.w2, { ...o, topkIds: new Int32Array([0, 2]) }))).toBeInstanceOf(
      ValueError,
    );
    expect(
      thrown(() =>
        referenceMoe(x, L.w13, L.w2, {
          ...o,
          topkIds: new Int32Array([0, 1, 1, 0, 1, 0]),
          topkWeights: new Float32Array(6),
        }),
      ),
    ).toBeInstanceOf(ValueError); // k = 3 > E = 2
    expect(thrown(() => referenceMoe(x.subarray(1), L.w13, L.w2, o))).toBeInstanceOf(ShapeError);
    expect(thrown(() => referenceMoe(x, L.w13, L.w13, o))).toBeInstanceOf(ShapeError);
    expect(thrown(() => referenceMoe(x, L.w13, L.w2, { ...o, dtype: 'bf16' }))).toBeInstanceOf(DtypeError);
    const f64 = { ...o, topkWeights: new Float64Array(2) as unknown as Float32Array };
    expect(thrown(() => referenceMoe(x, L.w13, L.w2, f64))).toBeInstanceOf(DtypeError);
    expect(thrown(() => referenceMoe(x, L.w13, L.w2, { ...o, bias2: new Uint16Array(3) }))).toBeInstanceOf(ShapeError);
    expect(thrown(() => referenceMoe(x, L.w13, L.w2, { ...o, numExperts: 3 }))).toBeInstanceOf(ShapeError);
  });
});

/** Expert e of a stacked weight as a QuantizedWeight (through unpack of its view). */
function expertWeightQ(pe: PackedExperts, e: number): QuantizedWeight {
  return unpack(expertWeight(pe, e));
}
