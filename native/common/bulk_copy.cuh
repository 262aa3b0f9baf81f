// Hopper (sm_90) bulk copies completing on an mbarrier: one thread moves a contiguous range global -> shared and the
// consumers wait on the barrier's phase. Used for the weight stream, whose per-stage bytes are contiguous in the
// packed format (tiles of one 64-column block are stored along K), so a stage costs one instruction per column tile
// instead of one 16-byte cp.async per thread per chunk.
// NOTE: no .L2::cache_hint operand (ptxas 13 miscompiles cache-hint policies on sm_90).
#pragma once
#include <stdint.h>

namespace marlin {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MARLIN_HAS_BULK_COPY 1

// Initialise a barrier that completes a phase after `count` arrivals (plus its expected transaction bytes).
// PTX ISA 9.7.13.15.11 mbarrier.init.
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count));
}

// Arrive once and add `bytes` to the transaction count the current phase waits for. PTX ISA 9.7.13.15.12/13.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(a), "r"(bytes) : "memory");
}

// Shared-window address of a barrier, for loops that wait on / arrive at barriers by address: computed once, it
// spares the generic -> shared conversion (a CTA-id read and address arithmetic in SASS) at every use.
__device__ __forceinline__ uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// Spin until the phase with the given parity has completed. PTX ISA 9.7.13.15.16 mbarrier.try_wait.parity.
__device__ __forceinline__ void mbar_wait(uint32_t a, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n"
      "}\n" ::"r"(a),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) { mbar_wait(smem_addr(bar), parity); }

// Copy `bytes` (multiple of 16, both addresses 16-byte aligned) global -> shared; completion is reported to `bar` as
// transaction bytes. PTX ISA 9.7.9.25.4.1 cp.async.bulk.
__device__ __forceinline__ void bulk_copy_g2s(void* smem, const void* gmem, uint32_t bytes, uint64_t* bar) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(bar));
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(s),
               "l"(gmem), "r"(bytes), "r"(b)
               : "memory");
}

// Arrive once (no transaction bytes): a consumer warp releasing a pipeline slot. PTX ISA 9.7.13.15.13.
__device__ __forceinline__ void mbar_arrive(uint32_t a) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) { mbar_arrive(smem_addr(bar)); }

// Make freshly initialised barriers visible to the async proxy (TMA) before any copy completes on them.
// PTX ISA 9.7.13.4.15 (fence.mbarrier_init).
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// 2D tiled tensor copy global -> shared through a tensor map (built on the host by cuTensorMapEncodeTiled and passed
// as a __grid_constant__ kernel parameter): box at element coordinates (c0 = innermost, c1); out-of-range elements are
// zero-filled and still counted in the transaction bytes. PTX ISA 9.7.9.27.1.2 cp.async.bulk.tensor.
__device__ __forceinline__ void tma_load_2d(void* smem, const void* tensor_map, int c0, int c1, uint64_t* bar) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(bar));
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(s),
      "l"(tensor_map), "r"(c0), "r"(c1), "r"(b)
      : "memory");
}

// 3D tiled tensor copy, as tma_load_2d with a third coordinate c2 (outermost).
__device__ __forceinline__ void tma_load_3d(void* smem, const void* tensor_map, int c0, int c1, int c2, uint64_t* bar) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t b = static_cast<uint32_t>(__cvta_generic_to_shared(bar));
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(s),
      "l"(tensor_map), "r"(c0), "r"(c1), "r"(c2), "r"(b)
      : "memory");
}
#endif

}  // namespace marlin
