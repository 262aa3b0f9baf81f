// One pipeline stage filled by a single thread through the Hopper copy engine (sm_90): the layout and the copies
// shared by the two kernels whose stages complete on an mbarrier instead of per-thread cp.async and __syncthreads:
// the warp-specialised wgmma kernel (gemm_ws_kernel.cuh) and the mma.sync kernel's sm_90 pipeline (gemm_kernel.cuh,
// producer warp).
//
// Stage layout (the stage starts on a 1024-byte boundary: the 128-byte swizzle pattern repeats every 8 rows):
//   activations  K_STAGE boxes of M_TILE token rows x 64 k (128 B per row, 128-byte swizzle: the 16-byte chunk c of
//                row r sits at chunk c ^ (r & 7)); rows past M and k past K read as zeros (TMA out-of-bounds fill)
//   weights      N_TILES x K_STAGE tiles, [nt][j] (Codec::kTileBytes each; one bulk copy per column tile, contiguous
//                along K in the packed format)
//   scale rows   one row of kCtaN scales per distinct scale group of the stage (groups >= 32 rows: at most 2 per
//                k-tile), starting with the stage's first group (stage_first_group)
//   zero rows    the same rows of uint8 zero points (HAS_ZEROS)
// Everything lands on the slot's "full" barrier as transaction bytes.
#pragma once
#include <cuda.h>  // CUtensorMap (the type only; the map is encoded on the host, kit/host.cu activation_tensor_map)

#include "../common/bulk_copy.cuh"
#include "../common/ptx.cuh"
#include "params.cuh"
#include "stage_view.cuh"

namespace marlin::kit {

template <typename Codec, int M_TILE, int N_TILES, int K_STAGE, bool HAS_ZEROS>
struct TmaStage {
  static constexpr int kCtaN = N_TILES * kTileN;
  static constexpr int kXTileBytes = M_TILE * 128;  // one k-tile of activations: M_TILE rows of 64 k (swizzled)
  static constexpr int kXBytes = K_STAGE * kXTileBytes;
  static constexpr int kWBytes = K_STAGE * N_TILES * Codec::kTileBytes;
  static constexpr int kSBytes = K_STAGE * 2 * kCtaN * 2;  // room for a scale row per 32-row k offset (groups >= 32)
  static constexpr int kZBytes = K_STAGE * 2 * kCtaN;      // zero-point rows (uint8), same rows
  static constexpr int kWOffset = kXBytes, kSOffset = kWOffset + kWBytes, kZOffset = kSOffset + kSBytes;
  static constexpr int kBytes = (kZOffset + kZBytes + 1023) / 1024 * 1024;

  // The weight, scale and zero-point areas of the stage at `base`, as the compute warps read them (stage_view.cuh).
  static __device__ __forceinline__ StageView<Codec, N_TILES, K_STAGE, HAS_ZEROS> view(const uint8_t* base) {
    return {base + kWOffset, reinterpret_cast<const uint16_t*>(base + kSOffset), base + kZOffset};
  }

  // The scale / zero-point row of the stage that holds k offset `off` (elements from the stage's first k). Stages start
  // on multiples of K_STAGE * 64 and groups are powers of two (or all of K), so a stage starts on a group boundary or
  // lies inside one group: the row is off >> group_shift, capped at last_group_row() where K ends inside the stage
  // (rows past K belong to the last group, group_of).
  static_assert((K_STAGE & (K_STAGE - 1)) == 0, "group_row needs a power-of-two stage length");
  static __device__ __forceinline__ int group_row(const Params& p, int off, int last_row) {
    return min(off >> p.group_shift, last_row);
  }
  static __device__ __forceinline__ int last_group_row(const Params& p, int st) {
    return p.num_groups - 1 - stage_first_group(p, st * K_STAGE);
  }

