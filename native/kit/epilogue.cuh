// The end of every dense kernel: deterministic split-K reduction through the workspace, + bias, round to the
// activation dtype, and coalesced 16-byte stores. Shared by the all-threads kernel (gemm_kernel.cuh) and the
// warp-specialised Hopper kernel (gemm_ws_kernel.cuh).
//
// Who holds what: the "owner" threads are one or two groups of 128 (a warpgroup, or the 4 warps of k-slice 0); owner
// thread htid (0..127) of the group that covers column tiles nt_base .. nt_base + ACC_TILES - 1 holds, for each of
// those tiles l, acc[l][4 * m8 + e] = mma C fragment e (rows g, g+8 = columns; columns 2t, 2t+1 = tokens) of token
// block m8. Every thread of the block calls finish_tile (it contains block-wide barriers) with `owns` set on owner
// threads; CAN_OWN = false compiles the call without touching `acc` (the producer warpgroup's 40 registers).
//
// Split-K, two ways (both sum the S partials of a tile in split order 0..S-1 from 0 in fp32: the same bits either way,
// independent of arrival order):
//   across a cluster (sm_90, when the host launched the splits of each tile as one thread-block cluster, kit/host.cu
//     cluster_for): every block stages its partial tile in its own shared memory, one cluster barrier publishes
//     them, and block r reduces column slice r of the tile, reading the S partials through distributed shared memory,
//     and stores it. No workspace, no counters, no global round trips.
//   through the workspace (otherwise): every block writes its fp32 partial tile to the workspace in fragment order,
//     then bumps the tile's arrival counter; the last block to arrive sums all partials, resets the counter to 0 (no
//     host zeroing, graph-replay safe), and stores the output.
#pragma once
#include <stdint.h>

#include "../common/act_dtype.cuh"
#include "../common/cluster.cuh"
#include "../common/ptx.cuh"
#include "params.cuh"

