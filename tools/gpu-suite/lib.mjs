// Shared helpers of the GPU suite: GPU gate, deterministic problem generation, reference comparison.
import assert from 'node:assert/strict';
import * as m from './marlin.mjs';

export { m };

/**
 * Whether the GPU can be used. With MARLIN_REQUIRE_GPU=1 a missing GPU is a failure (a misconfigured GPU run must
 * not pass by skipping); otherwise tests skip with the coded reason.
 */
export function gpuGate() {
  const p = m.probe();
  if (p.ok) return { ok: true, skip: false, probe: p };
  const reason = `no usable GPU (${p.error?.code}): ${p.error?.message}`;
  return { ok: false, skip: process.env.MARLIN_REQUIRE_GPU === '1' ? false : reason, reason, probe: p };
}

/** Registers a failing test when the GPU is required but absent. Returns the `skip` option for the other tests. */
export function requireGpu(test) {
  const g = gpuGate();
  if (!g.ok && process.env.MARLIN_REQUIRE_GPU === '1') {
    test('GPU is available (MARLIN_REQUIRE_GPU=1)', () => assert.fail(g.reason));
  }
  return g;
}

/** xorshift32: deterministic, seedable. */
export function rng(seed) {
  let s = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  return { next, int: (n) => Math.floor(next() * n), sym: () => next() * 2 - 1 };
}

/** A random e4m3fn code that is not NaN (0x7f / 0xff). */
function fp8Code(r) {
  const c = r.int(256);
  return (c & 0x7f) === 0x7f ? c ^ 1 : c;
}

/**
 * A grid e4m3 code: sign, exponent field 6..8 (|value| in [0.5, 4)) and any mantissa, so every product and partial
 * sum of a grid GEMM stays exact in fp32 up to K of 2^16 (the kernel's summation order cannot change the result).
 */
function fp8GridCode(r) {
  return (r.int(2) << 7) | ((6 + r.int(3)) << 3) | r.int(8);
}

/**
 * A quantized weight (K x N) built directly from random codes so every layout bit matters.
 * variant 'int4' (codes 0..15), 'int8' (codes 0..255, zero point 128 or random integer zero points) or 'fp8' (e4m3
 * bytes, never NaN; no zero points). scaleLayout 'group' (one scale per groupSize rows and column; groupSize = K is
 * per channel) or 'block' (128 x 128 blocks: a group-128 scale repeated over each block's 128 columns).
 * mode 'grid': scales are powers of two, so dequantized weights and all products / sums are exact in fp32.
 */
export function makeWeight({
  K,
  N,
  groupSize,
  dtype,
  sym = true,
  actOrder = false,
  mode = 'random',
  seed = 1,
  variant = 'int4',
  scaleLayout = 'group',
}) {
  const r = rng(seed);
  if (scaleLayout === 'block') groupSize = 128;
  const G = Math.ceil(K / groupSize);
  const codes = new Uint8Array(K * N);
  if (variant === 'fp8')
    for (let i = 0; i < codes.length; i++) codes[i] = mode === 'grid' ? fp8GridCode(r) : fp8Code(r);
  else for (let i = 0; i < codes.length; i++) codes[i] = r.int(variant === 'int8' ? 256 : 16);
  const scale = () => (mode === 'grid' ? 2 ** -(2 + r.int(3)) : (0.5 + r.next()) * 0.02);
  const scalesF = new Float32Array(G * N);
  if (scaleLayout === 'block') {
    const blocks = Array.from({ length: G * Math.ceil(N / 128) }, scale);
    for (let g = 0; g < G; g++)
      for (let n = 0; n < N; n++) scalesF[g * N + n] = blocks[g * Math.ceil(N / 128) + Math.floor(n / 128)];
  } else {
    for (let i = 0; i < scalesF.length; i++) scalesF[i] = scale();
  }
  const levels = variant === 'int8' ? 256 : 16;
  const zeros = sym || variant === 'fp8' ? null : Uint8Array.from({ length: G * N }, () => r.int(levels));
  let gIdx = null;
  if (actOrder) {
    // Every row keeps a group of exactly groupSize rows (bar the last), in a shuffled order.
    gIdx = Int32Array.from({ length: K }, (_, k) => Math.floor(k / groupSize));
    for (let i = K - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [gIdx[i], gIdx[j]] = [gIdx[j], gIdx[i]];
    }
  }
  const q = {
    bits: variant === 'int4' ? 4 : 8,
    K,
    N,
    groupSize,
    codes,
    scales: m.toHalfBits(scalesF, dtype),
    scaleDtype: dtype,
    zeros,
    gIdx,
  };
  return variant === 'fp8' ? { ...q, codeType: 'e4m3' } : q;
}

