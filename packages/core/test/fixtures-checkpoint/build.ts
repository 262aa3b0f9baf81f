/**
 * Test fixtures for the checkpoint tests, generated at test time (nothing binary is committed):
 *
 * - a minimal safetensors writer that is independent of src/checkpoint (so the reader is not tested against itself),
 * - random "truth" layers (codes, scales, zero points, g_idx),
 * - encoders that pack the truth into each published layout (peers-and-formats.md section (c)),
 * - spec dequantizers that read those raw checkpoint tensors back and compute round_T(s * (q - z)) with their own
 *   fp16 / bf16 rounding, independent of src/dtypes.ts and src/checkpoint/decode.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

export type Dt = 'F16' | 'BF16' | 'F32' | 'I32' | 'I64' | 'U8' | 'U32' | 'F8_E4M3';
const DT_BYTES: Record<Dt, number> = { F16: 2, BF16: 2, F32: 4, I32: 4, I64: 8, U8: 1, U32: 4, F8_E4M3: 1 };

export interface RawTensor {
  name: string;
  dtype: Dt;
  shape: number[];
  data: Uint8Array;
}

export function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function i32(name: string, shape: number[], data: Int32Array | Uint32Array): RawTensor {
  return { name, dtype: 'I32', shape, data: bytes(data) };
}

export function half(name: string, shape: number[], data: Uint16Array, dtype: 'fp16' | 'bf16'): RawTensor {
  return { name, dtype: dtype === 'bf16' ? 'BF16' : 'F16', shape, data: bytes(data) };
}

/** Serialises tensors (in the given order, contiguous) as a safetensors file. */
export function safetensorsBytes(tensors: RawTensor[], metadata?: Record<string, string>): Uint8Array {
  // Null prototype: a tensor named "__proto__" must become a key, not the object's prototype.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata) header['__metadata__'] = metadata;
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * DT_BYTES[t.dtype];
    if (n !== t.data.byteLength) throw new Error(`fixture ${t.name}: ${t.data.byteLength} bytes for ${n}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  return rawSafetensors(
    JSON.stringify(header),
    tensors.map((t) => t.data),
  );
}

/** A file with this exact header text and data (for corrupt-file tests). */
export function rawSafetensors(headerText: string, data: Uint8Array[], headerLenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const total = 8 + h.byteLength + data.reduce((s, d) => s + d.byteLength, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setBigUint64(0, headerLenOverride ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  let at = 8 + h.byteLength;
  for (const d of data) {
    out.set(d, at);
    at += d.byteLength;
  }
  return out;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `marlin-ckpt-${prefix}-`));
}

/** Per-test-file temporary directories: returns a `newDir(prefix)` whose folders are removed after all tests. */
export function tempDirs(): (prefix: string) => Promise<string> {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  return async (prefix) => {
    const d = await tempDir(prefix);
    dirs.push(d);
    return d;
  };
}

export async function writeCheckpoint(
  dir: string,
  tensors: RawTensor[],
  quantizationConfig: Record<string, unknown> | null,
  file = 'model.safetensors',
): Promise<void> {
  await writeFile(join(dir, file), safetensorsBytes(tensors, { format: 'pt' }));
  const config: Record<string, unknown> = { architectures: ['LlamaForCausalLM'], torch_dtype: 'float16' };
  if (quantizationConfig) config['quantization_config'] = quantizationConfig;
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
}

// ------------------------------------------------------------------------------------------------ random truth

// mulberry32, shared with the other core tests.
import { rng } from '../helpers.js';

export { rng };

/** Independent RNE of a double to fp16 / bf16 (value, as a number). Exponent range as IEEE; overflow -> Inf. */
export function roundHalf(x: number, dtype: 'fp16' | 'bf16'): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const mant = dtype === 'fp16' ? 10 : 7;
  const minExp = dtype === 'fp16' ? -14 : -126;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, minExp) - mant);
  const r = a / ulp;
  const fl = Math.floor(r);
  const d = r - fl;
  const m = d > 0.5 || (d === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const v = m * ulp;
  const max = dtype === 'fp16' ? 65504 : (2 - 2 ** -7) * 2 ** 127;
  return Math.sign(x) * (v > max ? Number.POSITIVE_INFINITY : v);
}

/** Decodes fp16 / bf16 bits to a number (independent of src/dtypes.ts). */
export function halfValue(bits: number, dtype: 'fp16' | 'bf16'): number {
  if (dtype === 'bf16') return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Random positive, normal scale bits (values roughly 2^-10 .. 2^-3, as real scales are). */
function randomScaleBits(r: () => number, dtype: 'fp16' | 'bf16'): number {
  if (dtype === 'fp16') return ((5 + Math.floor(r() * 7)) << 10) | Math.floor(r() * 1024);
  return ((117 + Math.floor(r() * 7)) << 7) | Math.floor(r() * 128);
}

export interface Truth {
  bits: 4 | 8;
  K: number;
  N: number;
  /** Rows per group (K = per-channel). */
  groupSize: number;
  G: number;
  /** K x N, row-major. */
  codes: Uint8Array;
  /** [G][N] bits. */
  scales: Uint16Array;
  dtype: 'fp16' | 'bf16';
  /** [G][N]; the symmetric default when sym. */
  zeros: Uint8Array;
  sym: boolean;
  /** group of each row, or null. */
  gIdx: Int32Array | null;
}

export interface TruthOptions {
  bits?: 4 | 8;
  K: number;
  N: number;
  groupSize: number;
  dtype?: 'fp16' | 'bf16';
  sym?: boolean;
  actOrder?: boolean;
  /** Smallest zero point drawn (GPTQ v1 cannot store 0). */
  minZero?: number;
  seed?: number;
}

export function makeTruth(o: TruthOptions): Truth {
  const r = rng(o.seed ?? 1);
  const bits = o.bits ?? 4;
  const dtype = o.dtype ?? 'fp16';
  const sym = o.sym ?? true;
  const G = Math.ceil(o.K / o.groupSize);
  const codes = new Uint8Array(o.K * o.N);
  for (let i = 0; i < codes.length; i++) codes[i] = Math.floor(r() * (1 << bits));
  const scales = new Uint16Array(G * o.N);
  for (let i = 0; i < scales.length; i++) scales[i] = randomScaleBits(r, dtype);
  const zeros = new Uint8Array(G * o.N).fill(1 << (bits - 1));
  if (!sym) {
    const lo = o.minZero ?? 0;
    for (let i = 0; i < zeros.length; i++) zeros[i] = lo + Math.floor(r() * ((1 << bits) - lo));
  }
  let gIdx: Int32Array | null = null;
  if (o.actOrder) {
    // GPTQ desc_act: rows quantized in a random order; g_idx[perm[i]] = floor(i / groupSize).
    const perm = Array.from({ length: o.K }, (_, i) => i);
    for (let i = o.K - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    gIdx = new Int32Array(o.K);
    for (let i = 0; i < o.K; i++) gIdx[perm[i]] = Math.floor(i / o.groupSize);
  }
  return { bits, K: o.K, N: o.N, groupSize: o.groupSize, G, codes, scales, dtype, zeros, sym, gIdx };
}

function groupOf(t: Truth, k: number): number {
  return t.gIdx ? t.gIdx[k] : Math.floor(k / t.groupSize);
}

/** round_T(s * (q - z)) straight from the truth, K x N. */
export function dequantTruth(t: Truth): Float32Array {
  const out = new Float32Array(t.K * t.N);
  for (let k = 0; k < t.K; k++) {
    const g = groupOf(t, k);
    for (let n = 0; n < t.N; n++) {
      const s = halfValue(t.scales[g * t.N + n], t.dtype);
      out[k * t.N + n] = roundHalf(s * (t.codes[k * t.N + n] - t.zeros[g * t.N + n]), t.dtype);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------- encoders

/** GPTQ tensors (v1 stores zero - 1). qweight [K/pack, N] packed along K; qzeros [G, N/pack] packed along N. */
export function encodeGptq(prefix: string, t: Truth, v1: boolean, withGIdx = true): RawTensor[] {
  const pack = 32 / t.bits;
  const qweight = new Uint32Array((t.K / pack) * t.N);
  for (let k = 0; k < t.K; k++) {
    for (let n = 0; n < t.N; n++) {
      qweight[Math.floor(k / pack) * t.N + n] |= t.codes[k * t.N + n] << (t.bits * (k % pack));
    }
  }
  const qzeros = new Uint32Array(t.G * (t.N / pack));
  for (let g = 0; g < t.G; g++) {
    for (let n = 0; n < t.N; n++) {
      const stored = (t.zeros[g * t.N + n] - (v1 ? 1 : 0)) & ((1 << t.bits) - 1);
      qzeros[g * (t.N / pack) + Math.floor(n / pack)] |= stored << (t.bits * (n % pack));
    }
  }
  const gIdx = new Int32Array(t.K);
  for (let k = 0; k < t.K; k++) gIdx[k] = groupOf(t, k);
  const out = [
    i32(`${prefix}.qweight`, [t.K / pack, t.N], qweight),
    i32(`${prefix}.qzeros`, [t.G, t.N / pack], qzeros),
    half(`${prefix}.scales`, [t.G, t.N], t.scales, t.dtype),
  ];
  if (withGIdx) out.push(i32(`${prefix}.g_idx`, [t.K], gIdx));
  return out;
}

export const AWQ_ORDER_SPEC = [0, 2, 4, 6, 1, 3, 5, 7];

/** AWQ GEMM tensors: qweight [K, N/8] and qzeros [G, N/8], nibble i of column c = column 8c + order[i]. */
export function encodeAwq(prefix: string, t: Truth): RawTensor[] {
  const packRow = (vals: Uint8Array, rows: number): Uint32Array => {
    const out = new Uint32Array(rows * (t.N / 8));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < t.N / 8; c++) {
        let w = 0;
        for (let i = 0; i < 8; i++) w |= vals[r * t.N + 8 * c + AWQ_ORDER_SPEC[i]] << (4 * i);
        out[r * (t.N / 8) + c] = w >>> 0;
      }
    }
    return out;
  };
  return [
    i32(`${prefix}.qweight`, [t.K, t.N / 8], packRow(t.codes, t.K)),
    i32(`${prefix}.qzeros`, [t.G, t.N / 8], packRow(t.zeros, t.G)),
    half(`${prefix}.scales`, [t.G, t.N], t.scales, t.dtype),
  ];
}

/**
 * compressed-tensors pack-quantized: weight_packed [N, K/pack] packed along K; weight_scale [N, G];
 * weight_zero_point [N/pack, G] packed along N (asymmetric only); weight_g_idx [K]; weight_shape I64 [N, K].
 */
export function encodeCt(prefix: string, t: Truth, withGIdx: boolean): RawTensor[] {
  const pack = 32 / t.bits;
  const wp = new Uint32Array(t.N * (t.K / pack));
  for (let n = 0; n < t.N; n++) {
    for (let k = 0; k < t.K; k++)
      wp[n * (t.K / pack) + Math.floor(k / pack)] |= t.codes[k * t.N + n] << (t.bits * (k % pack));
  }
  const ws = new Uint16Array(t.N * t.G);
  for (let n = 0; n < t.N; n++) for (let g = 0; g < t.G; g++) ws[n * t.G + g] = t.scales[g * t.N + n];
  const out = [
    i32(`${prefix}.weight_packed`, [t.N, t.K / pack], wp),
    half(`${prefix}.weight_scale`, [t.N, t.G], ws, t.dtype),
    {
      name: `${prefix}.weight_shape`,
      dtype: 'I64' as const,
      shape: [2],
      data: bytes(new BigInt64Array([BigInt(t.N), BigInt(t.K)])),
    },
  ];
  if (!t.sym) {
    const zp = new Uint32Array(Math.ceil(t.N / pack) * t.G);
    for (let n = 0; n < t.N; n++) {
      for (let g = 0; g < t.G; g++) zp[Math.floor(n / pack) * t.G + g] |= t.zeros[g * t.N + n] << (t.bits * (n % pack));
    }
    out.push(i32(`${prefix}.weight_zero_point`, [Math.ceil(t.N / pack), t.G], zp));
  }
  if (withGIdx) {
    const g = new Int32Array(t.K);
    for (let k = 0; k < t.K; k++) g[k] = groupOf(t, k);
    out.push(i32(`${prefix}.weight_g_idx`, [t.K], g));
  }
  return out;
}

// ---------------------------------------------------------------------------------- spec dequantizers (raw tensors)

function words(t: RawTensor): Uint32Array {
  return new Uint32Array(t.data.slice().buffer);
}

function halfs(t: RawTensor): Uint16Array {
  return new Uint16Array(t.data.slice().buffer);
}

function find(ts: RawTensor[], suffix: string): RawTensor | undefined {
  return ts.find((t) => t.name.endsWith(`.${suffix}`));
}

/**
 * GPTQ spec dequant: w[k, n] = s[g, n] * (q[k, n] - z[g, n]), g = g_idx[k] (or k // G), q from qweight bits
 * [bits*(k%pack)...] of word (k/pack, n), z = qzeros nibble (+1 in v1).
 */
export function specDequantGptq(ts: RawTensor[], bits: 4 | 8, groupSize: number, v1: boolean): Float32Array {
  const qw = find(ts, 'qweight')!;
  const sc = find(ts, 'scales')!;
  const dtype = sc.dtype === 'BF16' ? 'bf16' : 'fp16';
  const pack = 32 / bits;
  const mask = (1 << bits) - 1;
  const [rows, N] = qw.shape;
  const K = rows * pack;
  const q = words(qw);
  const z = words(find(ts, 'qzeros')!);
  const s = halfs(sc);
  const gi = find(ts, 'g_idx');
  const g = gi ? new Int32Array(gi.data.slice().buffer) : null;
  const gs = groupSize === -1 ? K : groupSize;
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    const grp = g ? g[k] : Math.floor(k / gs);
    for (let n = 0; n < N; n++) {
      const code = (q[Math.floor(k / pack) * N + n] >>> (bits * (k % pack))) & mask;
      const zero = ((z[grp * (N / pack) + Math.floor(n / pack)] >>> (bits * (n % pack))) & mask) + (v1 ? 1 : 0);
      out[k * N + n] = roundHalf(halfValue(s[grp * N + n], dtype) * (code - zero), dtype);
    }
  }
  return out;
}

/** AWQ spec dequant (order_map interleave on qweight and qzeros). */
export function specDequantAwq(ts: RawTensor[], groupSize: number): Float32Array {
  const qw = find(ts, 'qweight')!;
  const sc = find(ts, 'scales')!;
  const dtype = sc.dtype === 'BF16' ? 'bf16' : 'fp16';
  const [K, cols] = qw.shape;
  const N = cols * 8;
  const q = words(qw);
  const z = words(find(ts, 'qzeros')!);
  const s = halfs(sc);
  const inv = AWQ_ORDER_SPEC.map((_, j) => AWQ_ORDER_SPEC.indexOf(j)); // column offset j lives in nibble inv[j]
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    const grp = Math.floor(k / groupSize);
    for (let n = 0; n < N; n++) {
      const shift = 4 * inv[n % 8];
      const code = (q[k * cols + Math.floor(n / 8)] >>> shift) & 15;
      const zero = (z[grp * cols + Math.floor(n / 8)] >>> shift) & 15;
      out[k * N + n] = roundHalf(halfValue(s[grp * N + n], dtype) * (code - zero), dtype);
    }
  }
  return out;
}

/** compressed-tensors spec dequant, transposed to K x N. */
export function specDequantCt(
  ts: RawTensor[],
  bits: 4 | 8,
  groupSize: number | null,
  symmetric: boolean,
): Float32Array {
  const wp = find(ts, 'weight_packed')!;
  const ws = find(ts, 'weight_scale')!;
  const dtype = ws.dtype === 'BF16' ? 'bf16' : 'fp16';
  const pack = 32 / bits;
  const mask = (1 << bits) - 1;
  const [N, cols] = wp.shape;
  const K = cols * pack;
  const G = ws.shape[1];
  const q = words(wp);
  const s = halfs(ws);
  const zt = find(ts, 'weight_zero_point');
  const z = zt && !symmetric ? words(zt) : null;
  const gi = find(ts, 'weight_g_idx');
  const g = gi ? new Int32Array(gi.data.slice().buffer) : null;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const grp = g ? g[k] : groupSize === null ? 0 : Math.floor(k / groupSize);
      const code = (q[n * cols + Math.floor(k / pack)] >>> (bits * (k % pack))) & mask;
      const zero = z ? (z[Math.floor(n / pack) * G + grp] >>> (bits * (n % pack))) & mask : 1 << (bits - 1);
      out[k * N + n] = roundHalf(halfValue(s[n * G + grp], dtype) * (code - zero), dtype);
    }
  }
  return out;
}

/** Index of the first bitwise difference of two f32 arrays, or -1. */
export function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

/** An unquantized fp16 tensor with random small values. */
export function f16Tensor(name: string, shape: number[], seed: number): RawTensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Uint16Array(n);
  for (let i = 0; i < n; i++) d[i] = randomScaleBits(r, 'fp16') ^ (r() < 0.5 ? 0x8000 : 0);
  return { name, dtype: 'F16', shape, data: bytes(d) };
}

// ------------------------------------------------------------------------------------------------------------ FP8

/** e4m3fn value of a byte (OCP FP8 E4M3FN: bias 7, no infinities, 0x7f / 0xff NaN), independent of src/dtypes.ts. */
export function e4m3Value(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 7;
  if (e === 15 && m === 7) return Number.NaN;
  return sign * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
}

export type Fp8ScaleLayout = 'block' | 'channel' | 'tensor';

export interface Fp8Truth {
  K: number;
  N: number;
  /** [N, K] row-major e4m3 bytes, as checkpoints store nn.Linear.weight (never NaN unless poisoned). */
  weight: Uint8Array;
  layout: Fp8ScaleLayout;
  /** [bn, bk] of a block scale. */
  block: [number, number];
  /** Scale values (exact f32): [ceil(N/bn)][ceil(K/bk)] for blocks, [N] per channel, [1] per tensor. */
  scale: Float32Array;
}

/** Random FP8 weight with f32 scales (magnitudes 2^-12 .. 2^-4, as amax / 448 gives for real weights). */
export function makeFp8Truth(o: {
  K: number;
  N: number;
  layout: Fp8ScaleLayout;
  block?: [number, number];
  seed?: number;
}): Fp8Truth {
  const r = rng(o.seed ?? 3);
  const weight = new Uint8Array(o.N * o.K);
  for (let i = 0; i < weight.length; i++) {
    let b = Math.floor(r() * 256);
    if ((b & 0x7f) === 0x7f) b ^= 1; // no NaN codes
    weight[i] = b;
  }
  const block = o.block ?? [128, 128];
  const count =
    o.layout === 'block' ? Math.ceil(o.N / block[0]) * Math.ceil(o.K / block[1]) : o.layout === 'channel' ? o.N : 1;
  const scale = new Float32Array(count);
  for (let i = 0; i < count; i++) scale[i] = 2 ** (-12 + 8 * r()) * (1 + r() / 3);
  return { K: o.K, N: o.N, weight, layout: o.layout, block, scale };
}

/** The f32 scale of weight element (n, k). */
function fp8ScaleAt(t: Fp8Truth, n: number, k: number): number {
  if (t.layout === 'tensor') return t.scale[0];
  if (t.layout === 'channel') return t.scale[n];
  return t.scale[Math.floor(n / t.block[0]) * Math.ceil(t.K / t.block[1]) + Math.floor(k / t.block[1])];
}

function scaleTensor(name: string, shape: number[], values: Float32Array, dtype: 'F32' | 'BF16' | 'F16'): RawTensor {
  if (dtype === 'F32') return { name, dtype, shape, data: bytes(values) };
  const h = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) h[i] = halfBitsOf(values[i], dtype === 'BF16' ? 'bf16' : 'fp16');
  return { name, dtype, shape, data: bytes(h) };
}

/** Bits of roundHalf(x) (finite, normal or subnormal), independent of src/dtypes.ts. */
function halfBitsOf(x: number, dtype: 'fp16' | 'bf16'): number {
  const v = roundHalf(x, dtype);
  if (dtype === 'bf16') return new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

/** Hugging Face fp8 (block): weight F8_E4M3 [N, K], weight_scale_inv [ceil(N/bn), ceil(K/bk)] (a multiplier). */
export function encodeHfFp8(prefix: string, t: Fp8Truth, scaleDtype: 'F32' | 'BF16' = 'F32'): RawTensor[] {
  const [bn, bk] = t.block;
  return [
    { name: `${prefix}.weight`, dtype: 'F8_E4M3', shape: [t.N, t.K], data: t.weight },
    scaleTensor(`${prefix}.weight_scale_inv`, [Math.ceil(t.N / bn), Math.ceil(t.K / bk)], t.scale, scaleDtype),
  ];
}

/** compressed-tensors float-quantized: weight F8_E4M3 [N, K], weight_scale [N, 1] (channel) or [1] (tensor). */
export function encodeCtFp8(
  prefix: string,
  t: Fp8Truth,
  o: { scaleDtype?: 'F32' | 'BF16' | 'F16'; inputScale?: boolean } = {},
): RawTensor[] {
  const out: RawTensor[] = [
    { name: `${prefix}.weight`, dtype: 'F8_E4M3', shape: [t.N, t.K], data: t.weight },
    scaleTensor(`${prefix}.weight_scale`, t.layout === 'channel' ? [t.N, 1] : [1], t.scale, o.scaleDtype ?? 'F32'),
  ];
  if (o.inputScale) out.push(scaleTensor(`${prefix}.input_scale`, [1], new Float32Array([0.02]), 'F32'));
  return out;
}

/**
 * FP8 spec dequant, K x N: w[k, n] = round_T(e4m3(q[n, k]) * round_T(s)), s the checkpoint scale of (n, k) rounded
 * once to the scale dtype T (the scale read from a 16-bit tensor is already in T).
 */
export function specDequantFp8(t: Fp8Truth, dtype: 'fp16' | 'bf16'): Float32Array {
  const out = new Float32Array(t.K * t.N);
  for (let k = 0; k < t.K; k++) {
    for (let n = 0; n < t.N; n++) {
      const s = roundHalf(fp8ScaleAt(t, n, k), dtype);
      out[k * t.N + n] = roundHalf(e4m3Value(t.weight[n * t.K + k]) * s, dtype);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------- mixture of experts

export type MoeNaming = 'mixtral' | 'qwen';

/** Module name of one expert projection: Mixtral `block_sparse_moe.experts.E.w1|w3|w2`, Qwen `mlp.experts.E.*_proj`. */
export function moeModuleName(naming: MoeNaming, layer: number, expert: number, proj: 'gate' | 'up' | 'down'): string {
  if (naming === 'mixtral') {
    const w = { gate: 'w1', up: 'w3', down: 'w2' }[proj];
    return `model.layers.${layer}.block_sparse_moe.experts.${expert}.${w}`;
  }
  return `model.layers.${layer}.mlp.experts.${expert}.${proj}_proj`;
}

/** Merges model fields (num_local_experts, num_experts, ...) into the config.json writeCheckpoint wrote. */
export async function mergeModelConfig(dir: string, fields: Record<string, unknown>): Promise<void> {
  const path = join(dir, 'config.json');
  const config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...config, ...fields }));
}
