// The weight, scale and zero-point areas of one pipeline stage, as one lane reads them. Both dense kernels lay a stage
// out the same way (only where each area starts differs): weights [nt][j] as K_STAGE k-tiles per 64-column tile
// (2048 B each, docs/format.md "Tiles"), then scale rows (fp16/bf16) and zero-point rows (uint8) for the k offsets
// 0 and 32 of each k-tile, kCtaN = N_TILES * 64 entries per row.
#pragma once
#include "../../common/dequant.cuh"
#include "params.cuh"

namespace marlin::dense {

template <typename T, int N_TILES, int K_STAGE, bool HAS_ZEROS>
struct StageView {
  static constexpr int kCtaN = N_TILES * kTileN;
  const uint8_t* w;   // K_STAGE * N_TILES weight tiles
  const uint16_t* s;  // 2 * K_STAGE scale rows
  const uint8_t* z;   // 2 * K_STAGE zero-point rows (read only when HAS_ZEROS)

  // This lane's 4 fragment words (k steps 0..3) of k-tile j, column tile nt: one 16-byte read. `wn` = the warp's
  // 16-column slot within the tile (warp index within its group of 4).
  __device__ __forceinline__ uint4 tile_words(int j, int nt, int wn, int lane) const {
    return *reinterpret_cast<const uint4*>(w + (nt * K_STAGE + j) * kTileBytes + (wn * 32 + lane) * 16);
  }

  // Index of this lane's row g of column tile nt in the scale / zero-point rows of k-tile j, k offset 32 kp.
  static __device__ __forceinline__ int lane_col(int j, int kp, int nt, int wn, int g) {
    return (j * 2 + kp) * kCtaN + nt * kTileN + wn * 16 + g;
  }

  // Dequant constants of this lane's rows (g, g + 8) of column tile nt, for k-tile j and k offset 32 kp.
  __device__ __forceinline__ GroupConsts group_consts(int j, int kp, int nt, int wn, int g) const {
    const int col = lane_col(j, kp, nt, wn, g);
    const int z_g = HAS_ZEROS ? z[col] : 8, z_g8 = HAS_ZEROS ? z[col + 8] : 8;
    return Int4Dequant<T>::consts(s[col], s[col + 8], z_g, z_g8);
  }

  // Zero-point offsets only (post-scaled path: the scales are applied in fp32 by scales_f32()).
  __device__ __forceinline__ ZeroConsts zero_consts(int j, int kp, int nt, int wn, int g) const {
    if constexpr (!HAS_ZEROS) return Int4Dequant<T>::zero_consts(8, 8);
    const int col = lane_col(j, kp, nt, wn, g);
    return Int4Dequant<T>::zero_consts(z[col], z[col + 8]);
  }

  // Scales of this lane's rows (g, g + 8) of column tile nt at k-tile j, as fp32.
  __device__ __forceinline__ float2 scales_f32(int j, int nt, int wn, int g) const {
    const int col = lane_col(j, 0, nt, wn, g);
    return make_float2(to_float<T>(s[col]), to_float<T>(s[col + 8]));
  }
};

}  // namespace marlin::dense
