/**
 * The packed 2:4 layout (docs/format.md "2:4 sparse (packed)"): word and bit positions against examples worked by hand
 * from the PTX ISA's sparse fragment and metadata descriptions, a sparse MMA emulated from the PTX formulas on the
 * packed bytes, round trips, the reference on the packed bytes against the logical one, and the refusals.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { halfDecoder, halfEncoder } from '../src/dtypes.js';
import { FormatError, UnsupportedError, ValueError } from '../src/errors/index.js';
import { pack } from '../src/format/pack.js';
import { densifySparse, type SparseQuantizedWeight, sparsifyQuantized } from '../src/format/sparse.js';
import {
  isValidMetaNibble,
  metaNibble,
  SPARSE_TILE_WORDS,
  sparseGroupInTile,
  sparseMetaNibbleInTile,
  sparseValueNibbleInTile,
} from '../src/format/sparse-layout.js';
import {
  convertSparseScales,
  type PackedSparseWeight,
  packedSparseBytes,
  packedSparseInfo,
  packSparse,
  sparseInfoFor,
  unpackSparse,
  validatePackedSparse,
} from '../src/format/sparse-pack.js';
import { pruneAndQuantize24 } from '../src/quantize/prune.js';
import { dequantize } from '../src/reference/dequantize.js';
import { referenceGemm } from '../src/reference/gemm.js';
import { referenceGemmSparse } from '../src/reference/sparse.js';
import {
  decodePackedSparse,
  dequantizePackedSparse,
  referenceGemmPackedSparse,
  referenceGemmPackedSparseF64,
} from '../src/reference/sparse-packed.js';
import { randInt, randomHalfBits, rng, thrown } from './helpers.js';
import { randomSparse } from './sparse-helpers.js';

/** A symmetric 64 x 64 sparse weight: every group keeps positions (0, 1) with code 8, scale 1. */
function blank(K = 64, N = 64): { codes: Uint8Array; indices: Uint8Array; s: () => SparseQuantizedWeight } {
  const codes = new Uint8Array((K / 2) * N).fill(8);
  const indices = new Uint8Array((K / 2) * N);
  for (let r = 1; r < K / 2; r += 2) indices.fill(1, r * N, (r + 1) * N);
  const s = (): SparseQuantizedWeight => ({
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    groupSize: K,
    codes,
    indices,
    scales: new Uint16Array(N).fill(0x3c00),
    scaleDtype: 'fp16',
    zeros: null,
  });
  return { codes, indices, s };
}

/** Sets group j (rows 4j..4j+3) of column n to keep positions (a, b) with codes (c0, c1). */
function setGroup(w: ReturnType<typeof blank>, N: number, j: number, n: number, [a, b]: number[], [c0, c1]: number[]) {
  w.indices[2 * j * N + n] = a;
  w.indices[(2 * j + 1) * N + n] = b;
  w.codes[2 * j * N + n] = c0;
  w.codes[(2 * j + 1) * N + n] = c1;
}