/** The addon API that runs a variant: @marlin/fp8 for fp8, @marlin/dense for int4 / int8. */
export function apiFor(variant = 'int4') {
  return variant === 'fp8' ? m.fp8 : m;
}

/** Activations (M rows, row stride lda >= K); 'grid' mode uses small integers times powers of two. */
export function makeX({ M, K, lda = K, dtype, mode = 'random', seed = 2 }) {
  const r = rng(seed);
  const v = new Float32Array(M * lda);
  for (let i = 0; i < v.length; i++) {
    const col = i % lda;
    if (col >= K)
      v[i] = Number.NaN; // padding columns beyond K must never be read
    else v[i] = mode === 'grid' ? (r.int(9) - 4) * 2 ** -r.int(2) : r.sym();
  }
  return m.toHalfBits(v, dtype);
}

export function makeBias({ N, dtype, mode = 'random', seed = 3 }) {
  const r = rng(seed);
  const v = Float32Array.from({ length: N }, () => (mode === 'grid' ? (r.int(17) - 8) / 4 : r.sym()));
  return m.toHalfBits(v, dtype);
}

/** The columns `cols` of a quantized weight, as a weight of its own (for a bounded CPU reference on big shapes). */
export function columnSubset(q, cols) {
  const G = Math.ceil(q.K / q.groupSize);
  const n = cols.length;
  const codes = new Uint8Array(q.K * n);
  for (let k = 0; k < q.K; k++) for (let j = 0; j < n; j++) codes[k * n + j] = q.codes[k * q.N + cols[j]];
  const pick = (a) => {
    const out = new a.constructor(G * n);
    for (let g = 0; g < G; g++) for (let j = 0; j < n; j++) out[g * n + j] = a[g * q.N + cols[j]];
    return out;
  };
  return { ...q, N: n, codes, scales: pick(q.scales), zeros: q.zeros && pick(q.zeros) };
}

/** Rows `rows` of x (row stride lda) as a dense [rows.length, lda] array. */
export function rowSubset(x, lda, rows) {
  const out = new Uint16Array(rows.length * lda);
  for (let i = 0; i < rows.length; i++) out.set(x.subarray(rows[i] * lda, (rows[i] + 1) * lda), i * lda);
  return out;
}

/** Up to `max` distinct indices in [0, n): always the first and last, then evenly spread with a random jitter. */
export function sampleIndices(n, max, seed = 5) {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const r = rng(seed);
  const set = new Set([0, n - 1]);
  while (set.size < max) set.add(r.int(n));
  return [...set].sort((a, b) => a - b);
}

const MAX_REFERENCE_MACS = 3e7;

/**
 * Uploads `packed` with `api` (an addon package), runs y = x · W (+ bias) into an output poisoned with NaN first (every
 * element must be written) and returns y's bits; everything it made is disposed.
 */
export async function gemmPoisoned(api, packed, { M, N, K, lda = K, dtype, xBits, biasBits, config }) {
  const w = api.uploadPacked(packed);
  const x = m.Tensor.from(xBits, [M, lda], dtype);
  const b = biasBits ? m.Tensor.from(biasBits, [N], dtype) : null;
  const y = m.Tensor.empty([M, N], dtype);
  try {
    y.fillBytes(0xff);
    api.gemm(x, w, { out: y, bias: b ?? undefined, lda: lda === K ? undefined : lda, config });
    return await y.toHost();
  } finally {
    for (const t of [w, x, b, y]) t?.dispose();
  }
}

/**
 * What the CPU reference checks of an [M, N] GPU output `got`: all of it, or for big problems a sample of rows and
 * columns (rows / cols null when whole) so the CPU side stays bounded. Returns the sampled x, bias and output, and
 * the reference options.
 */
export function referenceSample({ got, M, N, K, lda = K, dtype, xBits, biasBits, seed }) {
  const rows =
    M * N * K > MAX_REFERENCE_MACS
      ? sampleIndices(M, Math.max(2, Math.floor(MAX_REFERENCE_MACS / (N * K)) || 2), seed)
      : null;
  // The column sample is packed again, so it must stay a multiple of 16 columns.
  const colBudget = rows ? Math.max(64, Math.floor(MAX_REFERENCE_MACS / (rows.length * K) / 16) * 16) : N;
  const cols = N > colBudget ? sampleIndices(N, colBudget, seed + 3) : null;
  const refX = rows ? rowSubset(xBits, lda, rows) : xBits;
  const refM = rows ? rows.length : M;
  const refBias = biasBits && cols ? Uint16Array.from(cols, (c) => biasBits[c]) : biasBits;
  const refN = cols ? cols.length : N;
  const gotSub = new Uint16Array(refM * refN);
  for (let i = 0; i < refM; i++) {
    const gr = rows ? rows[i] : i;
    for (let j = 0; j < refN; j++) gotSub[i * refN + j] = got[gr * N + (cols ? cols[j] : j)];
  }
  return { rows, cols, refX, refM, refN, gotSub, opts: { M: refM, dtype, bias: refBias, lda } };
}

