// @marlin/moe on the GPU: the whole layer (alignment, gather, both grouped GEMMs, activation, weighted sum) against
// core's CPU reference (referenceMoe) over expert counts, top-k, M across every block boundary and one M >= 16384,
// routing edge cases (slots to no expert, experts without tokens, every token on one expert, expert maps with
// non-local experts, invalid ids in device tensors), every weight type, fp16 / bf16, biases, gpt-oss SwiGLU, weight on
// the input, every M tile the device runs; determinism, CUDA graph replay == eager, two streams, the device router
// against moeRouterTopK, and create / forward / dispose cycles.
//
// Tolerance (why not bit for bit): the kernels round at exactly the reference's points (moe.h, referenceMoe) and sum
// each output in f32, but in another order (tensor-core fragments, split-K), and evaluate the activation in f32 with
// expf where the reference uses f64. A different f32 order moves a sum by ~2^-24 relative, so a T rounding flips by one
// ulp in rare elements (probability ~2^-13 for fp16); the activation's f32 error flips a T rounding of `a` as rarely.
// A flipped ulp of h or a reaches the output through the second GEMM scaled by |w2| (summed over I) and the routing
// weights, so the bound is a few ulps of T at the magnitude of the token's output row: |gpu - ref| <= 8 ulp_T(max |ref
// row|). Tightness is checked too: the mean |gpu - ref| of a call must stay within 1 ulp_T of the row maxima, and
// outputs the reference has at exactly 0 (tokens routed nowhere) must be exactly 0. A wrong expert, scale, permutation
// or weight is off by O(1). Not a bit-identical share: the mma.sync rows post-scale a group of >= 128 rows in f32
// (gemm_kernel.cuh) instead of rounding each weight to T, which moves about half the outputs by an ulp on random data.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bitsEqual, m, makeBias, makeWeight, makeX, requireGpu, rng } from './lib.mjs';

const gate = requireGpu(test);
const moe = m.moe;
const moeProbe = gate.ok ? moe.probe() : null;
if (gate.ok && !moeProbe.ok && process.env.MARLIN_REQUIRE_GPU === '1') {
  test('@marlin/moe is usable (MARLIN_REQUIRE_GPU=1)', () =>
    assert.fail(`${moeProbe.error?.code}: ${moeProbe.error?.message}`));
}
const skip = gate.skip || (gate.ok && !moeProbe.ok ? `@marlin/moe unusable: ${moeProbe.error?.code}` : false);
export const results = [];

// ---- problem generation ------------------------------------------------------------------------------------------

/** Stacked w13 [E][2I][H] and w2 [E][H][I] from random codes (lib.makeWeight), one format for every expert. */
function makeExperts({
  E,
  H,
  I,
  dtype,
  variant = 'int4',
  sym = true,
  actOrder = false,
  groupSize = 128,
  scaleLayout = 'group',
  seed = 1,
}) {
  const spec = { dtype, variant, sym, actOrder, scaleLayout };
  const gs = (K) => (groupSize === 'per-channel' ? K : Math.min(groupSize, K));
  // lib's random 8-bit codes span +-128 (INT8) or up to 448 (e4m3) steps of a ~0.02 scale; two chained GEMMs and a
  // product of gate and up grow that cubically, so 8-bit scales shrink by 2^-4 / 2^-5 to keep outputs near 1 (fp16
  // would overflow otherwise). Powers of two: the weights stay exactly what the codes and scales say.
  const shrink = variant === 'int8' ? 2 ** -4 : variant === 'fp8' ? 2 ** -5 : 1;
  const weight = (K, N, s) => {
    const q = makeWeight({ ...spec, K, N, groupSize: gs(K), seed: s });
    if (shrink === 1) return q;
    return {
      ...q,
      scales: m.toHalfBits(
        m.fromHalfBits(q.scales, dtype).map((v) => v * shrink),
        dtype,
      ),
    };
  };
  const w13 = m.packExperts(Array.from({ length: E }, (_, e) => weight(H, 2 * I, seed + 2 * e)));
  const w2 = m.packExperts(Array.from({ length: E }, (_, e) => weight(I, H, seed + 2 * e + 1)));
  return { w13, w2 };
}

