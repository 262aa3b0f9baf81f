// Resolution of one kernel instance for one device (host.h KernelRef): the template the generated translation units
// (tools/gen-kernel-instances.mjs, one per variant and activation dtype) instantiate for every kernel-table row, so
// that each variant's kernels are compiled in a unit of their own.
#pragma once
#include "gemm_kernel.cuh"
#include "gemm_ws_kernel.cuh"
#include "host.h"

namespace marlin::kit {

template <typename Codec, typename Problem, bool WG, int WS, int MT, int NT, int KS, int ST, bool Z>
marlin_status resolve_kernel(int dev, KernelRef* k) {
  int major = 0;
  if (const cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev); e != cudaSuccess)
    return record_cuda(e);
  if (WG && major < 9) return MARLIN_E_UNSUPPORTED;  // the hopper family exists only as sm_90a SASS
  static std::atomic<cudaFunction_t> fns[kMaxDevices];  // static storage: zero-initialised
  static std::atomic<int> capacity[kMaxDevices][kMaxClusterSplits + 1];
  k->device = dev;
  k->overlap_capable = major >= 9;
  auto resolve = [&](const void* kernel, unsigned block, unsigned smem, bool ws, bool x_map) {
    k->symbol = kernel;
    k->block = block;
    k->smem = smem;
    k->ws = ws;
    k->x_map = x_map;
    // The partial tile is staged from the (up to 1024-byte aligned) dynamic base (epilogue.cuh reduce_in_cluster).
    k->cluster_capable = major >= 9 && has_cluster_reduction(ws, MT) &&
                         ClusterTile<MT, NT>::kBytes + 1024 <= int(smem) && dev >= 0 && dev < kMaxDevices;
    if (const marlin_status s = resolve_function(kernel, int(smem), dev, fns, &k->fn); s != MARLIN_OK) return s;
    launch_capacity(k, dev >= 0 && dev < kMaxDevices ? capacity[dev] : nullptr);
    return MARLIN_OK;
  };
  if constexpr (WS) {
    return resolve(reinterpret_cast<const void*>(gemm_a16_ws<Codec, Problem, MT, NT, KS, ST, Z, WS>), kWsThreads,
                   WsTraits<Codec, MT, NT, KS, ST, WS>::kSmemBytes, true, true);
  } else {
    // The mma.sync family runs its sm_90a SASS on compute capability 9.x, compiled with the producer-warp pipeline
    // (gemm_kernel.cuh kernel_uses_producer): one more warp, the TMA stage layout, the activations' tensor map.
    using Tr = Traits<Codec, MT, NT, KS, ST>;
    const bool producer = !WG && major >= 9;
    return resolve(reinterpret_cast<const void*>(gemm_a16<Codec, Problem, MT, NT, KS, ST, Z, WG>),
                   producer ? kThreads + kProducerThreads : kThreads, producer ? Tr::kTmaSmemBytes : Tr::kSmemBytes,
                   false, producer);
  }
}

}  // namespace marlin::kit
