// Prepared launches: gemm() caches a native plan per weight and M (weight operands, sizes, kernel and, on the
// warp-specialised configs, the activations' TMA descriptor fixed once; per call only x, out, bias and the bound
// workspace / stream). A reused plan must compute exactly what a fresh one does, whatever x, out, stream or
// workspace the later calls bring; a disposed operand must throw the typed error; disposing frees everything.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bitsEqual, checkGemm, m, makeBias, makeWeight, makeX, requireGpu } from './lib.mjs';

const gate = requireGpu(test);
const skip = gate.skip;

/** y = x · W with a weight uploaded just for this call: a fresh plan (nothing cached from other calls). */
async function freshResult(packed, xBits, shape, dtype, options = {}) {
  const w = m.uploadPacked(packed);
  const x = m.Tensor.from(xBits, shape, dtype);
  const b = options.bias ? m.Tensor.from(options.bias, [packed.N], dtype) : undefined;
  try {
    const y = m.gemm(x, w, { bias: b, lda: options.lda, config: options.config });
    const bits = await y.toHost();
    y.dispose();
    return bits;
  } finally {
    for (const t of [w, x, b]) t?.dispose();
  }
}

// Every configuration the device can run (the hopper family, warp-specialised rows included, on sm_90 only).
// The INT4 rows this build has (experimental rows are not built) that the device can run.
function runnableConfigs() {
  const sm90 = gate.probe.devices[0].major === 9;
  return m.variantConfigs('int4').filter((c) => !m.isExperimental(c) && (c.kernel !== 'hopper' || sm90));
}

