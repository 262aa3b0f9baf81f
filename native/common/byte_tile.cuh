// The 8-bit weight tile as the codecs read it (docs/format.md "INT8" and "FP8 e4m3": one byte layout for both). A
// 64 x 64 kernel tile (4096 bytes) is two 32-row format tiles, contiguous along k; in each, lane l of warp slot w holds
// 16 bytes at (w * 32 + l) * 16: words 2j and 2j + 1 are its share of k16 step j. Word 2j, byte b: row g + 8 (b >> 1),
// k 2t + (b & 1); word 2j + 1 the same at k + 8. So per word, bytes (0, 1) form fragment register a0 (rows g) or a2, and
// bytes (2, 3) form a1 (rows g + 8) or a3, each low half first.
#pragma once
#include <stdint.h>

namespace marlin {

struct ByteTileWords {
  uint4 lo, hi;  // the lane's 16 bytes of format tile 0 (k16 steps 0, 1) and of format tile 1 (steps 2, 3)
};

struct ByteTile {
  static constexpr int kTileBytes = 4096;
  static constexpr int kFormatTileBytes = 2048;
  static __device__ __forceinline__ int lane_offset(int wn, int lane) { return (wn * 32 + lane) * 16; }
  static __device__ __forceinline__ ByteTileWords lane_words(const uint8_t* at) {
    return {*reinterpret_cast<const uint4*>(at), *reinterpret_cast<const uint4*>(at + kFormatTileBytes)};
  }
  // The two words of k16 step `step` (0..3, a constant after unrolling, so these are register picks).
  static __device__ __forceinline__ uint32_t first(const ByteTileWords& w, int step) {
    return step == 0 ? w.lo.x : step == 1 ? w.lo.z : step == 2 ? w.hi.x : w.hi.z;
  }
  static __device__ __forceinline__ uint32_t second(const ByteTileWords& w, int step) {
    return step == 0 ? w.lo.y : step == 1 ? w.lo.w : step == 2 ? w.hi.y : w.hi.w;
  }
};

// Byte permute (PTX prmt.b32): byte i of the result is byte (sel >> 4i) & 7 of the pair (a, b), b's bytes being 4..7.
__device__ __forceinline__ uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t sel) { return __byte_perm(a, b, sel); }

}  // namespace marlin