/** Seeded routing [M][k]: distinct experts per token from `pool` (default 0..E-1), positive weights summing to 1. */
function makeRouting(M, E, k, { seed = 5, pool, none = 0 } = {}) {
  const r = rng(seed);
  const from = pool ?? Array.from({ length: E }, (_, e) => e);
  const topkIds = new Int32Array(M * k);
  const topkWeights = new Float32Array(M * k);
  for (let t = 0; t < M; t++) {
    const choice = [...from];
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const i = r.int(choice.length);
      topkIds[t * k + j] = r.next() < none ? -1 : choice[i];
      choice.splice(i, 1);
      topkWeights[t * k + j] = 0.2 + r.next();
      sum += topkWeights[t * k + j];
    }
    for (let j = 0; j < k; j++) topkWeights[t * k + j] = Math.fround(topkWeights[t * k + j] / sum);
  }
  return { topkIds, topkWeights };
}

// ---- comparison --------------------------------------------------------------------------------------------------

function compare(got, ref, { M, H, dtype, label }) {
  const dec = dtype === 'fp16' ? m.f16ToF32 : m.bf16ToF32;
  let exact = 0;
  let worst = 0;
  let errSum = 0;
  let ulpSum = 0;
  for (let t = 0; t < M; t++) {
    let rowMax = 0;
    for (let n = 0; n < H; n++) rowMax = Math.max(rowMax, Math.abs(dec(ref[t * H + n])));
    const tol = 8 * m.ulpOf(rowMax, dtype);
    ulpSum += H * m.ulpOf(rowMax, dtype);
    for (let n = 0; n < H; n++) {
      const i = t * H + n;
      if (got[i] === ref[i]) {
        exact++;
        continue;
      }
      const g = dec(got[i]);
      const w = dec(ref[i]);
      if (!Number.isFinite(g))
        assert.fail(`${label}: output [${t}, ${n}] is ${g} (0x${got[i].toString(16)}): not written or wrong`);
      if (w === 0 && rowMax === 0)
        assert.fail(`${label}: token ${t} is routed nowhere, but output [${t}, ${n}] = ${g}`);
      const err = Math.abs(g - w);
      errSum += err;
      worst = Math.max(worst, err / tol);
      if (err > tol) {
        assert.fail(
          `${label}: output [${t}, ${n}] = ${g}, reference ${w}: |diff| ${err} > ${tol} (8 ulp of row max ${rowMax})`,
        );
      }
    }
  }
  const frac = exact / (M * H);
  const meanUlps = ulpSum > 0 ? errSum / ulpSum : 0;
  assert.ok(meanUlps <= 1, `${label}: mean |diff| is ${meanUlps.toFixed(2)} ulp of the row maxima (> 1)`);
  return { label, checked: M * H, exact: frac, meanUlps, worstOfTolerance: worst };
}

/**
 * Builds a layer, runs one forward per M (output poisoned with NaN first) and checks it against referenceMoe with
 * the same options. `spec`: E, H, I, dtype, variant, weight options, layer options, topk, Ms, routing options, config.
 */
async function checkLayer(spec) {
  const {
    E,
    H,
    I,
    dtype = 'fp16',
    topk,
    Ms,
    routingOptions = {},
    layerOptions = {},
    config,
    deviceRouting = false,
  } = spec;
  const { w13, w2 } = makeExperts({ ...spec, dtype });
  const biasOpt = spec.bias
    ? { bias13: makeBias({ N: E * 2 * I, dtype, seed: 71 }), bias2: makeBias({ N: E * H, dtype, seed: 72 }) }
    : {};
  const layer = moe.MoeLayer.fromPacked(w13, w2, { ...layerOptions, ...biasOpt });
  const numExperts = layerOptions.numExperts ?? E;
  try {
    for (const M of Ms) {
      const label = `${spec.variant ?? 'int4'} E=${E} H=${H} I=${I} ${dtype} topk=${topk} M=${M}${spec.title ? ` ${spec.title}` : ''}`;
      const xBits = makeX({ M, K: H, dtype, seed: 1000 + M });
      const r = makeRouting(M, numExperts, topk, { seed: 7 * M + topk, ...routingOptions });
      const x = m.Tensor.from(xBits, [M, H], dtype);
      const out = m.Tensor.empty([M, H], dtype).fillBytes(0xff);
      const ids = deviceRouting ? m.Tensor.from(r.topkIds, [M, topk], 'i32') : null;
      const wts = deviceRouting ? m.Tensor.from(r.topkWeights, [M, topk], 'f32') : null;
      let got;
      try {
        layer.forward(x, ids ? { topkIds: ids, topkWeights: wts } : r, { out, config });
        got = await out.toHost();
      } finally {
        for (const t of [x, out, ids, wts]) t?.dispose();
      }
      const ref = m.referenceMoe(xBits, w13, w2, {
        M,
        dtype,
        ...r,
        numExperts,
        expertMap: layerOptions.expertMap,
        activation: layerOptions.activation,
        swigluAlpha: layerOptions.swigluAlpha,
        swigluLimit: layerOptions.swigluLimit,
        applyRouterWeightOnInput: layerOptions.weightOnInput,
        bias13: biasOpt.bias13,
        bias2: biasOpt.bias2,
      }).bits;
      results.push(compare(got, ref, { M, H, dtype, label }));
    }
  } finally {
    layer.dispose();
  }
}

