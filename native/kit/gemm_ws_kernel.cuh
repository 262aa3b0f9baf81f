// Weight-only quantized GEMM (16-bit activations), warp-specialised Hopper variant (sm_90a only; kernel-table rows
// with "warpSpecialized": true).
//
// Same work partition, packed format, dequant, MMA mapping and epilogue as the "hopper" family of gemm_kernel.cuh
// (weights = wgmma A from registers, 64 rows per column tile; tokens = wgmma N from shared memory), but the block is
// split by role (docs/kernel-design.md "Warp-specialised pipeline"):
//   warpgroup 0 (producer, 40 registers after setmaxnreg; consumers 232, or 96 with 2 blocks per SM: WsRegs): one elected thread issues every copy of a stage
//     - activations: one TMA 3D tensor copy per stage (box 64 k x M_TILE tokens x K_STAGE k-tiles; one 2D copy per
//       k-tile when K % 64 != 0), 128-byte swizzle, zero fill past M and K, straight into the layout the wgmma
//       descriptor reads (no per-thread cp.async address math);
//     - weights: one 1D bulk copy per column tile (contiguous along K in the packed format);
//     - scale and zero-point rows: one 1D bulk copy per distinct scale group of the stage;
//     all completing on the slot's "full" mbarrier (expected transaction bytes).
//   warpgroups 1, 2 (consumers, 232 registers): wait "full", dequantize + wgmma their column tiles, and release the
//     slot on its "empty" mbarrier (one arrival per consumer warp) as soon as the slot's last wgmma has retired.
// No __syncthreads in the main loop: the producer runs up to STAGES stages ahead of the slower consumer.
// The weight format (Codec) and the problem list (Problem) are template policies, as in gemm_kernel.cuh.
#pragma once
#include <cuda.h>  // CUtensorMap (the type only; the tensor map is encoded on the host through the driver entry point)

#include "../common/bulk_copy.cuh"
#include "../common/codec.cuh"
#include "../common/ptx.cuh"
#include "../common/wgmma.cuh"
#include "epilogue.cuh"
#include "operand.cuh"
#include "params.cuh"
#include "stage_view.cuh"
#include "tma_stage.cuh"

namespace marlin::kit {

constexpr int kWsThreads = 384;  // 1 producer + 2 consumer warpgroups

// wgmma groups (k16 steps) a consumer leaves pending while it dequantizes the next step. The
// next step rewrites the A buffer of 4 steps back, so up to 3 may be. With 3, a stage's slot goes back to the producer
// one step later (after the third step of the next stage instead of the second). That pays on the 1-block rows with
// 4+ stages (configs 10 / 13, M = 65-255: -2.5 / -4.1 / -2.6% over the 8 Llama layers at M = 80 / 128 / 192), not on
// 2-stage rows, where the producer waits for that slot (configs 20 / 21 at M >= 256: +2.4%). It also does not pay on
// the 2-block rows, whose 96-register consumers spill with it (config 15 with zero points: 4 B) and gain nothing
// (M = 32 +0.2%, M = 64 +2.2%).
template <int STAGES, int BLOCKS>
__host__ __device__ constexpr int wgmma_in_flight() {
  return BLOCKS == 1 && STAGES >= 4 ? 3 : 2;
}

// Register split between the roles (setmaxnreg) for BLOCKS resident blocks per SM. A block starts with the launch
// bound's per-thread count (65,536 / (384 x BLOCKS), rounded down to 8) and the two roles redistribute that pool:
//   1 block:  168 at entry, pool 64,512: producer 40, consumers 232 (128 x 40 + 256 x 232 = 64,512).
//   2 blocks:  80 at entry, pool 30,720: producer 40, consumers 96 (128 x 40 + 256 x 96 = 29,696; a 24-register
//             producer spilled 4-12 B). For small token tiles (M <= 64), whose accumulators are small: twice the
//             consumer warps per scheduler to hide the dequant -> wgmma -> wait latency that bounds them,
//             and twice the slots per wave.
template <int BLOCKS>
struct WsRegs;
template <>
struct WsRegs<1> {
  static constexpr int kProducer = 40, kConsumer = 232;
};
template <>
struct WsRegs<2> {
  static constexpr int kProducer = 40, kConsumer = 96;
};

template <typename Codec, int M_TILE, int N_TILES, int K_STAGE, int STAGES, int BLOCKS = 1>
struct WsTraits {
  // Stage layout and copies: tma_stage.cuh (shared with the mma.sync kernel's sm_90 pipeline); the size does not
  // depend on HAS_ZEROS (zero-point rows are always reserved).
  using Stage = TmaStage<Codec, M_TILE, N_TILES, K_STAGE, false>;
  static constexpr int kM8 = M_TILE / 8;
  static constexpr int kCtaN = N_TILES * kTileN;
  static constexpr int kXTileBytes = Stage::kXTileBytes;
  static constexpr int kStageBytes = Stage::kBytes;
  static constexpr int kPipeBytes = STAGES * kStageBytes;
  static constexpr int kEpilogueBytes = OutTile<M_TILE, N_TILES>::kBytes;
  // + 1024: the dynamic shared memory base is only 16-byte aligned; the kernel rounds it up.
  static constexpr int kSmemBytes = (kPipeBytes > kEpilogueBytes ? kPipeBytes : kEpilogueBytes) + 1024;
  static constexpr int kAccTiles = N_TILES / 2;  // column tiles per consumer warpgroup

