/** Shared test helpers: a seeded RNG and random (valid) quantized weights. */
import { f32ToBf16, f32ToF16 } from '../src/dtypes.js';
import type { HalfDtype, QuantizedWeight, WeightBits } from '../src/format/types.js';

/** Small deterministic PRNG (mulberry32). Returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random integer in [0, n). */
export function randInt(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

/** Random permutation of 0..n-1 (Fisher-Yates). */
export function randomPermutation(r: () => number, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(r, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** A GPTQ-style act-order g_idx: a random permutation cut into groups of groupSize. */
export function randomGIdx(r: () => number, K: number, groupSize: number): Int32Array {
  const order = randomPermutation(r, K);
  const gIdx = new Int32Array(K);
  for (let i = 0; i < K; i++) gIdx[order[i]] = Math.floor(i / groupSize);
  return gIdx;
}

export interface RandomWeightSpec {
  K: number;
  N: number;
  bits: WeightBits;
  groupSize: number;
  zeros: boolean;
  actOrder: boolean;
  scaleDtype: HalfDtype;
  seed: number;
}

/** A valid random QuantizedWeight: random codes, positive scales in [2^-8, 2^-2), random zero points, g_idx. */
export function randomQuantized(spec: RandomWeightSpec): QuantizedWeight {
  const r = rng(spec.seed);
  const { K, N, bits, groupSize } = spec;
  const G = Math.ceil(K / groupSize);
  const maxq = (1 << bits) - 1;
  const codes = new Uint8Array(K * N);
  for (let i = 0; i < codes.length; i++) codes[i] = randInt(r, maxq + 1);
  const encode = spec.scaleDtype === 'fp16' ? f32ToF16 : f32ToBf16;
  const scales = new Uint16Array(G * N);
  for (let i = 0; i < scales.length; i++) scales[i] = encode((r() < 0.1 ? -1 : 1) * 2 ** (-8 + 6 * r()));
  let zeros: Uint8Array | null = null;
  if (spec.zeros) {
    zeros = new Uint8Array(G * N);
    for (let i = 0; i < zeros.length; i++) zeros[i] = randInt(r, maxq + 1);
  }
  const gIdx = spec.actOrder ? randomGIdx(r, K, groupSize) : null;
  return { bits, K, N, groupSize, codes, scales, scaleDtype: spec.scaleDtype, zeros, gIdx };
}

/** Random activations as fp16/bf16 bits in [-amp, amp). */
export function randomHalfBits(r: () => number, count: number, dtype: HalfDtype, amp = 1): Uint16Array {
  const encode = dtype === 'fp16' ? f32ToF16 : f32ToBf16;
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) out[i] = encode((2 * r() - 1) * amp);
  return out;
}

/** Runs `fn` and returns the error it throws (fails the test if it does not throw). */
export function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected the call to throw, it returned normally');
}
