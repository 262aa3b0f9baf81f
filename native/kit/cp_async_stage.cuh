// One pipeline stage filled by every thread of the block with 16-byte cp.async: the stage layout and the per-thread
// copy plan of the all-threads pipelines of gemm_kernel.cuh (the mma.sync family below sm_90, and the all-threads
// wgmma rows on sm_90a). Its copy-engine counterpart, filled by one thread, is tma_stage.cuh.
//
// Stage layout (16-byte aligned):
//   weights      N_TILES x K_STAGE tiles, [nt][j] (Codec::kTileBytes each). sm_90: one bulk copy per column tile
//                (contiguous along K in the packed format), completing on the slot's "full" mbarrier; below sm_90
//                16-byte cp.async from a plan computed once.
//   activations  M_TILE token rows x K_STAGE * 64 k, zero-filled past M and K. mma.sync: row-major, 16-byte chunk c of
//                row r at chunk c ^ (r & 7) (ldmatrix's 8 rows hit 8 bank groups); wgmma: core matrices of 8 rows x
//                16 B, chunk-major (x_chunk_offset).
//   scale rows   one row of kCtaN scales per 32-row k offset (0 and 32 of each k-tile: groups are >= 32 rows)
//   zero rows    the same rows of uint8 zero points (always reserved; copied only with HAS_ZEROS)
// "Stage s has landed" is cp.async group s complete (plus, on sm_90, the full barrier for the weights).
#pragma once
#include "../common/bulk_copy.cuh"
#include "../common/ptx.cuh"
#include "params.cuh"
#include "stage_view.cuh"

namespace marlin::kit {

// Byte offset of 16-byte activation chunk c (8 k-values) of token row r inside a stage's activation area.
//   mma.sync: row-major rows, chunk XOR-swizzled by (r & 7) so ldmatrix's 8 rows hit 8 different bank groups.
//   wgmma:    core matrices of 8 rows x 16 B, chunk-major: core (c, r / 8) at (c * M_TILE / 8 + r / 8) * 128.
template <bool WGMMA, int M_TILE, int X_ROW_CHUNKS>
__device__ __forceinline__ int x_chunk_offset(int r, int c) {
  if constexpr (WGMMA) {
    return ((c * (M_TILE / 8) + (r >> 3)) * 8 + (r & 7)) * 16;
  } else {
    return (r * X_ROW_CHUNKS + (c ^ (r & 7))) * 16;
  }
}

template <typename Codec, int M_TILE, int N_TILES, int K_STAGE, bool HAS_ZEROS, bool WGMMA, int THREADS>
struct CpAsyncStage {
  static constexpr int kCtaN = N_TILES * kTileN;
  static constexpr int kXRowChunks = K_STAGE * 8;  // 16-byte chunks per activation row
  static constexpr int kWBytes = K_STAGE * N_TILES * Codec::kTileBytes;
  static constexpr int kXBytes = M_TILE * kXRowChunks * 16;
  static constexpr int kSBytes = K_STAGE * 2 * kCtaN * 2;  // scale rows for k offsets 0 and 32 of each k-tile
  static constexpr int kZBytes = K_STAGE * 2 * kCtaN;      // zero-point rows (uint8), same rows
  static constexpr int kXOffset = kWBytes, kSOffset = kXOffset + kXBytes, kZOffset = kSOffset + kSBytes;
  static constexpr int kBytes = kZOffset + kZBytes;
  static_assert(kXRowChunks >= 8, "the XOR swizzle permutes 8 chunks of a row");
  static_assert(kBytes % 16 == 0, "stages must stay 16-byte aligned");

  // The weight, scale and zero-point areas of the stage at `base`, as the compute warps read them (stage_view.cuh).
  static __device__ __forceinline__ StageView<Codec, N_TILES, K_STAGE, HAS_ZEROS> view(const uint8_t* base) {
    return {base, reinterpret_cast<const uint16_t*>(base + kSOffset), base + kZOffset};
  }

  // The per-thread plan, fixed for the whole K loop. Activations: compile-time trip counts and row pointers
  // computed once; written as `for (i = tid; i < N; i += THREADS)` in the load, each cp.async cost ~50 instructions of
  // loop control and 64-bit address math per stage (SASS of config 0). Weights below sm_90: source advances by
  // K_STAGE tiles per stage.
  static constexpr int kXChunks = M_TILE * kXRowChunks, kXIters = (kXChunks + THREADS - 1) / THREADS;
  const int4* x_row[kXIters];  // row start of this chunk's token; nullptr past M (the chunk is zero-filled)
  uint32_t x_dst[kXIters];     // byte offset in the stage's activation area
  int x_k[kXIters];            // k offset of the chunk within a stage (elements)
#ifndef MARLIN_HAS_BULK_COPY
  static constexpr int kTileChunks = Codec::kTileBytes / 16, kTileChunkShift = __builtin_ctz(kTileChunks);
  // Dense tiles are a power of two of 16-byte chunks (mask and shift); a 2:4 tile is 96 (unsigned division by it).
  static constexpr bool kPow2Tile = kTileChunks == 1 << kTileChunkShift;
  static constexpr int kWChunks = N_TILES * K_STAGE * kTileChunks, kWIters = (kWChunks + THREADS - 1) / THREADS;
  const int4* w_src[kWIters];
  uint32_t w_dst[kWIters];
  int w_j[kWIters];
  bool w_ok[kWIters];
#endif

