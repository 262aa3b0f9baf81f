// What every dense kernel shares: the tile geometry of the packed format, the parameters of one GEMM and the scale
// group of a k row. Used by gemm_kernel.cuh, gemm_ws_kernel.cuh, epilogue.cuh, problem_list.cuh and the host side
// (kit/host.cu). Bytes per tile depend on the weight format: the codec's kTileBytes (native/common/codec.cuh).
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace marlin::kit {

constexpr int kTileN = 64;  // a kernel tile: 64 output columns x 64 k (docs/format.md "Tiles")
constexpr int kTileK = 64;
// Arrival counters live at the start of the workspace, one per output tile of a split-K launch.
constexpr int kCounterCapacity = 4096;
constexpr size_t kCounterBytes = kCounterCapacity * sizeof(uint32_t);

// One GEMM: operands, sizes, and the split-K partition of its K range.
struct Params {
  const int4* x;  // activations (or their act-order permutation in the workspace)
  int64_t lda;    // elements
  const int4* w;
  const uint16_t* scales;
  const uint8_t* zeros;
  const uint16_t* bias;
  uint16_t* y;
  int64_t ldc;
  float* partials;
  uint32_t* counters;
  int m, n, k, np, group_shift, num_groups;  // scale group of row k: group_of() below; per-channel: shift 31
  int m_blocks, n_blocks, splits;
  int k_tiles, stages_total, stages_per_split;
};

// Scale / zero-point group of k row `k`: groups of 2^group_shift rows, or one group over all of K (per-channel:
// group_shift 31); rows of the padded tail past K belong to the last group.
__device__ __forceinline__ int group_of(const Params& p, int k) { return min(k >> p.group_shift, p.num_groups - 1); }

// First scale / zero-point group of the stage that starts at k-tile kt0: a copy-engine producer (tma_stage.cuh) copies
// one row per distinct group from this one on, and the compute warps index their rows relative to it.
__device__ __forceinline__ int stage_first_group(const Params& p, int kt0) { return group_of(p, kt0 * kTileK); }

// Copy-engine stages (tma_stage.cuh): whether the activations' tensor map is 3D (one copy per stage) or 2D (one per
// k-tile). The host encodes the map and the kernels issue their copies from this one rule (kit/host.cu
// activation_tensor_map).
__host__ __device__ __forceinline__ bool x_box3(const Params& p) { return p.k % kTileK == 0; }

}  // namespace marlin::kit
