// Robustness: determinism, concurrent streams, CUDA-graph replay, allocation churn, dispose semantics, buffer
// hand-off between addon instances, async copies that do not block the event loop, workspace sizing agreement.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bitsEqual, m, makeBias, makeWeight, makeX, requireGpu, rng } from './lib.mjs';

const gate = requireGpu(test);
const skip = gate.skip;

function problem({ M, N, K, dtype = 'fp16', groupSize = 128, sym = false, actOrder = true, seed = 21 }) {
  const packed = m.pack(makeWeight({ K, N, groupSize, dtype, sym, actOrder, seed }));
  return { packed, x: makeX({ M, K, dtype, seed: seed + 1 }), bias: makeBias({ N, dtype, seed: seed + 2 }) };
}

/**
 * A weight for dependent chains (fp16, group 128): values must stay O(1) through the chain, or the comparison is
 * between infinities. Zero-mean codes (1..15 against zero point 8; 0..15 against random zero points) and scales with a
 * gain of ~1 per call (sqrt(K) * rms(q - z) * s).
 */
function chainWeight({ K, N, sym, actOrder, seed }) {
  const q = makeWeight({ K, N, groupSize: 128, dtype: 'fp16', sym, actOrder, seed });
  const r = rng(seed + 1);
  if (sym) for (let i = 0; i < q.codes.length; i++) q.codes[i] = 1 + r.int(15);
  const s0 = 1 / (Math.sqrt(K) * (sym ? 4.32 : 6.52));
  const scales = Float32Array.from({ length: q.scales.length }, () => s0 * (0.9 + 0.2 * r.next()));
  return m.uploadPacked(m.pack({ ...q, scales: m.toHalfBits(scales, 'fp16') }));
}

/**
 * Runs `chain(overlap)` (gemm calls on stream `s` through the fp16 buffers `buf`) from buf[0] = x and the other
 * buffers NaN-poisoned: serially, overlapped, and as a captured graph replayed. The serial result must be finite in
 * the buffers `finite`, and the other two must equal it bit for bit in every buffer.
 */
async function expectChainBitwise(s, buf, x, finite, label, chain) {
  const reset = () => {
    buf[0].copyFromHost(x, s);
    for (const b of buf.slice(1)) b.fillBytes(0xff, s); // NaN poison
  };
  const result = async () => {
    const out = [];
    for (const b of buf) out.push(await b.toHost(s));
    return out;
  };
  reset();
  chain(false);
  const serial = await result();
  for (const i of finite) {
    assert.ok(
      serial[i].every((v) => (v & 0x7c00) !== 0x7c00),
      `${label}: the serial chain's output in buffer ${i} is finite`,
    );
  }
  reset();
  chain(true);
  const overlapped = await result();
  const g = s.capture(() => chain(true));
  try {
    reset();
    g.replay(s);
    const replayed = await result();
    for (let i = 0; i < buf.length; i++) {
      bitsEqual(overlapped[i], serial[i], `${label} buffer ${i}: overlapped vs serial`);
      bitsEqual(replayed[i], serial[i], `${label} buffer ${i}: graph replay vs serial`);
    }
  } finally {
    g.dispose();
  }
}

