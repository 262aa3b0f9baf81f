/**
 * Bad input is a typed error before anything is uploaded or launched: the stacked weights and options at
 * construction (also for GPU layers, which on a machine without a GPU would otherwise fail with NO_BINARY), and the
 * input / routing of each forward.
 */
import {
  DeviceError,
  DisposedError,
  DtypeError,
  ErrorCode,
  expertWeight,
  FormatError,
  type PackedExperts,
  packExperts,
  quantizeRtn,
  ShapeError,
  stackExperts,
  UnsupportedError,
  ValueError,
} from '@marlin/core';
import { caught, gpuAvailability, randoms } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { MoeLayer, probe } from '../src/index.js';
import { assertExpertIds, checkActivations, checkRouting } from '../src/validate.js';
import { cpuLayer, routing, xBits } from './helpers.js';

const gpuOk = gpuAvailability(probe).ok;

function experts(E: number, K: number, N: number, bits: 4 | 8 = 4, dtype: 'fp16' | 'bf16' = 'fp16'): PackedExperts {
  return packExperts(
    Array.from(
      { length: E },
      (_, e) => quantizeRtn(randoms(K * N, e + 1), { K, N, bits, groupSize: 'per-channel', scaleDtype: dtype }).weight,
    ),
  );
}

const H = 32;
const I = 16;
const w13 = experts(4, H, 2 * I);
const w2 = experts(4, I, H);

