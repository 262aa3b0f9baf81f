// INT8 (@marlin/dense) and FP8 e4m3 (@marlin/fp8) on the GPU, held to what the INT4 suite checks: the CPU reference
// of @marlin/core bit for bit on exact grids (a missing or doubled FP8 exponent-bias fold is off by 2^8 and fails
// loudly), within the dense error bound on random data and real shapes, every scale layout, NaN-poisoned outputs,
// determinism, graph replay, two streams, upload/free cycles; and tensors / streams of one addon used by the other.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  apiFor,
  assertNoNaN,
  bitsEqual,
  checkGemm,
  checkGraphReplay,
  checkRepeatable,
  checkTwoStreams,
  checkUploadCycles,
  m,
  makeWeight,
  makeX,
  requireGpu,
} from './lib.mjs';

const gate = requireGpu(test);
// The fp8 addon must load as well: with MARLIN_REQUIRE_GPU=1 a missing marlin_fp8.node is a failure, not a skip.
const fp8Probe = gate.ok ? m.fp8.probe() : null;
if (gate.ok && !fp8Probe.ok && process.env.MARLIN_REQUIRE_GPU === '1') {
  test('@marlin/fp8 is usable (MARLIN_REQUIRE_GPU=1)', () =>
    assert.fail(`${fp8Probe.error?.code}: ${fp8Probe.error?.message}`));
}
const skipFor = (variant) =>
  gate.skip || (variant === 'fp8' && gate.ok && !fp8Probe.ok ? `@marlin/fp8 unusable: ${fp8Probe.error?.code}` : false);
const skipBoth = skipFor('fp8');
export const results = [];

async function run(spec) {
  results.push(await checkGemm(spec));
}

const M_SWEEP = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 1024, 4096];
const VARIANTS = ['int8', 'fp8'];

for (const variant of VARIANTS) {
  const skip = skipFor(variant);
  // INT8 is symmetric (zero point 128) or has integer zero points; FP8 has none.
  const zeroModes = variant === 'int8' ? [true, false] : [true];

  describe(`${variant} grid-exact: every M tile boundary, bit for bit`, { skip }, () => {
    for (const dtype of ['fp16', 'bf16'])
      for (const M of M_SWEEP)
        test(`${dtype} M=${M}`, () => run({ variant, M, N: 208, K: 512, dtype, groupSize: 128, mode: 'grid' }));
    test('fp16 M=16384 (N=128, K=256)', () =>
      run({ variant, M: 16384, N: 128, K: 256, dtype: 'fp16', groupSize: 64, mode: 'grid' }));
  });

  describe(`${variant} grid-exact: every scale layout, bias, lda`, { skip }, () => {
    for (const dtype of ['fp16', 'bf16']) {
      for (const layout of ['per-channel', 32, 64, 128, 'block'])
        for (const sym of zeroModes) {
          const K = 1024;
          const groupSize = layout === 'per-channel' ? K : layout === 'block' ? 128 : layout;
          const scaleLayout = layout === 'block' ? 'block' : 'group';
          test(`${dtype} scales ${layout}${sym ? '' : ' zeros'}`, () =>
            run({ variant, M: 33, N: 384, K, dtype, groupSize, scaleLayout, sym, mode: 'grid' }));
        }
      test(`${dtype} bias`, () =>
        run({ variant, M: 9, N: 80, K: 512, dtype, groupSize: 64, bias: true, mode: 'grid' }));
      test(`${dtype} lda > K`, () =>
        run({ variant, M: 31, N: 208, K: 512, lda: 528, dtype, groupSize: 128, mode: 'grid' }));
      test(`${dtype} block scales + bias + lda, M across tiles`, () =>
        run({ variant, M: 129, N: 256, K: 768, lda: 776, dtype, scaleLayout: 'block', bias: true, mode: 'grid' }));
    }
    if (variant === 'int8') {
      // GPTQ 8-bit with desc_act: the act-order gather on the 8-bit tile path.
      for (const groupSize of [32, 128])
        test(`fp16 act-order + zeros g=${groupSize}`, () =>
          run({ variant, M: 65, N: 128, K: 512, dtype: 'fp16', groupSize, actOrder: true, sym: false, mode: 'grid' }));
    }
  });

  describe(`${variant} grid-exact: odd N, tensor-parallel K shards, K < 64`, { skip }, () => {
    for (const N of [16, 80, 208, 336])
      test(`N=${N}`, () => run({ variant, M: 16, N, K: 256, dtype: 'fp16', groupSize: 64, mode: 'grid' }));
    for (const K of [10944, 7392, 14784])
      for (const M of [1, 16, 128])
        test(`K=${K} M=${M}`, () =>
          run({ variant, M, N: 256, K, dtype: M === 16 ? 'bf16' : 'fp16', groupSize: 128, mode: 'grid' }));
    // K below one 64-row kernel k-tile: Kp = 64, the padded rows hold the zero-point code / +0.
    for (const K of [16, 48])
      for (const M of [1, 17, 65])
        test(`K=${K} M=${M}`, () => run({ variant, M, N: 128, K, dtype: 'fp16', groupSize: K, mode: 'grid' }));
  });

  describe(`${variant} tolerance: random data vs the f64 oracle`, { skip }, () => {
    for (const dtype of ['fp16', 'bf16']) {
      for (const M of [1, 5, 16, 33, 64, 129, 1024])
        test(`${dtype} M=${M}`, () => run({ variant, M, N: 256, K: 1024, dtype, groupSize: 128 }));
      test(`${dtype} block scales, bias, lda`, () =>
        run({ variant, M: 65, N: 384, K: 2048, lda: 2056, dtype, scaleLayout: 'block', bias: true, sym: false }));
    }
  });

  const SHAPES = [
    ['Llama-3-8B qkv_proj', 4096, 6144],
    ['Llama-3-8B down_proj', 14336, 4096],
    ['Llama-3-70B down_proj TP=8 shard', 3584, 8192],
    ['Qwen2-7B down_proj', 18944, 3584],
    ['Qwen3-8B FP8 gate_up (per half)', 4096, 12288],
  ];
  describe(`${variant} tolerance: real model shapes`, { skip }, () => {
    for (const [name, K, N] of SHAPES)
      for (const M of [1, 16, 256])
        test(`${name} K=${K} N=${N} M=${M}`, () =>
          run({
            variant,
            M,
            N,
            K,
            dtype: M === 16 ? 'bf16' : 'fp16',
            // FP8 checkpoints come with 128 x 128 blocks (DeepSeek-V3, Qwen3-FP8); GPTQ 8-bit with group 128.
            scaleLayout: variant === 'fp8' ? 'block' : 'group',
            groupSize: 128,
            seed: K + N + M,
          }));
  });
}

