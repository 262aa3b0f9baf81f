import { type HalfDtype, type MoeCodec, type PackedExperts, toHalfBits } from '@marlin/core';
import { randoms } from '@marlin/core/testing';
import { type MoeFloatExpert, MoeLayer, type MoeLayerOptions } from '../src/index.js';

/** E float experts (nn.Linear layouts) of hidden H and intermediate I, deterministic. */
export function floatExperts(E: number, H: number, I: number, seed = 1): MoeFloatExpert[] {
  return Array.from({ length: E }, (_, e) => ({
    gate: randoms(I * H, seed + 3 * e),
    up: randoms(I * H, seed + 3 * e + 1),
    down: randoms(H * I, seed + 3 * e + 2),
  }));
}

/** A host layer (device 'cpu') quantized from random float experts. */
export function cpuLayer(
  E: number,
  H: number,
  I: number,
  o: MoeLayerOptions & { codec?: MoeCodec; dtype?: HalfDtype; seed?: number; symmetric?: boolean } = {},
): MoeLayer {
  const { codec, dtype, seed, symmetric, ...rest } = o;
  return MoeLayer.fromFloat(floatExperts(E, H, I, seed ?? 1), {
    hidden: H,
    inter: I,
    dtype,
    quantization: { codec, groupSize: codec === 'fp8' ? 'block' : 32, symmetric },
    ...rest,
    device: rest.device ?? 'cpu',
  });
}

/** The stacked weights of a host layer. */
export function packedOf(layer: MoeLayer): { w13: PackedExperts; w2: PackedExperts } {
  return layer.packed;
}

/** Activations [M][H] as bits. */
export function xBits(M: number, H: number, dtype: HalfDtype = 'fp16', seed = 9): Uint16Array {
  return toHalfBits(
    randoms(M * H, seed).map((v) => 2 * v),
    dtype,
  );
}

/** Seeded routing [M][k] over E experts: distinct ids per token, weights that sum to 1; `none` slots get -1. */
export function routing(
  M: number,
  E: number,
  k: number,
  seed = 3,
  none = 0,
): { topkIds: Int32Array; topkWeights: Float32Array } {
  const r = randoms(M * (E + k), seed);
  const topkIds = new Int32Array(M * k);
  const topkWeights = new Float32Array(M * k);
  for (let m = 0; m < M; m++) {
    const order = Array.from({ length: E }, (_, e) => e).sort(
      (a, b) => (r[m * E + a] as number) - (r[m * E + b] as number),
    );
    let sum = 0;
    for (let j = 0; j < k; j++) {
      topkIds[m * k + j] = j < none ? -1 : (order[j] as number);
      const w = 1 + (r[M * E + m * k + j] as number);
      topkWeights[m * k + j] = w;
      sum += w;
    }
    for (let j = 0; j < k; j++) topkWeights[m * k + j] = Math.fround((topkWeights[m * k + j] as number) / sum);
  }
  return { topkIds, topkWeights };
}
