// The 2:4 sparse INT4 weight codec (docs/format.md "2:4 sparse (packed)", kernel-design.md section 11): a 64 x 64
// tile of 1536 bytes holds, per lane of warp slot w, one code word per k32 step s at word (w * 32 + l) * 2 + s (the 16
// x 16 fragment of KEPT values, in the INT4 nibble order, so Int4Codec's word arithmetic gives the four A registers of
// mma.sp.m16n8k32 / wgmma.mma_async.sp.m64nNk32 unchanged) and one metadata word at 256 + w * 32 + l (the PTX metadata
// register; the MMA of step s reads it from the lanes its sparsity selector s names). The operand is kSparse24: the
// kernels run one sparse MMA per k32 step with this lane's metadata word and selector s (kit/operand.cuh).
#pragma once
#include "codec.cuh"
#include "int4_codec.cuh"

namespace marlin {

// A lane's share of one 2:4 tile: the code words of k32 steps 0 and 1 (one 8-byte read) and its metadata word.
struct SparseLaneWords {
  uint32_t step0, step1, meta;
};

template <typename T>
struct SparseInt4Codec {
  using Act = T;
  using Dense = Int4Codec<T>;  // the per-word dequantization (and its constants) is the INT4 codec's
  static constexpr Operand kOperand = Operand::kSparse24;
  static constexpr int kBits = 4;
  static constexpr int kTileBytes = 1536;
  static constexpr int kMetaOffset = 1024;  // the metadata words follow the 256 code words
  static constexpr int kWordsPerStep = 1;
  static constexpr bool kZeroPoints = Dense::kZeroPoints;
  static constexpr int kDefaultZero = Dense::kDefaultZero;
  // The kept codes' q - z is exact in T as for dense INT4, so the decode rows may post-scale (gemm_kernel.cuh).
  static constexpr bool kExactUnscaled = true;
  using LaneWords = SparseLaneWords;
  using Consts = typename Dense::Consts;
  using Offsets = typename Dense::Offsets;

  static __device__ __forceinline__ int lane_offset(int wn, int lane) { return (wn * 32 + lane) * 8; }
  // From the lane's codes (tile + 8 i, i = wn * 32 + lane) to its metadata word (tile + 1024 + 4 i).
  static __device__ __forceinline__ int lane_aux(int wn, int lane) { return kMetaOffset - (wn * 32 + lane) * 4; }
  static __device__ __forceinline__ LaneWords lane_words(const uint8_t* at, int aux) {
    const uint2 codes = *reinterpret_cast<const uint2*>(at);
    return {codes.x, codes.y, *reinterpret_cast<const uint32_t*>(at + aux)};
  }
  static __device__ __forceinline__ Consts consts(uint32_t s_g, uint32_t s_g8, int z_g, int z_g8) {
    return Dense::consts(s_g, s_g8, z_g, z_g8);
  }
  static __device__ __forceinline__ Offsets offsets(int z_g, int z_g8) { return Dense::offsets(z_g, z_g8); }
  // A fragment of k32 step `step` (0, 1; a constant after unrolling): 16 rows x 16 kept values.
  static __device__ __forceinline__ void fragment(const LaneWords& w, int step, const Consts& c, uint32_t (&a)[4]) {
    Dense::word_fragment(step == 0 ? w.step0 : w.step1, c, a);
  }
  static __device__ __forceinline__ void unscaled(const LaneWords& w, int step, const Offsets& c, uint32_t (&a)[4]) {
    Dense::word_unscaled(step == 0 ? w.step0 : w.step1, c, a);
  }
  static __device__ __forceinline__ uint32_t meta(const LaneWords& w) { return w.meta; }
};

}  // namespace marlin