// Every e4m3 code through the kernel: x = identity picks one weight per output, so y[m, n] = round_T(e4m3(q) * s)
// exactly. The exponent-bias fold (2^8 fp16, 2^120 bf16) missing, doubled or applied to the wrong dtype changes every
// output by a power of two; a wrong code table changes single codes. Both differ from the reference bitwise.
describe('fp8: every e4m3 code dequantizes exactly (identity activations)', { skip: skipFor('fp8') }, () => {
  for (const dtype of ['fp16', 'bf16']) {
    for (const groupSize of [256, 32]) {
      test(`${dtype} ${groupSize === 256 ? 'per-channel' : 'group 32'} scales`, async () => {
        const K = 256;
        const N = 256;
        const q = makeWeight({ K, N, groupSize, dtype, variant: 'fp8', mode: 'grid', seed: 7 });
        for (let k = 0; k < K; k++)
          for (let n = 0; n < N; n++) {
            const c = (k + n) & 0xff;
            q.codes[k * N + n] = (c & 0x7f) === 0x7f ? 0 : c;
          }
        // Scales 2^-1 .. 2^-6: the largest weight 448 / 2 stays finite in fp16 with the fold (2^-1 * 2^8 < 65504).
        const G = K / groupSize;
        q.scales = m.toHalfBits(
          Float32Array.from({ length: G * N }, (_, i) => 2 ** -(1 + (i % 6))),
          dtype,
        );
        const packed = m.pack(q);
        const xBits = m.toHalfBits(
          Float32Array.from({ length: K * K }, (_, i) => (i % (K + 1) === 0 ? 1 : 0)),
          dtype,
        );
        const w = m.fp8.uploadPacked(packed);
        const x = m.Tensor.from(xBits, [K, K], dtype);
        const y = m.Tensor.empty([K, N], dtype).fillBytes(0xff);
        try {
          m.fp8.gemm(x, w, { out: y });
          const got = await y.toHost();
          const ref = m.referenceGemm(xBits, packed, { M: K, dtype }).bits;
          bitsEqual(got, ref, `${dtype} g${groupSize}: every code`);
        } finally {
          for (const t of [w, x, y]) t.dispose();
        }
      });
    }
  }
});

function runnableConfigs(variant) {
  const sm90 = gate.probe.devices[0].major === 9;
  const ids = new Set(m.configIdsFor(variant));
  return m.KERNEL_TABLE.filter((c) => ids.has(c.id) && !m.isExperimental(c) && (c.kernel !== 'hopper' || sm90));
}