// Every M tile boundary the alignment may pad at (tiles 8 .. 128), and past them.
const M_SWEEP = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 300];

describe('MoE layer vs the CPU reference: expert counts and top-k', { skip }, () => {
  for (const E of [1, 8, 128, 256])
    for (const topk of [1, 2, 4, 8].filter((k) => k <= E))
      test(`E=${E} topk=${topk}`, () => checkLayer({ E, H: 64, I: 96, topk, Ms: [1, 33, 130], seed: E + topk }));
});

describe('MoE layer vs the CPU reference: M across every block boundary', { skip }, () => {
  test('int4 fp16 E=8 topk=2', () => checkLayer({ E: 8, H: 64, I: 32, topk: 2, Ms: M_SWEEP }));
  test('int4 bf16 E=64 topk=6 (Qwen3 TP shard I=96)', () =>
    checkLayer({ E: 64, H: 128, I: 96, dtype: 'bf16', topk: 6, Ms: M_SWEEP, seed: 3 }));
  test('M=16384 (H=64, I=32, E=8, topk=2)', () => checkLayer({ E: 8, H: 64, I: 32, topk: 2, Ms: [16384], seed: 9 }));
});

describe('MoE layer vs the CPU reference: every M tile and split-K the device runs', { skip }, () => {
  test('each tile as the alignment block; forced split-K 3 / 4', async () => {
    const device = gate.probe.devices[0];
    for (const variant of ['int4', 'int8', 'fp8']) {
      const tiles = [
        ...new Set(
          m
            .moeConfigs(variant)
            .filter((c) => !c.experimental && (c.kernel !== 'hopper' || device.major === 9))
            .map((c) => c.mTile),
        ),
      ];
      assert.ok(tiles.length >= 3, `${variant}: tiles ${tiles}`);
      const layer = { E: 8, H: 256, I: 128, variant, topk: 2 };
      for (const B of tiles) {
        await checkLayer({ ...layer, Ms: [5, 40], config: { blockSize: B }, title: `tile ${B}` });
        await checkLayer({
          ...layer,
          Ms: [3, 70],
          config: { blockSize: B, splits13: 4, splits2: 3 },
          title: `tile ${B} split-K`,
        });
      }
    }
  });
});