/** Fails unless the [*, refN] GPU output `got` equals the reference bits `ref` everywhere, naming the first mismatch. */
export function assertGridExact(got, ref, refN, label) {
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < ref.length; i++) {
    if (ref[i] !== got[i]) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  assert.equal(
    mismatches,
    0,
    `${label}: ${mismatches} of ${ref.length} outputs differ bitwise; first at row ${Math.floor(first / refN)} col ${first % refN}: gpu 0x${got[first]?.toString(16)} ref 0x${ref[first]?.toString(16)}`,
  );
}

/** Fails naming the first element where a and b (16-bit output bits) differ. */
export function bitsEqual(a, b, what) {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++)
    if (a[i] !== b[i]) assert.fail(`${what}: element ${i} differs (0x${a[i].toString(16)} vs 0x${b[i].toString(16)})`);
}

/** Fails on the first NaN of 16-bit `bits` (an element never written keeps the 0xffff poison). */
export function assertNoNaN(bits, dtype, what) {
  const nan = dtype === 'fp16' ? 0x7c00 : 0x7f80;
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7fff) > nan) assert.fail(`${what}: element ${i} is NaN`);
}

/**
 * Every configuration of `configs` (kernel-table rows), at 1 and 4 splits, run twice on the same { x, w } must give
 * the same finite bits. Disposes x and w.
 */
export async function checkRepeatable(api, { x, w }, configs) {
  try {
    for (const c of configs)
      for (const splits of [1, 4]) {
        const y1 = api.gemm(x, w, { config: { configId: c.id, splits } });
        const y2 = api.gemm(x, w, { config: { configId: c.id, splits } });
        const [a, b] = [await y1.toHost(), await y2.toHost()];
        assertNoNaN(a, 'fp16', `config ${c.id} splits ${splits}`);
        bitsEqual(a, b, `config ${c.id} splits ${splits}`);
        y1.dispose();
        y2.dispose();
      }
  } finally {
    w.dispose();
    x.dispose();
  }
}

/**
 * Two problems `a` and `b` ({ x, w, M, N }, fp16, on the device) launched 20 times each, alternately on two streams
 * with their own workspaces, must give the bits of a sequential run. Disposes both problems.
 */
export async function checkTwoStreams(api, a, b) {
  const s1 = m.Stream.create();
  const s2 = m.Stream.create();
  const ya = m.Tensor.empty([a.M, a.N], 'fp16');
  const yb = m.Tensor.empty([b.M, b.N], 'fp16');
  try {
    const ra = await api.gemm(a.x, a.w).toHost();
    const rb = await api.gemm(b.x, b.w).toHost();
    ya.fillBytes(0xff);
    yb.fillBytes(0xff);
    m.deviceSynchronize();
    for (let i = 0; i < 20; i++) {
      api.gemm(a.x, a.w, { out: ya, stream: s1 });
      api.gemm(b.x, b.w, { out: yb, stream: s2 });
    }
    bitsEqual(await ya.toHost(s1), ra, 'stream 1');
    bitsEqual(await yb.toHost(s2), rb, 'stream 2');
  } finally {
    for (const r of [s1, s2, ya, yb, a.w, a.x, b.w, b.x]) r.dispose();
  }
}

/**
 * A captured graph of 5 launches of y = x · W + bias (fp16 [M, N], bias seeded 52), replayed twice into a poisoned y,
 * must give the eager bits. `label` ends the failure messages. Disposes x and w.
 */
export async function checkGraphReplay(api, { x, w, M, N }, label = '') {
  const b = m.Tensor.from(makeBias({ N, dtype: 'fp16', seed: 52 }), [N], 'fp16');
  const s = m.Stream.create();
  const y = m.Tensor.empty([M, N], 'fp16');
  try {
    api.gemm(x, w, { out: y, bias: b, stream: s }); // eager: sizes the workspace
    const eager = await y.toHost(s);
    assertNoNaN(eager, 'fp16', `eager${label}`);
    const g = s.capture(() => {
      for (let i = 0; i < 5; i++) api.gemm(x, w, { out: y, bias: b, stream: s });
    });
    try {
      y.fillBytes(0xff, s);
      g.replay(s);
      bitsEqual(await y.toHost(s), eager, `graph replay${label}`);
      g.replay(s);
      bitsEqual(await y.toHost(s), eager, `graph replayed again${label}`);
    } finally {
      g.dispose();
    }
  } finally {
    for (const r of [s, w, x, b, y]) r.dispose();
  }
}