describe('prepared plans: reuse', { skip }, () => {
  for (const spec of [
    { M: 1, N: 4096, K: 4096, dtype: 'fp16', actOrder: false, bias: false },
    { M: 8, N: 2048, K: 3584, dtype: 'bf16', actOrder: true, bias: true },
    { M: 64, N: 4096, K: 4096, dtype: 'fp16', actOrder: false, bias: true }, // warp-specialised on sm_90
    { M: 200, N: 1024, K: 4096, dtype: 'bf16', actOrder: true, bias: false },
  ]) {
    const { M, N, K, dtype, actOrder } = spec;
    test(`M=${M} N=${N} K=${K} ${dtype}${actOrder ? ' act-order' : ''}${spec.bias ? ' bias' : ''}: a plan reused with other x / out / streams equals a fresh call`, async () => {
      const packed = m.pack(makeWeight({ K, N, groupSize: 128, dtype, sym: false, actOrder, seed: 101 + M }));
      const xa = makeX({ M, K, dtype, seed: 201 + M });
      const xb = makeX({ M, K, dtype, seed: 301 + M });
      const biasBits = spec.bias ? makeBias({ N, dtype, seed: 401 + M }) : undefined;
      const refA = await freshResult(packed, xa, [M, K], dtype, { bias: biasBits });
      const refB = await freshResult(packed, xb, [M, K], dtype, { bias: biasBits });

      const w = m.uploadPacked(packed);
      const b = biasBits ? m.Tensor.from(biasBits, [N], dtype) : undefined;
      const ta = m.Tensor.from(xa, [M, K], dtype);
      const tb = m.Tensor.from(xb, [M, K], dtype);
      const s1 = m.Stream.create();
      const s2 = m.Stream.create();
      const outs = Array.from({ length: 4 }, () => m.Tensor.empty([M, N], dtype));
      try {
        const plansBefore = m.livePlans();
        // One plan, four calls: x alternates (the TMA descriptor is re-encoded), out changes, the stream changes
        // (workspace rebound), and the default stream comes back.
        for (const o of outs) o.fillBytes(0xff);
        m.deviceSynchronize();
        m.gemm(ta, w, { out: outs[0], bias: b });
        m.gemm(tb, w, { out: outs[1], bias: b, stream: s1 });
        m.gemm(ta, w, { out: outs[2], bias: b, stream: s2 });
        m.gemm(tb, w, { out: outs[3], bias: b });
        m.deviceSynchronize();
        assert.equal(m.livePlans(), plansBefore + 1, 'the four calls share one native plan');
        bitsEqual(await outs[0].toHost(), refA, 'x = a, default stream');
        bitsEqual(await outs[1].toHost(), refB, 'x = b, stream 1');
        bitsEqual(await outs[2].toHost(), refA, 'x = a, stream 2');
        bitsEqual(await outs[3].toHost(), refB, 'x = b, default stream again');
        // Allocated outputs (no out given) come from the cached plan too.
        const y = m.gemm(tb, w, { bias: b, stream: s1 });
        bitsEqual(await y.toHost(s1), refB, 'allocated output');
        y.dispose();
      } finally {
        for (const r of [...outs, s1, s2, w, b, ta, tb]) r?.dispose();
      }
    });
  }

  test('every runnable configuration: plan reuse with alternating x and a strided x (lda) equals fresh calls', async () => {
    const M = 48;
    const N = 1024;
    const K = 2048;
    const lda = K + 64;
    const packed = m.pack(makeWeight({ K, N, groupSize: 128, dtype: 'fp16', seed: 501 }));
    const xa = makeX({ M, K, dtype: 'fp16', seed: 502 });
    const xb = makeX({ M, K, dtype: 'fp16', seed: 503 });
    const xs = makeX({ M, K, lda, dtype: 'fp16', seed: 504 });
    const w = m.uploadPacked(packed);
    const ta = m.Tensor.from(xa, [M, K], 'fp16');
    const tb = m.Tensor.from(xb, [M, K], 'fp16');
    const ts = m.Tensor.from(xs, [M, lda], 'fp16');
    const y = m.Tensor.empty([M, N], 'fp16');
    try {
      for (const c of runnableConfigs()) {
        const config = { configId: c.id, splits: 2 };
        const refA = await freshResult(packed, xa, [M, K], 'fp16', { config });
        const refB = await freshResult(packed, xb, [M, K], 'fp16', { config });
        const refS = await freshResult(packed, xs, [M, lda], 'fp16', { config, lda });
        for (const [t, ref, what, opts] of [
          [ta, refA, 'a', {}],
          [tb, refB, 'b', {}],
          [ts, refS, 'strided', { lda }],
          [ta, refA, 'a again', {}],
        ]) {
          y.fillBytes(0xff);
          m.gemm(t, w, { out: y, config, ...opts });
          bitsEqual(await y.toHost(), ref, `config ${c.id}: x = ${what}`);
        }
      }
    } finally {
      for (const r of [w, ta, tb, ts, y]) r.dispose();
    }
  });

  test("a stream's workspace grown by another plan is rebound (the old one is freed), results unchanged", async () => {
    const small = m.pack(makeWeight({ K: 1024, N: 512, groupSize: 128, dtype: 'fp16', actOrder: true, seed: 601 }));
    const big = m.pack(makeWeight({ K: 4096, N: 4096, groupSize: 128, dtype: 'fp16', actOrder: true, seed: 602 }));
    const xs = makeX({ M: 4, K: 1024, dtype: 'fp16', seed: 603 });
    const xg = makeX({ M: 512, K: 4096, dtype: 'fp16', seed: 604 });
    const refSmall = await freshResult(small, xs, [4, 1024], 'fp16');
    const ws = m.uploadPacked(small);
    const wg = m.uploadPacked(big);
    const ts = m.Tensor.from(xs, [4, 1024], 'fp16');
    const tg = m.Tensor.from(xg, [512, 4096], 'fp16');
    const s = m.Stream.create();
    try {
      const y1 = m.gemm(ts, ws, { stream: s }); // small plan binds the stream's first workspace
      const y2 = m.gemm(tg, wg, { stream: s }); // 512 x 4096 act-order: grows (replaces) the workspace
      const y3 = m.gemm(ts, ws, { stream: s }); // the small plan must rebind, not use the freed one
      bitsEqual(await y1.toHost(s), refSmall, 'before the growth');
      bitsEqual(await y3.toHost(s), refSmall, 'after the growth');
      for (const y of [y1, y2, y3]) y.dispose();
    } finally {
      for (const r of [s, ws, wg, ts, tg]) r.dispose();
    }
  });
});

