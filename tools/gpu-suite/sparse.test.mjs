// @marlin/sparse (2:4 sparse INT4) on the GPU, held to what the INT4 suite checks: the packed 2:4 CPU reference of
// @marlin/core bit for bit on exact grids (M across every token tile and >= 16384, every group size, zero points, bias,
// lda, odd N and K, every int4-sparse row forced, the mma.sp rows on sm_90 too), within the dense error bound on random
// data and real shapes, NaN-poisoned outputs, determinism, graph replay == eager, two streams, upload / free cycles; and
// weights that are not 2:4 refused with typed errors.
//
// Exactness: on a grid (power-of-two scales, small-integer activations) every product and partial sum is exact in
// fp32, so the kernels' summation order (sparse tensor-core fragments, split-K, post-scaling on the decode rows) cannot
// change a bit, and the result must equal referenceGemmPackedSparse, which decodes the same bytes as the tensor cores.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  assertGridExact,
  assertNoNaN,
  bitsEqual,
  checkGraphReplay,
  checkRepeatable,
  checkTwoStreams,
  checkUploadCycles,
  columnSubset,
  gemmPoisoned,
  m,
  makeBias,
  makeX,
  referenceSample,
  requireGpu,
  rng,
} from './lib.mjs';

const gate = requireGpu(test);
const sp = m.sparse;
const spProbe = gate.ok ? sp.probe() : null;
if (gate.ok && !spProbe.ok && process.env.MARLIN_REQUIRE_GPU === '1') {
  test('@marlin/sparse is usable (MARLIN_REQUIRE_GPU=1)', () =>
    assert.fail(`${spProbe.error?.code}: ${spProbe.error?.message}`));
}
const skip = gate.skip || (gate.ok && !spProbe.ok ? `@marlin/sparse unusable: ${spProbe.error?.code}` : false);
export const results = [];

const PAIRS = [
  [0, 1],
  [0, 2],
  [1, 2],
  [0, 3],
  [1, 3],
  [2, 3],
];

/**
 * A random logical 2:4 weight (SparseQuantizedWeight, K x N): uniform position pairs and codes 0..15; mode 'grid'
 * gives power-of-two scales (every weight and product exact), otherwise scales in [0.01, 0.03).
 */
function makeSparse({ K, N, groupSize, dtype, sym = true, mode = 'random', seed = 1 }) {
  const r = rng(seed);
  const G = Math.ceil(K / groupSize);
  const codes = new Uint8Array((K / 2) * N);
  const indices = new Uint8Array((K / 2) * N);
  for (let j = 0; j < K / 4; j++)
    for (let n = 0; n < N; n++) {
      const [a, b] = PAIRS[r.int(6)];
      indices[2 * j * N + n] = a;
      indices[(2 * j + 1) * N + n] = b;
      codes[2 * j * N + n] = r.int(16);
      codes[(2 * j + 1) * N + n] = r.int(16);
    }
  const scales = Float32Array.from({ length: G * N }, () =>
    mode === 'grid' ? 2 ** -(2 + r.int(3)) : (0.5 + r.next()) * 0.02,
  );
  return {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    groupSize,
    codes,
    indices,
    scales: m.toHalfBits(scales, dtype),
    scaleDtype: dtype,
    zeros: sym ? null : Uint8Array.from({ length: G * N }, () => r.int(16)),
  };
}

/**
 * Runs the GPU GEMM (output NaN-poisoned first) and compares with core's references: mode 'grid' bit for bit with
 * referenceGemmPackedSparse (on a sample of rows / columns for big problems: the reference of the dense equivalent,
 * which core documents as bit for bit the same), otherwise |gpu - f64 oracle| <= the dense error bound.
 */
