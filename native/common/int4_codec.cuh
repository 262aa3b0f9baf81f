// The INT4 weight codec (docs/format.md "INT4"): one packed word (8 codes) per lane per k16 step -> one mma A
// fragment (4 registers). The word's nibble order is docs/format.md "INT4": nibble p holds (row g + 8(p&1),
// k 2t + ((p>>2)&1) + 8((p>>1)&1)). Two forms, both exact where the CPU reference is:
//   fragment() w = round_T((q - z) * s): (q - z) is exact in T, the product rounds once (the reference's semantics).
//   unscaled() (q - z) exact in T: the kernel applies s in fp32 to the tensor-core partial sums of a whole scale
//              group ("post-scaling", gemm_kernel.cuh), which is exact up to the fp32 accumulation.
// Int4Dequant<T> is the per-dtype bit arithmetic (zero-point offsets, q - z as pairs); Int4Codec<T> builds the
// fragments from it and presents them to the kernels through the codec contract of codec.cuh.
#pragma once
#include "act_dtype.cuh"
#include "codec.cuh"
#include "ptx.cuh"

namespace marlin {

// Word i (k step i of a tile) of a lane's 16-byte read; i is a constant after unrolling, so this is a register pick.
__device__ __forceinline__ uint32_t word_at(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Per-lane zero-point offsets of one group for the lane's two rows (g and g+8), each broadcast to both halves of a
// 32-bit pair; dtype-specific (see zero_consts()).
struct ZeroConsts {
  uint32_t sub_g, sub_g8;
};

// Per-lane constants for one group: the scales (T bits in the low half; fragment() broadcasts them to both halves of
// the pair inside the multiply, HMUL2's .H0_H0 operand, instead of an IMAD x 0x10001 per scale) and the
// zero-point offsets. Built once per group, used for every word.
struct GroupConsts {
  uint32_t s_g, s_g8;  // scales s[g] and s[g+8] (T bits)
  ZeroConsts z;
};

// (v, v) from T bits v.
template <typename T>
__device__ __forceinline__ pair_t<T> broadcast_pair(uint32_t bits) {
  if constexpr (std::is_same_v<T, half>) return __half2half2(__ushort_as_half(static_cast<unsigned short>(bits)));
  else return __bfloat162bfloat162(__ushort_as_bfloat16(static_cast<unsigned short>(bits)));
}

template <typename T>
struct Int4Dequant;

// fp16: (word & 0x000F000F) | 0x6400_6400 is the pair (1024 + q, 1024 + q') (0x6400 = 1024.0, the nibble lands in the
// mantissa); the 0x00F000F0 mask gives 1024 + 16 q, scaled back by 1/16. Offsets: sub_g = 1024 + z_g (subtracted),
// sub_g8 = -(64 + z_g8) (added by the fma). Every intermediate is an exact small integer.
template <>
struct Int4Dequant<half> {
  // Integer zero points -> offset pairs, with integer ops only: fp16(1024 + z) = 0x6400 + z and
  // -fp16(64 + z) = 0xD400 + 16 z for 0 <= z < 64 (unit and 1/16 mantissa steps at those exponents).
  static __device__ __forceinline__ ZeroConsts zero_consts(int z_g, int z_g8) {
    return {(0x6400u + z_g) * 0x10001u, (0xD400u + 16u * z_g8) * 0x10001u};
  }
  static __device__ __forceinline__ void integers(uint32_t q, const ZeroConsts& c, __half2 (&o)[4]) {
    constexpr uint32_t LO = 0x000F000F, HI = 0x00F000F0, EXP = 0x64006400, SIXTEENTH = 0x2C002C00;
    const uint32_t q8 = q >> 8;
    const __half2 sub_g = pair_of<__half2>(c.sub_g), sub_g8 = pair_of<__half2>(c.sub_g8);
    const __half2 inv16 = pair_of<__half2>(SIXTEENTH);
    o[0] = __hsub2(pair_of<__half2>(and_or(q, LO, EXP)), sub_g);            // rows g,   k 2t, 2t+1
    o[1] = __hfma2(pair_of<__half2>(and_or(q, HI, EXP)), inv16, sub_g8);    // rows g+8, k 2t, 2t+1
    o[2] = __hsub2(pair_of<__half2>(and_or(q8, LO, EXP)), sub_g);           // rows g,   k 2t+8, 2t+9
    o[3] = __hfma2(pair_of<__half2>(and_or(q8, HI, EXP)), inv16, sub_g8);   // rows g+8, k 2t+8, 2t+9
  }
};

// bf16: the 7-bit mantissa cannot hold 16 q, so every nibble is shifted down to bits 0..3 and ORed with the exponent
// of 128.0 (0x4300): the pair (128 + q, 128 + q'). Offsets sub_g = 128 + z_g, sub_g8 = 128 + z_g8 (both subtracted).
template <>
struct Int4Dequant<__nv_bfloat16> {
  // bf16(128 + z) = 0x4300 + z for 0 <= z < 128 (unit mantissa step at that exponent).
  static __device__ __forceinline__ ZeroConsts zero_consts(int z_g, int z_g8) {
    return {(0x4300u + z_g) * 0x10001u, (0x4300u + z_g8) * 0x10001u};
  }
  static __device__ __forceinline__ void integers(uint32_t q, const ZeroConsts& c, __nv_bfloat162 (&o)[4]) {
    constexpr uint32_t LO = 0x000F000F, EXP = 0x43004300;
    using B2 = __nv_bfloat162;
    const B2 sub_g = pair_of<B2>(c.sub_g), sub_g8 = pair_of<B2>(c.sub_g8);
    o[0] = __hsub2(pair_of<B2>(and_or(q, LO, EXP)), sub_g);         // rows g,   k 2t, 2t+1     (nibbles 0, 4)
    o[1] = __hsub2(pair_of<B2>(and_or(q >> 4, LO, EXP)), sub_g8);   // rows g+8, k 2t, 2t+1     (nibbles 1, 5)
    o[2] = __hsub2(pair_of<B2>(and_or(q >> 8, LO, EXP)), sub_g);    // rows g,   k 2t+8, 2t+9   (nibbles 2, 6)
    o[3] = __hsub2(pair_of<B2>(and_or(q >> 12, LO, EXP)), sub_g8);  // rows g+8, k 2t+8, 2t+9   (nibbles 3, 7)
  }
};

// The codec contract (codec.cuh) for INT4: a lane's 4 words of a 2048-byte tile are one 16-byte read (docs/format.md
// "Inside a tile"), word i = k16 step i.
template <typename T>
struct Int4Codec {
  using Act = T;
  static constexpr int kBits = 4;
  static constexpr int kTileBytes = 2048;
  static constexpr int kWordsPerStep = 1;
  static constexpr bool kZeroPoints = true;
  static constexpr int kDefaultZero = 8;  // uint4b8 (GPTQ / vLLM symmetric)
  static constexpr bool kExactUnscaled = true;
  using LaneWords = uint4;
  using Consts = GroupConsts;
  using Offsets = ZeroConsts;

  static __device__ __forceinline__ int lane_offset(int wn, int lane) { return (wn * 32 + lane) * 16; }
  static __device__ __forceinline__ int lane_aux(int, int) { return 0; }
  static __device__ __forceinline__ LaneWords lane_words(const uint8_t* at, int) {
    return *reinterpret_cast<const uint4*>(at);
  }
  static __device__ __forceinline__ Consts consts(uint32_t s_g, uint32_t s_g8, int z_g, int z_g8) {
    return {s_g, s_g8, Int4Dequant<T>::zero_consts(z_g, z_g8)};
  }
  static __device__ __forceinline__ Offsets offsets(int z_g, int z_g8) {
    return Int4Dequant<T>::zero_consts(z_g, z_g8);
  }
  static __device__ __forceinline__ void fragment(const LaneWords& w, int step, const Consts& c, uint32_t (&a)[4]) {
    word_fragment(word_at(w, step), c, a);
  }
  static __device__ __forceinline__ void unscaled(const LaneWords& w, int step, const Offsets& c, uint32_t (&a)[4]) {
    word_unscaled(word_at(w, step), c, a);
  }

  // One packed word (8 codes in the nibble order of docs/format.md "INT4") -> the 4 A registers; shared with the 2:4
  // codec (sparse_int4_codec.cuh), whose code words use the same order for the compressed fragment.
  static __device__ __forceinline__ void word_fragment(uint32_t q, const Consts& c, uint32_t (&a)[4]) {
    pair_t<T> o[4];
    Int4Dequant<T>::integers(q, c.z, o);
    const pair_t<T> s_g = broadcast_pair<T>(c.s_g), s_g8 = broadcast_pair<T>(c.s_g8);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = bits_of(__hmul2_rn(o[i], (i & 1) ? s_g8 : s_g));  // a1, a3: rows g + 8
  }
  static __device__ __forceinline__ void word_unscaled(uint32_t q, const Offsets& c, uint32_t (&a)[4]) {
    pair_t<T> o[4];
    Int4Dequant<T>::integers(q, c, o);
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = bits_of(o[i]);
  }
};

}  // namespace marlin