function upload(variant, { M, N, K, dtype = 'fp16', seed = 21, scaleLayout = 'group', sym = true }) {
  const packed = m.pack(makeWeight({ K, N, groupSize: 128, dtype, variant, sym, scaleLayout, seed }));
  const x = m.Tensor.from(makeX({ M, K, dtype, seed: seed + 1 }), [M, K], dtype);
  return { packed, w: apiFor(variant).uploadPacked(packed), x };
}

for (const variant of VARIANTS) {
  const api = apiFor(variant);
  describe(`${variant} determinism, graphs, streams, lifetime`, { skip: skipFor(variant) }, () => {
    test('two runs are bitwise equal, for every configuration built for the variant', () => {
      const configs = runnableConfigs(variant);
      assert.ok(configs.length >= 2, `expected the variant's configurations, got ${configs.map((c) => c.id)}`);
      return checkRepeatable(api, upload(variant, { M: 64, N: 4096, K: 4096, sym: false }), configs);
    });

    test('two streams at once (own workspaces) equal sequential results', () =>
      checkTwoStreams(
        api,
        { ...upload(variant, { M: 16, N: 4096, K: 7392, seed: 31 }), M: 16, N: 4096 },
        { ...upload(variant, { M: 128, N: 2048, K: 4096, seed: 41, scaleLayout: 'block' }), M: 128, N: 2048 },
      ));

    test('CUDA-graph replay equals eager execution bitwise', () =>
      checkGraphReplay(api, {
        ...upload(variant, { M: 8, N: 8192, K: 3584, seed: 51, scaleLayout: 'block' }),
        M: 8,
        N: 8192,
      }));

    test('200 upload / gemm / dispose cycles leave device memory and native plans where they were', () =>
      checkUploadCycles(
        api,
        m.pack(makeWeight({ K: 1024, N: 512, groupSize: 128, dtype: 'fp16', variant, seed: 61 })),
      ));
  });
}

// ---- cross-addon tensors --------------------------------------------------------------------------------------------

/** [M, K] fp16 -> int8 layer (dense) -> [M, H] -> fp8 layer -> [M, N], with the tensors' allocators chosen per call. */
function crossChain({ M = 24, K = 1024, H = 512, N = 384 } = {}) {
  const int8 = m.pack(makeWeight({ K, N: H, groupSize: 128, dtype: 'fp16', variant: 'int8', sym: false, seed: 71 }));
  const fp8 = m.pack(
    makeWeight({ K: H, N, groupSize: 128, dtype: 'fp16', variant: 'fp8', scaleLayout: 'block', seed: 72 }),
  );
  const xBits = makeX({ M, K, dtype: 'fp16', seed: 73 });
  return { M, K, H, N, int8, fp8, xBits };
}