async function checkSparse(spec) {
  const { M, K, N, dtype, groupSize = 128, sym = true, bias = false, lda = K, mode = 'random', seed = 11 } = spec;
  const s = makeSparse({ K, N, groupSize, dtype, sym, mode, seed });
  const packed = m.packSparse(s);
  const xBits = makeX({ M, K, lda, dtype, mode, seed: seed + 1 });
  const biasBits = bias ? makeBias({ N, dtype, mode, seed: seed + 2 }) : undefined;
  const got = await gemmPoisoned(sp, packed, { M, N, K, lda, dtype, xBits, biasBits, config: spec.config });
  const forced = spec.config ? ` config ${JSON.stringify(spec.config)}` : '';
  const label = `sparse M=${M} N=${N} K=${K} g=${groupSize} ${dtype}${sym ? '' : ' zeros'}${bias ? ' bias' : ''}${lda !== K ? ` lda=${lda}` : ''} ${mode}${forced}`;
  assertNoNaN(got, dtype, label);
  const { cols, refX, refN, gotSub, opts } = referenceSample({ got, M, N, K, lda, dtype, xBits, biasBits, seed });
  // The dense equivalent (pruned rows = the zero-point code), restricted to the sampled columns, packed densely.
  const denseRef = () => m.pack(cols ? columnSubset(m.densifySparse(s), cols) : m.densifySparse(s));
  if (mode === 'grid') {
    const ref = cols
      ? m.referenceGemm(refX, denseRef(), opts).bits
      : m.referenceGemmPackedSparse(refX, packed, opts).bits;
    assertGridExact(gotSub, ref, refN, label);
    results.push({ label, checked: ref.length, maxErr: 0, tolerance: 0 });
    return;
  }
  const bound = m.denseErrorBound(refX, denseRef(), opts);
  const err = m.maxAbsDeviation(gotSub, dtype, bound.oracle);
  assert.ok(err <= bound.tolerance, `${label}: max |gpu - f64 oracle| = ${err} exceeds tolerance ${bound.tolerance}`);
  results.push({ label, checked: gotSub.length, maxErr: err, tolerance: bound.tolerance });
}

const M_SWEEP = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1024, 4096];

/** The int4-sparse rows this device runs (the wgmma.sp rows only on sm_90). */
function runnableRows() {
  const sm90 = gate.probe.devices[0].major === 9;
  const ids = new Set(m.configIdsFor('int4-sparse'));
  return m.KERNEL_TABLE.filter((c) => ids.has(c.id) && !m.isExperimental(c) && (c.kernel !== 'hopper' || sm90));
}

describe('sparse grid-exact: every M tile boundary, bit for bit', { skip }, () => {
  for (const dtype of ['fp16', 'bf16'])
    for (const M of M_SWEEP)
      test(`${dtype} M=${M}`, () => checkSparse({ M, N: 208, K: 512, dtype, groupSize: 128, mode: 'grid' }));
  test('fp16 M=16384 (N=128, K=256)', () =>
    checkSparse({ M: 16384, N: 128, K: 256, dtype: 'fp16', groupSize: 64, mode: 'grid' }));
  test('bf16 M=16400 (N=192, K=512, zeros)', () =>
    checkSparse({ M: 16400, N: 192, K: 512, dtype: 'bf16', groupSize: 128, sym: false, mode: 'grid' }));
});

describe('sparse grid-exact: every group size, zero points, bias, lda', { skip }, () => {
  for (const dtype of ['fp16', 'bf16']) {
    for (const layout of ['per-channel', 32, 64, 128])
      for (const sym of [true, false]) {
        const K = 1024;
        const groupSize = layout === 'per-channel' ? K : layout;
        // M = 5 (the decode rows, post-scaled at >= 128) and M = 33 (the rows above).
        for (const M of [5, 33])
          test(`${dtype} g ${layout}${sym ? '' : ' zeros'} M=${M}`, () =>
            checkSparse({ M, N: 384, K, dtype, groupSize, sym, mode: 'grid' }));
      }
    test(`${dtype} bias`, () => checkSparse({ M: 9, N: 80, K: 512, dtype, groupSize: 64, bias: true, mode: 'grid' }));
    test(`${dtype} lda > K`, () =>
      checkSparse({ M: 31, N: 208, K: 512, lda: 528, dtype, groupSize: 128, mode: 'grid' }));
    test(`${dtype} zeros + bias + lda, M across tiles`, () =>
      checkSparse({ M: 129, N: 256, K: 768, lda: 776, dtype, groupSize: 32, sym: false, bias: true, mode: 'grid' }));
  }
});