describe('packed 2:4 layout: positions', () => {
  it('every value nibble and every metadata nibble of a tile belongs to exactly one group (and the inverses agree)', () => {
    const values = new Set<number>();
    const metas = new Set<number>();
    for (let j = 0; j < 16; j++) {
      for (let n = 0; n < 64; n++) {
        const p = sparseGroupInTile(j, n);
        for (const slot of [0, 1]) {
          const nib = p.valueShift / 4 + 4 * slot;
          values.add(p.valueWord * 8 + nib);
          expect(sparseValueNibbleInTile(p.valueWord, nib)).toEqual({ jLocal: j, nLocal: n, slot });
        }
        metas.add(p.metaWord * 8 + p.metaShift / 4);
        expect(sparseMetaNibbleInTile(p.metaWord, p.metaShift / 4)).toEqual({ jLocal: j, nLocal: n, slot: 0 });
      }
    }
    expect(values.size).toBe(2048);
    expect(Math.max(...values)).toBe(256 * 8 - 1);
    expect(metas.size).toBe(1024);
    expect(Math.min(...metas)).toBe(256 * 8);
    expect(Math.max(...metas)).toBe(384 * 8 - 1);
  });

  it('the valid metadata nibbles are exactly the six ordered pairs of PTX mma.sp::ordered_metadata', () => {
    const valid = Array.from({ length: 16 }, (_, v) => v).filter(isValidMetaNibble);
    expect(valid).toEqual([0b0100, 0b1000, 0b1001, 0b1100, 0b1101, 0b1110]);
    expect(valid).toEqual([
      metaNibble(0, 1),
      metaNibble(0, 2),
      metaNibble(1, 2),
      metaNibble(0, 3),
      metaNibble(1, 3),
      metaNibble(2, 3),
    ]);
  });

  it('worked example 1: rows 4..7 of column 0 keep (1, 3) with codes (5, 3)', () => {
    // Rows 4..7 are chunk 1 of k32 step 0 (columns 4..7 of the sparse A block), column 0 is row groupID 0 of warp
    // slot 0. A fragment (PTX 9.7.14.6.2.2): a0, a1 (register 0) of threadID_in_group 1 cover chunk 4t = 4 -> lane 1,
    // code word (0 * 32 + 1) * 2 + 0 = 2, nibbles 0 (first kept) and 4 (second). Metadata (Figure 122, selector 0):
    // thread T0 of group 0 holds columns 0..15 of row 0 in bits 0..15; chunk 1 is bits 7..4: 0b1101 = 1 | 3 << 2.
    const w = blank();
    setGroup(w, 64, 1, 0, [1, 3], [5, 3]);
    const p = packSparse(w.s());
    expect(p.qweight.length).toBe(SPARSE_TILE_WORDS);
    const want = new Uint32Array(SPARSE_TILE_WORDS);
    want.fill(0x88888888, 0, 256);
    want.fill(0x44444444, 256);
    want[2] = 0x88838885;
    want[256] = 0x444444d4;
    expect(p.qweight).toEqual(want);
  });

  it('worked example 2: rows 52..55 of column 43 keep (0, 2) with codes (1, 15)', () => {
    // Rows 52..55 are chunk 5 of k32 step 1 (sparse columns 20..23: a4..a7, firstcol = 4t + 16 with t = 1); column
    // 43 = warp slot 2, row 11 = groupID 3 + 8: register 3 (a6, a7), nibbles 3 and 7 of code word (2 * 32 + 13) * 2
    // + 1 = 155. Metadata, selector 1: threads T2, T3 of the group stand for T0, T1; columns 16..31 are T3's (lane
    // 4 * 3 + 3 = 15), row groupID + 8 in bits 31..16, chunk (20 - 16) / 4 = 1 -> bits 23..20 = 0 | 2 << 2 = 0b1000.
    const w = blank();
    setGroup(w, 64, 13, 43, [0, 2], [1, 15]);
    const p = packSparse(w.s());
    const want = new Uint32Array(SPARSE_TILE_WORDS);
    want.fill(0x88888888, 0, 256);
    want.fill(0x44444444, 256);
    want[155] = 0xf8881888;
    want[256 + 2 * 32 + 15] = 0x44844444;
    expect(p.qweight).toEqual(want);
  });

  it('positions 0 and 2 everywhere give the metadata word 0x88888888 in every lane (LLVM mma.sp test pattern)', () => {
    // The MLIR sparse-mma-2-4-f16 integration test stores 0x8888 in every int16 of its [16, 2] metadata for this
    // pattern; a lane's register is the int16 of row groupID (low) and of row groupID + 8 (high).
    const w = blank();
    for (let r = 0; r < 32; r++) w.indices.fill(r % 2 === 0 ? 0 : 2, r * 64, (r + 1) * 64);
    const p = packSparse(w.s());
    expect(Array.from(p.qweight.subarray(256)).every((v) => v === 0x88888888)).toBe(true);
  });
});

