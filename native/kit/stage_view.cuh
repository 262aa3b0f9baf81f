// The weight, scale and zero-point areas of one pipeline stage, as one lane reads them. Both dense kernels lay a stage
// out the same way (only where each area starts differs): weights [nt][j] as K_STAGE k-tiles per 64-column tile
// (Codec::kTileBytes each, docs/format.md "Tiles"), then scale rows (T bits) and zero-point rows (uint8) for the k
// offsets 0 and 32 of each k-tile, kCtaN = N_TILES * 64 entries per row. What the weight bytes mean is the codec's
// business (native/common/codec.cuh; a 2:4 codec's tile holds its metadata too); the scale and zero-point rows are the
// same for every codec (2:4: rows of the dense K, so a k32 step lies in one group).
#pragma once
#include "../common/act_dtype.cuh"
#include "../common/codec.cuh"
#include "params.cuh"

namespace marlin::kit {

template <typename Codec, int N_TILES, int K_STAGE, bool HAS_ZEROS>
struct StageView {
  static_assert(check_codec<Codec>());
  static_assert(!HAS_ZEROS || Codec::kZeroPoints, "this weight format has no zero points");
  using T = typename Codec::Act;
  static constexpr int kCtaN = N_TILES * kTileN;
  const uint8_t* w;   // K_STAGE * N_TILES weight tiles
  const uint16_t* s;  // 2 * K_STAGE scale rows
  const uint8_t* z;   // 2 * K_STAGE zero-point rows (read only when HAS_ZEROS)

  // This lane's words (all k16 steps) of k-tile j, column tile nt. `wn` = the warp's 16-column slot within the tile
  // (warp index within its group of 4).
  __device__ __forceinline__ typename Codec::LaneWords tile_words(int j, int nt, int wn, int lane) const {
    return Codec::lane_words(w + (nt * K_STAGE + j) * Codec::kTileBytes + Codec::lane_offset(wn, lane),
                             Codec::lane_aux(wn, lane));
  }

  // Index of this lane's row g of column tile nt in the scale / zero-point rows of k-tile j, k offset 32 kp.
  static __device__ __forceinline__ int lane_col(int j, int kp, int nt, int wn, int g) {
    return (j * 2 + kp) * kCtaN + nt * kTileN + wn * 16 + g;
  }

  // Dequant constants of this lane's rows (g, g + 8) of column tile nt, for k-tile j and k offset 32 kp.
  __device__ __forceinline__ typename Codec::Consts group_consts(int j, int kp, int nt, int wn, int g) const {
    return row_consts(j * 2 + kp, nt, wn, g);
  }
  // The same from scale / zero-point row `row` of the stage, for a producer that stores one row per distinct group
  // (the warp-specialised kernel) instead of one per k offset.
  __device__ __forceinline__ typename Codec::Consts row_consts(int row, int nt, int wn, int g) const {
    return lane_row_consts(RunLane{0, lane_col(0, 0, 0, wn, g)}, row, nt);
  }

  // A lane's offsets for a k run that starts at k-tile j0, computed once per kernel rather than per stage (rebuilt
  // from the thread index in every stage they cost ~30 of the ~240 instructions of a config 0 stage in SASS). opaque()
  // keeps ptxas from rematerialising them.
  struct RunLane {
    uint32_t w;  // byte offset of the lane's words of k-tile j0, column tile 0
    int col;     // index of the lane's row g, column tile 0, in the scale / zero-point row of k-tile j0, k offset 0
    int aux;     // Codec::lane_aux (2:4: from the lane's codes to its metadata word; 0 for dense codecs)
  };
  static __device__ __forceinline__ RunLane run_lane(int j0, int wn, int lane, int g) {
    int aux = 0;
    if constexpr (is_sparse24<Codec>()) aux = int(opaque(uint32_t(Codec::lane_aux(wn, lane))));
    return {opaque(uint32_t(j0 * Codec::kTileBytes + Codec::lane_offset(wn, lane))), int(opaque(lane_col(j0, 0, 0, wn, g))),
            aux};
  }
  // The post-scaled path's reads for k-tile j0 + jj of the run: the lane's words (as tile_words), the zero-point
  // offsets alone and the scales as fp32 (the scale is applied to the run's fp32 partial sums).
  __device__ __forceinline__ typename Codec::LaneWords run_words(const RunLane& r, int jj, int nt) const {
    return Codec::lane_words(w + r.w + (nt * K_STAGE + jj) * Codec::kTileBytes, r.aux);
  }
  __device__ __forceinline__ typename Codec::Offsets run_zero_consts(const RunLane& r, int jj, int kp, int nt) const {
    if constexpr (!HAS_ZEROS) return Codec::offsets(Codec::kDefaultZero, Codec::kDefaultZero);
    const int col = r.col + (jj * 2 + kp) * kCtaN + nt * kTileN;
    return Codec::offsets(z[col], z[col + 8]);
  }
  // The same for a layout with one row per distinct group (tma_stage.cuh): r.col already points into the run's row,
  // which every k offset of the run shares.
  __device__ __forceinline__ typename Codec::Offsets run_group_zero_consts(const RunLane& r, int nt) const {
    if constexpr (!HAS_ZEROS) return Codec::offsets(Codec::kDefaultZero, Codec::kDefaultZero);
    const int col = r.col + nt * kTileN;
    return Codec::offsets(z[col], z[col + 8]);
  }
  // Dequant constants of the lane's rows of column tile nt from scale / zero-point row `row` (a layout with one row per
  // distinct group, tma_stage.cuh), through offsets computed once (run_lane(0, ...)).
  __device__ __forceinline__ typename Codec::Consts lane_row_consts(const RunLane& r, int row, int nt) const {
    const int col = r.col + row * kCtaN + nt * kTileN;
    const int z_g = HAS_ZEROS ? z[col] : Codec::kDefaultZero, z_g8 = HAS_ZEROS ? z[col + 8] : Codec::kDefaultZero;
    return Codec::consts(s[col], s[col + 8], z_g, z_g8);
  }
  __device__ __forceinline__ float2 run_scales_f32(const RunLane& r, int nt) const {
    const int col = r.col + nt * kTileN;
    return make_float2(to_float<T>(s[col]), to_float<T>(s[col + 8]));
  }
};

}  // namespace marlin::kit
