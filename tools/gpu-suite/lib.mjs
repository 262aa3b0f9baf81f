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

  const w = api.uploadPacked(packed);
  const x = m.Tensor.from(xBits, [M, lda], dtype);
  const b = biasBits ? m.Tensor.from(biasBits, [N], dtype) : null;
  const y = m.Tensor.empty([M, N], dtype);
  let got;
  try {
    y.fillBytes(0xff); // NaN poison: every output element must be written
    api.gemm(x, w, { out: y, bias: b ?? undefined, lda: lda === K ? undefined : lda, config });
    got = await y.toHost();
  } finally {
    for (const t of [w, x, b, y]) t?.dispose();
  }

  const rows =
    M * N * K > MAX_REFERENCE_MACS
      ? sampleIndices(M, Math.max(2, Math.floor(MAX_REFERENCE_MACS / (N * K)) || 2), seed)
      : null;
  // The column sample is packed again, so it must stay a multiple of 16 columns.
  const colBudget = rows ? Math.max(64, Math.floor(MAX_REFERENCE_MACS / (rows.length * K) / 16) * 16) : N;
  const cols = N > colBudget ? sampleIndices(N, colBudget, seed + 3) : null;
  const refW = cols ? m.pack(columnSubset(q, cols)) : packed;
  const refX = rows ? rowSubset(xBits, lda, rows) : xBits;
  const refM = rows ? rows.length : M;
  const refBias = biasBits && cols ? Uint16Array.from(cols, (c) => biasBits[c]) : biasBits;
  const refN = cols ? cols.length : N;
  const gotSub = new Uint16Array(refM * refN);
  for (let i = 0; i < refM; i++) {
    const gr = rows ? rows[i] : i;
    for (let j = 0; j < refN; j++) gotSub[i * refN + j] = got[gr * N + (cols ? cols[j] : j)];
  }
  const opts = { M: refM, dtype, bias: refBias, lda };
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
    let mismatches = 0;
    let first = -1;
    for (let i = 0; i < ref.length; i++) {
      if (ref[i] !== gotSub[i]) {
        mismatches++;
        if (first < 0) first = i;
      }
    }
    assert.equal(
      mismatches,
      0,
      `${label}: ${mismatches} of ${ref.length} outputs differ bitwise; first at row ${Math.floor(first / refN)} col ${first % refN}: gpu 0x${gotSub[first]?.toString(16)} ref 0x${ref[first]?.toString(16)}`,
    );
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