describe('prepared plans: disposal', { skip }, () => {
  // The small problem of these tests: a 512 x 256 g128 fp16 weight and 4-token activations.
  const smallWeight = (seed) =>
    m.uploadPacked(m.pack(makeWeight({ K: 512, N: 256, groupSize: 128, dtype: 'fp16', seed })));
  const smallX = (seed) => m.Tensor.from(makeX({ M: 4, K: 512, dtype: 'fp16', seed }), [4, 512], 'fp16');

  test('a weight disposed after its plan was cached throws DisposedError (and never launches)', () => {
    const w = smallWeight(701);
    const x = smallX(702);
    const y = m.Tensor.empty([4, 256], 'fp16');
    try {
      m.gemm(x, w, { out: y }); // caches the plan
      m.gemm(x, w, { out: y }); // hot path
      w.dispose();
      assert.throws(
        () => m.gemm(x, w, { out: y }),
        (e) => e instanceof m.DisposedError && e.code === 'MARLIN_E_DISPOSED' && /weight/.test(e.message),
      );
      m.deviceSynchronize();
    } finally {
      for (const r of [x, y]) r.dispose();
    }
  });

  test('a weight tensor freed behind the weight (qweight.dispose()) is caught by the native plan: DisposedError', () => {
    const w = smallWeight(711);
    const x = smallX(712);
    const y = m.Tensor.empty([4, 256], 'fp16');
    try {
      m.gemm(x, w, { out: y });
      w.scales.dispose(); // not through w.dispose(): the TS weight still says live, the native header says freed
      assert.throws(
        () => m.gemm(x, w, { out: y }),
        (e) => e instanceof m.DisposedError && e.code === 'MARLIN_E_DISPOSED' && /w\.scales/.test(e.message),
      );
      m.deviceSynchronize();
    } finally {
      for (const r of [w, x, y]) r.dispose();
    }
  });

  test('x, out, bias or the stream disposed between cached calls throw DisposedError', () => {
    const w = smallWeight(721);
    const mk = () => smallX(722);
    const b = m.Tensor.from(makeBias({ N: 256, dtype: 'fp16', seed: 723 }), [256], 'fp16');
    const y = m.Tensor.empty([4, 256], 'fp16');
    const s = m.Stream.create();
    try {
      const x = mk();
      m.gemm(x, w, { out: y, bias: b, stream: s });
      x.dispose();
      assert.throws(() => m.gemm(x, w, { out: y, bias: b, stream: s }), m.DisposedError, 'x');
      const x2 = mk();
      const y2 = m.Tensor.empty([4, 256], 'fp16');
      m.gemm(x2, w, { out: y2, stream: s });
      y2.dispose();
      assert.throws(() => m.gemm(x2, w, { out: y2, stream: s }), m.DisposedError, 'out');
      s.syncSync();
      s.dispose();
      assert.throws(() => m.gemm(x2, w, { out: y, stream: s }), m.DisposedError, 'stream');
      const b2 = m.Tensor.from(makeBias({ N: 256, dtype: 'fp16', seed: 724 }), [256], 'fp16');
      m.gemm(x2, w, { out: y, bias: b2 });
      b2.dispose();
      assert.throws(() => m.gemm(x2, w, { out: y, bias: b2 }), m.DisposedError, 'bias');
      m.deviceSynchronize();
      x2.dispose();
    } finally {
      for (const r of [w, b, y, s]) r.dispose();
    }
  });

  test('disposing weights frees their native plans; 300 upload / gemm / dispose cycles leave memory and plans flat', () => {
    const packed = m.pack(makeWeight({ K: 1024, N: 512, groupSize: 128, dtype: 'fp16', actOrder: true, seed: 801 }));
    const x = {};
    for (const M of [1, 8, 33, 64])
      x[M] = m.Tensor.from(makeX({ M, K: 1024, dtype: 'fp16', seed: 800 + M }), [M, 1024], 'fp16');
    const s = m.Stream.create();
    try {
      // Warm: the stream's workspace for the largest problem exists before the baseline.
      const w0 = m.uploadPacked(packed);
      for (const M of [1, 8, 33, 64]) m.gemm(x[M], w0, { stream: s }).dispose();
      w0.dispose();
      s.syncSync();
      m.deviceSynchronize();
      const plans0 = m.livePlans();
      const mem0 = m.memory();
      const free0 = m.memGetInfo().free;

      const w1 = m.uploadPacked(packed);
      for (const M of [1, 8, 33, 64]) m.gemm(x[M], w1, { stream: s }).dispose();
      assert.equal(m.livePlans(), plans0 + 4, 'one native plan per M');
      w1.dispose();
      assert.equal(m.livePlans(), plans0, 'weight dispose destroys its plans');

      for (let i = 0; i < 300; i++) {
        const w = m.uploadPacked(packed);
        const M = [1, 8, 33, 64][i % 4];
        m.gemm(x[M], w, { stream: s }).dispose();
        w.dispose();
      }
      s.syncSync();
      m.deviceSynchronize();
      const mem1 = m.memory();
      assert.equal(m.livePlans(), plans0, 'native plans leaked');
      assert.equal(mem1.liveTensors, mem0.liveTensors, 'live tensor count changed');
      assert.equal(mem1.nativeLiveBytes, mem0.nativeLiveBytes, 'native live bytes changed');
      assert.ok(free0 - m.memGetInfo().free <= 2 * 2 ** 20, 'free device memory dropped');
    } finally {
      s.dispose();
      for (const t of Object.values(x)) t.dispose();
    }
  });
});

