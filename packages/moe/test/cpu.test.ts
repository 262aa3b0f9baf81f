/**
 * The CPU path of MoeLayer (device 'cpu', no GPU or binary needed): exactly core's referenceMoe on the same packed
 * experts and options, for every construction route and routing form.
 */
import {
  concatColumns,
  expertWeight,
  fromHalfBits,
  moeRouterTopK,
  type PackedExperts,
  packExperts,
  quantizeFp8,
  quantizeRtn,
  referenceMoe,
  stackExperts,
  toHalfBits,
} from '@marlin/core';
import { randoms } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { MoeLayer } from '../src/index.js';
import { cpuLayer, floatExperts, routing, xBits } from './helpers.js';

const cpu = { device: 'cpu' } as const;

describe('MoeLayer on the CPU reference', () => {
  for (const codec of ['int4', 'int8', 'fp8'] as const)
    for (const dtype of ['fp16', 'bf16'] as const) {
      it(`${codec} ${dtype}: forward == referenceMoe bit for bit`, () => {
        const E = 5;
        const H = 64;
        const I = 32;
        const layer = cpuLayer(E, H, I, { codec, dtype, seed: 7 });
        const M = 6;
        const k = 2;
        const x = xBits(M, H, dtype);
        const r = routing(M, E, k, 4);
        const got = layer.forward({ data: x, shape: [M, H], dtype }, r, cpu);
        expect(got.shape).toEqual([M, H]);
        const { w13, w2 } = layer.packed;
        const want = referenceMoe(x, w13, w2, { M, dtype, ...r });
        expect(got.data).toEqual(want.bits);
        expect(new Set(got.data).size).toBeGreaterThan(M * 4); // a real output, not zeros
      });
    }

  it('fromFloat quantizes each projection as a checkpoint stores it (gate and up separately, fused into w13)', () => {
    const E = 3;
    const H = 48;
    const I = 32;
    const experts = floatExperts(E, H, I, 21);
    const layer = MoeLayer.fromFloat(experts, {
      hidden: H,
      inter: I,
      dtype: 'bf16',
      quantization: { codec: 'int4', groupSize: 'per-channel', symmetric: false },
      device: 'cpu',
    });
    const q = (w: Float32Array, K: number, N: number) =>
      quantizeRtn(w, { K, N, bits: 4, groupSize: 'per-channel', symmetric: false, scaleDtype: 'bf16', layout: 'NxK' })
        .weight;
    const w13 = packExperts(experts.map((e) => concatColumns([q(e.gate, H, I), q(e.up, H, I)])));
    const w2 = packExperts(experts.map((e) => q(e.down, I, H)));
    expect(layer.packed.w13.qweight).toEqual(w13.qweight);
    expect(layer.packed.w2.scales).toEqual(w2.scales);
    expect(layer.packed.w13.zeros).toEqual(w13.zeros);
    const fp8 = MoeLayer.fromFloat(experts, {
      hidden: H,
      inter: I,
      quantization: { codec: 'fp8', groupSize: 'block' },
      device: 'cpu',
    });
    const f = quantizeFp8(experts[1]?.down as Float32Array, { K: I, N: H, granularity: 'block', layout: 'NxK' }).weight;
    expect(fp8.codec).toBe('fp8');
    expect(fp8.packed.w2.codeType).toBe('e4m3');
    expect(fp8.packed.w2.groupSize).toBe(f.groupSize);
  });

  it('router logits: the host router, then the layer', () => {
    const E = 8;
    const H = 32;
    const layer = cpuLayer(E, H, 16, { seed: 3 });
    const M = 5;
    const logits = randoms(M * E, 11);
    const x = xBits(M, H);
    const got = layer.forward(
      { data: x, shape: [M, H], dtype: 'fp16' },
      { routerLogits: logits, topk: 3, renormalize: true },
      cpu,
    );
    const r = moeRouterTopK(logits, { M, numExperts: E, topk: 3, renormalize: true });
    const { w13, w2 } = layer.packed;
    expect(got.data).toEqual(referenceMoe(x, w13, w2, { M, dtype: 'fp16', ...r }).bits);
    // 16-bit logits in the layer's dtype.
    const bits = toHalfBits(logits, 'fp16');
    const got16 = layer.forward({ data: x, shape: [M, H], dtype: 'fp16' }, { routerLogits: bits, topk: 3 }, cpu);
    const r16 = moeRouterTopK(bits, { M, numExperts: E, topk: 3, dtype: 'fp16' });
    expect(got16.data).toEqual(referenceMoe(x, w13, w2, { M, dtype: 'fp16', ...r16 }).bits);
  });

  it('options reach the reference: swigluoai with alpha / limit, float biases, weight on the input', () => {
    const E = 4;
    const H = 32;
    const I = 16;
    const bias13 = randoms(E * 2 * I, 5);
    const bias2 = randoms(E * H, 6);
    const layer = cpuLayer(E, H, I, {
      codec: 'int8',
      activation: 'swigluoai',
      swigluAlpha: 1.5,
      swigluLimit: 0.75,
      bias13,
      bias2,
      weightOnInput: true,
      seed: 13,
    });
    const M = 7;
    const x = xBits(M, H);
    const r = routing(M, E, 1, 8);
    const got = layer.forward({ data: x, shape: [M, H], dtype: 'fp16' }, r, cpu);
    const { w13, w2 } = layer.packed;
    const want = referenceMoe(x, w13, w2, {
      M,
      dtype: 'fp16',
      ...r,
      activation: 'swigluoai',
      swigluAlpha: 1.5,
      swigluLimit: 0.75,
      bias13: toHalfBits(bias13, 'fp16'),
      bias2: toHalfBits(bias2, 'fp16'),
      applyRouterWeightOnInput: true,
    });
    expect(got.data).toEqual(want.bits);
    const plain = referenceMoe(x, w13, w2, { M, dtype: 'fp16', ...r });
    expect(got.data).not.toEqual(plain.bits);
  });

  it('expert parallelism: a layer holding 2 of 6 experts adds exactly its local slots', () => {
    const H = 32;
    const I = 16;
    const full = cpuLayer(6, H, I, { seed: 31 });
    const { w13, w2 } = full.packed;
    // This GPU holds global experts 4 and 1 as stacked 0 and 1.
    const take = (pe: PackedExperts) => stackExperts([4, 1].map((e) => expertWeight(pe, e)));
    const expertMap = new Int32Array([-1, 1, -1, -1, 0, -1]);
    const local = MoeLayer.fromPacked(take(w13), take(w2), { numExperts: 6, expertMap, device: 'cpu' });
    expect(local.localExperts).toBe(2);
    const M = 9;
    const x = xBits(M, H);
    const r = routing(M, 6, 2, 17, 0);
    const got = local.forward({ data: x, shape: [M, H], dtype: 'fp16' }, r, cpu);
    // Reference: the full layer with the non-local slots routed nowhere.
    const ids = r.topkIds.map((id) => (id === 4 || id === 1 ? id : -1));
    const want = referenceMoe(x, w13, w2, { M, dtype: 'fp16', topkIds: ids, topkWeights: r.topkWeights });
    expect(got.data).toEqual(want.bits);
  });

  it('tokens routed nowhere give zeros; M = 0 gives an empty output', () => {
    const layer = cpuLayer(3, 32, 16);
    const x = xBits(2, 32);
    const got = layer.forward(
      { data: x, shape: [2, 32], dtype: 'fp16' },
      { topkIds: new Int32Array([-1, -1, 2, -1]), topkWeights: new Float32Array([0.5, 0.5, 1, 0]) },
      cpu,
    );
    expect(fromHalfBits(got.data.subarray(0, 32), 'fp16').every((v) => v === 0)).toBe(true);
    expect(got.data.subarray(32).some((b) => b !== 0)).toBe(true);
    const empty = layer.forward(
      { data: new Uint16Array(0), shape: [0, 32], dtype: 'fp16' },
      { topkIds: new Int32Array(0), topkWeights: new Float32Array(0) },
      cpu,
    );
    expect(empty.shape).toEqual([0, 32]);
  });
});