describe('cross-addon tensors: one addon allocates, the other computes', { skip: skipBoth }, () => {
  test("a tensor made by @marlin/fp8's runtime is dense's input and output; dense's output is fp8's input", async () => {
    const c = crossChain();
    const w8 = m.uploadPacked(c.int8);
    const wf = m.fp8.uploadPacked(c.fp8);
    const x = m.Tensor.from(c.xBits, [c.M, c.K], 'fp16', { addon: 'marlin_fp8' });
    const h = m.Tensor.empty([c.M, c.H], 'fp16', { addon: 'marlin_fp8' }).fillBytes(0xff);
    const y = m.Tensor.empty([c.M, c.N], 'fp16', { addon: 'marlin_dense' }).fillBytes(0xff);
    // The same chain with every tensor from one runtime, for a bitwise comparison (the kernels are deterministic).
    const x1 = m.Tensor.from(c.xBits, [c.M, c.K], 'fp16', { addon: 'marlin_dense' });
    try {
      assert.equal(x.nativeRuntime().addon, 'marlin_fp8');
      assert.equal(y.nativeRuntime().addon, 'marlin_dense');
      m.gemm(x, w8, { out: h });
      m.fp8.gemm(h, wf, { out: y });
      const hBits = await h.toHost();
      const yBits = await y.toHost();
      assertNoNaN(hBits, 'fp16', 'hidden');
      assertNoNaN(yBits, 'fp16', 'output');
      // Each layer against the CPU reference on exactly its input.
      const hb = m.denseErrorBound(c.xBits, c.int8, { M: c.M, dtype: 'fp16' });
      assert.ok(m.maxAbsDeviation(hBits, 'fp16', hb.oracle) <= hb.tolerance, 'int8 layer vs the f64 oracle');
      const yb = m.denseErrorBound(hBits, c.fp8, { M: c.M, dtype: 'fp16' });
      assert.ok(m.maxAbsDeviation(yBits, 'fp16', yb.oracle) <= yb.tolerance, 'fp8 layer vs the f64 oracle');
      const h1 = m.gemm(x1, w8);
      const y1 = m.fp8.gemm(h1, wf);
      bitsEqual(await h1.toHost(), hBits, 'hidden: cross-allocated vs one runtime');
      bitsEqual(await y1.toHost(), yBits, 'output: cross-allocated vs one runtime');
      h1.dispose();
      y1.dispose();
    } finally {
      for (const t of [w8, wf, x, h, y, x1]) t.dispose();
    }
  });

  test('one stream: the two addons alternate on a stream of either runtime, eager and replayed', async () => {
    const c = crossChain({ M: 8 });
    const w8 = m.uploadPacked(c.int8);
    const wf = m.fp8.uploadPacked(c.fp8);
    const x = m.Tensor.from(c.xBits, [c.M, c.K], 'fp16');
    const h = m.Tensor.empty([c.M, c.H], 'fp16');
    const y = m.Tensor.empty([c.M, c.N], 'fp16');
    try {
      const ref = await m.fp8.gemm(m.gemm(x, w8), wf).toHost();
      for (const addon of ['marlin_dense', 'marlin_fp8']) {
        const s = m.Stream.create({ addon });
        try {
          h.fillBytes(0xff, s);
          y.fillBytes(0xff, s);
          m.gemm(x, w8, { out: h, stream: s });
          m.fp8.gemm(h, wf, { out: y, stream: s });
          bitsEqual(await y.toHost(s), ref, `stream of ${addon}: eager`);
          const g = s.capture(() => {
            m.gemm(x, w8, { out: h, stream: s });
            m.fp8.gemm(h, wf, { out: y, stream: s });
          });
          try {
            y.fillBytes(0xff, s);
            g.replay(s);
            bitsEqual(await y.toHost(s), ref, `stream of ${addon}: graph replay`);
          } finally {
            g.dispose();
          }
        } finally {
          s.dispose();
        }
      }
    } finally {
      for (const t of [w8, wf, x, h, y]) t.dispose();
    }
  });

  test('two streams, one per runtime: dense and fp8 at once on shared inputs equal sequential results', async () => {
    const c = crossChain({ M: 64 });
    const w8 = m.uploadPacked(c.int8);
    const xf = m.Tensor.from(makeX({ M: c.M, K: c.H, dtype: 'fp16', seed: 74 }), [c.M, c.H], 'fp16', {
      addon: 'marlin_dense',
    });
    const wf = m.fp8.uploadPacked(c.fp8);
    const x = m.Tensor.from(c.xBits, [c.M, c.K], 'fp16', { addon: 'marlin_fp8' });
    const sd = m.Stream.create({ addon: 'marlin_fp8' }); // dense kernels on a stream made by fp8
    const sf = m.Stream.create({ addon: 'marlin_dense' }); // fp8 kernels on a stream made by dense
    const yd = m.Tensor.empty([c.M, c.H], 'fp16', { addon: 'marlin_fp8' });
    const yf = m.Tensor.empty([c.M, c.N], 'fp16', { addon: 'marlin_dense' });
    try {
      const rd = await m.gemm(x, w8).toHost();
      const rf = await m.fp8.gemm(xf, wf).toHost();
      yd.fillBytes(0xff);
      yf.fillBytes(0xff);
      m.deviceSynchronize();
      for (let i = 0; i < 20; i++) {
        m.gemm(x, w8, { out: yd, stream: sd });
        m.fp8.gemm(xf, wf, { out: yf, stream: sf });
      }
      bitsEqual(await yd.toHost(sd), rd, 'dense on the fp8 stream');
      bitsEqual(await yf.toHost(sf), rf, 'fp8 on the dense stream');
    } finally {
      for (const t of [w8, wf, x, xf, sd, sf, yd, yf]) t.dispose();
    }
  });

  test('memory() counts both runtimes, and every buffer goes back to the runtime that made it', () => {
    m.deviceSynchronize();
    const before = m.memory();
    const a = m.Tensor.empty([1 << 20], 'u8', { addon: 'marlin_fp8' });
    const b = m.Tensor.empty([1 << 20], 'u8', { addon: 'marlin_dense' });
    const during = m.memory();
    assert.equal(during.nativeLiveBytes - before.nativeLiveBytes, 2 << 20, 'both allocations counted');
    const c = m.Tensor.empty([1 << 20], 'u8', { addon: 'marlin_dense' });
    c.copyFrom(a); // a device copy between buffers of two runtimes
    for (const t of [a, b, c]) t.dispose();
    m.deviceSynchronize();
    const after = m.memory();
    assert.equal(after.nativeLiveBytes, before.nativeLiveBytes, 'native live bytes back to where they were');
    assert.equal(after.liveTensors, before.liveTensors);
  });
});
