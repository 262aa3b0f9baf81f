/** Test helpers for 2:4 sparse weights: random valid SparseQuantizedWeight values. */
import { f32ToBf16, f32ToF16 } from '../src/dtypes.js';
import { pack } from '../src/format/pack.js';
import type { SparseQuantizedWeight } from '../src/format/sparse.js';
import type { HalfDtype, PackedWeight } from '../src/format/types.js';
import { randInt, randomQuantized, rng } from './helpers.js';

/** The 6 increasing position pairs of a 2:4 group. */
export const PAIRS: readonly (readonly [number, number])[] = [
  [0, 1],
  [0, 2],
  [0, 3],
  [1, 2],
  [1, 3],
  [2, 3],
];

export interface RandomSparseSpec {
  K: number;
  N: number;
  groupSize: number;
  zeros: boolean;
  scaleDtype: HalfDtype;
  seed: number;
}

/** A valid random 2:4 sparse weight: random pairs, codes, positive/negative scales, optional zero points. */
export function randomSparse(spec: RandomSparseSpec): SparseQuantizedWeight {
  const r = rng(spec.seed);
  const { K, N, groupSize } = spec;
  const G = Math.ceil(K / groupSize);
  const codes = new Uint8Array((K / 2) * N);
  const indices = new Uint8Array((K / 2) * N);
  for (let j = 0; j < K / 4; j++) {
    for (let n = 0; n < N; n++) {
      const [a, b] = PAIRS[randInt(r, 6)];
      indices[2 * j * N + n] = a;
      indices[(2 * j + 1) * N + n] = b;
      codes[2 * j * N + n] = randInt(r, 16);
      codes[(2 * j + 1) * N + n] = randInt(r, 16);
    }
  }
  const encode = spec.scaleDtype === 'fp16' ? f32ToF16 : f32ToBf16;
  const scales = new Uint16Array(G * N);
  for (let i = 0; i < scales.length; i++) scales[i] = encode((r() < 0.1 ? -1 : 1) * 2 ** (-8 + 6 * r()));
  let zeros: Uint8Array | null = null;
  if (spec.zeros) {
    zeros = new Uint8Array(G * N);
    for (let i = 0; i < zeros.length; i++) zeros[i] = randInt(r, 16);
  }
  return {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    groupSize,
    codes,
    indices,
    scales,
    scaleDtype: spec.scaleDtype,
    zeros,
  };
}

/** A small dense INT4 weight (K 64, N 32, groups of 32, symmetric, fp16 scales) to set next to 2:4 ones. */
export function smallDenseInt4(seed: number): PackedWeight {
  return pack(
    randomQuantized({
      K: 64,
      N: 32,
      bits: 4,
      groupSize: 32,
      zeros: false,
      actOrder: false,
      scaleDtype: 'fp16',
      seed,
    }),
  );
}