describe('determinism and concurrency', { skip }, () => {
  test('two runs are bitwise equal (split-K reduction is deterministic), for every configuration', async () => {
    const { packed, x: xb } = problem({ M: 64, N: 4096, K: 4096 });
    const w = m.uploadPacked(packed);
    const x = m.Tensor.from(xb, [64, 4096], 'fp16');
    try {
      // Every built INT4 configuration the device can run (ids need not be contiguous; experimental rows are not
      // built; the hopper family is sm_90 only). The 8-bit rows: variants.test.mjs.
      const sm90 = gate.probe.devices[0].major === 9;
      const ids = m
        .variantConfigs('int4')
        .filter((c) => !m.isExperimental(c) && (c.kernel !== 'hopper' || sm90))
        .map((c) => c.id);
      assert.ok(ids.length >= 4, `expected the table's configurations, got ${ids.join(', ')}`);
      for (const id of ids) {
        for (const splits of [1, 4]) {
          const y1 = m.gemm(x, w, { config: { configId: id, splits } });
          const y2 = m.gemm(x, w, { config: { configId: id, splits } });
          bitsEqual(await y1.toHost(), await y2.toHost(), `config ${id} splits ${splits}`);
          y1.dispose();
          y2.dispose();
        }
      }
    } finally {
      w.dispose();
      x.dispose();
    }
  });

  test('two streams at once (own workspaces) equal sequential results', async () => {
    const a = problem({ M: 16, N: 4096, K: 7392, seed: 31 });
    const b = problem({ M: 128, N: 2048, K: 4096, seed: 41 });
    const wa = m.uploadPacked(a.packed);
    const wb = m.uploadPacked(b.packed);
    const xa = m.Tensor.from(a.x, [16, 7392], 'fp16');
    const xb = m.Tensor.from(b.x, [128, 4096], 'fp16');
    const s1 = m.Stream.create();
    const s2 = m.Stream.create();
    try {
      const ra = await m.gemm(xa, wa).toHost();
      const rb = await m.gemm(xb, wb).toHost();
      const ya = m.Tensor.empty([16, 4096], 'fp16').fillBytes(0xff);
      const yb = m.Tensor.empty([128, 2048], 'fp16').fillBytes(0xff);
      m.deviceSynchronize();
      for (let i = 0; i < 20; i++) {
        m.gemm(xa, wa, { out: ya, stream: s1 });
        m.gemm(xb, wb, { out: yb, stream: s2 });
      }
      bitsEqual(await ya.toHost(s1), ra, 'stream 1');
      bitsEqual(await yb.toHost(s2), rb, 'stream 2');
      ya.dispose();
      yb.dispose();
    } finally {
      for (const r of [s1, s2, wa, wb, xa, xb]) r.dispose();
    }
  });

  test('CUDA-graph replay equals eager execution bitwise', async () => {
    const { packed, x: xb, bias } = problem({ M: 8, N: 8192, K: 3584, seed: 51 });
    const w = m.uploadPacked(packed);
    const x = m.Tensor.from(xb, [8, 3584], 'fp16');
    const b = m.Tensor.from(bias, [8192], 'fp16');
    const s = m.Stream.create();
    const y = m.Tensor.empty([8, 8192], 'fp16');
    try {
      m.gemm(x, w, { out: y, bias: b, stream: s }); // eager: sizes the workspace
      const eager = await y.toHost(s);
      y.fillBytes(0xff, s);
      const g = s.capture(() => {
        for (let i = 0; i < 5; i++) m.gemm(x, w, { out: y, bias: b, stream: s });
      });
      try {
        y.fillBytes(0xff, s);
        g.replay(s);
        bitsEqual(await y.toHost(s), eager, 'graph replay');
        g.replay(s);
        g.replay(s);
        bitsEqual(await y.toHost(s), eager, 'graph replayed again');
      } finally {
        g.dispose();
      }
    } finally {
      for (const r of [s, w, x, b, y]) r.dispose();
    }
  });

  test('overlapped launches: dependent gemm chains equal the serial launches bitwise, eager and replayed', async () => {
    // Each call reads what the previous one wrote and overwrites what the one before read (two ping-pong buffers),
    // through decode, 2-block and 1-block warp-specialised rows with split-K (one shared workspace) and an act-order
    // gather; on sm_90 every call but the first may start during the previous one's tail (gemm's overlap default).
    const K = 2048;
    const w = [
      chainWeight({ K, N: K, sym: true, actOrder: false, seed: 81 }),
      chainWeight({ K, N: K, sym: false, actOrder: true, seed: 82 }),
    ];
    const s = m.Stream.create();
    try {
      for (const M of [1, 16, 48, 256]) {
        const buf = [m.Tensor.empty([M, K], 'fp16'), m.Tensor.empty([M, K], 'fp16')];
        try {
          // The last call (i = 5) writes buffer 0: finite everywhere (no NaN poison or overflow got through).
          await expectChainBitwise(s, buf, problem({ M, N: K, K, seed: 83 + M }).x, [0], `M=${M}`, (overlap) => {
            for (let i = 0; i < 6; i++) m.gemm(buf[i & 1], w[i & 1], { out: buf[(i + 1) & 1], stream: s, overlap });
          });
        } finally {
          for (const b of buf) b.dispose();
        }
      }
    } finally {
      for (const r of [s, ...w]) r.dispose();
    }
  });

  test('overlapped launches through a balanced last wave: a dependent chain equals the serial launches bitwise', async (t) => {
    if (gate.probe.devices[0].major !== 9) return t.skip('warp-specialised rows: sm_90 only');
    // x [M, 256] -> W1 (256 -> 17920, config 13 with a balanced last wave: 140 column blocks, the last 8 past the
    // first wave as a second, split-K launch) -> [M, 17920] -> W2 (17920 -> 256, dispatch's launch) -> x' ...: every
    // launch reads what the one before wrote, and the two launches of W1 share the stream's workspace with W2's.
    const [K1, N1] = [256, 17920];
    const w1 = chainWeight({ K: K1, N: N1, sym: true, actOrder: false, seed: 91 });
    const w2 = chainWeight({ K: N1, N: K1, sym: true, actOrder: false, seed: 92 });
    const s = m.Stream.create();
    const tail = { configId: 13, splits: 1, tailSplits: 2 };
    try {
      for (const M of [8, 100]) {
        assert.ok(m.gemmPlan(M, w1, tail).tailBlocks > 0, `M=${M}: W1's plan has no second launch`);
        const buf = [m.Tensor.empty([M, K1], 'fp16'), m.Tensor.empty([M, N1], 'fp16')];
        try {
          const x = makeX({ M, K: K1, dtype: 'fp16', seed: 93 + M });
          await expectChainBitwise(s, buf, x, [0, 1], `M=${M}`, (overlap) => {
            for (let i = 0; i < 3; i++) {
              m.gemm(buf[0], w1, { out: buf[1], stream: s, overlap, config: tail });
              m.gemm(buf[1], w2, { out: buf[0], stream: s, overlap });
            }
          });
        } finally {
          for (const b of buf) b.dispose();
        }
      }
    } finally {
      for (const r of [s, w1, w2]) r.dispose();
    }
  });

  test('growing the workspace during capture is refused with MARLIN_E_WORKSPACE', () => {
    const { packed, x: xb } = problem({ M: 512, N: 4096, K: 4096, actOrder: true, seed: 61 });
    const w = m.uploadPacked(packed);
    const x = m.Tensor.from(xb, [512, 4096], 'fp16');
    const y = m.Tensor.empty([512, 4096], 'fp16');
    const s = m.Stream.create();
    try {
      assert.throws(
        () => s.capture(() => m.gemm(x, w, { out: y, stream: s })),
        (e) => e.code === m.ErrorCode.WORKSPACE && /before capture/.test(e.message),
      );
      // The stream is usable afterwards.
      m.gemm(x, w, { out: y, stream: s });
      s.syncSync();
    } finally {
      for (const r of [s, w, x, y]) r.dispose();
    }
  });

  test('core and native workspace sizes agree (core formula >= what the kernel needs)', () => {
    const addon = m.loadDenseBinary().addon;
    for (const [M, N, K, actOrder] of [
      [1, 4096, 4096, false],
      [16, 14336, 4096, true],
      [300, 3584, 18944, false],
      [512, 10240, 8192, false], // a balanced last wave on sm_90 (Llama-3-70B qkv): its partials, as native cuts it
    ]) {
      const packed = m.pack(makeWeight({ K, N, groupSize: 128, dtype: 'fp16', actOrder }));
      const w = m.uploadPacked(packed);
      try {
        const plan = m.gemmPlan(M, w);
        const params = new Int32Array(m.GemmParam.count);
        Object.assign(params, { [m.GemmParam.dtype]: 0, [m.GemmParam.m]: M, [m.GemmParam.n]: N, [m.GemmParam.k]: K });
        params[m.GemmParam.nPadded] = w.Np;
        params[m.GemmParam.kPadded] = w.Kp;
        params[m.GemmParam.bits] = 4;
        params[m.GemmParam.groupSize] = 128;
        params[m.GemmParam.lda] = K;
        params[m.GemmParam.ldc] = N;
        params[m.GemmParam.configId] = plan.configId;
        params[m.GemmParam.splits] = plan.splits;
        params[m.GemmParam.hasPerm] = actOrder ? 1 : 0;
        params[m.GemmParam.tailSplits] = plan.tailSplits;
        const native = addon.workspaceBytes(params);
        const core = m.workspaceBytes(
          { M, N, K, actOrder },
          m.dispatch(
            { M, N, K, groupSize: 128, bits: 4, dtype: 'fp16', hasZeros: false, actOrder },
            {
              computeMajor: gate.probe.devices[0].major,
              computeMinor: gate.probe.devices[0].minor,
              smCount: gate.probe.devices[0].smCount,
              maxSharedMemoryPerBlock: gate.probe.devices[0].maxSmemPerBlockOptin,
              // As gemmPlan sees the device: the code it runs (compute_80 PTX in a PTX-only build) picks the rows.
              kernelArch: addon.kernelArch?.(0),
            },
          ),
        );
        assert.ok(core >= native, `M=${M} N=${N} K=${K}: core workspaceBytes ${core} < native ${native}`);
        if (plan.tailSplits > 1) assert.equal(core, native, `M=${M} N=${N} K=${K}: balanced last wave's partials`);
      } finally {
        w.dispose();
      }
    }
  });
});

