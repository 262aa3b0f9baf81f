// The problem list of a launch: which GEMM, and which block of it, each CTA computes. The dense kernels take it as a
// template parameter (`Problem`) and reach their GEMM only through it, so a grouped launch (MoE: one GEMM per expert)
// is a new policy, not a new kernel. A policy provides:
//
//   using Args                                     the kernel's parameter block (what the host launches with)
//   struct Coords                                  a block's place within its GEMM: m_block, split, n_block, and
//     int output_tile(const Params& p) const       its output tile's index among all tiles of the launch (split-K
//                                                  counters and partials are indexed by it: unique per launch)
//   static Coords coords(const Args&)              decode blockIdx.x
//   static const Params& gemm(const Args&, const Coords&)
//                                                  the block's GEMM (a Params value is fine too: the kernels bind
//                                                  it to a const reference)
//
// Everything below the block's place (pipeline, MMA, split-K, epilogue) sees one GEMM's Params.
// docs/kernel-design.md "Adding a weight format / operand / problem list" says what a grouped policy must handle.
#pragma once
#include "params.cuh"

namespace marlin::kit {

// One GEMM per launch; grid = splits * m_blocks * n_blocks blocks, decoded with the split fastest (the S splits of an
// output tile are consecutive blocks: one thread-block cluster when the host launches the split-K reduction across
// clusters, epilogue.cuh), then m, so blocks that run together (same n_block, different tokens) read the same weight
// bytes and share them in L2.
struct SingleProblem {
  using Args = Params;

  struct Coords {
    int m_block, split, n_block;
    __device__ __forceinline__ int output_tile(const Params& p) const { return m_block + p.m_blocks * n_block; }
  };

  static __device__ __forceinline__ Coords coords(const Args& a) {
    Coords c;
    int bid = blockIdx.x;
    c.split = bid % a.splits;
    bid /= a.splits;
    c.m_block = bid % a.m_blocks;
    c.n_block = bid / a.m_blocks;
    return c;
  }

  static __device__ __forceinline__ const Params& gemm(const Args& a, const Coords&) { return a; }
};

}  // namespace marlin::kit
