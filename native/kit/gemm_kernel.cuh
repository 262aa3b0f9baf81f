// Weight-only quantized GEMM (16-bit activations) with the dequantized weights on the tensor cores' row side and
// tokens on the column side (the operand swap: M = 1 wastes 7/8 of an n8 column instead of 15/16 of an m16 row). Two
// MMA families share everything but the inner product (template flag WGMMA):
//   "ampere" (WGMMA = false): mma.sync.m16n8k16, weights = 16-row A per warp, tokens = n8 B from ldmatrix.
//                             Built for sm_80 (Ampere/Ada) and sm_90a (where it can be forced as the fallback).
//   "hopper" (WGMMA = true):  wgmma.m64nMk16 (sm_90a only): the 4 warps of a warpgroup hold the 64 weight rows of a
//                             column tile as register A fragments (the same per-warp layout), tokens = B read by
//                             the tensor cores from shared memory (descriptor, core-matrix layout), N = mTile.
//
// Work partition (docs/kernel-design.md has the diagram):
//   block  = M_TILE tokens x (N_TILES * 64) output columns x a contiguous range of K (split-K "splits")
//   grid   = splits * m_blocks * n_blocks, splits fastest (a split-K tile's blocks are one cluster on sm_90), then m,
//            so blocks that run together share weights in L2
//   warps  = 8: warp w owns the 16-column slot (w & 3) of each of the block's 64-column tiles and the k-tiles
//            j = (w >> 2), (w >> 2) + 2, ... of every stage ("k-slicing"); the two k-slices are summed in shared memory.
//   stage  = K_STAGE k-tiles (64 k each): weights (2048 B per tile, [nt][j] order), activations (M_TILE x 64 K_STAGE,
//            swizzled), scale rows and zero-point rows for k offsets 0 and 32 of each k-tile; STAGES deep.
//            Weights: on sm_90 one bulk copy per column tile per stage (contiguous in the packed format) completing
//            on an mbarrier; on sm_80 16-byte cp.async from a per-thread plan computed once. Activations, scales and
//            zero points: cp.async on both (activations zero-filled past M and K).
// Cross-block (split-K) reduction and epilogue: epilogue.cuh (shared with the warp-specialised kernel).
//
// Policies (template parameters), so that other weight formats and grouped launches are variants of this kernel:
//   Codec    the weight format: tile bytes, a lane's words, dequantization (native/common/codec.cuh), and the operand
//            its fragments are (dense, or 2:4 sparse: one mma.sp / wgmma.sp per 32-k half; operand.cuh)
//   Problem  which GEMM and which block of it a CTA computes (problem_list.cuh; SingleProblem today)
#pragma once
#include "../common/bulk_copy.cuh"
#include "../common/codec.cuh"
#include "../common/ptx.cuh"
#include "../common/wgmma.cuh"
#include "cp_async_stage.cuh"
#include "epilogue.cuh"
#include "operand.cuh"
#include "params.cuh"
#include "stage_view.cuh"
#include "tma_stage.cuh"

