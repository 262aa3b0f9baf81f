/**
 * The no-GPU path of the CLI: when the GPU probe fails with a coded error, the bench says so and runs @marlin/core's
 * CPU reference on one built-in problem (M = 16, K = N = 4096, g128 symmetric INT4, random codes and scales) so a
 * developer machine still exercises pack + reference end to end. Its time is a CPU number, never a benchmark result.
 */
import { type PackedWeight, pack, type QuantizedWeight, referenceGemm, toHalfBits } from '@marlin/core';
import type { BenchDtype } from './protocol.js';

export interface CpuProblem {
  readonly M: number;
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  readonly dtype: BenchDtype;
  readonly seed: number;
}

export const DEFAULT_CPU_PROBLEM: CpuProblem = { M: 16, K: 4096, N: 4096, groupSize: 128, dtype: 'fp16', seed: 1 };

/** The line printed when the GPU benchmark cannot run. */
export function noGpuMessage(code: string, reason: string): string {
  return `No CUDA GPU found (${code}: ${reason}); running the CPU reference on the default problem instead`;
}

/** mulberry32: a tiny seeded 32-bit generator; returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random g-grouped symmetric INT4 weight (codes 0..15, scales in [0.001, 0.01)) packed in format v1. */
export function randomPackedWeight(p: CpuProblem): PackedWeight {
  const rnd = seededRandom(p.seed);
  const G = Math.ceil(p.K / p.groupSize);
  const codes = new Uint8Array(p.K * p.N);
  for (let i = 0; i < codes.length; i++) codes[i] = Math.floor(rnd() * 16);
  const scales = new Float32Array(G * p.N);
  for (let i = 0; i < scales.length; i++) scales[i] = 0.001 + rnd() * 0.009;
  const q: QuantizedWeight = {
    bits: 4,
    K: p.K,
    N: p.N,
    groupSize: p.groupSize,
    codes,
    scales: toHalfBits(scales, p.dtype),
    scaleDtype: p.dtype,
    zeros: null,
    gIdx: null,
  };
  return pack(q);
}

/** Random M x K activations in [-1, 1), never exactly zero. */
export function randomActivations(p: CpuProblem): Uint16Array {
  const rnd = seededRandom(p.seed ^ 0x9e3779b9);
  const x = new Float32Array(p.M * p.K);
  for (let i = 0; i < x.length; i++) {
    const v = rnd() * 2 - 1;
    x[i] = v === 0 ? 0.5 : v;
  }
  return toHalfBits(x, p.dtype);
}

/** FNV-1a over the output bits: a stable fingerprint to compare runs and machines. */
export function checksum(bits: Uint16Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) {
    h = Math.imul(h ^ (bits[i]! & 0xff), 0x01000193);
    h = Math.imul(h ^ (bits[i]! >>> 8), 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export interface CpuRunResult {
  readonly problem: CpuProblem;
  readonly ms: number;
  readonly checksum: string;
  /** Sum of the f32 accumulators: a human-checkable magnitude. */
  readonly sum: number;
}

export function runCpuReference(p: CpuProblem = DEFAULT_CPU_PROBLEM): CpuRunResult {
  const w = randomPackedWeight(p);
  const x = randomActivations(p);
  const t0 = performance.now();
  const y = referenceGemm(x, w, { M: p.M, dtype: p.dtype });
  const ms = performance.now() - t0;
  let sum = 0;
  for (let i = 0; i < y.values.length; i++) sum += y.values[i]!;
  return { problem: p, ms, checksum: checksum(y.bits), sum };
}
