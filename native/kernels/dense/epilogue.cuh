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
// Split-K: every block writes its fp32 partial tile to the workspace in fragment order, then bumps the tile's
// arrival counter; the last block to arrive sums all partials in split order 0..S-1 (deterministic, independent of
// arrival order), resets the counter to 0 (no host zeroing, graph-replay safe), and stores the output.
#pragma once
#include <stdint.h>

#include "../../common/act_dtype.cuh"
#include "../../common/ptx.cuh"
#include "params.cuh"

namespace marlin::dense {

constexpr int kOwnerThreads = 128;  // threads of one owner group (one warpgroup)

// Output staging row stride in elements (+16 B against bank conflicts) and the staged tile's bytes.
template <int M_TILE, int N_TILES>
struct OutTile {
  static constexpr int kCtaN = N_TILES * kTileN;
  static constexpr int kStride = kCtaN + 8;
  static constexpr int kBytes = M_TILE * kStride * 2;
};

// Split-K reduction (when p.splits > 1) + epilogue. Blocks that are not the last to arrive at their tile return
// after publishing their partial (they store nothing). `os` = shared memory for the staged output tile
// (OutTile::kBytes, free of pipeline data); `last_arrival` = a __shared__ int of the kernel (NOTE: not a static
// __shared__ in this function: its CAN_OWN = true and false instantiations would each get their own variable, and
// the consumers would never see the producer thread's write). `bc` = the block's place (problem_list.cuh Coords).
template <typename T, int M_TILE, int N_TILES, int ACC_TILES, int THREADS, bool CAN_OWN, typename Coords>
__device__ __forceinline__ void finish_tile(const Params& p, const Coords& bc, float (&acc)[ACC_TILES][M_TILE / 2],
                                            bool owns, int nt_base, int htid, uint16_t* os, int& last_arrival) {
  constexpr int kM8 = M_TILE / 8;
  const int tid = threadIdx.x;
  const int lane = htid & 31, wn = htid >> 5, g = lane >> 2, t = lane & 3;
  const int n0 = bc.n_block * N_TILES * kTileN, m0 = bc.m_block * M_TILE;

  // Partial layout, fragment order: float4 index (m8 * N_TILES + nt) * 128 + htid, written by the owning thread.
  if (p.splits > 1) {
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
      // 16-byte loads, not one (group, split) at a time (perf-notes v9a: one at a time, the last block of a
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
      const int col = (nt_base + l) * kTileN + wn * 16 + g;  // rows g and g+8 of the fragment = output columns
      float b_g = 0.f, b_g8 = 0.f;
      if (p.bias != nullptr) {
        if (n0 + col < p.n) b_g = to_float<T>(p.bias[n0 + col]);
        if (n0 + col + 8 < p.n) b_g8 = to_float<T>(p.bias[n0 + col + 8]);
      }
#pragma unroll
      for (int m8 = 0; m8 < kM8; ++m8) {
        const int tok = m8 * 8 + 2 * t;  // fragment columns 2t, 2t+1 = tokens
        os[tok * Out::kStride + col] = to_bits<T>(acc[l][m8 * 4 + 0] + b_g);
        os[(tok + 1) * Out::kStride + col] = to_bits<T>(acc[l][m8 * 4 + 1] + b_g);
        os[tok * Out::kStride + col + 8] = to_bits<T>(acc[l][m8 * 4 + 2] + b_g8);
        os[(tok + 1) * Out::kStride + col + 8] = to_bits<T>(acc[l][m8 * 4 + 3] + b_g8);
      }
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

}  // namespace marlin::dense