describe('MoE layer vs the CPU reference: routing edge cases', { skip }, () => {
  test('slots routed to no expert (-1), and tokens routed nowhere give exactly 0', () =>
    checkLayer({ E: 8, H: 64, I: 32, topk: 4, Ms: [1, 9, 100], routingOptions: { none: 0.4 } }));
  test('experts with no tokens (only 3 of 32 experts routed)', () =>
    checkLayer({ E: 32, H: 64, I: 32, topk: 2, Ms: [1, 50, 200], routingOptions: { pool: [3, 17, 30] } }));
  test('every token on one expert (M=300, topk 1)', () =>
    checkLayer({ E: 16, H: 64, I: 32, topk: 1, Ms: [300], routingOptions: { pool: [11] } }));
  test('expert map: 4 local experts of 16, slots to the other 12 add nothing', () =>
    checkLayer({
      E: 4,
      H: 64,
      I: 32,
      topk: 4,
      Ms: [1, 17, 130],
      layerOptions: {
        numExperts: 16,
        expertMap: Int32Array.from({ length: 16 }, (_, e) => (e % 4 === 1 ? e >> 2 : -1)),
      },
    }));
  test('device-tensor routing equals host routing', () =>
    checkLayer({ E: 8, H: 64, I: 32, topk: 2, Ms: [1, 65], deviceRouting: true }));

  test('invalid ids in device tensors are skipped like -1 and counted', async () => {
    const E = 8;
    const H = 64;
    const I = 32;
    const M = 20;
    const k = 2;
    const { w13, w2 } = makeExperts({ E, H, I, dtype: 'fp16', seed: 41 });
    const layer = moe.MoeLayer.fromPacked(w13, w2);
    const r = makeRouting(M, E, k, { seed: 42 });
    const bad = r.topkIds.slice();
    bad[3] = E;
    bad[10] = 1000;
    bad[11] = -7;
    const xBits = makeX({ M, K: H, dtype: 'fp16', seed: 43 });
    const x = m.Tensor.from(xBits, [M, H], 'fp16');
    const ids = m.Tensor.from(bad, [M, k], 'i32');
    const wts = m.Tensor.from(r.topkWeights, [M, k], 'f32');
    const out = m.Tensor.empty([M, H], 'fp16').fillBytes(0xff);
    try {
      layer.forward(x, r, { out }); // sizes the default stream's workspace
      moe.resetInvalidExpertIds();
      layer.forward(x, { topkIds: ids, topkWeights: wts }, { out });
      const got = await out.toHost();
      assert.equal(await moe.invalidExpertIds(), 3);
      const cleaned = bad.map((id) => (id >= 0 && id < E ? id : -1));
      const ref = m.referenceMoe(xBits, w13, w2, {
        M,
        dtype: 'fp16',
        topkIds: cleaned,
        topkWeights: r.topkWeights,
      }).bits;
      results.push(compare(got, ref, { M, H, dtype: 'fp16', label: 'invalid device ids' }));
      // Host arrays are checked before anything launches.
      assert.throws(
        () => layer.forward(x, { ...r, topkIds: bad }),
        (e) => e instanceof m.ValueError,
      );
    } finally {
      for (const t of [layer, x, ids, wts, out]) t.dispose();
    }
  });
});

describe('MoE layer vs the CPU reference: weight types and dtypes', { skip }, () => {
  const cases = [
    { title: 'INT4 symmetric g128', variant: 'int4' },
    { title: 'INT4 zero points g32', variant: 'int4', sym: false, groupSize: 32 },
    { title: 'INT4 act-order g128', variant: 'int4', actOrder: true },
    { title: 'INT4 act-order + zero points g64', variant: 'int4', actOrder: true, sym: false, groupSize: 64 },
    { title: 'INT4 per-channel', variant: 'int4', groupSize: 'per-channel' },
    { title: 'INT8 symmetric g128', variant: 'int8' },
    { title: 'INT8 zero points g64', variant: 'int8', sym: false, groupSize: 64 },
    { title: 'FP8 per-channel', variant: 'fp8', groupSize: 'per-channel' },
    { title: 'FP8 group 64', variant: 'fp8', groupSize: 64 },
    { title: 'FP8 128x128 blocks', variant: 'fp8', scaleLayout: 'block' },
  ];
  for (const c of cases)
    for (const dtype of ['fp16', 'bf16'])
      test(`${c.title} ${dtype}`, () =>
        checkLayer({ ...c, E: 8, H: 256, I: 128, dtype, topk: 2, Ms: [1, 24, 129], seed: c.title.length }));
});

describe('MoE layer vs the CPU reference: bias, gpt-oss SwiGLU, weight on the input', { skip }, () => {
  for (const dtype of ['fp16', 'bf16']) {
    test(`${dtype} per-expert biases`, () =>
      checkLayer({ E: 8, H: 64, I: 32, dtype, topk: 2, Ms: [3, 70], bias: true }));
    test(`${dtype} swigluoai (alpha 1.702, limit 7) + biases`, () =>
      checkLayer({
        E: 8,
        H: 64,
        I: 32,
        dtype,
        topk: 4,
        Ms: [3, 70],
        bias: true,
        layerOptions: { activation: 'swigluoai' },
      }));
    test(`${dtype} swigluoai with another alpha / limit`, () =>
      checkLayer({
        E: 8,
        H: 64,
        I: 32,
        dtype,
        topk: 2,
        Ms: [9],
        layerOptions: { activation: 'swigluoai', swigluAlpha: 1.1, swigluLimit: 0.5 },
      }));
    test(`${dtype} weight on the input (topk 1 and 2)`, async () => {
      await checkLayer({ E: 8, H: 64, I: 32, dtype, topk: 1, Ms: [5, 80], layerOptions: { weightOnInput: true } });
      await checkLayer({ E: 8, H: 64, I: 32, dtype, topk: 2, Ms: [5], layerOptions: { weightOnInput: true } });
    });
  }
});