/**
 * One warp's sparse MMA A operand (16 rows x 32 dense k) rebuilt from the packed bytes with the PTX ISA's formulas
 * for mma.sp.m16n8k32 .f16/.bf16 (9.7.14.6.2.2): element a_i (i = 0..7) of lane l is in row groupID for i in {0, 1,
 * 4, 5}, else groupID + 8; its chunk starts at column 4 * threadID_in_group (+ 16 for i >= 4); a_{2m} / a_{2m+1} are the
 * chunk's first / second non-zero. The metadata of (row, chunk) is read from thread 4 * groupID + 2 * selector +
 * (column >= 16), bits 4 * (chunk % 4) + 16 * (row >= 8) (Figure 122, as LLVM's mma.sp integration test loads it).
 * Returns the dense 16 x 32 codes (the zero point where a position is pruned).
 */
function emulateWarpA(tile: Uint32Array, w: number, step: number, zero: number): number[][] {
  const A = Array.from({ length: 16 }, () => new Array<number>(32).fill(zero));
  for (let lane = 0; lane < 32; lane++) {
    const groupID = lane >> 2;
    const tig = lane % 4;
    const word = tile[(w * 32 + lane) * 2 + step];
    // Register r = a_{2r}, a_{2r+1}: the codec's masks put nibble r in the low half and nibble r + 4 in the high half.
    const elems = [0, 1, 2, 3].flatMap((r) => [(word >>> (4 * r)) & 15, (word >>> (4 * r + 16)) & 15]);
    for (let i = 0; i < 8; i++) {
      const row = i < 2 || (i >= 4 && i < 6) ? groupID : groupID + 8;
      const firstcol = i < 4 ? tig * 4 : tig * 4 + 16;
      const metaLane = 4 * groupID + 2 * step + (firstcol >= 16 ? 1 : 0);
      const meta = tile[256 + w * 32 + metaLane];
      const shift = 4 * ((firstcol % 16) / 4) + (row >= 8 ? 16 : 0);
      const nib = (meta >>> shift) & 15;
      const pos = i % 2 === 0 ? nib & 3 : nib >>> 2;
      A[row][firstcol + pos] = elems[i];
    }
  }
  return A;
}

describe('packed 2:4 layout: a sparse MMA emulated from the PTX formulas reads the logical weight', () => {
  for (const [K, N, zeros] of [
    [64, 64, false],
    [128, 192, true],
    [80, 48, false],
  ] as const) {
    it(`K ${K}, N ${N}${zeros ? ', zero points' : ''}: every warp slot, k32 step and tile`, () => {
      const s = randomSparse({ K, N, groupSize: 32, zeros, scaleDtype: 'fp16', seed: K * N });
      const p = packSparse(s);
      const dense = densifySparse(s).codes;
      const kBlocks = p.Kp / 64;
      for (let nb = 0; nb < p.Np / 64; nb++) {
        for (let kb = 0; kb < kBlocks; kb++) {
          const tile = p.qweight.subarray((nb * kBlocks + kb) * 384, (nb * kBlocks + kb + 1) * 384);
          for (let w = 0; w < 4; w++) {
            for (let step = 0; step < 2; step++) {
              const A = emulateWarpA(tile, w, step, -1);
              for (let row = 0; row < 16; row++) {
                for (let col = 0; col < 32; col++) {
                  const n = nb * 64 + 16 * w + row;
                  const k = kb * 64 + 32 * step + col;
                  if (n >= N || k >= K) continue;
                  const z = s.zeros === null ? 8 : s.zeros[Math.floor(k / 32) * N + n];
                  // Pruned positions are not in A (-1); they hold the zero point in the dense equivalent.
                  expect(A[row][col] === -1 ? z : A[row][col]).toBe(dense[k * N + n]);
                }
              }
            }
          }
        }
      }
    });
  }
});

