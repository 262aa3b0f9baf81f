// The activation dtype T (half or __nv_bfloat16) as the kernels move it: 16-bit patterns in memory, fp32 in the
// accumulators, 32-bit pairs in the tensor-core fragments. Shared by the weight codecs, the stage reads and the
// epilogue.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include <type_traits>

namespace marlin {

// T bits -> fp32 (exact); fp32 -> T bits rounded to nearest even (the one rounding of the output).
template <typename T>
__device__ __forceinline__ float to_float(uint16_t bits) {
  if constexpr (std::is_same_v<T, half>) return __half2float(__ushort_as_half(bits));
  else return __bfloat162float(__ushort_as_bfloat16(bits));
}
template <typename T>
__device__ __forceinline__ uint16_t to_bits(float v) {
  if constexpr (std::is_same_v<T, half>) return __half_as_ushort(__float2half_rn(v));
  else return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// The pair type of T (__half2 / __nv_bfloat162) <-> the 32-bit register an mma fragment holds.
template <typename T>
using pair_t = std::conditional_t<std::is_same_v<T, half>, __half2, __nv_bfloat162>;
template <typename T2>
__device__ __forceinline__ uint32_t bits_of(const T2& v) { return *reinterpret_cast<const uint32_t*>(&v); }
template <typename T2>
__device__ __forceinline__ T2 pair_of(uint32_t bits) { return *reinterpret_cast<const T2*>(&bits); }

}  // namespace marlin