// ---- determinism, graphs, streams, router, lifetime -----------------------------------------------------------------

function setup({ E = 16, H = 128, I = 64, M = 77, k = 4, seed = 51, variant = 'int4' } = {}) {
  const { w13, w2 } = makeExperts({ E, H, I, dtype: 'fp16', variant, sym: false, seed });
  const layer = moe.MoeLayer.fromPacked(w13, w2);
  const r = makeRouting(M, E, k, { seed: seed + 1 });
  const x = m.Tensor.from(makeX({ M, K: H, dtype: 'fp16', seed: seed + 2 }), [M, H], 'fp16');
  const ids = m.Tensor.from(r.topkIds, [M, k], 'i32');
  const wts = m.Tensor.from(r.topkWeights, [M, k], 'f32');
  const dispose = () => {
    for (const t of [layer, x, ids, wts]) t.dispose();
  };
  return { layer, x, routing: { topkIds: ids, topkWeights: wts }, M, H, dispose };
}

describe('MoE layer: determinism, CUDA graphs, streams', { skip }, () => {
  test('two runs are bitwise equal, with and without split-K', async () => {
    const s = setup();
    try {
      for (const config of [undefined, { splits13: 4, splits2: 4 }]) {
        const a = await s.layer.forward(s.x, s.routing, { config }).toHost();
        const b = await s.layer.forward(s.x, s.routing, { config }).toHost();
        bitsEqual(a, b, `config ${JSON.stringify(config)}`);
      }
    } finally {
      s.dispose();
    }
  });

  test('CUDA-graph replay equals eager execution bitwise (routing and router logits on the device)', async () => {
    const st = m.Stream.create();
    const s = setup({ seed: 61 });
    const E = 16;
    const logits = m.Tensor.from(
      Float32Array.from({ length: s.M * E }, (_, i) => Math.sin(i * 1.3)),
      [s.M, E],
      'f32',
    );
    const out = m.Tensor.empty([s.M, s.H], 'fp16');
    const out2 = m.Tensor.empty([s.M, s.H], 'fp16');
    try {
      s.layer.forward(s.x, s.routing, { out, stream: st }); // eager: sizes the stream's workspace
      s.layer.forward(s.x, { routerLogits: logits, topk: 4, renormalize: true }, { out: out2, stream: st });
      const eager = await out.toHost(st);
      const eager2 = await out2.toHost(st);
      const g = st.capture(() => {
        for (let i = 0; i < 3; i++) {
          s.layer.forward(s.x, s.routing, { out, stream: st });
          s.layer.forward(s.x, { routerLogits: logits, topk: 4, renormalize: true }, { out: out2, stream: st });
        }
      });
      try {
        out.fillBytes(0xff, st);
        out2.fillBytes(0xff, st);
        g.replay(st);
        bitsEqual(await out.toHost(st), eager, 'graph replay');
        bitsEqual(await out2.toHost(st), eager2, 'graph replay (router)');
        g.replay(st);
        bitsEqual(await out.toHost(st), eager, 'graph replayed again');
      } finally {
        g.dispose();
      }
      // Host routing cannot be captured: a typed error, nothing recorded.
      assert.throws(
        () =>
          st.capture(() =>
            s.layer.forward(
              s.x,
              { topkIds: new Int32Array(s.M * 4), topkWeights: new Float32Array(s.M * 4) },
              { out, stream: st },
            ),
          ),
        (e) => e instanceof m.ValueError,
      );
    } finally {
      for (const t of [st, logits, out, out2]) t.dispose();
      s.dispose();
    }
  });

  test('two streams at once (own workspaces) equal sequential results', async () => {
    const a = setup({ seed: 71, M: 16 });
    const b = setup({ seed: 81, M: 200, E: 8, k: 2, variant: 'fp8' });
    const s1 = m.Stream.create();
    const s2 = m.Stream.create();
    const ya = m.Tensor.empty([a.M, a.H], 'fp16');
    const yb = m.Tensor.empty([b.M, b.H], 'fp16');
    try {
      const ra = await a.layer.forward(a.x, a.routing).toHost();
      const rb = await b.layer.forward(b.x, b.routing).toHost();
      ya.fillBytes(0xff);
      yb.fillBytes(0xff);
      m.deviceSynchronize();
      for (let i = 0; i < 20; i++) {
        a.layer.forward(a.x, a.routing, { out: ya, stream: s1 });
        b.layer.forward(b.x, b.routing, { out: yb, stream: s2 });
      }
      bitsEqual(await ya.toHost(s1), ra, 'stream 1');
      bitsEqual(await yb.toHost(s2), rb, 'stream 2');
    } finally {
      for (const t of [s1, s2, ya, yb]) t.dispose();
      a.dispose();
      b.dispose();
    }
  });
});

