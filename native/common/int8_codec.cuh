// The INT8 weight codec (docs/format.md "INT8", GPTQ 8-bit: codes 0..255, zero point 128 or integer zero points): two
// words per lane per k16 step (byte_tile.cuh) -> one mma A fragment (4 registers). Both forms are exact where the CPU
// reference is, as for INT4 (int4_codec.cuh): fragment() w = round_T((q - z) * s); unscaled() q - z, exact in fp16 and
// bf16 since |q - z| <= 255.
#pragma once
#include "act_dtype.cuh"
#include "byte_tile.cuh"
#include "codec.cuh"
#include "ptx.cuh"

namespace marlin {

// Per-lane zero-point offsets of one group for the lane's rows g and g + 8 (dtype-specific bits, see Int8Dequant).
struct Int8Zeros {
  uint32_t sub_g, sub_g8;
};

template <typename T>
struct Int8Dequant;

// fp16: prmt puts bytes under the exponent byte 0x64: the pair (1024 + q, 1024 + q') (unit mantissa steps at 1024);
// subtracting (1024 + z) = 0x6400 + z leaves the exact integers q - z.
template <>
struct Int8Dequant<half> {
  static __device__ __forceinline__ Int8Zeros zeros(int z_g, int z_g8) {
    return {(0x6400u + z_g) * 0x10001u, (0x6400u + z_g8) * 0x10001u};
  }
  // Bytes (b0, b1) (sel_lo) or (b2, b3) (sel_hi) of q as q - z pairs.
  static __device__ __forceinline__ uint32_t pair(uint32_t q, uint32_t sel, uint32_t sub) {
    return bits_of(__hsub2(pair_of<__half2>(byte_perm(q, 0x64646464u, sel)), pair_of<__half2>(sub)));
  }
  static constexpr uint32_t kSelLo = 0x4140, kSelHi = 0x4342;
};

// bf16: 128 + q needs 9 significant bits for q >= 128, so the bytes go under the fp32 exponent of 2^23 (0x4B00_0000 | q
// is 2^23 + q), 2^23 + z is subtracted in fp32 and the exact difference is packed to bf16 (|q - z| <= 255 fits).
template <>
struct Int8Dequant<__nv_bfloat16> {
  static __device__ __forceinline__ Int8Zeros zeros(int z_g, int z_g8) {
    return {__float_as_uint(8388608.0f + float(z_g)), __float_as_uint(8388608.0f + float(z_g8))};
  }
  static __device__ __forceinline__ uint32_t pair(uint32_t q, uint32_t sel, uint32_t sub) {
    const float z = __uint_as_float(sub);
    const float lo = __uint_as_float(byte_perm(q, 0x4B000000u, sel & 0xFFFF)) - z;
    const float hi = __uint_as_float(byte_perm(q, 0x4B000000u, sel >> 16)) - z;
    return bits_of(__floats2bfloat162_rn(lo, hi));
  }
  // Low and high halves' selectors (each: byte q_i, 0, 0, 0x4B) packed as lo | hi << 16.
  static constexpr uint32_t kSelLo = 0x7440u | (0x7441u << 16), kSelHi = 0x7442u | (0x7443u << 16);
};

template <typename T>
struct Int8Codec {
  using Act = T;
  static constexpr int kBits = 8;
  static constexpr int kTileBytes = ByteTile::kTileBytes;
  static constexpr int kWordsPerStep = 2;
  static constexpr bool kZeroPoints = true;
  static constexpr int kDefaultZero = 128;  // uint8b128 (GPTQ 8-bit symmetric)
  static constexpr bool kExactUnscaled = true;
  using LaneWords = ByteTileWords;
  struct Consts {
    uint32_t s_g, s_g8;  // scales s[g] and s[g + 8] (T bits in both halves)
    Int8Zeros z;
  };
  using Offsets = Int8Zeros;

  static __device__ __forceinline__ int lane_offset(int wn, int lane) { return ByteTile::lane_offset(wn, lane); }
  static __device__ __forceinline__ int lane_aux(int, int) { return 0; }
  static __device__ __forceinline__ LaneWords lane_words(const uint8_t* at, int) { return ByteTile::lane_words(at); }
  static __device__ __forceinline__ Consts consts(uint32_t s_g, uint32_t s_g8, int z_g, int z_g8) {
    return {s_g * 0x10001u, s_g8 * 0x10001u, Int8Dequant<T>::zeros(z_g, z_g8)};
  }
  static __device__ __forceinline__ Offsets offsets(int z_g, int z_g8) { return Int8Dequant<T>::zeros(z_g, z_g8); }
  static __device__ __forceinline__ void unscaled(const LaneWords& w, int step, const Offsets& z, uint32_t (&a)[4]) {
    using D = Int8Dequant<T>;
    const uint32_t w0 = ByteTile::first(w, step), w1 = ByteTile::second(w, step);
    a[0] = D::pair(w0, D::kSelLo, z.sub_g);
    a[1] = D::pair(w0, D::kSelHi, z.sub_g8);
    a[2] = D::pair(w1, D::kSelLo, z.sub_g);
    a[3] = D::pair(w1, D::kSelHi, z.sub_g8);
  }
  static __device__ __forceinline__ void fragment(const LaneWords& w, int step, const Consts& c, uint32_t (&a)[4]) {
    unscaled(w, step, c.z, a);
    const pair_t<T> s_g = pair_of<pair_t<T>>(c.s_g), s_g8 = pair_of<pair_t<T>>(c.s_g8);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = bits_of(__hmul2_rn(pair_of<pair_t<T>>(a[i]), (i & 1) ? s_g8 : s_g));
  }
};

}  // namespace marlin
