// The operand of the kernels' inner product (codec.cuh Operand): what one 32-k half of a k-tile is on the tensor
// cores. Both kernels (gemm_kernel.cuh, gemm_ws_kernel.cuh) go through it; stages, scales, split-K and the epilogue
// are the same for every operand.
//   dense:     two A fragments per half (k16 steps 2 kp, 2 kp + 1): two mma.m16n8k16 per n8 token block, or two
//              wgmma m64nNk16;
//   2:4 sparse: one A fragment of kept values per half (k32 step kp) and the lane's metadata register: one
//              mma.sp.m16n8k32 (B = the same ldmatrix.x4 over the half's 32 k), or one wgmma.mma_async.sp m64nNk32
//              (B = the same descriptor, k32 spanning the next chunk columns); the sparsity selector is kp
//              (docs/format.md "2:4 sparse (packed)", kernel-design.md section 11).
#pragma once
#include "../common/codec.cuh"
#include "../common/ptx.cuh"
#include "../common/wgmma.cuh"

namespace marlin::kit {

template <typename Codec>
struct OperandOps {
  using T = typename Codec::Act;
  using LaneWords = typename Codec::LaneWords;
  static constexpr bool kSparse = is_sparse24<Codec>();
  static constexpr int kFragsPerHalf = kSparse ? 1 : 2;    // A fragments (MMA steps) per 32-k half of a k-tile
  static constexpr int kStepsPerTile = 2 * kFragsPerHalf;  // per 64-k tile

  // The codec's step of fragment e (0 .. kFragsPerHalf - 1) of half kp: a k16 step (dense) or a k32 step (2:4).
  static __device__ __forceinline__ constexpr int step(int kp, int e) { return kSparse ? kp : 2 * kp + e; }

  // The A fragments of half kp into a[0 .. kFragsPerHalf - 1]: scaled, or (post-scaling) the exact q - z. Written out
  // rather than looped: as a loop, the dense 8-bit codecs' scale broadcasts were scheduled differently (PTX diff).
  static __device__ __forceinline__ void half_fragments(const LaneWords& w, int kp, const typename Codec::Consts& c,
                                                        uint32_t (&a)[2][4]) {
    if constexpr (kSparse) {
      Codec::fragment(w, kp, c, a[0]);
    } else {
      Codec::fragment(w, 2 * kp, c, a[0]);
      Codec::fragment(w, 2 * kp + 1, c, a[1]);
    }
  }
  static __device__ __forceinline__ void half_unscaled(const LaneWords& w, int kp, const typename Codec::Offsets& c,
                                                       uint32_t (&a)[2][4]) {
    if constexpr (kSparse) {
      Codec::unscaled(w, kp, c, a[0]);
    } else {
      Codec::unscaled(w, 2 * kp, c, a[0]);
      Codec::unscaled(w, 2 * kp + 1, c, a[1]);
    }
  }

  // d += A(half kp) x B(the half's 32 k x 8 tokens: b[0], b[1] = k 0..15, b[2], b[3] = k 16..31, one ldmatrix.x4).
  // `w` = the lane's words of the tile (2:4: its metadata register).
  static __device__ __forceinline__ void half_mma(float (&d)[4], const uint32_t (&a)[2][4], const uint32_t (&b)[4],
                                                  const LaneWords& w, int kp) {
    if constexpr (kSparse) {
      if (kp == 0) mma_sp_16832<T, 0>(d, a[0], b, Codec::meta(w));
      else mma_sp_16832<T, 1>(d, a[0], b, Codec::meta(w));
    } else {
      (void)w;
      (void)kp;
      mma_16816<T>(d, a[0], b[0], b[1]);
      mma_16816<T>(d, a[1], b[2], b[3]);
    }
  }

#ifdef MARLIN_HAS_WGMMA
  // acc += A(one fragment of half kp: 64 rows over the warpgroup) x B(desc: the fragment's k16 / k32 x M_TILE tokens).
  template <int M_TILE>
  static __device__ __forceinline__ void wgmma(float (&acc)[M_TILE / 2], const uint32_t (&a)[4], uint64_t desc,
                                               const LaneWords& w, int kp) {
    constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
    if constexpr (kSparse) {
      if (kp == 0) WgmmaSp<M_TILE, kBf16>::template mma<0>(acc, a, desc, Codec::meta(w));
      else WgmmaSp<M_TILE, kBf16>::template mma<1>(acc, a, desc, Codec::meta(w));
    } else {
      (void)w;
      (void)kp;
      Wgmma<M_TILE, kBf16>::mma(acc, a, desc);
    }
  }
#endif
};

}  // namespace marlin::kit