const GROUPS = [32, 64, 128, 'K'] as const;

describe('packSparse / unpackSparse / decodePackedSparse', () => {
  it('property: round trips exactly, and the packed reference equals the logical one bit for bit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 9 }),
        fc.constantFrom(...GROUPS),
        fc.boolean(),
        fc.constantFrom('fp16' as const, 'bf16' as const),
        fc.integer(),
        (k16, n16, g, zeros, dtype, seed) => {
          const K = 16 * k16;
          const N = 16 * n16;
          const groupSize = g === 'K' ? K : g;
          const s = randomSparse({ K, N, groupSize, zeros, scaleDtype: dtype, seed });
          const p = packSparse(s);
          validatePackedSparse(p);
          expect(p.qweight.length).toBe((p.Kp / 64) * (p.Np / 64) * 384);
          expect(unpackSparse(p)).toEqual(s);
          expect(decodePackedSparse(p)).toEqual(s);
          const M = 1 + (seed & 3);
          const x = randomHalfBits(rng(seed), M * K, dtype);
          const opts = { M, dtype };
          const got = referenceGemmPackedSparse(x, p, opts);
          expect(got.bits).toEqual(referenceGemmSparse(x, s, opts).bits);
          // ... which is the dense reference on the dense equivalent.
          expect(got.bits).toEqual(referenceGemm(x, pack(densifySparse(s)), opts).bits);
          expect(dequantizePackedSparse(p, dtype)).toEqual(dequantize(densifySparse(s), dtype));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('on an exact grid (small integer activations and weights) the result is the exact product, f64 oracle too', () => {
    const K = 256;
    const N = 64;
    const s = randomSparse({ K, N, groupSize: 64, zeros: true, scaleDtype: 'bf16', seed: 3 });
    const scales = new Uint16Array(s.scales.length).fill(0x3f80); // bf16 1.0
    const exact = { ...s, scales };
    const r = rng(4);
    const x = new Uint16Array(2 * K);
    const f32ToBf16Bits = (v: number) => new Uint16Array(new Float32Array([v]).buffer)[1];
    for (let i = 0; i < x.length; i++) x[i] = f32ToBf16Bits(randInt(r, 9) - 4);
    const p = packSparse(exact);
    const got = referenceGemmPackedSparse(x, p, { M: 2, dtype: 'bf16' });
    const oracle = referenceGemmPackedSparseF64(x, p, { M: 2, dtype: 'bf16' }).values;
    const w = dequantize(densifySparse(exact), 'bf16');
    const decode = halfDecoder('bf16');
    for (let m = 0; m < 2; m++) {
      for (let n = 0; n < N; n++) {
        let want = 0;
        for (let k = 0; k < K; k++) want += decode(x[m * K + k]) * w[k * N + n];
        expect(oracle[m * N + n]).toBe(want);
        expect(got.values[m * N + n]).toBe(want);
      }
    }
  });

  it('pads K and N with groups (0, 1) at the zero point, scale 0 and zero point 8 in padded columns', () => {
    const K = 80;
    const N = 80;
    const s = randomSparse({ K, N, groupSize: 32, zeros: true, scaleDtype: 'fp16', seed: 11 });
    const p = packSparse(s);
    expect([p.Kp, p.Np, p.numGroups]).toEqual([128, 128, 3]);
    expect(p.paddedBytes).toBe(((128 * 128 - 80 * 80) * 3) / 8 + 3 * 48 * 3);
    for (let g = 0; g < 3; g++) {
      for (let n = N; n < 128; n++) {
        expect(p.scales[g * 128 + n]).toBe(0);
        expect(p.zeros![g * 128 + n]).toBe(8);
      }
    }
    const kBlocks = p.Kp / 64;
    for (let j = 0; j < 32; j++) {
      for (let n = 0; n < 128; n++) {
        if (4 * j < K && n < N) continue;
        const pos = sparseGroupInTile(j % 16, n % 64);
        const base = (Math.floor(n / 64) * kBlocks + Math.floor(j / 16)) * 384;
        expect((p.qweight[base + pos.metaWord] >>> pos.metaShift) & 15).toBe(0b0100);
        // Padded rows take the zero point of the last group (groupOfRow clamps), padded columns 8.
        const z = n >= N ? 8 : s.zeros![2 * N + n];
        const v = p.qweight[base + pos.valueWord] >>> pos.valueShift;
        expect([v & 15, (v >>> 16) & 15]).toEqual([z, z]);
      }
    }
    // Dequantized padding is exactly 0: the decoded weight equals the logical one.
    expect(decodePackedSparse(p)).toEqual(s);
  });

  it('costs 3 bits per weight in tiles: 0.375 B/weight, 0.390625 with g128 fp16 scales', () => {
    expect(packedSparseBytes(4096, 4096, 4096, false)).toBe(0.375 * 4096 * 4096 + 2 * 4096);
    expect(packedSparseBytes(8192, 8192, 128, false) / (8192 * 8192)).toBe(0.390625);
    expect(packedSparseBytes(8192, 8192, 128, true) / (8192 * 8192)).toBe(0.3984375);
    const s = randomSparse({ K: 512, N: 128, groupSize: 128, zeros: false, scaleDtype: 'fp16', seed: 1 });
    const p = packSparse(s);
    expect(p.qweight.byteLength / (512 * 128)).toBe(0.375);
    expect(p.qweight.byteLength + p.scales.byteLength).toBe(packedSparseBytes(512, 128, 128, false));
    expect(packedSparseInfo(p)).toEqual(sparseInfoFor(512, 128, 128, 'fp16', false));
  });

  it('re-encodes scales to another activation dtype (pack option, convertSparseScales)', () => {
    const s = randomSparse({ K: 64, N: 32, groupSize: 32, zeros: false, scaleDtype: 'fp16', seed: 21 });
    const p = packSparse(s, { scaleDtype: 'bf16' });
    expect(p.scaleDtype).toBe('bf16');
    expect(convertSparseScales(packSparse(s), 'bf16')).toEqual(p);
    const toBf16 = halfEncoder('bf16');
    const fromF16 = halfDecoder('fp16');
    expect(unpackSparse(p).scales).toEqual(Uint16Array.from(s.scales, (b) => toBf16(fromF16(b))));
    const back = unpackSparse(p);
    expect(back.scaleDtype).toBe('bf16');
    expect(back.codes).toEqual(s.codes);
    const x = randomHalfBits(rng(2), 64, 'bf16');
    expect(referenceGemmPackedSparse(x, p, { M: 1, dtype: 'bf16' }).bits).toEqual(
      referenceGemmSparse(x, back, { M: 1, dtype: 'bf16' }).bits,
    );
  });

  it('prune24 + RTN + packSparse: the packed reference equals the dense reference of the quantized weight', () => {
    const K = 128;
    const N = 64;
    const r = rng(31);
    const wf = Float32Array.from({ length: K * N }, () => r() * 2 - 1);
    const { weight } = pruneAndQuantize24(wf, { K, N, groupSize: 64 });
    const p = packSparse(weight);
    const x = randomHalfBits(r, 3 * K, 'fp16');
    expect(referenceGemmPackedSparse(x, p, { M: 3, dtype: 'fp16' }).bits).toEqual(
      referenceGemm(x, pack(densifySparse(weight)), { M: 3, dtype: 'fp16' }).bits,
    );
  });
});

describe('refusals', () => {
  const good = (): PackedSparseWeight =>
    packSparse(randomSparse({ K: 80, N: 80, groupSize: 80, zeros: false, scaleDtype: 'fp16', seed: 5 }));

  it('a metadata nibble that does not name two increasing positions (equal, descending) is a ValueError', () => {
    for (const nib of [0b0000, 0b0101, 0b1010, 0b1111, 0b0001, 0b0110, 0b1011]) {
      const p = good();
      const qweight = new Uint32Array(p.qweight);
      // Group j = 3 (rows 12..15), column 21, in tile (kb 0, nb 0).
      const pos = sparseGroupInTile(3, 21);
      qweight[pos.metaWord] = (qweight[pos.metaWord] & ~(15 << pos.metaShift)) | (nib << pos.metaShift);
      const bad = { ...p, qweight };
      const readers: ((w: PackedSparseWeight) => unknown)[] = [validatePackedSparse, unpackSparse, decodePackedSparse];
      for (const f of readers) {
        const e = thrown(() => f(bad));
        expect(e).toBeInstanceOf(ValueError);
        expect((e as ValueError).details).toMatchObject({
          reason: 'indices-out-of-order',
          k: 12,
          n: 21,
          nibble: nib,
          padding: false,
        });
      }
    }
  });

  it('bad metadata in the padding is refused too (undefined behaviour on the tensor cores even times zero)', () => {
    const p = good();
    const qweight = new Uint32Array(p.qweight);
    const pos = sparseGroupInTile(15, 63); // rows 124..127, column 127 of tile (kb 1, nb 1)
    const base = (1 * 2 + 1) * 384;
    qweight[base + pos.metaWord] &= ~(15 << pos.metaShift);
    const e = thrown(() => validatePackedSparse({ ...p, qweight }));
    expect(e).toBeInstanceOf(ValueError);
    expect((e as ValueError).details).toMatchObject({ k: 124, n: 127, padding: true });
    expect(e.message).toMatch(/\(padding\)/);
  });

  it('structure: version, shape fields, array lengths and types are FormatErrors; bits 8 is unsupported', () => {
    const p = good();
    expect(thrown(() => validatePackedSparse({ ...p, sparseFormatVersion: 2 as 1 }))).toBeInstanceOf(FormatError);
    expect(thrown(() => validatePackedSparse({ ...p, Kp: 64 }))).toBeInstanceOf(FormatError);
    expect(thrown(() => validatePackedSparse({ ...p, numGroups: 2 }))).toBeInstanceOf(FormatError);
    expect(thrown(() => validatePackedSparse({ ...p, qweight: p.qweight.subarray(1) }))).toBeInstanceOf(FormatError);
    expect(thrown(() => validatePackedSparse({ ...p, qweight: new Int32Array(p.qweight) as never }))).toBeInstanceOf(
      FormatError,
    );
    expect(thrown(() => validatePackedSparse({ ...p, zeros: new Uint8Array(3) }))).toBeInstanceOf(FormatError);
    expect(thrown(() => validatePackedSparse({ ...p, bits: 8 as 4 }))).toBeInstanceOf(UnsupportedError);
    const scales = new Uint16Array(p.scales);
    scales[5] = 0;
    expect(thrown(() => validatePackedSparse({ ...p, scales }))).toBeInstanceOf(ValueError);
  });

  it('a dense weight that is not 2:4 cannot reach the packer (sparsifyQuantized refuses it, naming the group)', () => {
    const s = randomSparse({ K: 64, N: 16, groupSize: 64, zeros: false, scaleDtype: 'fp16', seed: 8 });
    const d = densifySparse(s);
    const codes = new Uint8Array(d.codes);
    for (let i = 0; i < 3; i++) codes[(20 + i) * 16 + 9] = 1 + i; // rows 20..22 of column 9 non-zero
    const e = thrown(() => packSparse(sparsifyQuantized({ ...d, codes })));
    expect(e).toBeInstanceOf(ValueError);
    expect((e as ValueError).details).toMatchObject({ reason: 'not-2:4', group: 5, n: 9 });
    // And a logical weight with positions out of order never packs.
    const indices = new Uint8Array(s.indices);
    indices[0] = 3;
    expect((thrown(() => packSparse({ ...s, indices })) as ValueError).details).toMatchObject({
      reason: 'indices-out-of-order',
    });
  });
});