namespace marlin::kit {

constexpr int kOwnerThreads = 128;  // threads of one owner group (one warpgroup)

// Where element e of an owner thread's C fragment lies (lane = 4 g + t; accumulator acc[l][4 m8 + e]): the fragment's
// rows are output columns, its columns tokens, so element e is column g + frag_col(e) of the thread's 16-column slab
// and token 2t + frag_token(e) of token block m8. The scale step of the post-scaled loop (gemm_kernel.cuh), the
// cluster stage and the output stage below all place elements through these two.
__host__ __device__ constexpr int frag_col(int e) { return 8 * (e >> 1); }
__host__ __device__ constexpr int frag_token(int e) { return e & 1; }

// Output staging row stride in elements (+16 B against bank conflicts) and the staged tile's bytes.
template <int M_TILE, int N_TILES>
struct OutTile {
  static constexpr int kCtaN = N_TILES * kTileN;
  static constexpr int kStride = kCtaN + 8;
  static constexpr int kBytes = M_TILE * kStride * 2;
};

// A block's fp32 partial tile in its shared memory for the cluster reduction: row-major, one row of kCtaN columns per
// token, rows padded by 4 floats (the owners' scalar writes, columns g and tokens 2t of a fragment, fall in 32 distinct
// banks). The host launches clusters only when kBytes + 1024 fits the kernel's dynamic shared memory (kit/host.cu).
template <int M_TILE, int N_TILES>
struct ClusterTile {
  static constexpr int kCtaN = N_TILES * kTileN;
  static constexpr int kStride = kCtaN + 4;  // floats
  static constexpr int kBytes = M_TILE * kStride * 4;
};
constexpr int kMaxClusterSplits = 8;  // the portable cluster size (no opt-in attribute)

// Which kernel instances have the cluster reduction compiled in (the host mirrors this, kit/resolve.cuh): the
// warp-specialised rows and the mma.sync decode rows (M_TILE <= 16). In the mma.sync rows with more tokens (run split
// on sm_90 only when forced) it made ptxas spill 24-32 B.
__host__ __device__ constexpr bool has_cluster_reduction(bool warp_specialized, int m_tile) {
  return warp_specialized || m_tile <= 16;
}

#ifdef MARLIN_HAS_CLUSTER
// Split-K across a cluster of p.splits blocks, block rank = split (problem_list.cuh orders splits fastest). Called by
// every thread of the block; `worker` in [0, workers) for the threads that share the reduction and the stores (-1:
// none, the warp-specialised producer warpgroup); `stage` = shared memory free of pipeline data for ClusterTile.
template <typename T, int M_TILE, int N_TILES, int ACC_TILES, bool CAN_OWN, typename Coords>
__device__ __forceinline__ void reduce_in_cluster(const Params& p, const Coords& bc, float (&acc)[ACC_TILES][M_TILE / 2],
                                                  bool owns, int nt_base, int htid, float* stage, int worker,
                                                  int workers) {
  using CT = ClusterTile<M_TILE, N_TILES>;
  constexpr int kM8 = M_TILE / 8;
  const int lane = htid & 31, wn = htid >> 5, g = lane >> 2, t = lane & 3;
  __syncthreads();  // the stage area may still be read by the kernel (the mma.sync family's k-slice reduction)
  if (CAN_OWN && owns) {
#pragma unroll
    for (int l = 0; l < ACC_TILES; ++l) {
      const int col = (nt_base + l) * kTileN + wn * 16 + g;
#pragma unroll
      for (int m8 = 0; m8 < kM8; ++m8)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          stage[(m8 * 8 + 2 * t + frag_token(e)) * CT::kStride + col + frag_col(e)] = acc[l][m8 * 4 + e];
    }
  }
  cluster_sync();  // every block's partial is in its shared memory
  if (CAN_OWN && worker >= 0) {
    grid_dependency_wait();  // every storing thread (the copy warp's lanes 1-31 have not waited before)
    // Block r: float4 columns [r C4 / S, (r + 1) C4 / S) of the valid token rows.
    constexpr int kC4 = CT::kCtaN / 4;
    const int S = p.splits, r = bc.split;
    const int c_begin = r * kC4 / S, count = (r + 1) * kC4 / S - c_begin;
    const int rows = min(M_TILE, p.m - bc.m_block * M_TILE);
    const int n0 = bc.n_block * CT::kCtaN, m0 = bc.m_block * M_TILE;
    const uint32_t base = smem_addr(stage);
    for (int i = worker; i < rows * count; i += workers) {
      const int row = i / count, c4 = c_begin + i % count, n = n0 + c4 * 4;
      if (n >= p.n) continue;  // padded columns (p.n is a multiple of 16: 4 columns are all in or all out)
      const uint32_t at = base + uint32_t((row * CT::kStride + c4 * 4) * 4);
      // Rounds of 4 loads in flight (8 spilled the 2-block mma.sync rows), the adds in split order.
      constexpr int kInFlight = 4;
      float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int s0 = 0; s0 < kMaxClusterSplits; s0 += kInFlight) {
        if (s0 >= S) break;
        float4 v[kInFlight];
#pragma unroll
        for (int j = 0; j < kInFlight; ++j)
          if (s0 + j < S) v[j] = cluster_load_f4(cluster_map(at, uint32_t(s0 + j)));
#pragma unroll
        for (int j = 0; j < kInFlight; ++j) {
          if (s0 + j >= S) break;
          sum.x += v[j].x;
          sum.y += v[j].y;
          sum.z += v[j].z;
          sum.w += v[j].w;
        }
      }
      float b[4] = {0.f, 0.f, 0.f, 0.f};
      if (p.bias != nullptr) {
#pragma unroll
        for (int e = 0; e < 4; ++e) b[e] = to_float<T>(p.bias[n + e]);
      }
      const uint32_t lo = uint32_t(to_bits<T>(sum.x + b[0])) | (uint32_t(to_bits<T>(sum.y + b[1])) << 16);
      const uint32_t hi = uint32_t(to_bits<T>(sum.z + b[2])) | (uint32_t(to_bits<T>(sum.w + b[3])) << 16);
      *reinterpret_cast<uint2*>(p.y + size_t(m0 + row) * p.ldc + n) = make_uint2(lo, hi);
    }
  }
  cluster_sync();  // no block leaves (and frees its shared memory) while a peer may still read it
}
#endif

