// The weight, scale and zero-point areas of one pipeline stage, as one lane reads them. Both dense kernels lay a stage
// out the same way (only where each area starts differs): weights [nt][j] as K_STAGE k-tiles per 64-column tile
// (Codec::kTileBytes each, docs/format.md "Tiles"), then scale rows (T bits) and zero-point rows (uint8) for the k
// offsets 0 and 32 of each k-tile, kCtaN = N_TILES * 64 entries per row. What the weight bytes mean is the codec's
// business (native/common/codec.cuh); the scale and zero-point rows are the same for every codec.
#pragma once
#include "../../common/act_dtype.cuh"
#include "../../common/codec.cuh"
#include "params.cuh"

namespace marlin::dense {

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
    return Codec::lane_words(w + (nt * K_STAGE + j) * Codec::kTileBytes, wn, lane);
  }

  // Index of this lane's row g of column tile nt in the scale / zero-point rows of k-tile j, k offset 32 kp.
  static __device__ __forceinline__ int lane_col(int j, int kp, int nt, int wn, int g) {
    return (j * 2 + kp) * kCtaN + nt * kTileN + wn * 16 + g;
  }

  // Dequant constants of this lane's rows (g, g + 8) of column tile nt, for k-tile j and k offset 32 kp.
  __device__ __forceinline__ typename Codec::Consts group_consts(int j, int kp, int nt, int wn, int g) const {
    const int col = lane_col(j, kp, nt, wn, g);
    const int z_g = HAS_ZEROS ? z[col] : Codec::kDefaultZero, z_g8 = HAS_ZEROS ? z[col + 8] : Codec::kDefaultZero;
    return Codec::consts(s[col], s[col + 8], z_g, z_g8);
  }

  // Zero-point offsets only (post-scaled path: the scales are applied in fp32 by scales_f32()).
  __device__ __forceinline__ typename Codec::Offsets zero_consts(int j, int kp, int nt, int wn, int g) const {
    if constexpr (!HAS_ZEROS) return Codec::offsets(Codec::kDefaultZero, Codec::kDefaultZero);
    const int col = lane_col(j, kp, nt, wn, g);
    return Codec::offsets(z[col], z[col + 8]);
  }

  // Scales of this lane's rows (g, g + 8) of column tile nt at k-tile j, as fp32.
  __device__ __forceinline__ float2 scales_f32(int j, int nt, int wn, int g) const {
    const int col = lane_col(j, 0, nt, wn, g);
    return make_float2(to_float<T>(s[col]), to_float<T>(s[col + 8]));
  }
};

}  // namespace marlin::dense