  static_assert(M_TILE % 8 == 0 && M_TILE >= 8 && M_TILE <= 256, "wgmma N and the TMA box are 8..256 tokens");
  static_assert(N_TILES % 2 == 0, "the two consumer warpgroups split the column tiles");
  static_assert(kSmemBytes <= 227 * 1024, "exceeds the 227 KB per-block shared memory of sm_90");
  static_assert(BLOCKS == 1 || BLOCKS * (kSmemBytes + 1024) <= 228 * 1024, "BLOCKS blocks do not fit one SM's 228 KB");
};

template <typename Codec, typename Problem, int M_TILE, int N_TILES, int K_STAGE, int STAGES, bool HAS_ZEROS, int BLOCKS>
__global__ void __launch_bounds__(kWsThreads, BLOCKS)
    gemm_a16_ws(const typename Problem::Args args, const __grid_constant__ CUtensorMap x_map) {
#ifndef MARLIN_HAS_WGMMA
  __trap();  // NOTE: the host never launches this kernel below sm_90a
#else
  using T = typename Codec::Act;
  using Tr = WsTraits<Codec, M_TILE, N_TILES, K_STAGE, STAGES, BLOCKS>;
  constexpr int kAccTiles = Tr::kAccTiles;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = align_1024(smem_raw);
  __shared__ __align__(8) uint64_t full_bar[STAGES];   // slot's copies have landed (transaction bytes)
  __shared__ __align__(8) uint64_t empty_bar[STAGES];  // slot's wgmmas have retired (one arrival per consumer warp)
  __shared__ int last_arrival;                         // split-K: this block reduces the tile (epilogue.cuh)

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const auto bc = Problem::coords(args);
  if (!Problem::active(args, bc)) return;  // uniform per block: before any barrier
  const Params& p = Problem::gemm(args, bc);
  const int m0 = bc.m_block * M_TILE;
  const int tile0 = bc.n_block * N_TILES;
  const int st_begin = bc.split * p.stages_per_split;
  const int n_stages = max(min(st_begin + p.stages_per_split, p.stages_total) - st_begin, 0);

  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(&full_bar[s], 1);
      mbar_init(&empty_bar[s], 8);
    }
    fence_mbarrier_init();
  }
  __syncthreads();

  // Programmatic dependent launch (ptx.cuh, docs/kernel-design.md 3c): every thread but the copy issuer waits for the
  // previous kernel of the stream here (nothing before the epilogue needs global memory but the issuer's copies);
  // the issuer waits after its constant prefetch. The next kernel is let in only when this block's main loop is
  // done (launch_dependents after it): triggered at the start, the next-but-one kernel's blocks became resident too
  // and the 2-block rows ran with two busy blocks on some SMs and none on others (8B down M = 32 +32%).
  if (tid != 0) grid_dependency_wait();

  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<WsRegs<BLOCKS>::kProducer>();
    if (warp == 0) {
      TmaStage<Codec, M_TILE, N_TILES, K_STAGE, HAS_ZEROS>::template produce<STAGES>(
          p, &x_map, smem, full_bar, smem_addr(&empty_bar[0]), st_begin, n_stages, m0, tile0, lane);
    }
    __syncthreads();  // pairs with the consumers' barrier before the epilogue
    float none[kAccTiles][M_TILE / 2];  // NOTE: never read (CAN_OWN = false)
    finish_tile<T, M_TILE, N_TILES, kAccTiles, kWsThreads, false, true>(p, bc, none, false, 0, 0,
                                                                  reinterpret_cast<uint16_t*>(smem), last_arrival,
                                                                  reinterpret_cast<float*>(smem), -1, 0);
    return;
  }

  // ---------------- consumers ----------------
  setmaxnreg_inc<WsRegs<BLOCKS>::kConsumer>();
  const int ctid = tid - 128, cw = ctid >> 7, htid = ctid & 127;  // consumer warpgroup 0/1, thread within it
  const int wn = (htid >> 5) & 3, g = (lane >> 2);
  const int nt_base = cw * kAccTiles;
  float acc[kAccTiles][M_TILE / 2];
#pragma unroll
  for (int l = 0; l < kAccTiles; ++l)
