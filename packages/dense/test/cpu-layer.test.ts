import { ErrorCode, referenceGemm, toHalfBits } from '@marlin/core';
import { caught, randoms } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { gemm, Linear } from '../src/index.js';
import { smallPacked } from './helpers.js';

// Issue 19: these used to need a GPU (NO_DRIVER) or to fail with the wrong code (DISPOSED). All run without a GPU.
describe("Linear on device 'cpu': the CPU reference needs no GPU", () => {
  const K = 128;
  const N = 64;
  const M = 3;
  const weights = randoms(N * K, 11);
  const x = { data: toHalfBits(randoms(M * K, 12), 'fp16'), shape: [M, K] as [number, number], dtype: 'fp16' as const };

  for (const bits of [4, 8] as const) {
    it(`INT${bits}: fromFloat + forward({ device: 'cpu' }) equals referenceGemm of the layer's packed weight`, () => {
      const bias = randoms(N, 13);
      using layer = Linear.fromFloat(weights, {
        inFeatures: K,
        outFeatures: N,
        bits,
        groupSize: 64,
        bias,
        device: 'cpu',
      });
      expect(layer.device).toBe('cpu');
      expect(layer.packed.bits).toBe(bits);
      const y = layer.forward(x, { device: 'cpu' });
      const ref = referenceGemm(x.data, layer.packed, { M, dtype: 'fp16', bias: toHalfBits(bias, 'fp16') });
      expect(y.shape).toEqual([M, N]);
      expect(Array.from(y.data)).toEqual(Array.from(ref.bits));
    });
  }

  it('a CPU layer has no device weight and refuses a GPU forward, with a fix', () => {
    using layer = Linear.fromPacked(smallPacked(K, N), { device: 'cpu' });
    const w = caught(() => layer.weight);
    expect(w.code).toBe(ErrorCode.VALUE);
    expect(w.message).toMatch(/device 'cpu'.*Fix: use layer\.packed/);
    const f = caught(() => layer.forward(x as never));
    expect(f.code).toBe(ErrorCode.VALUE);
    expect(f.message).toMatch(/runs only the CPU reference/);
  });

  it('a device that is neither a GPU ordinal nor cpu is a ValueError', () => {
    for (const device of ['gpu', -1, 1.5]) {
      const e = caught(() => Linear.fromFloat(weights, { inFeatures: K, outFeatures: N, device: device as never }));
      expect(e.code).toBe(ErrorCode.VALUE);
      expect(e.message).toMatch(/neither a GPU ordinal nor 'cpu'/);
    }
  });
});

describe('gemm: host inputs without { device: "cpu" }', () => {
  const p = smallPacked(64, 48);
  const host = { data: new Uint16Array(2 * 64), shape: [2, 64] as [number, number], dtype: 'fp16' as const };

  it('a host matrix is a ValueError naming Tensor.from and the CPU reference (was MARLIN_E_DISPOSED)', () => {
    const e = caught(() => gemm(host as never, p as never));
    expect(e.code).toBe(ErrorCode.VALUE);
    expect(e.message).toMatch(/x is a host matrix/);
    expect(e.fix).toMatch(/Tensor\.from.*\{ device: 'cpu' \}/);
  });

  it("an unknown device value is refused (was ignored: 'cuda' ran the GPU path)", () => {
    const e = caught(() => gemm(host as never, p as never, { device: 'cuda' } as never));
    expect(e.code).toBe(ErrorCode.VALUE);
    expect(e.message).toMatch(/device = "cuda" is not a device/);
  });

  it("{ device: 'cpu' } still runs the reference", () => {
    const y = gemm(host, p, { device: 'cpu' });
    expect(y.shape).toEqual([2, 48]);
  });
});