namespace marlin::kit {

constexpr int kThreads = 256;       // the 8 compute warps
constexpr int kProducerThreads = 32;  // sm_90 mma.sync pipeline: + one copy-issuing warp (kernel_uses_producer)

// Whether the mma.sync family (WGMMA = false) is compiled with the producer-warp pipeline: on sm_90 one extra warp
// issues every copy of a stage through the copy engine (tma_stage.cuh) and the compute warps meet it only on
// mbarriers; below sm_90 all threads issue cp.async and a stage ends with __syncthreads. The host mirrors this rule
// (kit/resolve.cuh resolve_kernel: the kernel's ptxVersion >= 90, not the device's compute capability, which differs
// when compute_80 PTX is JIT-compiled on a newer GPU) for the block size and shared memory.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr bool kArchHasProducerPipeline = true;
#else
constexpr bool kArchHasProducerPipeline = false;
#endif

// Resident blocks per SM a mma.sync row is built for (its __launch_bounds__ minimum) from the blocks its shared memory
// allows: up to three where accumulators are small (see Traits), one for token tiles above 32.
__host__ __device__ constexpr int resident_blocks(int m_tile, int blocks_by_smem) {
  return m_tile > 32 ? 1 : m_tile <= 16 && blocks_by_smem >= 3 ? 3 : blocks_by_smem >= 2 ? 2 : 1;
}

template <typename Codec, int M_TILE, int N_TILES, int K_STAGE, int STAGES>
struct Traits {
  static constexpr int kM8 = M_TILE / 8;                 // n8 token blocks per tile
  static constexpr int kCtaN = N_TILES * kTileN;         // output columns per block
  // The all-threads pipeline's stage layout (cp_async_stage.cuh; its size depends on neither HAS_ZEROS nor the family).
  using CpLayout = CpAsyncStage<Codec, M_TILE, N_TILES, K_STAGE, false, false, kThreads>;
  static constexpr int kStageBytes = CpLayout::kBytes;
  static constexpr int kPipeBytes = STAGES * kStageBytes;
  static constexpr int kReduceBytes = (kThreads / 2) * kM8 * N_TILES * 4 * 4;  // k-slice 1 partials
  static constexpr int kEpilogueBytes = kReduceBytes + OutTile<M_TILE, N_TILES>::kBytes;
  static constexpr int kSmemBytes = kPipeBytes > kEpilogueBytes ? kPipeBytes : kEpilogueBytes;
  // Up to three blocks per SM where shared memory allows and accumulators are small: decode is issue/latency-bound
  // (ncu, 8B gate_up M=8: 0.55 issued warp-instructions per cycle per scheduler with 4 warps each), so more resident
  // warps hide the dequant's dependency chains. Three blocks cap registers at 80 per thread.
  static constexpr int kBlocksBySmem = (220 * 1024) / (kSmemBytes + 1024);
  static constexpr int kMinBlocks = resident_blocks(M_TILE, kBlocksBySmem);
  // The producer-warp pipeline (sm_90, mma.sync): tma_stage.cuh's stage layout (activations first, 1024-byte aligned
  // stages) and 1024 bytes to align the dynamic base.
  using TmaLayout = TmaStage<Codec, M_TILE, N_TILES, K_STAGE, false>;
  static constexpr int kTmaPipeBytes = STAGES * TmaLayout::kBytes;
  static constexpr int kTmaSmemBytes = (kTmaPipeBytes > kEpilogueBytes ? kTmaPipeBytes : kEpilogueBytes) + 1024;
  static constexpr int kTmaBlocksBySmem = (220 * 1024) / (kTmaSmemBytes + 1024);
  static constexpr int kTmaMinBlocks = resident_blocks(M_TILE, kTmaBlocksBySmem);

