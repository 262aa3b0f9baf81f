/**
 * CPU reference of a PACKED 2:4 weight (docs/format.md "2:4 sparse (packed)"). The bytes are decoded the way the sparse
 * tensor cores read them, not through the packer's tables: each lane's code word becomes the four A registers of
 * `mma.sp.m16n8k32` / `wgmma.mma_async.sp.m64nNk32` (PTX ISA 9.7.14.6.2.2, 9.7.15.6.2.1), and each 4-row chunk's
 * positions come from the metadata register of the thread the instruction takes them from (PTX ISA 9.7.14.6.1,
 * Figure 122: sparsity selector = k32 step). The decoded weight then goes through the logical reference
 * (reference/sparse.ts), so results are bit for bit those of the dense reference on the equivalent dense weight.
 */
import { TILE_N } from '../format/layout.js';
import type { SparseQuantizedWeight } from '../format/sparse.js';
import { SPARSE_META_WORD_OFFSET, SPARSE_TILE_K, SPARSE_TILE_WORDS } from '../format/sparse-layout.js';
import { type PackedSparseWeight, validatePackedSparse } from '../format/sparse-pack.js';
import type { HalfDtype } from '../format/types.js';
import type { ReferenceGemmF64Result, ReferenceGemmOptions, ReferenceGemmResult } from './gemm.js';
import { dequantizeSparse, referenceGemmSparse, referenceGemmSparseF64 } from './sparse.js';

/** One lane's view of k32 step `step` of a tile: what the sparse MMA receives from it. */
export interface SparseLaneFragment {
  /** The four A registers as code pairs: regs[r] = [first kept code, second kept code] (low half, high half). */
  readonly regs: readonly (readonly [number, number])[];
  /** The lane's 32-bit metadata register (used in the k32 step whose sparsity selector picks this lane). */
  readonly meta: number;
}

/**
 * The fragment of lane `lane` of warp slot `w` for k32 step `step` (0, 1) of the tile starting at word `tileBase`:
 * code word (w * 32 + lane) * 2 + step, registers r = 0..3 from nibbles r (low half) and r + 4 (high half), as the INT4
 * codec builds them (`word & 0x000F000F`, `word & 0x00F000F0`, then the same on `word >> 8`).
 */
export function sparseLaneFragment(
  qweight: Uint32Array,
  tileBase: number,
  w: number,
  lane: number,
  step: number,
): SparseLaneFragment {
  const word = qweight[tileBase + (w * 32 + lane) * 2 + step];
  const regs = [0, 1, 2, 3].map((r) => [(word >>> (4 * r)) & 0xf, (word >>> (4 * r + 16)) & 0xf] as const);
  return { regs, meta: qweight[tileBase + SPARSE_META_WORD_OFFSET + w * 32 + lane] };
}

/**
 * Decodes a packed 2:4 weight into the logical SparseQuantizedWeight through the tensor cores' view (validates it
 * first). For warp slot w, group g = lane >> 2, t = lane & 3 and k32 step s, register r holds the two kept codes of
 * row g + 8 (r & 1), chunk q = t + 4 (r >> 1) (rows 32 s + 4 q .. + 3 of the tile); with sparsity selector s the
 * chunk's positions are nibble (q & 3) + 4 (r & 1) of the metadata register of thread 4 g + 2 s + (q >> 2).
 */
export function decodePackedSparse(p: PackedSparseWeight): SparseQuantizedWeight {
  validatePackedSparse(p);
  const { K, N, Kp, Np, numGroups: G } = p;
  const codes = new Uint8Array((K / 2) * N);
  const indices = new Uint8Array((K / 2) * N);
  const kBlocks = Kp / SPARSE_TILE_K;
  for (let nb = 0; nb < Np / TILE_N; nb++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const base = (nb * kBlocks + kb) * SPARSE_TILE_WORDS;
      for (let w = 0; w < 4; w++) {
        for (let s = 0; s < 2; s++) {
          const frags = Array.from({ length: 32 }, (_, lane) => sparseLaneFragment(p.qweight, base, w, lane, s));
          for (let lane = 0; lane < 32; lane++) {
            const g = lane >> 2;
            const t = lane & 3;
            for (let r = 0; r < 4; r++) {
              const high = r & 1;
              const q = t + 4 * (r >> 1);
              const n = nb * TILE_N + 16 * w + g + 8 * high;
              const j = (kb * SPARSE_TILE_K + 32 * s + 4 * q) / 4;
              if (n >= N || 4 * j >= K) continue;
              const nib = (frags[4 * g + 2 * s + (q >> 2)].meta >>> (4 * ((q & 3) + 4 * high))) & 0xf;
              const [c0, c1] = frags[lane].regs[r];
              codes[2 * j * N + n] = c0;
              codes[(2 * j + 1) * N + n] = c1;
              indices[2 * j * N + n] = nib & 3;
              indices[(2 * j + 1) * N + n] = nib >>> 2;
            }
          }
        }
      }
    }
  }
  const strip = <T extends Uint8Array | Uint16Array>(a: T): T => {
    const out = a.slice(0, G * N) as T;
    for (let g = 0; g < G; g++) out.set(a.subarray(g * Np, g * Np + N), g * N);
    return out;
  };
  return {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    groupSize: p.groupSize,
    codes,
    indices,
    scales: strip(p.scales),
    scaleDtype: p.scaleDtype,
    zeros: p.zeros === null ? null : strip(p.zeros),
  };
}

/** K x N dequantized weight of a packed 2:4 weight (pruned positions exactly 0); `dtype` must be its scale dtype. */
export function dequantizePackedSparse(p: PackedSparseWeight, dtype: HalfDtype): Float32Array {
  return dequantizeSparse(decodePackedSparse(p), dtype);
}

/** `referenceGemm` (fp32 accumulation in k order, RNE to dtype) of a packed 2:4 weight, decoded as the GPU reads it. */
export function referenceGemmPackedSparse(
  x: Uint16Array,
  p: PackedSparseWeight,
  opts: ReferenceGemmOptions,
): ReferenceGemmResult {
  return referenceGemmSparse(x, decodePackedSparse(p), opts);
}

/** `referenceGemmF64` (the f64 oracle) of a packed 2:4 weight. */
export function referenceGemmPackedSparseF64(
  x: Uint16Array,
  p: PackedSparseWeight,
  opts: ReferenceGemmOptions,
): ReferenceGemmF64Result {
  return referenceGemmSparseF64(x, decodePackedSparse(p), opts);
}
