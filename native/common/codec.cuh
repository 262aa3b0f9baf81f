// The weight-codec contract: how a packed weight format becomes tensor-core A fragments. The dense kernels
// (native/kernels/dense/) take the codec as a template parameter and never name a format; the pipeline, the MMA
// families, the split-K reduction and the epilogue are the same for every codec. One codec per header
// (int4_codec.cuh today); docs/kernel-design.md "Adding a weight format" lists what a new one changes besides itself.
//
// A codec is a struct, normally a template on the activation dtype T, with:
//
//   using Act = T                       dtype the fragments are built in (half or __nv_bfloat16)
//   kOperand (optional)                 Operand::kDense (default when absent) or Operand::kSparse24 (below)
//   kBits                               bits per weight
//   kTileBytes                          bytes of one kernel tile, 64 columns x 64 k (= 512 kBits dense, 384 kBits
//                                       2:4: half the codes plus 2-bit indices). The stage layout, the weight copies
//                                       and the shared-memory size follow from it; the tiles of a 64-column block must
//                                       be contiguous along k in global memory.
//   kWordsPerStep                       32-bit words of codes a lane holds per step (dense: k16 step, = kBits / 4: a
//                                       lane's share of a 16 x 16 A fragment is 8 weights; 2:4: k32 step, the same
//                                       16 x 16 fragment of kept values)
//   kZeroPoints                         the format has integer zero points (uint8 rows next to the scale rows)
//   kDefaultZero                        the zero point of a checkpoint without zero points (INT4: 8, uint4b8)
//   kExactUnscaled                      unscaled() exists and gives the weights exactly, without the scale, so the
//                                       kernel may apply the scale in fp32 to a whole scale group's partial sums
//                                       ("post-scaling", gemm_kernel.cuh); false: the kernel never takes that path
//   LaneWords                           a lane's words of one tile: its steps' codes (dense 4 k16 steps, 2:4 2 k32
//                                       steps, x kWordsPerStep) and, 2:4 only, its metadata word
//   Consts                              per-lane constants of one scale group for the lane's rows g and g + 8
//                                       (scales, zero-point offsets, whatever fragment() needs), built once per group
//   Offsets                             the zero-point part of Consts alone (only with kExactUnscaled)
//
//   static int lane_offset(int wn, int lane)    byte offset of a lane's words in a tile (shared memory); wn = the
//                                               warp's 16-column slot of the tile
//   static int lane_aux(int wn, int lane)       a second per-lane constant of the read, computed once per kernel
//                                               (2:4: the byte step from the lane's codes to its metadata word;
//                                               dense codecs return 0 and ignore it)
//   static LaneWords lane_words(const uint8_t* at, int aux)                 read them at tile + lane_offset(wn, lane)
//   static Consts consts(uint32_t s_g, uint32_t s_g8, int z_g, int z_g8)    from the 16-bit scales (T bits) and zero
//                                                                           points (kDefaultZero without zeros)
//   static Offsets offsets(int z_g, int z_g8)                               (only with kExactUnscaled)
//   static void fragment(const LaneWords&, int step, const Consts&, uint32_t (&a)[4])
//                                       A fragment of step `step` (k16 step 0..3, 2:4: k32 step 0..1; a constant
//                                       after unrolling): w = round_T((q - z) * s), the semantics of docs/format.md
//                                       and the reference
//   static uint32_t meta(const LaneWords&)      (2:4 only) the lane's metadata register; the sparse MMA of k32 step
//                                               s takes it with sparsity selector s (docs/format.md "2:4 sparse")
//   static void unscaled(const LaneWords&, int step, const Offsets&, uint32_t (&a)[4])
//                                       the same fragment without the scale, exact in T (only with kExactUnscaled)
//
// Every entry point is __device__ __forceinline__: the codec is a compile-time policy and costs nothing by itself.
#pragma once
#include <stdint.h>

#include <type_traits>

namespace marlin {

// What the codec's A fragments are: dense (one 16 x 16 fragment per k16 step: mma.m16n8k16 / wgmma k16) or 2:4 sparse
// (one 16 x 16 fragment of kept values per k32 step plus a metadata register: mma.sp.m16n8k32 / wgmma.sp k32). The
// kernels' inner product follows it (kit/operand.cuh); everything else is the same for both.
enum class Operand { kDense, kSparse24 };
template <typename C, typename = void>
struct OperandOf {
  static constexpr Operand value = Operand::kDense;
};
template <typename C>
struct OperandOf<C, std::void_t<decltype(C::kOperand)>> {
  static constexpr Operand value = C::kOperand;
};
template <typename C>
constexpr bool is_sparse24() {
  return OperandOf<C>::value == Operand::kSparse24;
}

// Compile-time checks of the contract's arithmetic; the dense kernels assert it for the codec they are built with.
template <typename C>
constexpr bool check_codec() {
  if constexpr (is_sparse24<C>()) {
    static_assert(C::kTileBytes == 384 * C::kBits, "a 2:4 tile is 64 x 64 weights: half the codes + 2-bit indices");
    static_assert(C::kWordsPerStep * 4 == C::kBits, "a lane holds 8 kept weights of each k32 step");
    static_assert(sizeof(typename C::LaneWords) == (2 * C::kWordsPerStep + 1) * 4,
                  "LaneWords = 2 k32 steps of a lane + its metadata word");
  } else {
    static_assert(C::kTileBytes == 512 * C::kBits, "a kernel tile is 64 x 64 weights");
    static_assert(C::kWordsPerStep * 4 == C::kBits, "a lane holds 8 weights of each k16 step");
    static_assert(sizeof(typename C::LaneWords) == 4 * C::kWordsPerStep * 4, "LaneWords = 4 k16 steps of a lane");
  }
  static_assert(C::kTileBytes % 16 == 0, "tiles are copied in 16-byte chunks");
  return true;
}

}  // namespace marlin
