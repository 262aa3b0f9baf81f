// What every dense kernel receives and shares: the tile geometry of the packed format, the launch parameters, the
// block's place in the grid and the scale group of a k row. Used by gemm_kernel.cuh, gemm_ws_kernel.cuh,
// epilogue.cuh and the host side (dense.cu).
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

namespace marlin::dense {

constexpr int kTileBytes = 2048;  // 64 columns x 64 k of int4 (docs/format.md "Tiles")
constexpr int kTileN = 64;
constexpr int kTileK = 64;
// Arrival counters live at the start of the workspace, one per output tile of a split-K launch.
constexpr int kCounterCapacity = 4096;
constexpr size_t kCounterBytes = kCounterCapacity * sizeof(uint32_t);

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

// Where a block sits in the grid: m fastest so blocks that run together share weights in L2.
struct BlockCoords {
  int m_block, split, n_block;
  __device__ explicit BlockCoords(const Params& p) {
    int bid = blockIdx.x;
    m_block = bid % p.m_blocks;
    bid /= p.m_blocks;
    split = bid % p.splits;
    n_block = bid / p.splits;
  }
};

// Scale / zero-point group of k row `k`: groups of 2^group_shift rows, or one group over all of K (per-channel:
// group_shift 31); rows of the padded tail past K belong to the last group.
__device__ __forceinline__ int group_of(const Params& p, int k) { return min(k >> p.group_shift, p.num_groups - 1); }

}  // namespace marlin::dense
