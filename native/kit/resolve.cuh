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
  const void* kernel = nullptr;
  if constexpr (WS) kernel = reinterpret_cast<const void*>(gemm_a16_ws<Codec, Problem, MT, NT, KS, ST, Z, WS>);
  else kernel = reinterpret_cast<const void*>(gemm_a16<Codec, Problem, MT, NT, KS, ST, Z, WG>);
  // Device code chooses its pipeline by __CUDA_ARCH__, the PTX target its image came from (compute_80 PTX JIT-compiled
  // on a newer GPU is the sm_80 code), so every choice below keys on the kernel's ptxVersion, never the device's.
  static std::atomic<int> archs[kMaxDevices];  // ptxVersion + 1 per device, 0 = not queried yet
  int arch = dev >= 0 && dev < kMaxDevices ? archs[dev].load(std::memory_order_relaxed) - 1 : -1;
  if (arch < 0) {
    cudaFuncAttributes attr{};
    if (const cudaError_t e = cudaFuncGetAttributes(&attr, kernel); e != cudaSuccess) return record_cuda(e);
    arch = attr.ptxVersion;
    if (dev >= 0 && dev < kMaxDevices) archs[dev].store(arch + 1, std::memory_order_relaxed);
  }
  if (WG && arch != 90) return MARLIN_E_UNSUPPORTED;  // the hopper family exists only as sm_90a SASS
  static std::atomic<cudaFunction_t> fns[kMaxDevices];  // static storage: zero-initialised
  static std::atomic<int> capacity[kMaxDevices][kMaxClusterSplits + 1];
  k->device = dev;
  k->overlap_capable = arch >= 90;  // griddepcontrol is compiled in from sm_90 on (ptx.cuh MARLIN_HAS_GRID_DEPENDENCY)
  auto resolve = [&](unsigned block, unsigned smem, bool ws, bool x_map) {
    k->symbol = kernel;
    k->block = block;
    k->smem = smem;
    k->ws = ws;
    k->x_map = x_map;
    // The partial tile is staged from the (up to 1024-byte aligned) dynamic base (epilogue.cuh reduce_in_cluster).
    k->cluster_capable = arch >= 90 && has_cluster_reduction(ws, MT) &&
                         ClusterTile<MT, NT>::kBytes + 1024 <= int(smem) && dev >= 0 && dev < kMaxDevices;
    if (const marlin_status s = resolve_function(kernel, int(smem), dev, fns, &k->fn); s != MARLIN_OK) return s;
    launch_capacity(k, dev >= 0 && dev < kMaxDevices ? capacity[dev] : nullptr);
    return MARLIN_OK;
  };
  if constexpr (WS) {
    return resolve(kWsThreads, WsTraits<Codec, MT, NT, KS, ST, WS>::kSmemBytes, true, true);
  } else {
    // The mma.sync family compiled for sm_90+ runs the producer-warp pipeline (gemm_kernel.cuh kernel_uses_producer):
    // one more warp, the TMA stage layout, the activations' tensor map.
    using Tr = Traits<Codec, MT, NT, KS, ST>;
    const bool producer = !WG && arch >= 90;
    return resolve(producer ? kThreads + kProducerThreads : kThreads, producer ? Tr::kTmaSmemBytes : Tr::kSmemBytes,
                   false, producer);
  }
}

}  // namespace marlin::kit