describe('sparse grid-exact: odd N, K not a multiple of 64, tensor-parallel K shards', { skip }, () => {
  for (const N of [16, 80, 208, 336])
    test(`N=${N}`, () => checkSparse({ M: 16, N, K: 256, dtype: 'fp16', groupSize: 64, mode: 'grid' }));
  // K = 16 / 48 / 144 / 1104 (per channel): the last 64-row tile partly padding (pairs (0, 1), the zero-point code).
  for (const K of [16, 48, 144, 1104])
    for (const M of [1, 17, 65])
      test(`K=${K} M=${M}`, () =>
        checkSparse({ M, N: 128, K, dtype: 'fp16', groupSize: K, sym: M !== 17, mode: 'grid' }));
  for (const K of [10944, 7392, 14784])
    for (const M of [1, 16, 128])
      test(`K=${K} M=${M}`, () =>
        checkSparse({ M, N: 256, K, dtype: M === 16 ? 'bf16' : 'fp16', groupSize: 128, mode: 'grid' }));
});

describe('sparse grid-exact: every int4-sparse row forced, split-K, the mma.sp rows on sm_90 too', { skip }, () => {
  const rows = gate.ok ? runnableRows() : [];
  for (const c of rows)
    for (const M of [1, 16, 64, 200])
      for (const splits of [1, 3])
        test(`config ${c.id} (${c.kernel} mTile ${c.mTile}) M=${M} splits=${splits}`, () =>
          checkSparse({
            M,
            N: 320,
            K: 1088,
            dtype: M === 64 ? 'bf16' : 'fp16',
            groupSize: 64,
            sym: M !== 16,
            bias: M === 200,
            mode: 'grid',
            config: { configId: c.id, splits },
          }));
  test('the rows cover both families on sm_90', {
    skip: gate.ok && gate.probe.devices[0].major === 9 ? false : 'not sm_90',
  }, () => {
    assert.ok(rows.some((c) => c.kernel === 'ampere') && rows.some((c) => c.kernel === 'hopper'));
  });
});

describe('sparse tolerance: random data and real shapes vs the f64 oracle', { skip }, () => {
  for (const dtype of ['fp16', 'bf16'])
    for (const M of [1, 5, 16, 33, 64, 129, 1024])
      test(`${dtype} M=${M}`, () => checkSparse({ M, N: 256, K: 1024, dtype, groupSize: 128, sym: M % 2 === 0 }));
  const SHAPES = [
    ['Llama-3-8B qkv_proj', 4096, 6144],
    ['Llama-3-8B gate_up_proj', 4096, 28672],
    ['Llama-3-8B down_proj', 14336, 4096],
    ['Llama-3-70B o_proj', 8192, 8192],
    ['Llama-3-70B down_proj', 28672, 8192],
  ];
  for (const [name, K, N] of SHAPES)
    for (const M of [1, 16, 256])
      test(`${name} K=${K} N=${N} M=${M}`, () =>
        checkSparse({ M, N, K, dtype: M === 16 ? 'bf16' : 'fp16', groupSize: 128, bias: M === 1, seed: K + N + M }));
});

function upload({ M, N, K, dtype = 'fp16', seed = 21, sym = true }) {
  const packed = m.packSparse(makeSparse({ K, N, groupSize: 128, dtype, sym, seed }));
  const x = m.Tensor.from(makeX({ M, K, dtype, seed: seed + 1 }), [M, K], dtype);
  return { packed, w: sp.uploadPacked(packed), x };
}