#pragma unroll
    for (int c = 0; c < M_TILE / 2; ++c) acc[l][c] = 0.0f;

  // A fragments in 4 buffers by MMA step (step s of a stage uses buffer s % 4; a stage has 4 K_STAGE k16 steps, or
  // 2 K_STAGE k32 steps for a 2:4 operand): two or three wgmma groups stay in flight while the next step is
  // dequantized (wgmma_in_flight), so the tensor pipe does not idle on the dequant's latency (wait_group 1 left it
  // ~27% idle while the SM was active).
  using Op = OperandOps<Codec>;
  uint32_t a[4][kAccTiles][4];
  constexpr int kWgmmaInFlight = wgmma_in_flight<STAGES, BLOCKS>();
  static_assert(kWgmmaInFlight >= 1 && kWgmmaInFlight <= 3, "the next step's A buffer must have retired");
  static_assert(Op::kStepsPerTile * K_STAGE % 4 == 0, "a stage's steps must fill the 4 A buffers in turn");
  // Loop invariants computed once (SASS of config 15 at M = 32 rebuilt them in every stage: ~180 of a stage's
  // ~420 instructions were thread-index, barrier-address, scale-row and descriptor arithmetic around 208 of dequant).
  // The lane's word and scale / zero-point offsets for column tile nt_base of any stage (opaque, as run_lane),
  // the barriers' shared addresses, and the low word of slot 0's activation descriptor.
  using Copies = TmaStage<Codec, M_TILE, N_TILES, K_STAGE, HAS_ZEROS>;
  using Lane = typename StageView<Codec, N_TILES, K_STAGE, HAS_ZEROS>::RunLane;
  const auto lane0 = StageView<Codec, N_TILES, K_STAGE, HAS_ZEROS>::run_lane(0, wn, lane, g);
  const Lane ln = {opaque(lane0.w + uint32_t(nt_base * K_STAGE * Codec::kTileBytes)),
                   int(opaque(uint32_t(lane0.col + nt_base * kTileN))), lane0.aux};
  const uint32_t full0 = opaque(smem_addr(&full_bar[0])), empty0 = opaque(smem_addr(&empty_bar[0]));
  const uint32_t desc_lo0 = smem_desc_sw128_lo(smem);
  int slot = 0, prev_slot = STAGES - 1;
  uint32_t phase = 0;
  for (int it = 0; it < n_stages; ++it) {
    const int st = st_begin + it;
    mbar_wait(full0 + 8 * slot, phase);
    const uint8_t* xs = smem + slot * Tr::kStageBytes;
    const auto sv = Copies::view(xs);
    const uint32_t desc_lo = desc_lo0 + uint32_t(slot * (Tr::kStageBytes >> 4));
    const int last_row = Copies::last_group_row(p, st);  // the producer's rows of this stage end here
#pragma unroll
    for (int j = 0; j < K_STAGE; ++j) {
      if (st * K_STAGE + j >= p.k_tiles) break;  // partial last stage
      typename Codec::LaneWords wq[kAccTiles];
#pragma unroll
      for (int l = 0; l < kAccTiles; ++l) wq[l] = sv.run_words(ln, j, l);
#pragma unroll
      for (int kp = 0; kp < 2; ++kp) {
        const int row = Copies::group_row(p, j * kTileK + kp * 32, last_row);
        typename Codec::Consts gc[kAccTiles];
#pragma unroll
        for (int l = 0; l < kAccTiles; ++l) gc[l] = sv.lane_row_consts(ln, row, l);
#pragma unroll
        for (int e = 0; e < Op::kFragsPerHalf; ++e) {
          const int step = j * Op::kStepsPerTile + kp * Op::kFragsPerHalf + e;  // MMA step of the stage
          const int b = step & 3;  // A buffer (dense: the k16 step of the k-tile)
#pragma unroll
          for (int l = 0; l < kAccTiles; ++l) Codec::fragment(wq[l], Op::step(kp, e), gc[l], a[b][l]);
          wgmma_fence();  // the A fragments were just written
          // The fragment's first k in k-tile j (32 kp + 16 e), 2 bytes each, into each swizzled 128-byte token row.
          const uint64_t desc = sw128_desc(desc_lo + uint32_t((j * Tr::kXTileBytes + (kp * 32 + e * 16) * 2) >> 4));
#pragma unroll
          for (int l = 0; l < kAccTiles; ++l) Op::template wgmma<M_TILE>(acc[l], a[b][l], desc, wq[l], kp);
          wgmma_commit();
          // At most kWgmmaInFlight groups stay pending: the group of kWgmmaInFlight steps back has retired. The next
          // step writes the A buffer of 4 steps back, so up to 3 may be in flight.
          wgmma_wait<kWgmmaInFlight>();
          if (step == kWgmmaInFlight - 1 && it > 0) {
            // This step's wait retired every group up to the previous stage's last: hand its slot back to the
            // producer.
            __syncwarp();
            if (lane == 0) mbar_arrive(empty0 + 8 * prev_slot);
          }
        }
      }
    }
    prev_slot = slot;
    if (++slot == STAGES) {
      slot = 0;
      phase ^= 1;
    }
  }
  wgmma_wait<0>();
  // Late trigger (see the wait above). A block's first launch_dependents counts, from any thread: the producer's
  // threads, idle from the start, must not issue it.
  grid_dependents_launch();
  __syncthreads();  // NOTE: pipeline smem is reused by the epilogue from here on (the producer waits here too)
  finish_tile<T, M_TILE, N_TILES, kAccTiles, kWsThreads, true, true>(p, bc, acc, true, nt_base, htid,
                                                               reinterpret_cast<uint16_t*>(smem), last_arrival,
                                                               reinterpret_cast<float*>(smem), ctid, 256);
#endif
}

}  // namespace marlin::kit
