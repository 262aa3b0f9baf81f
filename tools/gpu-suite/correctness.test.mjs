// Kernel vs the CPU reference of @marlin/core: grid-exact (bitwise) and tolerance modes over M tile boundaries,
// odd N / K (TP shards), real model shapes, every group size, fp16 / bf16, act-order, zero points, bias, lda > K.
import { describe, test } from 'node:test';
import { checkGemm, requireGpu } from './lib.mjs';

const gate = requireGpu(test);
const skip = gate.skip;
export const results = [];

async function run(spec) {
  results.push(await checkGemm(spec));
}

const M_SWEEP = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 1024, 4096];

describe('grid-exact: every M tile boundary, bit for bit', { skip }, () => {
  for (const dtype of ['fp16', 'bf16']) {
    for (const M of M_SWEEP)
      test(`${dtype} M=${M}`, () => run({ M, N: 208, K: 512, dtype, groupSize: 128, mode: 'grid' }));
  }
  test('fp16 M=16384 (N=128, K=256)', () =>
    run({ M: 16384, N: 128, K: 256, dtype: 'fp16', groupSize: 64, mode: 'grid' }));
});

describe('grid-exact: group sizes, zero points, act-order, bias, lda', { skip }, () => {
  for (const dtype of ['fp16', 'bf16']) {
    for (const groupSize of [32, 64, 128, 'per-channel']) {
      for (const sym of [true, false]) {
        const K = 1024;
        const g = groupSize === 'per-channel' ? K : groupSize;
        test(`${dtype} g=${groupSize} ${sym ? 'sym' : 'zeros'}`, () =>
          run({ M: 33, N: 192, K, dtype, groupSize: g, sym, mode: 'grid' }));
      }
    }
    for (const groupSize of [32, 128]) {
      test(`${dtype} act-order g=${groupSize}`, () =>
        run({ M: 17, N: 256, K: 1024, dtype, groupSize, actOrder: true, mode: 'grid' }));
      test(`${dtype} act-order + zeros g=${groupSize}`, () =>
        run({ M: 65, N: 128, K: 512, dtype, groupSize, actOrder: true, sym: false, mode: 'grid' }));
    }
    test(`${dtype} bias`, () => run({ M: 9, N: 80, K: 512, dtype, groupSize: 64, bias: true, mode: 'grid' }));
    test(`${dtype} lda > K`, () => run({ M: 31, N: 208, K: 512, lda: 528, dtype, groupSize: 128, mode: 'grid' }));
    test(`${dtype} everything at once`, () =>
      run({
        M: 129,
        N: 80,
        K: 768,
        lda: 776,
        dtype,
        groupSize: 64,
        sym: false,
        actOrder: true,
        bias: true,
        mode: 'grid',
      }));
  }
});

describe('grid-exact: odd N and tensor-parallel K shards', { skip }, () => {
  for (const N of [16, 80, 208, 336])
    test(`N=${N}`, () => run({ M: 16, N, K: 256, dtype: 'fp16', groupSize: 64, mode: 'grid' }));
  for (const K of [10944, 7392, 14784]) {
    for (const M of [1, 16, 128])
      test(`K=${K} M=${M}`, () => run({ M, N: 256, K, dtype: 'fp16', groupSize: 128, mode: 'grid' }));
    test(`K=${K} bf16 act-order zeros`, () =>
      run({ M: 8, N: 128, K, dtype: 'bf16', groupSize: 128, sym: false, actOrder: true, mode: 'grid' }));
  }
});

// K below one 64-deep k-tile: the packed weight is padded to Kp = 64, and on sm_90 the warp-specialised rows (M >= 17)
// read the activations with a 64-wide TMA box, wider than the tensor (zero fill past K).
describe('grid-exact: K < 64 on every family', { skip }, () => {
  for (const K of [16, 48])
    for (const M of [1, 17, 65])
      for (const dtype of ['fp16', 'bf16'])
        test(`K=${K} M=${M} ${dtype}`, () => run({ M, N: 128, K, dtype, groupSize: K, mode: 'grid' }));
});

describe('tolerance: random data vs the f64 oracle (2 x dense error + 1 ulp)', { skip }, () => {
  for (const dtype of ['fp16', 'bf16']) {
    for (const M of [1, 5, 16, 33, 64, 129, 1024])
      test(`${dtype} M=${M}`, () => run({ M, N: 256, K: 1024, dtype, groupSize: 128 }));
    test(`${dtype} act-order zeros bias lda`, () =>
      run({ M: 65, N: 208, K: 2048, lda: 2056, dtype, groupSize: 128, sym: false, actOrder: true, bias: true }));
  }
});

// Real model shapes (K = in features, N = out features), CPU reference on a sample of rows and columns.
const MODEL_SHAPES = [
  ['Llama-3-8B q/o_proj', 4096, 4096],
  ['Llama-3-8B qkv_proj', 4096, 6144],
  ['Llama-3-8B gate_up (per half)', 4096, 14336],
  ['Llama-3-8B down_proj', 14336, 4096],
  ['Llama-3-70B down_proj TP=8 shard', 3584, 8192],
  ['Qwen2-7B up_proj', 3584, 18944],
  ['Qwen2-7B down_proj', 18944, 3584],
  ['Mixtral-8x7B expert w1', 4096, 14336],
  ['Llama-2-13B down_proj TP=2 shard', 6912, 5120],
];
describe('tolerance: real model shapes', { skip }, () => {
  for (const [name, K, N] of MODEL_SHAPES) {
    for (const M of [1, 16, 256]) {
      test(`${name} K=${K} N=${N} M=${M}`, () =>
        run({ M, N, K, dtype: M === 16 ? 'bf16' : 'fp16', groupSize: 128, seed: K + N + M }));
    }
  }
});
