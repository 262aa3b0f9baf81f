/**
 * Writers of 2:4 sparse compressed-tensors layers, following the published encoders step by step (compressed-tensors
 * `Marlin24Compressor` with `sparse_semi_structured_from_dense_cutlass`, `get_permutations_24`, `pack_weight_24`,
 * `pack_scales_24`; `Sparse24BitMaskTensor` with numpy packbits little), written as plain loops for the tests.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rawSafetensors } from './build.js';

export interface Tensor {
  name: string;
  dtype: 'F16' | 'BF16' | 'I8' | 'U8' | 'I16' | 'I32' | 'I64';
  shape: number[];
  data: Uint8Array;
}

const SIZE = { F16: 2, BF16: 2, I8: 1, U8: 1, I16: 2, I32: 4, I64: 8 } as const;

export function raw(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export async function writeSparseCheckpoint(
  dir: string,
  tensors: Tensor[],
  qc: Record<string, unknown>,
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * SIZE[t.dtype];
    if (n !== t.data.byteLength) throw new Error(`fixture ${t.name}: ${t.data.byteLength} bytes for ${n}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  await writeFile(
    join(dir, 'model.safetensors'),
    rawSafetensors(
      JSON.stringify(header),
      tensors.map((t) => t.data),
    ),
  );
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({ architectures: ['LlamaForCausalLM'], quantization_config: qc }),
  );
}

/** get_permutations_24(4): the weight perm (with the nibble interleave), scale_perm and scale_perm_single. */
export function permutations24(): { perm: number[]; scalePerm: number[]; scalePermSingle: number[] } {
  const permList: number[] = [];
  for (let i = 0; i < 32; i++) {
    const perm1: number[] = [];
    const col = Math.floor(i / 4);
    const colO = Math.floor(col / 2);
    for (const block of [0, 1]) {
      for (const row of [2 * (i % 4), 2 * (i % 4) + 1, 2 * ((i % 4) + 4), 2 * ((i % 4) + 4) + 1]) {
        perm1.push(16 * row + colO * 256 + 8 * (col % 2) + 4 * block);
      }
    }
    for (let j = 0; j < 4; j++) permList.push(...perm1.map((p) => p + j));
  }
  const interleave = [0, 2, 4, 6, 1, 3, 5, 7];
  const perm: number[] = [];
  for (let r = 0; r < permList.length / 8; r++) for (const c of interleave) perm.push(permList[8 * r + c]);
  const scalePerm: number[] = [];
  for (let i = 0; i < 8; i++) for (const j of [0, 4, 1, 5, 2, 6, 3, 7]) scalePerm.push(i * 8 + j);
  const scalePermSingle = Array.from({ length: 64 }, (_, i) => i);
  return { perm, scalePerm, scalePermSingle };
}

/** _calculate_meta_reordering_scatter_offsets for int16 metadata, element (r, c) of an [m, ncols] matrix. */
function scatterOffset(r: number, c: number, m: number): number {
  const gx = 64;
  const gy = 32;
  let dr =
    Math.floor(r / gx) * gx +
    (r % 2) * 2 +
    Math.floor((r % 8) / 4) +
    Math.floor(((r % gy) % 4) / 2) * 32 +
    Math.floor((r % gx) / 8) * 4;
  let dc = c;
  const topright = dr % 2 === 0 && dc % 2 === 1 ? 1 : 0;
  const bottomleft = dr % 2 === 1 && dc % 2 === 0 ? 1 : 0;
  dr += topright - bottomleft;
  dc -= topright - bottomleft;
  return Math.floor(dc / 2) * m * 2 + dr * 2 + (dc % 2);
}

/**
 * sparse_semi_structured_from_dense_cutlass on a signed int [m, k] matrix (given as numbers): the kept values
 * [m, k/2] and the reordered int16 metadata (flat, m * k/16 words).
 */