  // Byte offset of 16-byte activation chunk c (8 k-values; chunk c of k-tile c / 8) of token row r in the stage.
  static __device__ __forceinline__ int x_chunk_offset(int r, int c) {
    return (c >> 3) * kXTileBytes + r * 128 + (((c & 7) ^ (r & 7)) << 4);
  }

#ifdef MARLIN_HAS_BULK_COPY
  // Issues stage `st` (absolute stage index of the GEMM) into `base` for the block whose first token row is m0 and
  // first 64-column tile tile0, completing on `full`. `constants` (the slot's expected bytes, weights, scale and zero
  // rows) may be issued before grid_dependency_wait(); `activations` may not (programmatic dependent launch, ptx.cuh).
  // The order is the one measured best for the warp-specialised kernel: arm, activations, weights,
  // scale rows.
  static __device__ __forceinline__ void issue(const Params& p, const CUtensorMap* x_map, uint8_t* base,
                                               uint64_t* full, int st, int m0, int tile0, bool constants,
                                               bool activations) {
    const int n_tiles_total = p.np / kTileN;
    const int valid_n = min(N_TILES, n_tiles_total - tile0);
    const int n0 = tile0 * kTileN;
    uint8_t* ws = base + kWOffset;
    uint8_t* ss = base + kSOffset;
    uint8_t* zs = base + kZOffset;
    const int kt0 = st * K_STAGE;
    const int valid_tiles = min(K_STAGE, p.k_tiles - kt0);
    // One scale / zero-point row per distinct group of the stage (groups >= 32 rows: consecutive), not one per 32-row
    // k offset: with group 128 one copy instead of four.
    const int g_first = stage_first_group(p, kt0);
    const int g_rows = group_of(p, (kt0 + valid_tiles) * kTileK - 32) - g_first + 1;
    // Activations: one 3D box of K_STAGE k-tiles (a partial last stage's missing k-tiles read as zeros and count in
    // the transaction bytes), or one 2D box per k-tile when K is not a multiple of 64 (x_box3).
    const bool box3 = x_box3(p);
    if (constants) {
      mbar_arrive_expect_tx(full, (box3 ? K_STAGE : valid_tiles) * kXTileBytes + valid_tiles * valid_n * Codec::kTileBytes +
                                      g_rows * valid_n * (128 + (HAS_ZEROS ? 64 : 0)));
    }
    if (activations) {
      if (box3) {
        tma_load_3d(base, x_map, 0, m0, kt0, full);
      } else {
        for (int j = 0; j < valid_tiles; ++j) tma_load_2d(base + j * kXTileBytes, x_map, (kt0 + j) * kTileK, m0, full);
      }
    }
    if (!constants) return;
    for (int nt = 0; nt < valid_n; ++nt) {
      bulk_copy_g2s(ws + nt * K_STAGE * Codec::kTileBytes, p.w + (size_t(tile0 + nt) * p.k_tiles + kt0) * (Codec::kTileBytes / 16),
                    valid_tiles * Codec::kTileBytes, full);
    }
    for (int row = 0; row < g_rows; ++row) {
      const size_t grp = g_first + row;
      bulk_copy_g2s(ss + row * kCtaN * 2, p.scales + grp * p.np + n0, valid_n * 128, full);
      if constexpr (HAS_ZEROS) bulk_copy_g2s(zs + row * kCtaN, p.zeros + grp * p.np + n0, valid_n * 64, full);
    }
  }

  // The producer warp's loop (both copy-engine kernels; every lane calls it, lane 0 issues): stages st_begin ..
  // + n_stages - 1 into STAGES slots of kBytes from `smem`, each slot refilled once its compute warps have arrived on
  // its "empty" barrier (shared address empty0 + 8 * slot). Stage 0's constants go out before the wait for the
  // previous kernel of the stream (a no-op unless this launch overlaps it), everything else after it. Prefetching
  // every free slot's constants first queued stage 0's activations behind them (3-6% slower, docs/perf-notes.md);
  // issuing each stage's constants before its activations was 2-3% slower at M >= 256 than this order.
  template <int STAGES>
  static __device__ __forceinline__ void produce(const Params& p, const CUtensorMap* x_map, uint8_t* smem,
                                                 uint64_t* full_bar, uint32_t empty0, int st_begin, int n_stages,
                                                 int m0, int tile0, int lane) {
    if (lane == 0) {
      if (n_stages > 0) issue(p, x_map, smem, &full_bar[0], st_begin, m0, tile0, true, false);
      grid_dependency_wait();
    }
    __syncwarp();
    for (int it = 0; it < n_stages; ++it) {
      const int slot = it % STAGES;
      if (it >= STAGES) mbar_wait(empty0 + 8 * slot, ((it / STAGES) - 1) & 1);  // compute warps released the slot
      if (lane == 0) issue(p, x_map, smem + slot * kBytes, &full_bar[slot], st_begin + it, m0, tile0, it > 0, true);
      __syncwarp();
    }
  }
#endif
};

// Rounds a dynamic shared memory base (only 16-byte aligned) up to 1024 bytes; the kernels reserve 1024 extra bytes.
__device__ __forceinline__ uint8_t* align_1024(uint8_t* p) {
  return p + ((1024 - (static_cast<uint32_t>(__cvta_generic_to_shared(p)) & 1023)) & 1023);
}

}  // namespace marlin::kit
