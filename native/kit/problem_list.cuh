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
//   static bool active(const Args&, const Coords&)  false: the block has nothing to do and exits at once (a grouped
//                                                  launch sized for its worst case); the same for every block of an
//                                                  output tile (split-K and clusters rely on it)
//
// Everything below the block's place (pipeline, MMA, split-K, epilogue) sees one GEMM's Params.
// docs/kernel-design.md "Adding a weight format / operand / problem list" says what a grouped policy must handle.
#pragma once
#include "../common/ptx.cuh"
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
  static __device__ __forceinline__ bool active(const Args&, const Coords&) { return true; }
};

// Grouped GEMMs on stacked experts (@marlin/moe): the rows of x and y are the routing alignment's sorted, padded
// buffers, every M-block of them belongs to one expert, and a block's weights, scales, zero points and bias are that
// expert's slice at a fixed stride. The grid is sized for the alignment's capacity (the host cannot know how many
// blocks the routing fills without a sync); blocks past the used ones, or of an expert not on this GPU, exit.
struct ExpertArgs {
  Params gemm;                  // expert 0's operands; m = rows of the sorted buffers, m_blocks = their M-blocks
  const int32_t* block_expert;  // local expert of each M-block (the alignment kernel writes it)
  const int32_t* num_blocks;    // M-blocks in use
  int64_t w_stride;             // per expert, in int4 units
  int64_t scale_stride;         // per expert, in scale / zero-point elements (G * Np)
  int64_t bias_stride;          // per expert, in elements (n)
  bool wait_for_routing;        // false: the routing is known complete when the launch's blocks start (host.h
                                // ExpertRouting: its writer finished before this launch's predecessor began)
};

struct ExpertProblem {
  using Args = ExpertArgs;
  using Coords = SingleProblem::Coords;

  static __device__ __forceinline__ Coords coords(const Args& a) { return SingleProblem::coords(a.gemm); }

  // Unless the routing is known complete, wait for the previous kernel (a no-op without programmatic dependent
  // launch) before reading it, and so before the weight prefetch it selects.
  static __device__ __forceinline__ bool active(const Args& a, const Coords& c) {
    if (a.wait_for_routing) grid_dependency_wait();
    return c.m_block < __ldg(a.num_blocks) && __ldg(a.block_expert + c.m_block) >= 0;
  }

  static __device__ __forceinline__ Params gemm(const Args& a, const Coords& c) {
    Params p = a.gemm;
    const int64_t e = __ldg(a.block_expert + c.m_block);
    p.w += e * a.w_stride;
    p.scales += e * a.scale_stride;
    if (p.zeros != nullptr) p.zeros += e * a.scale_stride;
    if (p.bias != nullptr) p.bias += e * a.bias_stride;
    return p;
  }
};

}  // namespace marlin::kit