describe('prepared plans: cluster split-K', { skip }, () => {
  test('gemmPlan reports the native launch: split-K across a cluster of `splits` blocks on sm_90 where it fits one wave, else 1', () => {
    const sm90 = gate.probe.devices[0].major === 9;
    // Llama-3-8B qkv at M = 1 (config 0, 4 splits, 192 blocks: one wave as blocks and as clusters of 4) and gate_up
    // (no split-K). docs/kernel-design.md section 5.
    for (const [N, K, clustered] of [
      [6144, 4096, true],
      [28672, 4096, false],
    ]) {
      const w = m.uploadPacked(m.pack(makeWeight({ K, N, groupSize: 128, dtype: 'fp16' })));
      try {
        const plans = m.livePlans();
        const p = m.gemmPlan(1, w);
        assert.equal(m.livePlans(), plans + 1, 'gemmPlan prepares the native plan');
        const want = sm90 && clustered ? p.splits : 1;
        assert.ok(!clustered || p.splits > 1, `N=${N} K=${K}: dispatch chose ${p.splits} splits`);
        assert.equal(p.clusterSize, want, `N=${N} K=${K}: config ${p.configId}, ${p.splits} splits`);
        // gemm reuses that plan.
        const x = m.Tensor.from(makeX({ M: 1, K, dtype: 'fp16' }), [1, K], 'fp16');
        const y = m.gemm(x, w);
        m.deviceSynchronize();
        assert.equal(m.livePlans(), plans + 1, 'gemm made no second plan');
        for (const t of [x, y]) t.dispose();
      } finally {
        w.dispose();
      }
    }
  });
});

describe('prepared plans: balanced last wave', { skip }, () => {
  // A one-split launch whose tiles fill whole waves and part of one more runs the column blocks past the whole waves
  // as a second, split-K launch from a column offset (docs/kernel-design.md "Balanced last wave"). The warp-specialised
  // rows exist on sm_90 only; elsewhere dispatch never asks for it.
  const sm90 = () => gate.probe.devices[0].major === 9;

  test('Llama-3-70B qkv at M = 512: dispatch asks for it, the native plan runs it, the output matches the reference', async (t) => {
    if (!sm90()) return t.skip('warp-specialised rows: sm_90 only');
    const [M, K, N] = [512, 8192, 10240];
    const w = m.uploadPacked(m.pack(makeWeight({ K, N, groupSize: 128, dtype: 'fp16' })));
    try {
      const p = m.gemmPlan(M, w);
      assert.equal(p.splits, 1);
      assert.ok(p.tailSplits >= 2, `dispatch chose config ${p.configId} / ${p.splits} splits / tail ${p.tailSplits}`);
      assert.ok(p.tailBlocks > 0, `the native plan made one launch (tail ${p.tailSplits}, ${p.tailBlocks} blocks)`);
    } finally {
      w.dispose();
    }
    await checkGemm({ M, K, N, dtype: 'fp16', bias: true, seed: 61 });
  });

  for (const spec of [
    // Config 13 (128 x 128, one block per SM): 140 column blocks, so 8 past the first wave on 132 SMs.
    { M: 8, N: 17920, K: 1024, dtype: 'bf16', sym: false, actOrder: true, bias: true, tailSplits: 3, configId: 13 },
    // Config 19 (64 x 128, two blocks per SM), two token blocks, a partial last k-tile.
    { M: 100, N: 34560, K: 1040, dtype: 'fp16', sym: true, actOrder: false, bias: false, tailSplits: 2, configId: 19 },
  ]) {
    const { M, N, K, configId, tailSplits } = spec;
    test(`config ${configId} M=${M} N=${N} K=${K} ${spec.dtype}, tail split ${tailSplits}: equals the reference`, async (t) => {
      if (!sm90()) return t.skip('warp-specialised rows: sm_90 only');
      const config = { configId, splits: 1, tailSplits };
      const w = m.uploadPacked(m.pack(makeWeight({ K, N, groupSize: 128, dtype: spec.dtype })));
      try {
        const p = m.gemmPlan(M, w, config);
        assert.equal(p.tailSplits, tailSplits);
        assert.ok(p.tailBlocks > 0, `config ${configId}: no second launch (${p.tailBlocks} blocks)`);
      } finally {
        w.dispose();
      }
      await checkGemm({ ...spec, groupSize: 128, seed: 71 + M, config });
    });
  }
});
