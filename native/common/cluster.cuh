// Thread-block clusters (sm_90): the blocks of a cluster run at the same time on one GPC and can read each other's
// shared memory (distributed shared memory). The dense kernels use them for the split-K reduction of small layers
// (epilogue.cuh "Split-K across a cluster"): the splits of one output tile are one cluster.
#pragma once
#include <stdint.h>

namespace marlin {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MARLIN_HAS_CLUSTER 1

// Blocks in this block's cluster (1 when launched without a cluster dimension). PTX ISA 10.23 %cluster_nctarank.
__device__ __forceinline__ uint32_t cluster_size() {
  uint32_t n;
  asm volatile("mov.u32 %0, %%cluster_nctarank;\n" : "=r"(n));
  return n;
}

// The address of the same shared-memory location in block `rank` of the cluster (shared::cluster window), from an
// address of this block's shared::cta window. PTX ISA 9.7.9.24 mapa.
__device__ __forceinline__ uint32_t cluster_map(uint32_t smem, uint32_t rank) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(smem), "r"(rank));
  return r;
}

// 16 bytes from any block's shared memory in the cluster (address from cluster_map). PTX ISA 9.7.9.8 ld.
__device__ __forceinline__ float4 cluster_load_f4(uint32_t addr) {
  float4 v;
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

// Every thread of every block of the cluster arrives, then waits for all: shared-memory writes before it (release)
// are visible to every block's reads after it (acquire). Every non-exited thread of the cluster must call it.
// PTX ISA 9.7.13.4 barrier.cluster.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
#endif

}  // namespace marlin