describe('MoE router on the device vs moeRouterTopK', { skip }, () => {
  for (const dtype of ['f32', 'fp16', 'bf16'])
    for (const [E, topk] of [
      [8, 2],
      [128, 8],
      [512, 16],
      [60, 1],
    ])
      for (const renormalize of [false, true])
        test(`${dtype} E=${E} topk=${topk}${renormalize ? ' renormalized' : ''}`, async () => {
          const M = 37;
          const r = rng(E + topk);
          const vals = Float32Array.from({ length: M * E }, () => 4 * r.sym());
          const host = dtype === 'f32' ? vals : m.toHalfBits(vals, dtype);
          const logits = m.Tensor.from(host, [M, E], dtype);
          const { topkIds, topkWeights } = moe.moeTopK(logits, { topk, renormalize });
          try {
            const ids = await topkIds.toHost();
            const wts = await topkWeights.toHost();
            const want = m.moeRouterTopK(host, {
              M,
              numExperts: E,
              topk,
              renormalize,
              dtype: dtype === 'f32' ? undefined : dtype,
            });
            bitsEqual(ids, want.topkIds, 'expert ids');
            // The device softmax runs in f32 with expf (a few ulps of f32 each, summed over <= 512 experts); the
            // reference in f64, rounded once: 1e-5 relative covers the f32 sums, a wrong softmax is off by far more.
            for (let i = 0; i < wts.length; i++)
              assert.ok(
                Math.abs(wts[i] - want.topkWeights[i]) <= 1e-7 + 1e-5 * want.topkWeights[i],
                `weight ${i}: ${wts[i]} vs ${want.topkWeights[i]}`,
              );
          } finally {
            for (const t of [logits, topkIds, topkWeights]) t.dispose();
          }
        });

  test('forward with router logits == forward with the device router output', async () => {
    const s = setup({ seed: 91, M: 50 });
    const logits = m.Tensor.from(
      Float32Array.from({ length: 50 * 16 }, (_, i) => Math.cos(i * 0.77) * 3),
      [50, 16],
      'f32',
    );
    try {
      const a = await s.layer.forward(s.x, { routerLogits: logits, topk: 4, renormalize: true }).toHost();
      const rt = moe.moeTopK(logits, { topk: 4, renormalize: true });
      const b = await s.layer.forward(s.x, rt).toHost();
      rt.topkIds.dispose();
      rt.topkWeights.dispose();
      bitsEqual(a, b, 'router logits vs routed');
    } finally {
      logits.dispose();
      s.dispose();
    }
  });
});

describe('MoE layer: lifetime', { skip }, () => {
  test('100 create / forward / dispose cycles leave device memory and native plans where they were', async () => {
    const { w13, w2 } = makeExperts({ E: 8, H: 64, I: 32, dtype: 'fp16', seed: 101 });
    const x = m.Tensor.from(makeX({ M: 9, K: 64, dtype: 'fp16', seed: 102 }), [9, 64], 'fp16');
    const r = makeRouting(9, 8, 2, { seed: 103 });
    // One warm-up sizes the default stream's workspace and routing buffers, which live as long as the stream.
    const warm = moe.MoeLayer.fromPacked(w13, w2);
    warm.forward(x, r).dispose();
    warm.dispose();
    m.deviceSynchronize();
    const live0 = m.memory();
    const plans0 = moe.livePlans();
    let first;
    for (let i = 0; i < 100; i++) {
      const layer = moe.MoeLayer.fromPacked(w13, w2);
      const y = layer.forward(x, r);
      if (i === 0 || i === 99) {
        const bits = await y.toHost();
        if (i === 0) first = bits;
        else bitsEqual(bits, first, 'cycle 99 vs cycle 0');
      }
      y.dispose();
      layer.dispose();
    }
    m.deviceSynchronize();
    assert.equal(moe.livePlans(), plans0, 'native plans leaked');
    const live1 = m.memory();
    assert.equal(live1.liveTensors, live0.liveTensors, 'live tensor count changed');
    assert.equal(live1.nativeLiveBytes, live0.nativeLiveBytes, 'native live bytes changed');
    x.dispose();
  });
});