  // Plans for thread `tid` of the block whose first token row is m0 and first 64-column tile tile0.
  __device__ __forceinline__ CpAsyncStage(const Params& p, int tid, int m0, int tile0) {
#pragma unroll
    for (int r = 0; r < kXIters; ++r) {
      // mma.sync: a thread pair per 32-byte sector along the row (the swizzle spreads the banks). wgmma: thread pairs
      // read 32 B of a row, and consecutive pairs take consecutive rows, so a warp writes 16 rows of 2 core-matrix
      // columns (2-way bank conflict at most) instead of 16 chunks of one row (16-way: cores of a row are 2 KB apart).
      const int i = tid + r * THREADS;
      const int row = WGMMA ? (i >> 1) % M_TILE : i / kXRowChunks;
      const int c = WGMMA ? (i & 1) + 2 * (i / (2 * M_TILE)) : i % kXRowChunks;
      const bool live = (kXChunks % THREADS == 0 || i < kXChunks) && m0 + row < p.m;
      x_row[r] = live ? p.x + size_t(m0 + row) * p.lda / 8 : nullptr;
      x_dst[r] = x_chunk_offset<WGMMA, M_TILE, kXRowChunks>(row, c);
      x_k[r] = c * 8;
    }
#ifndef MARLIN_HAS_BULK_COPY
    const int n_tiles_total = p.np / kTileN;
#pragma unroll
    for (int r = 0; r < kWIters; ++r) {
      const int i = tid + r * THREADS;
      const int c = kPow2Tile ? i & (kTileChunks - 1) : int(unsigned(i) % kTileChunks);
      const int jt = kPow2Tile ? i >> kTileChunkShift : int(unsigned(i) / kTileChunks);
      const int nt = jt / K_STAGE, j = jt % K_STAGE;
      w_ok[r] = i < kWChunks && tile0 + nt < n_tiles_total;
      w_src[r] = p.w + (size_t(tile0 + nt) * p.k_tiles + j) * kTileChunks + c;
      w_dst[r] = (nt * K_STAGE + j) * Codec::kTileBytes + c * 16;
      w_j[r] = j;
    }
#endif
  }

  // The stage's 2 K_STAGE group rows (k offsets 0 and 32 of each valid k-tile) of a per-group array of np columns
  // (scales: 2-byte elements, zero points: 1-byte), kCtaN columns from n0 each: 16-byte chunks, compile-time trip count.
  template <typename E>
  static __device__ __forceinline__ void copy_group_rows(const Params& p, uint8_t* dst, const E* src, int tid, int n0,
                                                         int kt0, int valid_tiles) {
    constexpr int kPerChunk = 16 / sizeof(E);                        // elements per 16-byte chunk
    constexpr int kRowChunks = N_TILES * kTileN / kPerChunk;         // chunks per row
    constexpr int kChunks = K_STAGE * 2 * kRowChunks;
#pragma unroll
    for (int r = 0; r < (kChunks + THREADS - 1) / THREADS; ++r) {
      const int i = tid + r * THREADS;
      const int c = i % kRowChunks, row = i / kRowChunks;
      if ((kChunks % THREADS == 0 || i < kChunks) && (row >> 1) < valid_tiles && n0 + c * kPerChunk < p.np) {
        const int grp = group_of(p, kt0 * kTileK + row * 32);
        cp_async16(dst + (row * kCtaN + c * kPerChunk) * sizeof(E), src + size_t(grp) * p.np + n0 + c * kPerChunk);
      }
    }
  }

  // Issues stage `st` (absolute stage index of the GEMM) into `base` for thread `tid` of the block whose first
  // 64-column tile is tile0. `constants`: the layer's constants (weights, scale and zero-point rows), which may be
  // issued before grid_dependency_wait(); `activations`: the activations, which may not (programmatic dependent
  // launch, ptx.cuh). Both parts in one function, in the order of the unsplit load (weights, activations, scales,
  // zero points). `full` (sm_90): the slot's barrier for the weights' bulk copies.
  __device__ __forceinline__ void load(const Params& p, uint8_t* base, uint64_t* full, int tid, int tile0, int st,
                                       bool constants, bool activations) const {
    const int n0 = tile0 * kTileN;
    const int kt0 = st * K_STAGE;
    const int valid_tiles = min(K_STAGE, p.k_tiles - kt0);
    if (constants) {
#ifdef MARLIN_HAS_BULK_COPY
      if (tid == 0) {
        const int valid_n = min(N_TILES, p.np / kTileN - tile0);
        const uint32_t bytes = uint32_t(valid_tiles) * Codec::kTileBytes;
        mbar_arrive_expect_tx(full, bytes * valid_n);
        for (int nt = 0; nt < valid_n; ++nt) {
          bulk_copy_g2s(base + nt * K_STAGE * Codec::kTileBytes,
                        p.w + (size_t(tile0 + nt) * p.k_tiles + kt0) * (Codec::kTileBytes / 16), bytes, full);
        }
      }
#else
      (void)full;
#pragma unroll
      for (int r = 0; r < kWIters; ++r) {
        if (w_ok[r] && w_j[r] < valid_tiles) cp_async16(base + w_dst[r], w_src[r] + size_t(kt0) * kTileChunks);
      }
#endif
    }
    uint8_t* xs = base + kXOffset;
    if (activations) {
#pragma unroll
      for (int r = 0; r < kXIters; ++r) {  // zero-filled past M and K
        const int k = kt0 * kTileK + x_k[r];
        const bool ok = x_row[r] != nullptr && k < p.k;
        if (kXChunks % THREADS == 0 || tid + r * THREADS < kXChunks) {
          cp_async16(xs + x_dst[r], ok ? x_row[r] + k / 8 : p.x, ok ? 16 : 0);
        }
      }
    }
    if (!constants) return;
    copy_group_rows(p, base + kSOffset, p.scales, tid, n0, kt0, valid_tiles);  // scale rows (T)
    if constexpr (HAS_ZEROS) copy_group_rows(p, base + kZOffset, p.zeros, tid, n0, kt0, valid_tiles);
  }
};

}  // namespace marlin::kit