  static_assert(M_TILE % 8 == 0 && M_TILE >= 8, "tokens come in n8 blocks");
  static_assert(K_STAGE % 2 == 0, "two k-slices of warps share each stage");
  static_assert(STAGES >= 2, "cp.async pipeline needs at least double buffering");
  static_assert(kSmemBytes <= 227 * 1024, "exceeds the 227 KB per-block shared memory of sm_90");
  static_assert(kTmaSmemBytes <= 227 * 1024, "exceeds the 227 KB per-block shared memory of sm_90");
};

// Block size and resident blocks of a gemm_a16 instance in the current compilation pass.
template <bool WGMMA>
__host__ __device__ constexpr bool kernel_uses_producer() {
  return kArchHasProducerPipeline && !WGMMA;
}
template <bool WGMMA>
__host__ __device__ constexpr int block_threads() {
  return kernel_uses_producer<WGMMA>() ? kThreads + kProducerThreads : kThreads;
}

// sm_80 keeps at most 2 blocks: without bulk copies its per-thread cp.async weight plan spills under an 80-register cap.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define MARLIN_MIN_BLOCKS(...) ((__VA_ARGS__) > 2 ? 2 : (__VA_ARGS__))
#else
#define MARLIN_MIN_BLOCKS(...) (__VA_ARGS__)
#endif

template <typename Codec, typename Problem, int M_TILE, int N_TILES, int K_STAGE, int STAGES, bool HAS_ZEROS,
          bool WGMMA>
__global__ void __launch_bounds__(block_threads<WGMMA>(),
                                  kernel_uses_producer<WGMMA>()
                                      ? Traits<Codec, M_TILE, N_TILES, K_STAGE, STAGES>::kTmaMinBlocks
                                      : MARLIN_MIN_BLOCKS(Traits<Codec, M_TILE, N_TILES, K_STAGE, STAGES>::kMinBlocks))
    gemm_a16(const typename Problem::Args args, const __grid_constant__ CUtensorMap x_map) {
  using T = typename Codec::Act;
  using Tr = Traits<Codec, M_TILE, N_TILES, K_STAGE, STAGES>;
  using Stage = StageView<Codec, N_TILES, K_STAGE, HAS_ZEROS>;
  using TL = typename Tr::TmaLayout;
  using Copies = TmaStage<Codec, M_TILE, N_TILES, K_STAGE, HAS_ZEROS>;  // the producer pipeline's copies and areas
  using Op = OperandOps<Codec>;  // what a 32-k half is on the tensor cores (dense or 2:4 sparse)
  constexpr bool kTma = kernel_uses_producer<WGMMA>();  // producer-warp pipeline, TmaLayout stages
  constexpr int kBlockThreads = block_threads<WGMMA>();
#ifndef MARLIN_HAS_WGMMA
  if constexpr (WGMMA) __trap();  // NOTE: the host never launches the hopper family below sm_90a
#endif
  extern __shared__ __align__(128) uint8_t smem_raw[];
  uint8_t* smem = smem_raw;
  if constexpr (kTma) smem = align_1024(smem_raw);  // the 128-byte swizzle of the activation boxes
  __shared__ int last_arrival;  // split-K: this block reduces the tile (epilogue.cuh)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wn = warp & 3, wk = warp >> 2;
  const int g = lane >> 2;

  const auto bc = Problem::coords(args);
  if (!Problem::active(args, bc)) return;  // uniform per block: before any barrier
  const Params& p = Problem::gemm(args, bc);
  const int m0 = bc.m_block * M_TILE;
  const int tile0 = bc.n_block * N_TILES;  // first 64-column tile of this block
  const int st_begin = bc.split * p.stages_per_split;
  const int n_stages = max(min(st_begin + p.stages_per_split, p.stages_total) - st_begin, 0);

  // ---- global -> shared: one stage = K_STAGE k-tiles of weights, activations, scale and zero-point rows ----
#ifdef MARLIN_HAS_BULK_COPY
  // full: the slot's bulk copies have landed (the weights; with the producer warp, the whole stage); phase flips per
  // use. empty (producer warp only): the 8 compute warps are done with the slot.
  __shared__ __align__(8) uint64_t full_bar[STAGES];
  __shared__ __align__(8) uint64_t empty_bar[STAGES];
  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full_bar[s], 1);
      if constexpr (kTma) mbar_init(&empty_bar[s], kThreads / 32);
    }
    if constexpr (kTma) fence_mbarrier_init();
  }
  __syncthreads();
#endif
  // The all-threads pipeline (below sm_90, and the all-threads wgmma rows): every thread copies its share of each
  // stage with cp.async from a plan computed here, once (cp_async_stage.cuh). Unused by the producer-warp pipeline.
  using CpStage = CpAsyncStage<Codec, M_TILE, N_TILES, K_STAGE, HAS_ZEROS, WGMMA, kThreads>;
  const CpStage cp_stage(p, tid, m0, tile0);
  auto load_stage = [&](int st, int slot, bool constants, bool activations) {
#ifdef MARLIN_HAS_BULK_COPY
    uint64_t* full = &full_bar[slot];
#else
    uint64_t* full = nullptr;
#endif
    cp_stage.load(p, smem + slot * CpStage::kBytes, full, tid, tile0, st, constants, activations);
  };

  // Accumulators: acc[l][4 * m8 + e] = mma C fragment e of token block m8 for column tile nt_base + l (= wgmma's D
  // register order). mma.sync: every warp covers all N_TILES tiles for its k-slice (reduced in smem at the end).
  // wgmma: warpgroup wgrp covers tiles nt_base .. + kAccTiles - 1 over all of K (no k-slice reduction).
  static_assert(!WGMMA || N_TILES % 2 == 0, "the two warpgroups split the column tiles");
  constexpr int kAccTiles = WGMMA ? N_TILES / 2 : N_TILES;
  const int wgrp = warp >> 2;
  const int nt_base = WGMMA ? wgrp * kAccTiles : 0;
  const bool owns_output = WGMMA || wk == 0;  // threads that hold final (k-reduced) accumulators
  float acc[kAccTiles][Tr::kM8 * 4];