describe('memory and lifetime', { skip }, () => {
  test('10,000 alloc/free cycles leave device memory where it was', () => {
    m.deviceSynchronize();
    const before = m.memGetInfo().free;
    const live0 = m.memory();
    for (let i = 0; i < 10_000; i++) {
      const t = m.Tensor.empty([1024 + (i % 7) * 256], 'fp16');
      t.dispose();
    }
    m.deviceSynchronize();
    const after = m.memGetInfo().free;
    const live1 = m.memory();
    assert.equal(live1.liveTensors, live0.liveTensors, 'live tensor count changed');
    assert.equal(live1.nativeLiveBytes, live0.nativeLiveBytes, 'native live bytes changed');
    assert.ok(before - after <= 2 * 2 ** 20, `free device memory dropped by ${before - after} bytes`);
  });

  test('use after dispose throws DisposedError, in JS and in the addon', async () => {
    const t = m.Tensor.from(new Uint16Array(64), [8, 8], 'fp16');
    const handle = t.nativeHandle();
    const rt = t.nativeRuntime();
    t.dispose();
    t.dispose(); // idempotent
    assert.throws(
      () => t.toHostSync(),
      (e) => e instanceof m.DisposedError,
    );
    await assert.rejects(t.toHost(), (e) => e instanceof m.DisposedError);
    assert.throws(
      () => rt.memcpyD2H(new Uint16Array(64), handle, 0, null),
      (e) => e.code === 'MARLIN_E_DISPOSED',
    );
    const { packed, x } = problem({ M: 4, N: 128, K: 256, actOrder: false });
    const w = m.uploadPacked(packed);
    const xt = m.Tensor.from(x, [4, 256], 'fp16');
    w.dispose();
    assert.throws(
      () => m.gemm(xt, w),
      (e) => e instanceof m.DisposedError,
    );
    xt.dispose();
  });

  test('dispose() during an async read defers the free until the copy finished', async () => {
    const data = Uint16Array.from({ length: 1 << 20 }, (_, i) => i & 0xffff);
    const t = m.Tensor.from(data, [1 << 20], 'fp16');
    const p = t.toHost();
    t.dispose();
    bitsEqual(await p, data, 'read racing dispose');
  });

  test('toHost() does not block the event loop', async () => {
    const t = m.Tensor.empty([64 << 20], 'u8').zero();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const reads = [];
    for (let i = 0; i < 8; i++) reads.push(t.toHost());
    await Promise.all(reads);
    clearInterval(timer);
    t.dispose();
    assert.ok(ticks > 0, 'no timer tick ran while 512 MiB were being copied');
  });

  test('a device pointer handed to another addon instance (borrowed buffer) reads the same memory', async () => {
    const data = Uint32Array.from({ length: 4096 }, (_, i) => i * 2654435761);
    const owner = m.Tensor.from(data, [4096], 'u32');
    // The same handle ABI through a borrowed wrapper: what a second addon (another static cudart) receives.
    const view = m.Tensor.fromForeign(owner.pointer, [4096], 'u32');
    assert.equal(view.owned, false);
    bitsEqual(await view.toHost(), data, 'borrowed view');
    const copy = m.Tensor.empty([4096], 'u32');
    copy.copyFrom(view);
    view.dispose(); // forgets, never frees
    bitsEqual(await owner.toHost(), data, 'owner after borrowed dispose');
    bitsEqual(await copy.toHost(), data, 'device copy through the borrowed handle');
    owner.dispose();
    copy.dispose();
  });
});