describe('construction: typed errors before any upload', () => {
  // device 0: without a GPU these would fail with NO_BINARY if anything were uploaded before the checks.
  const gpu = { device: 0 } as const;

  it('mismatched experts, shapes that do not chain, codecs and dtypes', () => {
    expect(caught(() => MoeLayer.fromPacked(w13, experts(3, I, H), gpu))).toBeInstanceOf(ShapeError);
    expect(caught(() => MoeLayer.fromPacked(w13, experts(3, I, H), gpu)).message).toMatch(/experts mismatch/);
    expect(caught(() => MoeLayer.fromPacked(w13, experts(4, 32, H), gpu))).toBeInstanceOf(ShapeError);
    expect(caught(() => MoeLayer.fromPacked(w13, experts(4, I, 48), gpu))).toBeInstanceOf(ShapeError);
    expect(caught(() => MoeLayer.fromPacked(w13, experts(4, I, H, 8), gpu))).toBeInstanceOf(UnsupportedError);
    expect(caught(() => MoeLayer.fromPacked(w13, experts(4, I, H, 4, 'bf16'), gpu))).toBeInstanceOf(DtypeError);
    const broken = { ...w13, scales: w13.scales.subarray(1) };
    expect(caught(() => MoeLayer.fromPacked(broken, w2, gpu))).toBeInstanceOf(FormatError);
    expect(caught(() => MoeLayer.fromPacked({} as PackedExperts, w2, gpu))).toBeInstanceOf(ValueError);
  });

  it('more than 512 experts', () => {
    const one = expertWeight(experts(1, 16, 32), 0);
    const down = expertWeight(experts(1, 16, 16), 0);
    const big13 = stackExperts(Array.from({ length: 513 }, () => one));
    const big2 = stackExperts(Array.from({ length: 513 }, () => down));
    expect(caught(() => MoeLayer.fromPacked(big13, big2, gpu)).message).toMatch(/513 experts/);
  });

  it('options: activation, swiglu numbers, biases, numExperts, expertMap, device', () => {
    const bad: [object, new (...a: never[]) => Error][] = [
      [{ activation: 'gelu' }, ValueError],
      [{ swigluAlpha: Number.NaN }, ValueError],
      [{ swigluLimit: '7' }, ValueError],
      [{ weightOnInput: 1 }, ValueError],
      [{ bias13: new Uint16Array(4 * 2 * I - 1) }, ShapeError],
      [{ bias2: new Float64Array(4 * H) }, DtypeError],
      [{ numExperts: 6 }, ValueError],
      [{ numExperts: 3 }, ValueError],
      [{ numExperts: 600, expertMap: new Int32Array(600).fill(-1) }, ValueError],
      [{ numExperts: 6, expertMap: new Int32Array(5) }, ShapeError],
      [{ numExperts: 6, expertMap: new Int32Array([0, 0, 1, 2, 3, -1]) }, ValueError],
      [{ numExperts: 6, expertMap: new Int32Array([0, 1, 2, 4, -1, -1]) }, ValueError],
      [{ numExperts: 6, expertMap: new Int32Array([0, 1, 2, 3, -2, -1]) }, ValueError],
      [{ device: -1 }, ValueError],
      [{ device: 'gpu' }, ValueError],
    ];
    for (const [o, Err] of bad) {
      const e = caught(() => MoeLayer.fromPacked(w13, w2, { ...gpu, ...o }));
      expect(e, JSON.stringify(o)).toBeInstanceOf(Err);
    }
  });

  it('fromFloat: expert count, sizes not multiples of 16, array lengths, codec and scale options', () => {
    const f = { gate: randoms(I * H, 1), up: randoms(I * H, 2), down: randoms(H * I, 3) };
    const o = { hidden: H, inter: I, device: 0 } as const;
    expect(caught(() => MoeLayer.fromFloat([], o))).toBeInstanceOf(ValueError);
    expect(caught(() => MoeLayer.fromFloat([f], { ...o, hidden: 40 }))).toBeInstanceOf(ShapeError);
    expect(caught(() => MoeLayer.fromFloat([f], { ...o, inter: 24 }))).toBeInstanceOf(ShapeError);
    expect(caught(() => MoeLayer.fromFloat([{ ...f, down: randoms(5, 1) }], o))).toBeInstanceOf(ShapeError);
    expect(caught(() => MoeLayer.fromFloat([f], { ...o, quantization: { codec: 'int3' as 'int4' } }))).toBeInstanceOf(
      ValueError,
    );
    expect(caught(() => MoeLayer.fromFloat([f], { ...o, quantization: { groupSize: 'block' } }))).toBeInstanceOf(
      ValueError,
    );
  });

  it.skipIf(gpuOk)('a valid GPU layer without a usable GPU fails with the coded DeviceError', () => {
    const e = caught(() => MoeLayer.fromPacked(w13, w2, gpu));
    expect(e).toBeInstanceOf(DeviceError);
    expect([ErrorCode.NO_BINARY, ErrorCode.NO_DRIVER, ErrorCode.NO_DEVICE]).toContain(e.code);
  });
});

