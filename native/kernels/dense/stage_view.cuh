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

  // Dequant constants of this lane's rows (g, g + 8) of column tile nt, for k-tile j and k offset 32 kp.
  __device__ __forceinline__ GroupConsts group_consts(int j, int kp, int nt, int wn, int g) const {
    const int col = (j * 2 + kp) * kCtaN + nt * kTileN + wn * 16 + g;
    const int z_g = HAS_ZEROS ? z[col] : 8, z_g8 = HAS_ZEROS ? z[col + 8] : 8;
    return Int4Dequant<T>::consts(s[col], s[col + 8], z_g, z_g8);
  }
};

}  // namespace marlin::dense