export function cutlassCompress(dense: Int8Array, m: number, k: number): { sparse: Int8Array; meta: Uint16Array } {
  const sparse = new Int8Array((m * k) / 2);
  const meta = new Uint16Array((m * k) / 16);
  for (let r = 0; r < m; r++) {
    for (let g = 0; g < k / 4; g++) {
      const v = [0, 1, 2, 3].map((i) => dense[r * k + 4 * g + i]);
      const [m0, m1, , m3] = v.map((x) => x !== 0);
      const expr0 = m0 && m1;
      const expr1 = !m0 && m1;
      const expr2 = !m0 && !m1;
      const bit0 = +expr1;
      const bit1 = +expr2;
      const bit2 = +(expr0 || expr2 || m3);
      const bit3 = +(expr1 || !m1);
      const idx0 = bit0 | (bit1 << 1);
      const idx1 = bit2 | (bit3 << 1);
      sparse[r * (k / 2) + 2 * g] = v[idx0];
      sparse[r * (k / 2) + 2 * g + 1] = v[idx1];
      const c = Math.floor(g / 4);
      const nib = idx0 | (idx1 << 2);
      const off = scatterOffset(r, c, m);
      meta[off] |= nib << (4 * (g % 4));
    }
  }
  return { sparse, meta };
}

/**
 * Marlin24Compressor.compress_module on a signed INT4 weight [N, K] (values -8..7, 2:4 along K) with scales [G, N]
 * (fp16 bits, already transposed as the compressor does): weight_packed [K/32, 2N], meta [K/32, 2N], scale_packed.
 */
export function encodeMarlin24(
  signed: Int8Array,
  N: number,
  K: number,
  scales: Uint16Array,
  groupShuffle: boolean,
): { weightPacked: Int32Array; meta: Uint16Array; scalePacked: Uint16Array } {
  const { sparse, meta } = cutlassCompress(signed, N, K);
  // value.t() -> [K/2, N], + 8
  const sizeK = K / 2;
  const v = new Uint8Array(sizeK * N);
  for (let n = 0; n < N; n++) for (let r = 0; r < sizeK; r++) v[r * N + n] = sparse[n * sizeK + r] + 8;
  // marlin_permute_weights with tile 16
  const tiled = new Uint8Array(sizeK * N);
  for (let kb = 0; kb < sizeK / 16; kb++)
    for (let nb = 0; nb < N / 16; nb++)
      for (let kk = 0; kk < 16; kk++)
        for (let nn = 0; nn < 16; nn++)
          tiled[kb * 16 * N + nb * 256 + kk * 16 + nn] = v[(kb * 16 + kk) * N + nb * 16 + nn];
  const { perm, scalePerm, scalePermSingle } = permutations24();
  const q = new Uint8Array(tiled.length);
  for (let b = 0; b < q.length; b += 1024) for (let i = 0; i < 1024; i++) q[b + i] = tiled[b + perm[i]];
  const weightPacked = new Int32Array(q.length / 8);
  for (let w = 0; w < weightPacked.length; w++) {
    let x = 0;
    for (let i = 0; i < 8; i++) x |= q[8 * w + i] << (4 * i);
    weightPacked[w] = x;
  }
  const sp = groupShuffle ? scalePerm : scalePermSingle;
  const scalePacked = new Uint16Array(scales.length);
  for (let b = 0; b < scales.length; b += 64) for (let i = 0; i < 64; i++) scalePacked[b + i] = scales[b + sp[i]];
  return { weightPacked, meta, scalePacked };
}

/** Sparse24BitMaskTensor.from_dense on an int8 [N, K] tensor: compressed [N, K/2] (row-major kept values), bitmask. */
export function encodeBitmask(
  dense: Int8Array,
  keep: Uint8Array,
  N: number,
  K: number,
): { compressed: Int8Array; bitmask: Uint8Array } {
  const compressed = new Int8Array((N * K) / 2);
  const B = Math.ceil(K / 8);
  const bitmask = new Uint8Array(N * B);
  let t = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      if (!keep[n * K + k]) continue;
      compressed[t++] = dense[n * K + k];
      bitmask[n * B + (k >> 3)] |= 1 << (k & 7);
    }
  }
  return { compressed, bitmask };
}