describe('forward: typed errors before anything launches', () => {
  const E = 20;
  const layer = cpuLayer(E, H, I, { seed: 5 });
  const cpu = { device: 'cpu' } as const;
  const M = 3;
  const x = { data: xBits(M, H), shape: [M, H] as [number, number], dtype: 'fp16' as const };

  it('topk > 16, topk > E, ids out of range, shapes and dtypes of the routing', () => {
    const r17 = routing(M, E, 17, 1);
    expect(caught(() => layer.forward(x, r17, cpu)).message).toMatch(/topk = 17 must be an integer in 1\.\.16/);
    const small = cpuLayer(2, H, I);
    expect(caught(() => small.forward(x, routing(M, 3, 3, 1), cpu)).message).toMatch(/topk = 3/);
    const r = routing(M, E, 2, 2);
    const bad = r.topkIds.slice();
    bad[3] = E;
    expect(caught(() => layer.forward(x, { ...r, topkIds: bad }, cpu)).message).toMatch(/token 1, slot 1\) = 20/);
    bad[3] = -2;
    expect(caught(() => layer.forward(x, { ...r, topkIds: bad }, cpu))).toBeInstanceOf(ValueError);
    expect(caught(() => layer.forward(x, { ...r, topkIds: r.topkIds.subarray(1) }, cpu))).toBeInstanceOf(ShapeError);
    expect(caught(() => layer.forward(x, { ...r, topkWeights: r.topkWeights.subarray(1) }, cpu))).toBeInstanceOf(
      ShapeError,
    );
    const f64 = { ...r, topkWeights: new Float64Array(6) as unknown as Float32Array };
    expect(caught(() => layer.forward(x, f64, cpu))).toBeInstanceOf(DtypeError);
    const u32 = { ...r, topkIds: new Uint32Array(6) as unknown as Int32Array };
    expect(caught(() => layer.forward(x, u32, cpu))).toBeInstanceOf(DtypeError);
    expect(caught(() => layer.forward(x, { routerLogits: new Float32Array(M * E - 1), topk: 2 }, cpu))).toBeInstanceOf(
      ShapeError,
    );
    expect(caught(() => layer.forward(x, { routerLogits: new Float32Array(M * E), topk: 0 }, cpu))).toBeInstanceOf(
      ValueError,
    );
    expect(caught(() => layer.forward(x, null as never, cpu))).toBeInstanceOf(ValueError);
  });

  it('x: dtype, shape and kind', () => {
    const r = routing(M, E, 2, 2);
    expect(caught(() => layer.forward({ ...x, dtype: 'bf16' }, r, cpu))).toBeInstanceOf(ValueError);
    expect(caught(() => layer.forward({ ...x, shape: [M, H + 16] }, r, cpu))).toBeInstanceOf(ShapeError);
    expect(caught(() => layer.forward({ ...x, data: x.data.subarray(1) }, r, cpu))).toBeInstanceOf(ShapeError);
    expect(caught(() => layer.forward({ ...x, data: new Float32Array(M * H) as never }, r, cpu))).toBeInstanceOf(
      ValueError,
    );
  });

  it('a host layer refuses the GPU path; a disposed layer refuses everything', () => {
    const r = routing(M, E, 2, 2);
    expect(caught(() => layer.forward(x as never, r)).message).toMatch(/host matrix|device 'cpu'/);
    expect(caught(() => layer.forward(x as never, r, { device: 'tpu' as 'gpu' }))).toBeInstanceOf(ValueError);
    expect(caught(() => layer.plan(4))).toBeInstanceOf(ValueError);
    const gone = cpuLayer(2, H, I);
    gone.dispose();
    gone.dispose();
    expect(gone.disposed).toBe(true);
    expect(caught(() => gone.forward(x, routing(M, 2, 1, 1), cpu))).toBeInstanceOf(DisposedError);
  });

  it('GPU-path checks: host ids are range-checked, host x / foreign objects refused, before any GPU use', () => {
    const r = routing(M, E, 2, 2);
    const bad = r.topkIds.slice();
    bad[0] = 99;
    expect(caught(() => checkRouting({ ...r, topkIds: bad }, M, { numExperts: E, dtype: 'fp16' }, 0))).toBeInstanceOf(
      ValueError,
    );
    expect(checkRouting(r, M, { numExperts: E, dtype: 'fp16' }, 0)).toEqual({ kind: 'topk', topk: 2 });
    const logits = { routerLogits: new Float32Array(M * E), topk: 2 };
    expect(caught(() => checkRouting(logits, M, { numExperts: E, dtype: 'fp16' }, 0)).message).toMatch(/device Tensor/);
    expect(caught(() => checkActivations(x, undefined, { hidden: H, dtype: 'fp16' }, 0))).toBeInstanceOf(ValueError);
    expect(
      caught(() => checkActivations({ shape: [M, H] }, undefined, { hidden: H, dtype: 'fp16' }, 0)),
    ).toBeInstanceOf(DisposedError);
    expect(() => assertExpertIds(new Int32Array([-1, 0, 19]), 20, 3)).not.toThrow();
  });
});