describe('sparse determinism, graphs, streams, lifetime', { skip }, () => {
  test('two runs are bitwise equal, for every int4-sparse row and split count', () =>
    checkRepeatable(sp, upload({ M: 64, N: 4096, K: 4096, sym: false }), runnableRows()));

  test('two streams at once (own workspaces) equal sequential results', () =>
    checkTwoStreams(
      sp,
      { ...upload({ M: 16, N: 4096, K: 7392, seed: 31 }), M: 16, N: 4096 },
      { ...upload({ M: 128, N: 2048, K: 4096, seed: 41, sym: false }), M: 128, N: 2048 },
    ));

  test('CUDA-graph replay equals eager execution bitwise (decode and a wgmma.sp tile)', async () => {
    for (const M of [8, 256])
      await checkGraphReplay(sp, { ...upload({ M, N: 8192, K: 3584, seed: 51 + M }), M, N: 8192 }, ` M=${M}`);
  });

  // Tensors an earlier test dropped without dispose() may be reclaimed by the finalizer during the 200 cycles (the
  // H100 run saw 4 -> 2): the live counts may fall; a leak would only ever raise them.
  test('200 upload / gemm / dispose cycles leave device memory and native plans where they were', () =>
    checkUploadCycles(sp, m.packSparse(makeSparse({ K: 1024, N: 512, groupSize: 128, dtype: 'fp16', seed: 61 })), {
      mayReclaim: true,
    }));
});

// The refusals happen on the host, before any GPU use: they run without a GPU too.
describe('sparse: weights that are not 2:4 are refused', () => {
  test('a dense weight with three non-zero codes in a group of four cannot become 2:4 (not-2:4)', () => {
    const q = m.densifySparse(makeSparse({ K: 64, N: 32, groupSize: 64, dtype: 'fp16', seed: 81 }));
    const codes = q.codes.slice();
    for (let i = 0; i < 3; i++) codes[i * 32] = 3; // rows 0..2 of column 0: three codes away from the zero point 8
    assert.throws(
      () => m.sparsifyQuantized({ ...q, codes }),
      (e) => e.code === m.ErrorCode.VALUE && e.details?.reason === 'not-2:4',
    );
  });

  test('a corrupt metadata nibble is refused before upload (the sparse tensor cores leave it undefined)', () => {
    const packed = m.packSparse(makeSparse({ K: 128, N: 64, groupSize: 64, dtype: 'fp16', seed: 82 }));
    const qweight = packed.qweight.slice();
    qweight[256] = (qweight[256] & ~0xf) | 0x5; // positions (1, 1)
    assert.throws(
      () => sp.uploadPacked({ ...packed, qweight }),
      (e) => e.code === m.ErrorCode.VALUE && e.details?.reason === 'indices-out-of-order',
    );
  });

  test('a dense INT4 weight is refused by @marlin/sparse, a 2:4 weight by @marlin/dense, each naming the other', () => {
    const s = makeSparse({ K: 128, N: 64, groupSize: 64, dtype: 'fp16', seed: 83 });
    const dense = m.pack(m.densifySparse(s));
    assert.throws(
      () => sp.uploadPacked(dense),
      (e) => e.code === m.ErrorCode.UNSUPPORTED && /@marlin\/dense/.test(e.message),
    );
    assert.throws(
      () => m.uploadPacked(m.packSparse(s)),
      (e) => e.code === m.ErrorCode.UNSUPPORTED && /@marlin\/sparse/.test(e.message),
    );
  });

  test('the dense equivalent through @marlin/dense gives the same bits as @marlin/sparse on a grid', {
    skip,
  }, async () => {
    const s = makeSparse({ K: 512, N: 256, groupSize: 128, dtype: 'fp16', mode: 'grid', seed: 84 });
    const xBits = makeX({ M: 24, K: 512, dtype: 'fp16', mode: 'grid', seed: 85 });
    const ws = sp.uploadPacked(m.packSparse(s));
    const wd = m.uploadPacked(m.pack(m.densifySparse(s)));
    const x = m.Tensor.from(xBits, [24, 512], 'fp16');
    try {
      const a = await sp.gemm(x, ws).toHost();
      const b = await m.gemm(x, wd).toHost();
      bitsEqual(a, b, 'sparse vs dense equivalent');
    } finally {
      for (const t of [ws, wd, x]) t.dispose();
    }
  });
});