// Split-K reduction (when p.splits > 1) + epilogue. Blocks that are not the last to arrive at their tile return
// after publishing their partial (they store nothing). `os` = shared memory for the staged output tile
// (OutTile::kBytes, free of pipeline data); `last_arrival` = a __shared__ int of the kernel (NOTE: not a static
// __shared__ in this function: its CAN_OWN = true and false instantiations would each get their own variable, and
// the consumers would never see the producer thread's write). `bc` = the block's place (problem_list.cuh Coords).
// CLUSTER: the instance has reduce_in_cluster (has_cluster_reduction); `worker` / `workers`: its share of the threads.
template <typename T, int M_TILE, int N_TILES, int ACC_TILES, int THREADS, bool CAN_OWN, bool CLUSTER, typename Coords>
__device__ __forceinline__ void finish_tile(const Params& p, const Coords& bc, float (&acc)[ACC_TILES][M_TILE / 2],
                                            bool owns, int nt_base, int htid, uint16_t* os, int& last_arrival,
                                            float* cluster_stage, int worker, int workers) {
  constexpr int kM8 = M_TILE / 8;
  const int tid = threadIdx.x;
  const int lane = htid & 31, wn = htid >> 5, g = lane >> 2, t = lane & 3;
  const int n0 = bc.n_block * N_TILES * kTileN, m0 = bc.m_block * M_TILE;

  if (p.splits > 1) {
#ifdef MARLIN_HAS_CLUSTER
    if constexpr (CLUSTER) {
      if (cluster_size() == uint32_t(p.splits)) {
        reduce_in_cluster<T, M_TILE, N_TILES, ACC_TILES, CAN_OWN>(p, bc, acc, owns, nt_base, htid, cluster_stage,
                                                                  worker, workers);
        return;
      }
    }
#endif
    // Through the workspace. Partial layout, fragment order: float4 index (m8 * N_TILES + nt) * 128 + htid, written
    // by the owning thread.
    const int tile_id = bc.output_tile(p);
    constexpr int kTileFloats = M_TILE * N_TILES * kTileN;
    float* mine = p.partials + (size_t(tile_id) * p.splits + bc.split) * kTileFloats;
    if (CAN_OWN && owns) {
#pragma unroll
      for (int m8 = 0; m8 < kM8; ++m8)
#pragma unroll
        for (int l = 0; l < ACC_TILES; ++l) {
          reinterpret_cast<float4*>(mine)[(m8 * N_TILES + nt_base + l) * kOwnerThreads + htid] =
              make_float4(acc[l][m8 * 4 + 0], acc[l][m8 * 4 + 1], acc[l][m8 * 4 + 2], acc[l][m8 * 4 + 3]);
        }
    }
    __threadfence();  // partials visible device-wide before the arrival is counted
    __syncthreads();
    if (tid == 0) last_arrival = atomicAdd(&p.counters[tile_id], 1u) == unsigned(p.splits - 1);
    __syncthreads();
    if (!last_arrival) return;
    __threadfence();  // acquire side of the pattern: see every other block's partials
    if (CAN_OWN && owns) {
      // The partials are L2 round trips (~1 us each under load): issued in rounds of up to kInFlight independent
      // 16-byte loads, not one (group, split) at a time (one at a time, the last block of a
      // 128 x 256 tile with 2 splits spent 64 round trips, ~45,000 cycles, on this loop). Each group still sums its
      // splits in order 0..S-1 from 0: the same bits as ever.
      const float4* first = reinterpret_cast<const float4*>(p.partials + size_t(tile_id) * p.splits * kTileFloats);
      constexpr int kGroups = kM8 * ACC_TILES;  // float4 fragments per owner thread
      constexpr int kInFlight = 16;
      constexpr int kGroupChunk = kGroups < kInFlight ? kGroups : kInFlight;
      constexpr int kSplitChunk = kInFlight / kGroupChunk;
      static_assert(kGroups % kGroupChunk == 0, "token blocks x column tiles is a power of two");
#pragma unroll
      for (int l = 0; l < ACC_TILES; ++l)
#pragma unroll
        for (int c = 0; c < M_TILE / 2; ++c) acc[l][c] = 0.0f;
#pragma unroll
      for (int g0 = 0; g0 < kGroups; g0 += kGroupChunk) {
        for (int s0 = 0; s0 < p.splits; s0 += kSplitChunk) {
          float4 v[kGroupChunk][kSplitChunk];
#pragma unroll
          for (int i = 0; i < kGroupChunk; ++i)
#pragma unroll
            for (int j = 0; j < kSplitChunk; ++j) {
              const int gi = g0 + i, m8 = gi / ACC_TILES, l = gi % ACC_TILES;
              v[i][j] = s0 + j < p.splits ? __ldcg(first + size_t(s0 + j) * (kTileFloats / 4) +
                                                   (m8 * N_TILES + nt_base + l) * kOwnerThreads + htid)
                                          : make_float4(0.f, 0.f, 0.f, 0.f);
            }
#pragma unroll
          for (int i = 0; i < kGroupChunk; ++i)
#pragma unroll
            for (int j = 0; j < kSplitChunk; ++j) {
              if (s0 + j >= p.splits) break;  // fixed order: bitwise identical on every run
              const int gi = g0 + i, m8 = gi / ACC_TILES, l = gi % ACC_TILES;
              acc[l][m8 * 4 + 0] += v[i][j].x;
              acc[l][m8 * 4 + 1] += v[i][j].y;
              acc[l][m8 * 4 + 2] += v[i][j].z;
              acc[l][m8 * 4 + 3] += v[i][j].w;
            }
        }
      }
    }
    if (tid == 0) p.counters[tile_id] = 0u;  // leave the workspace as we found it
  }

  // + bias in fp32, round to T, stage in smem, 16-byte coalesced stores.
  using Out = OutTile<M_TILE, N_TILES>;
  if (CAN_OWN && owns) {
#pragma unroll
    for (int l = 0; l < ACC_TILES; ++l) {
      const int col = (nt_base + l) * kTileN + wn * 16 + g;
      float b[2] = {0.f, 0.f};  // bias of columns col + frag_col(e): e = 0, 1 and e = 2, 3
      if (p.bias != nullptr) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
          if (n0 + col + frag_col(2 * h) < p.n) b[h] = to_float<T>(p.bias[n0 + col + frag_col(2 * h)]);
      }
#pragma unroll
      for (int m8 = 0; m8 < kM8; ++m8)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          os[(m8 * 8 + 2 * t + frag_token(e)) * Out::kStride + col + frag_col(e)] =
              to_bits<T>(acc[l][m8 * 4 + e] + b[e >> 1]);
    }
  }
  __syncthreads();
  constexpr int kRowChunks = Out::kCtaN / 8;
#pragma unroll
  for (int i = tid; i < M_TILE * kRowChunks; i += THREADS) {
    const int r = i / kRowChunks, c = i % kRowChunks;
    const int m = m0 + r, n = n0 + c * 8;
    if (m < p.m && n < p.n) {
      *reinterpret_cast<int4*>(p.y + size_t(m) * p.ldc + n) = *reinterpret_cast<const int4*>(os + r * Out::kStride + c * 8);
    }
  }
}

}  // namespace marlin::kit
