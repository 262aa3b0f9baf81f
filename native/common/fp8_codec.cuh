// The FP8 e4m3 weight codec (docs/format.md "FP8 e4m3": OCP E4M3FN bytes in the INT8 byte layout, no zero points). The
// dequant is bit manipulation: each byte goes to a 16-bit half (prmt), its sign to bit 15 and its 7 exponent +
// mantissa bits into T's exponent / mantissa fields (bits 7..13 for fp16, 4..10 for bf16). That
// reads the e4m3 value times 2^-8 (fp16: bias 15 vs 7) or 2^-120 (bf16: bias 127 vs 7), exactly, subnormals included.
// The packer folded 2^8 / 2^120 into the scales (FP8_SCALE_FOLD_EXPONENT in @marlin/core), so the one multiply by the
// stored scale gives round_T(e4m3(q) * s), the reference's semantics; unscaled() is exact and the post-scaled path
// multiplies its fp32 partial sums by the stored (folded) scale. A missing or doubled fold is off by 2^8 / 2^120 and
// fails every grid-exact test. NaN codes (0x7F, 0xFF) are refused at pack time; here they would read as finite values.
#pragma once
#include "act_dtype.cuh"
#include "byte_tile.cuh"
#include "codec.cuh"
#include "ptx.cuh"

namespace marlin {

template <typename T>
struct Fp8Codec {
  using Act = T;
  static constexpr int kBits = 8;
  static constexpr int kTileBytes = ByteTile::kTileBytes;
  static constexpr int kWordsPerStep = 2;
  static constexpr bool kZeroPoints = false;
  static constexpr int kDefaultZero = 0;  // unused: no zero points
  static constexpr bool kExactUnscaled = true;
  static constexpr int kShift = std::is_same_v<T, half> ? 1 : 4;  // e4m3 exponent field -> T's exponent field
  using LaneWords = ByteTileWords;
  struct Consts {
    uint32_t s_g, s_g8;  // folded scales of rows g and g + 8 (T bits in both halves)
  };
  struct Offsets {};

  static __device__ __forceinline__ int lane_offset(int wn, int lane) { return ByteTile::lane_offset(wn, lane); }
  static __device__ __forceinline__ int lane_aux(int, int) { return 0; }
  static __device__ __forceinline__ LaneWords lane_words(const uint8_t* at, int) { return ByteTile::lane_words(at); }
  static __device__ __forceinline__ Consts consts(uint32_t s_g, uint32_t s_g8, int, int) {
    return {s_g * 0x10001u, s_g8 * 0x10001u};
  }
  static __device__ __forceinline__ Offsets offsets(int, int) { return {}; }

  // Bytes (b0, b1) (sel 0x4140) or (b2, b3) (sel 0x4342) of q as a pair of T values times 2^-8 / 2^-120: each byte
  // lands in the low byte of its half; its magnitude moves up into T's exponent / mantissa fields (x * 2^(8 - shift))
  // and its sign, carried there to bit 15 - shift, is topped up to bit 15 (s * (2^8 - 2^(8 - shift))). Two integer
  // multiply-adds on the FMA pipe instead of a shift and two logic ops on the ALU pipe, which the dequant keeps busy.
  static constexpr uint32_t kMagMul = 1u << (8 - kShift), kSignMul = (1u << 8) - kMagMul;
  static __device__ __forceinline__ uint32_t pair(uint32_t q, uint32_t sel) {
    const uint32_t x = byte_perm(q, 0u, sel);  // bytes at 0..7 and 16..23, zeros above: no carry between the halves
    return (x & 0x00800080u) * kSignMul + x * kMagMul;
  }
  static __device__ __forceinline__ void unscaled(const LaneWords& w, int step, const Offsets&, uint32_t (&a)[4]) {
    const uint32_t w0 = ByteTile::first(w, step), w1 = ByteTile::second(w, step);
    a[0] = pair(w0, 0x4140);
    a[1] = pair(w0, 0x4342);
    a[2] = pair(w1, 0x4140);
    a[3] = pair(w1, 0x4342);
  }
  static __device__ __forceinline__ void fragment(const LaneWords& w, int step, const Consts& c, uint32_t (&a)[4]) {
    unscaled(w, step, Offsets{}, a);
    const pair_t<T> s_g = pair_of<pair_t<T>>(c.s_g), s_g8 = pair_of<pair_t<T>>(c.s_g8);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = bits_of(__hmul2_rn(pair_of<pair_t<T>>(a[i]), (i & 1) ? s_g8 : s_g));
  }
};

}  // namespace marlin
