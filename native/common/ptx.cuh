// Inline-PTX building blocks shared by every Marlin kernel: async copies, ldmatrix, mma.sync (dense, 2:4), lop3.
// Each wrapper says what it does, why this instruction, and the PTX ISA section it comes from.
// NOTE: no L2 cache-hint policies anywhere (createpolicy + cp.async ... L2::cache_hint is miscompiled by ptxas 13 on
// sm_90: illegal instruction at run time, IST-DASLab/marlin#44).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include <type_traits>

namespace marlin {

// 16-byte global -> shared copy that bypasses L1 (.cg): weights are read once, activations come from L2.
// `src_bytes` = 0 zero-fills the destination without touching global memory (used for rows >= M and columns >= K).
// PTX ISA 9.7.9.25.3.1 cp.async.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes = 16) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}

// Close the current group of cp.async operations (one group per pipeline stage). PTX ISA 9.7.9.25.3.2.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Wait until at most N groups are still in flight. PTX ISA 9.7.9.25.3.3.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 b16 matrices from shared memory in one instruction: lane l supplies the row address for matrix l/8,
// and receives in register i the pair (row l/4, columns 2(l%4), +1) of matrix i: exactly an mma B-operand fragment
// when the matrix rows are tokens and its columns are 8 consecutive k. PTX ISA 9.7.14.5.15 ldmatrix.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// D = A(16x16) * B(16x8) + D with fp32 accumulation. A = dequantized weights (rows = output features),
// B = activations (columns = tokens). PTX ISA 9.7.14.5.14 mma.m16n8k16.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma_16816<half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D = A(16x32, 2:4 sparse along k: 16x16 kept values, same register layout as mma.m16n8k16 A) * B(32x8) + D, fp32
// accumulation. `e` = the lane's metadata register, SEL = sparsity selector (an immediate: 0 = threads T0, T1 of each
// group of four supply the metadata, 1 = T2, T3). B: b[0], b[1] = the k16 B fragment of k 0..15, b[2], b[3] of k
// 16..31. ::ordered_metadata (PTX 8.5): the form PTX advises; the packer writes only the index pairs it defines.
// PTX ISA 9.7.14.6 mma.sp.
template <typename T, int SEL>
__device__ __forceinline__ void mma_sp_16832(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4], uint32_t e) {
  if constexpr (std::is_same_v<T, half>) {
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, %13;\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e), "n"(SEL));
  } else {
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, %13;\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e), "n"(SEL));
  }
}

// v, opaque to the optimiser: an empty asm that "modifies" it, so ptxas keeps the value in a register from here on
// instead of recomputing it from its inputs (loop-invariant lane offsets; see StageView::run_lane).
__device__ __forceinline__ uint32_t opaque(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}

// (a & b) | c in one instruction (LUT 0xEA). Forced through PTX because the compiler does not always fuse the
// AND/OR pair of the dequant into one lop3. PTX ISA 9.7.8.7 lop3.
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

// Programmatic dependent launch (sm_90+; no-ops below, and when the kernel was launched without the launch attribute).
// A kernel launched with programmatic stream serialisation may start while the previous kernel of its stream is still
// running. grid_dependency_wait() blocks the calling thread until every prerequisite grid has completed and its
// memory operations are visible; each thread calls it before its first access to memory an earlier kernel may write
// or read (activations, output, bias, workspace). Weights, scales and zero points are read before it: they are the
// layer's constants (docs/kernel-design.md "Overlapping consecutive launches"). PTX ISA griddepcontrol.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MARLIN_HAS_GRID_DEPENDENCY 1
#endif

__device__ __forceinline__ void grid_dependency_wait() {
#ifdef MARLIN_HAS_GRID_DEPENDENCY
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Lets the next kernel of the stream (if launched with programmatic stream serialisation) be scheduled once every
// block of this grid has issued this or exited: its blocks then take free SM slots and start their constant loads.
__device__ __forceinline__ void grid_dependents_launch() {
#ifdef MARLIN_HAS_GRID_DEPENDENCY
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

}  // namespace marlin