#pragma unroll
  for (int b = 0; b < kAccTiles; ++b)
#pragma unroll
    for (int c = 0; c < Tr::kM8 * 4; ++c) acc[b][c] = 0.0f;

  // Where activation chunk c (8 k) of token row r sits in a stage, and the byte steps of one token row and one k-tile
  // along the same chunk: the cp.async layouts (x_chunk_offset) or the producer pipeline's swizzled TMA boxes.
  auto x_offset = [](int r, int c) {
    if constexpr (kTma) return TL::x_chunk_offset(r, c);
    else return x_chunk_offset<WGMMA, M_TILE, CpStage::kXRowChunks>(r, c);
  };
  constexpr int kXRowStep = kTma ? 128 : CpStage::kXRowChunks * 16;
  constexpr int kXTileStep = kTma ? TL::kXTileBytes : 128;

  // Post-scaling (mma.sync family, v8): when every warp's k run of a stage lies in one scale group (groups of >= 128
  // rows or per-channel: group_shift >= 7) and the block has few token rows (the fp32 rescale costs 4 FFMA per n8
  // block per run, the saved hmul2 4 per packed word), weights stay exact integers and scales are applied in fp32.
  // Only for codecs whose unscaled weights are exact in T (Codec::kExactUnscaled).
  const bool post_scale = Codec::kExactUnscaled && !WGMMA && Tr::kM8 <= 2 && K_STAGE <= 4 && p.group_shift >= 7;

  // Post-scaled path: this lane's offsets for its k run (k-tiles [wk kRun, (wk + 1) kRun) of every stage), computed once
  // (StageView::run_lane). Activations: the ldmatrix row r = m8 * 8 + (lane & 7) and chunk c = j * 8 + kp * 4 +
  // (lane >> 3) of k-tile j = j0 + jj; the XOR swizzle touches only c's low 3 bits, where j * 8 is 0, so the offset is
  // ps_x[kp] + m8 * (8 rows) + jj * 128 bytes.
  constexpr int kRun = K_STAGE / 2;
  const int ps_j0 = wk * kRun;
  const auto ps_lane = Stage::run_lane(ps_j0, wn, lane, g);
  // Producer pipeline: one scale / zero-point row per distinct group from the stage's first (tma_stage.cuh). A run's
  // group is the same row of every stage: stages start on a group boundary (K_STAGE * 64 is a multiple of 128, and
  // post-scaling needs groups of 128 or per-channel), so the run starting ps_j0 k-tiles in lies in row
  // (ps_j0 * 64) >> group_shift (0 per-channel). At a ragged end of K the row is only wrong for runs past K, which
  // are skipped.
  const typename Stage::RunLane ps_group_lane = {
      ps_lane.w, int(opaque(uint32_t(Stage::lane_col(0, 0, 0, wn, g) + ((ps_j0 * kTileK) >> min(p.group_shift, 30)) * Stage::kCtaN))),
      ps_lane.aux};
  const uint32_t ps_x[2] = {opaque(uint32_t(x_offset(lane & 7, ps_j0 * 8 + (lane >> 3)))),
                            opaque(uint32_t(x_offset(lane & 7, ps_j0 * 8 + 4 + (lane >> 3))))};

  // mma.sync family: one k32 slab (32-k half kp of a k-tile) of token block m8 for every column tile: fragments
  // a[nt][.] against the B fragments of one ldmatrix.x4 (b0, b1: k 0..15; b2, b3: k 16..31), accumulated into
  // d[nt][m8 block]: two mma.m16n8k16 (dense) or one mma.sp.m16n8k32 with the lane's metadata of wq[nt] (2:4).
  auto mma_slab = [](float (&d)[N_TILES][Tr::kM8 * 4], int m8, const uint32_t (&a)[N_TILES][2][4],
                     const uint32_t (&b)[4], const typename Codec::LaneWords (&wq)[N_TILES], int kp) {
#pragma unroll
    for (int nt = 0; nt < N_TILES; ++nt) {
      float(&c4)[4] = *reinterpret_cast<float(*)[4]>(&d[nt][m8 * 4]);
      Op::half_mma(c4, a[nt], b, wq[nt], kp);
    }
  };

  // ---- shared -> registers -> tensor cores, for the k-tiles of one stage that belong to this warp's k-slice ----
  auto compute_stage = [&](int slot, int st) {
    // Stage areas: cp.async layout [weights][activations][scales][zeros], producer layout tma_stage.cuh.
    const uint8_t* base = smem + slot * (kTma ? TL::kBytes : CpStage::kBytes);
    const uint8_t* xs = kTma ? base : base + CpStage::kXOffset;
    const Stage sv = kTma ? Copies::view(base) : CpStage::view(base);
    // Producer layout: scale rows per distinct group from the stage's first one (tma_stage.cuh); else per 32-k offset.
    auto group_consts = [&](int j, int kp, int nt) {
      if constexpr (kTma) {
        return sv.row_consts(Copies::group_row(p, j * kTileK + kp * 32, Copies::last_group_row(p, st)), nt, wn, g);
      } else {
        return sv.group_consts(j, kp, nt, wn, g);
      }
    };
    auto tile_words = [&](int j, int nt) { return sv.tile_words(j, nt, wn, lane); };
    if constexpr (WGMMA) {
#ifdef MARLIN_HAS_WGMMA
      // Warpgroup `wgrp` owns column tiles nt_base .. nt_base + kAccTiles - 1 over every k-tile of the stage.
      // A fragments are double-buffered by MMA-step parity: the wgmma of step s runs while step s+1 is dequantized.
      uint32_t a[2][kAccTiles][4];
#pragma unroll
      for (int j = 0; j < K_STAGE; ++j) {
        if (st * K_STAGE + j >= p.k_tiles) break;  // partial last stage
        typename Codec::LaneWords wq[kAccTiles];
#pragma unroll
        for (int l = 0; l < kAccTiles; ++l) wq[l] = tile_words(j, nt_base + l);
#pragma unroll
        for (int kp = 0; kp < 2; ++kp) {
          typename Codec::Consts gc[kAccTiles];
#pragma unroll
          for (int l = 0; l < kAccTiles; ++l) gc[l] = group_consts(j, kp, nt_base + l);
#pragma unroll
          for (int e = 0; e < Op::kFragsPerHalf; ++e) {
            const int buf = (kp * Op::kFragsPerHalf + e) & 1;  // MMA-step parity (dense: e)
#pragma unroll
            for (int l = 0; l < kAccTiles; ++l) Codec::fragment(wq[l], Op::step(kp, e), gc[l], a[buf][l]);
            wgmma_fence();  // the A fragments were just written
            // First k16 step of the fragment within the stage: core-matrix chunk columns 2 ks, 2 ks + 1 (and, 2:4
            // k32, the next two).
            const int ks = j * 4 + kp * 2 + e;
            // K-major core matrices: LBO = next 8 k (one chunk column = M_TILE/8 cores), SBO = next 8 tokens.
            const uint64_t desc = smem_desc(xs + 2 * ks * Tr::kM8 * 128, Tr::kM8 * 128, 128);
#pragma unroll
            for (int l = 0; l < kAccTiles; ++l) Op::template wgmma<M_TILE>(acc[l], a[buf][l], desc, wq[l], kp);
            wgmma_commit();
            wgmma_wait<1>();  // the previous step's group is done: its A buffer may be rewritten next
          }
        }
      }
      wgmma_wait<0>();  // NOTE: this slot is refilled after the next __syncthreads
#endif
    } else if (post_scale) {
      if constexpr (Codec::kExactUnscaled) {  // compiled only for codecs that provide unscaled()
        // Post-scaled path (v8): warp slice wk takes the contiguous k-tiles [wk * kRun, (wk + 1) * kRun) of the stage,
        // which lie in one scale group (group >= 128 or per-channel; runs are <= 128 k and 128-aligned). The weights
        // enter the tensor cores as exact integers (q - z) and the group's scale multiplies the run's fp32 partial sums
        // once: 4 FFMA per n8 token block per run instead of 4 hmul2 per packed word.
        float part[N_TILES][Tr::kM8 * 4];
#pragma unroll
        for (int nt = 0; nt < N_TILES; ++nt)
#pragma unroll
          for (int c = 0; c < Tr::kM8 * 4; ++c) part[nt][c] = 0.0f;
        if (st * K_STAGE + ps_j0 < p.k_tiles) {  // partial last stage: this slice may have no k-tile at all
          // The run's scale / zero-point row: per k offset (cp.async layout) or per group (producer layout).
          const typename Stage::RunLane& rl = kTma ? ps_group_lane : ps_lane;
#pragma unroll
          for (int jj = 0; jj < kRun; ++jj) {
            if (st * K_STAGE + ps_j0 + jj >= p.k_tiles) break;
            typename Codec::LaneWords wq[N_TILES];
#pragma unroll
            for (int nt = 0; nt < N_TILES; ++nt) wq[nt] = sv.run_words(ps_lane, jj, nt);
#pragma unroll
            for (int kp = 0; kp < 2; ++kp) {
              uint32_t a[N_TILES][2][4];
#pragma unroll
              for (int nt = 0; nt < N_TILES; ++nt) {
                const typename Codec::Offsets zc =
                    kTma ? sv.run_group_zero_consts(rl, nt) : sv.run_zero_consts(ps_lane, jj, kp, nt);
                Op::half_unscaled(wq[nt], kp, zc, a[nt]);
              }
#pragma unroll
              for (int m8 = 0; m8 < Tr::kM8; ++m8) {
                uint32_t b[4];
                ldmatrix_x4(b, xs + ps_x[kp] + m8 * 8 * kXRowStep + jj * kXTileStep);
                mma_slab(part, m8, a, b, wq, kp);
              }
            }
          }
#pragma unroll
          for (int nt = 0; nt < N_TILES; ++nt) {  // scales of the lane's columns g (sc.x) and g + 8 (sc.y)
            const float2 sc = sv.run_scales_f32(rl, nt);
#pragma unroll
            for (int m8 = 0; m8 < Tr::kM8; ++m8)
#pragma unroll
              for (int e = 0; e < 4; ++e)
                acc[nt][m8 * 4 + e] = fmaf(frag_col(e) == 0 ? sc.x : sc.y, part[nt][m8 * 4 + e], acc[nt][m8 * 4 + e]);
          }
        }
      }
    } else {
#pragma unroll
      for (int j = wk; j < K_STAGE; j += 2) {  // k-slice wk of the stage
        if (st * K_STAGE + j >= p.k_tiles) break;  // partial last stage
        typename Codec::LaneWords wq[N_TILES];
#pragma unroll
        for (int nt = 0; nt < N_TILES; ++nt) wq[nt] = tile_words(j, nt);
#pragma unroll
        for (int kp = 0; kp < 2; ++kp) {  // k offsets 32 kp .. 32 kp + 31: one scale group (groups are >= 32)
          uint32_t a[N_TILES][2][4];
#pragma unroll
          for (int nt = 0; nt < N_TILES; ++nt) {  // dequant + scale, once per weight, reused by every token block
            const typename Codec::Consts gc = group_consts(j, kp, nt);
            Op::half_fragments(wq[nt], kp, gc, a[nt]);
          }
#pragma unroll
          for (int m8 = 0; m8 < Tr::kM8; ++m8) {  // activations: one ldmatrix.x4 = B fragments of the half's 32 k
            uint32_t b[4];
            const int r = m8 * 8 + (lane & 7), c = j * 8 + kp * 4 + (lane >> 3);
            ldmatrix_x4(b, xs + x_offset(r, c));
            mma_slab(acc, m8, a, b, wq, kp);
          }
        }
      }
    }
  };

  // ---- pipeline: STAGES stages in flight (producer warp, sm_90) or STAGES-1 while one is computed (cp.async) ----
  if constexpr (kTma) {
#ifdef MARLIN_HAS_BULK_COPY
    // ---- producer-warp pipeline (sm_90): warp 8 issues each stage's copies (tma_stage.cuh) as soon as the 8 compute
    // warps have released its slot; the compute warps wait only for their data. No __syncthreads in the K loop: with
    // one per stage, ncu (70B gate_up, M = 1) put 18% of the warps' stall samples on that barrier.
    // Barrier addresses in the shared window, once (8 bytes per barrier): per use, the generic -> shared conversion
    // cost a CTA-id read and address arithmetic in every stage (SASS, docs/perf-notes.md).
    const uint32_t full0 = opaque(smem_addr(&full_bar[0])), empty0 = opaque(smem_addr(&empty_bar[0]));
    grid_dependents_launch();  // decode rows: early, so the next kernel's constants stream during this one
    if (warp == kThreads / 32) {
      Copies::template produce<STAGES>(p, &x_map, smem, full_bar, empty0, st_begin, n_stages, m0, tile0, lane);
    } else {
      grid_dependency_wait();  // workspace, bias and output are touched in finish_tile
      for (int it = 0; it < n_stages; ++it) {
        const int slot = it % STAGES;
        mbar_wait(full0 + 8 * slot, (it / STAGES) & 1);
        compute_stage(slot, st_begin + it);
        __syncwarp();  // every lane's shared memory reads of the slot are done
        if (lane == 0) mbar_arrive(empty0 + 8 * slot);
      }
    }
    __syncthreads();  // NOTE: pipeline smem is reused by the epilogue from here on (no copy is in flight)
#endif
  } else {
    // Stage 0's constants go out before the wait for the previous kernel of the stream (a no-op unless this launch
    // overlaps it), its activations and the other stages after it: with every prefetched stage's constants first,
    // stage 0's activations queued behind them and serial launches got 3.5% slower at M = 1. One
    // cp.async group per stage as before, so "stage s has landed" is still "group s is complete".
    // sm_80 has no dependent launch: its prologue stays unsplit (split, config 1 with zero points spilled 8-16 B).
#ifdef MARLIN_HAS_GRID_DEPENDENCY
    constexpr bool kSplitStage0 = true;
#else
    constexpr bool kSplitStage0 = false;
#endif
    if (kSplitStage0 && n_stages > 0) load_stage(st_begin, 0, true, false);
    grid_dependents_launch();  // decode rows: early, so the next kernel's constants stream during this one
    grid_dependency_wait();     // every thread: activations here, workspace / bias / output in finish_tile
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < n_stages) load_stage(st_begin + s, s, s > 0 || !kSplitStage0, true);
      cp_async_commit();
    }
    for (int it = 0; it < n_stages; ++it) {
      cp_async_wait<STAGES - 2>();  // wait for stage `it`
#ifdef MARLIN_HAS_WGMMA
      if constexpr (WGMMA) fence_proxy_async_smem();  // cp.async wrote the activations; wgmma reads them (async proxy)
#endif
      __syncthreads();              // ...for every thread's copies, and every warp is done with slot (it-1)
#ifdef MARLIN_HAS_BULK_COPY
      mbar_wait(&full_bar[it % STAGES], (it / STAGES) & 1);  // ...and for its bulk-copied weights
#endif
      const int nxt = it + STAGES - 1;
      if (nxt < n_stages) load_stage(st_begin + nxt, nxt % STAGES, true, true);  // refill the slot computed last iteration
      cp_async_commit();
      compute_stage(it % STAGES, st_begin + it);
    }
    cp_async_wait<0>();
    __syncthreads();  // NOTE: pipeline smem is reused by the epilogue from here on
  }

  // ---- k-slice reduction in shared memory (mma.sync family): slice 1 -> slice 0 ----
  float* red = reinterpret_cast<float*>(smem);
  const int htid = tid & (kThreads / 2 - 1);
  if constexpr (!WGMMA) {
    if (wk == 1) {
#pragma unroll
      for (int m8 = 0; m8 < Tr::kM8; ++m8)
#pragma unroll
        for (int nt = 0; nt < N_TILES; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) red[((m8 * N_TILES + nt) * 4 + e) * (kThreads / 2) + htid] = acc[nt][m8 * 4 + e];
    }
    __syncthreads();
    if (wk == 0) {
#pragma unroll
      for (int m8 = 0; m8 < Tr::kM8; ++m8)
#pragma unroll
        for (int nt = 0; nt < N_TILES; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[nt][m8 * 4 + e] += red[((m8 * N_TILES + nt) * 4 + e) * (kThreads / 2) + htid];
    }
  }

  // ---- split-K reduction, bias, stores (epilogue.cuh) ----
  finish_tile<T, M_TILE, N_TILES, kAccTiles, kBlockThreads, true, has_cluster_reduction(false, M_TILE)>(
      p, bc, acc, owns_output, nt_base, htid, reinterpret_cast<uint16_t*>(smem + Tr::kReduceBytes), last_arrival,
      reinterpret_cast<float*>(smem), tid, kBlockThreads);
}

}  // namespace marlin::kit