/**
 * 200 upload / gemm / dispose cycles of `packed` (K 1024) on a fresh [4, 1024] fp16 x must give the same bits and
 * leave native plans, live tensors and bytes and free device memory where they were. `mayReclaim`: live counts may
 * also fall (tensors earlier tests dropped without dispose() reclaimed by the finalizer meanwhile).
 */
export async function checkUploadCycles(api, packed, { mayReclaim = false } = {}) {
  const x = m.Tensor.from(makeX({ M: 4, K: 1024, dtype: 'fp16', seed: 62 }), [4, 1024], 'fp16');
  m.deviceSynchronize();
  const live0 = m.memory();
  const plans0 = api.livePlans();
  const free0 = m.memGetInfo().free;
  let first;
  for (let i = 0; i < 200; i++) {
    const w = api.uploadPacked(packed);
    const y = api.gemm(x, w);
    if (i === 0 || i === 199) {
      const bits = await y.toHost();
      if (i === 0) first = bits;
      else bitsEqual(bits, first, 'cycle 199 vs cycle 0');
    }
    y.dispose();
    w.dispose();
  }
  m.deviceSynchronize();
  const live1 = m.memory();
  assert.equal(api.livePlans(), plans0, 'native plans leaked');
  if (mayReclaim) {
    assert.ok(
      live1.liveTensors <= live0.liveTensors,
      `live tensors grew: ${live0.liveTensors} -> ${live1.liveTensors}`,
    );
    assert.ok(
      live1.nativeLiveBytes <= live0.nativeLiveBytes,
      `native live bytes grew: ${live0.nativeLiveBytes} -> ${live1.nativeLiveBytes}`,
    );
  } else {
    assert.equal(live1.liveTensors, live0.liveTensors, 'live tensor count changed');
    assert.equal(live1.nativeLiveBytes, live0.nativeLiveBytes, 'native live bytes changed');
  }
  assert.ok(free0 - m.memGetInfo().free <= 2 * 2 ** 20, 'free device memory dropped');
  x.dispose();
}

/**
 * Runs the GPU GEMM (output poisoned with NaN first) and compares it with the CPU reference of @marlin/core:
 * mode 'grid' bit for bit; otherwise |gpu - f64 oracle| <= 2 x (dense fp16/bf16 GEMM error) + 1 ulp. Big problems are
 * checked on a sample of rows and columns so the CPU side stays bounded.
 */
export async function checkGemm(spec) {
  const {
    M,
    K,
    N,
    dtype,
    groupSize = 128,
    sym = true,
    actOrder = false,
    bias = false,
    lda = K,
    mode = 'random',
    seed = 11,
    config,
    variant = 'int4',
    scaleLayout = 'group',
  } = spec;
  const api = apiFor(variant);
  const q = makeWeight({ K, N, groupSize, dtype, sym, actOrder, mode, seed, variant, scaleLayout });
  const packed = m.pack(q);
  const xBits = makeX({ M, K, lda, dtype, mode, seed: seed + 1 });
  const biasBits = bias ? makeBias({ N, dtype, mode, seed: seed + 2 }) : undefined;

  const got = await gemmPoisoned(api, packed, { M, N, K, lda, dtype, xBits, biasBits, config });
  const { cols, refX, refN, gotSub, opts } = referenceSample({ got, M, N, K, lda, dtype, xBits, biasBits, seed });
  const refW = cols ? m.pack(columnSubset(q, cols)) : packed;
  const forced = config ? ` config ${JSON.stringify(config)}` : '';
  const layout = scaleLayout === 'block' ? ' block128' : '';
  const label = `${variant} M=${M} N=${N} K=${K} g=${groupSize}${layout} ${dtype}${sym ? '' : ' zeros'}${actOrder ? ' act-order' : ''}${bias ? ' bias' : ''}${lda !== K ? ` lda=${lda}` : ''} ${mode}${forced}`;
  for (let i = 0; i < gotSub.length; i++) {
    if ((gotSub[i] & 0x7fff) > (dtype === 'fp16' ? 0x7c00 : 0x7f80)) {
      assert.fail(`${label}: output element ${i} is NaN (0x${gotSub[i].toString(16)}): not written or wrong`);
    }
  }
  if (mode === 'grid') {
    const ref = m.referenceGemm(refX, refW, opts).bits;
    assertGridExact(gotSub, ref, refN, label);
    return { label, checked: ref.length, maxErr: 0, tolerance: 0 };
  }
  const bound = m.denseErrorBound(refX, refW, opts);
  const err = m.maxAbsDeviation(gotSub, dtype, bound.oracle);
  assert.ok(
    err <= bound.tolerance,
    `${label}: max |gpu - f64 oracle| = ${err} exceeds tolerance ${bound.tolerance} (dense error ${bound.maxAbs}, max |y| ${bound.maxMagnitude})`,
  );
  return { label, checked: gotSub.length, maxErr: err, tolerance: bound.tolerance };
}