describe('checkpoint to GPU', { skip }, () => {
  test('loadLinears: a packed container with a copied-through bias runs on the GPU like the CPU reference', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'marlin-suite-'));
    try {
      const K = 512;
      const N = 256;
      const M = 5;
      const weight = m.pack(makeWeight({ K, N, groupSize: 128, dtype: 'fp16', sym: false, actOrder: true, seed: 77 }));
      const biasBits = makeBias({ N, dtype: 'fp16', seed: 78 });
      const src = join(dir, 'bias.safetensors');
      const writer = await m.SafetensorsWriter.create(src, [{ name: 'layer.bias', dtype: 'F16', shape: [N] }]);
      await writer.write('layer.bias', biasBits);
      await writer.finish();
      const source = await m.SafetensorsReader.open(src);
      const path = join(dir, 'model.marlin.safetensors');
      await m.writePacked(path, [['layer', weight]], { passthrough: { source, names: ['layer.bias'] } });
      await source.close();

      const layers = await m.loadLinears(path);
      const layer = layers.get('layer');
      assert.ok(layer, 'layer loaded');
      const xBits = makeX({ M, K, dtype: 'fp16', seed: 79 });
      const x = m.Tensor.from(xBits, [M, K], 'fp16');
      const y = layer.forward(x);
      const got = await y.toHost();
      const bound = m.denseErrorBound(xBits, weight, { M, dtype: 'fp16', bias: biasBits });
      const err = m.maxAbsDeviation(got, 'fp16', bound.oracle);
      assert.ok(err <= bound.tolerance, `max |gpu - f64 oracle| = ${err} > tolerance ${bound.tolerance}`);
      for (const t of [x, y]) t.dispose();
      for (const l of layers.values()) l.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
