// Seeded random fills for benchmark problems. The protocol forbids zeros (they run faster than real data and hide
// unwritten outputs), so every generator here produces full-entropy bytes or non-zero values.
//
// Each element is a pure function of (seed, index): splitmix64 of seed + index * golden-ratio constant. Results do
// not depend on the launch shape, so a fill is reproducible across GPUs and grid sizes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>

#include "bench_internal.cuh"

namespace marlin::bench {
namespace {

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ uint64_t hash_at(uint64_t seed, uint64_t index) {
  return splitmix64(seed ^ (index * 0x9E3779B97F4A7C15ull));
}

// 8 random bytes per 64-bit word; the tail (bytes % 8) is written byte by byte from the hash of its word index.
__global__ void fill_bytes_kernel(uint8_t* __restrict__ p, size_t bytes, uint64_t seed) {
  const size_t words = bytes / 8;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words; i += stride) {
    reinterpret_cast<uint64_t*>(p)[i] = hash_at(seed, i);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    const uint64_t h = hash_at(seed, words);
    for (size_t b = words * 8; b < bytes; ++b) {
      p[b] = static_cast<uint8_t>(h >> (8 * (b - words * 8)));
    }
  }
}

__global__ void fill_u8_below_kernel(uint8_t* __restrict__ p, size_t count, uint32_t bound, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    // High 32 bits times bound: unbiased enough for a benchmark, and never a modulo of low bits.
    p[i] = static_cast<uint8_t>(((hash_at(seed, i) >> 32) * bound) >> 32);
  }
}

// e4m3fn has 254 non-NaN codes: 0x00-0x7E and 0x80-0xFE. r in [0, 254) maps onto them in order (r >= 127 skips
// 0x7F), so every code is equally likely and no NaN is ever written.
__global__ void fill_e4m3_kernel(uint8_t* __restrict__ p, size_t count, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const uint32_t r = static_cast<uint32_t>(((hash_at(seed, i) >> 32) * 254u) >> 32);
    p[i] = static_cast<uint8_t>(r < 127u ? r : r + 1u);
  }
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T>
__global__ void fill_halves_kernel(T* __restrict__ p, size_t count, float lo, float hi, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const T fallback = from_float<T>(hi != 0.0f ? hi : lo);
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    // 24 random bits -> [0, 1) exactly representable in fp32.
    const float u = static_cast<float>(hash_at(seed, i) >> 40) * (1.0f / 16777216.0f);
    T v = from_float<T>(lo + u * (hi - lo));
    // NOTE: +0 and -0 both compare equal to 0; replacing them keeps the "never zeros" rule exact.
    if (static_cast<float>(v) == 0.0f) v = fallback;
    p[i] = v;
  }
}

// The six valid 2:4 metadata nibbles idx0 | idx1 << 2 (docs/format.md "2:4 sparse (packed)"), and the kept
// positions of each as two bits.
__constant__ uint8_t kSparse24Nibbles[6] = {0x4, 0x8, 0x9, 0xC, 0xD, 0xE};

// A uniform choice of one of the six pairs from 8 random bits.
__device__ __forceinline__ uint32_t pair_of(uint64_t bits8) { return static_cast<uint32_t>(((bits8 & 0xFF) * 6) >> 8); }

// 384 words per tile: 256 words of kept codes (random), then 128 metadata words of 8 valid nibbles each.
__global__ void fill_sparse24_kernel(uint32_t* __restrict__ p, size_t words, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words; i += stride) {
    const uint64_t h = hash_at(seed, i);
    uint32_t word = static_cast<uint32_t>(h);
    if (i % 384 >= 256) {
      word = 0;
      for (int c = 0; c < 8; ++c) word |= static_cast<uint32_t>(kSparse24Nibbles[pair_of(h >> (8 * c))]) << (4 * c);
    }
    p[i] = word;
  }
}

// One thread per group of 4: the pair's two positions get non-zero values in [lo, hi), the others 0.
template <typename T>
__global__ void fill_halves_24_kernel(T* __restrict__ p, size_t groups, float lo, float hi, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const T fallback = from_float<T>(hi != 0.0f ? hi : lo);
  const T zero = from_float<T>(0.0f);
  for (size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const uint64_t h = hash_at(seed, g);
    const uint32_t nibble = kSparse24Nibbles[pair_of(h)];
    const uint32_t idx0 = nibble & 3u;
    const uint32_t idx1 = nibble >> 2;
    for (uint32_t j = 0; j < 4; ++j) {
      T v = zero;
      if (j == idx0 || j == idx1) {
        // 24 random bits per kept value (bits 8-31 or 32-55 of the group's hash).
        const uint32_t r = static_cast<uint32_t>(h >> (j == idx0 ? 8 : 32)) & 0xFFFFFFu;
        v = from_float<T>(lo + static_cast<float>(r) * (1.0f / 16777216.0f) * (hi - lo));
        if (static_cast<float>(v) == 0.0f) v = fallback;
      }
      p[g * 4 + j] = v;
    }
  }
}

// Grid sized to the work with a cap: grid-stride loops handle the rest.
unsigned grid_for(size_t items) {
  const size_t blocks = (items + 255) / 256;
  return static_cast<unsigned>(blocks == 0 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

}  // namespace
}  // namespace marlin::bench

using namespace marlin::bench;

extern "C" marlin_status marlin_bench_fill_bytes(void* ptr, size_t bytes, uint64_t seed, void* stream) {
  if (ptr == nullptr && bytes != 0) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_bytes: null pointer");
  if (bytes == 0) return MARLIN_OK;
  fill_bytes_kernel<<<grid_for(bytes / 8 + 1), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<uint8_t*>(ptr), bytes, seed);
  MB_CUDA(cudaGetLastError());
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_fill_u8_below(uint8_t* ptr, size_t count, int32_t bound, uint64_t seed,
                                                    void* stream) {
  if (bound < 1 || bound > 256) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_u8_below: bound must be in 1..256, got " +
                                               std::to_string(bound));
  }
  if (ptr == nullptr && count != 0) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_u8_below: null pointer");
  if (count == 0) return MARLIN_OK;
  fill_u8_below_kernel<<<grid_for(count), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      ptr, count, static_cast<uint32_t>(bound), seed);
  MB_CUDA(cudaGetLastError());
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_fill_e4m3(void* ptr, size_t bytes, uint64_t seed, void* stream) {
  if (ptr == nullptr && bytes != 0) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_e4m3: null pointer");
  if (bytes == 0) return MARLIN_OK;
  fill_e4m3_kernel<<<grid_for(bytes), 256, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<uint8_t*>(ptr), bytes,
                                                                                   seed);
  MB_CUDA(cudaGetLastError());
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_fill_halves(void* ptr, size_t count, marlin_dtype dtype, float lo, float hi,
                                                  uint64_t seed, void* stream) {
  if (!(lo < hi) || (lo == 0.0f && hi == 0.0f)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "marlin_bench_fill_halves: need lo < hi and not both zero, got [%g, %g)",
                  static_cast<double>(lo), static_cast<double>(hi));
    return fail(MARLIN_E_INVALID_ARGUMENT, buf);
  }
  if (ptr == nullptr && count != 0) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_halves: null pointer");
  if (count == 0) return MARLIN_OK;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case MARLIN_FP16:
      fill_halves_kernel<__half><<<grid_for(count), 256, 0, s>>>(static_cast<__half*>(ptr), count, lo, hi, seed);
      break;
    case MARLIN_BF16:
      fill_halves_kernel<__nv_bfloat16>
          <<<grid_for(count), 256, 0, s>>>(static_cast<__nv_bfloat16*>(ptr), count, lo, hi, seed);
      break;
    default:
      return fail(MARLIN_E_INVALID_ARGUMENT,
                  "marlin_bench_fill_halves: unknown dtype " + std::to_string(static_cast<int>(dtype)));
  }
  MB_CUDA(cudaGetLastError());
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_fill_sparse24(void* tiles, size_t tile_count, uint64_t seed, void* stream) {
  if (tiles == nullptr && tile_count != 0) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_sparse24: null pointer");
  }
  if (tile_count == 0) return MARLIN_OK;
  const size_t words = tile_count * 384;
  fill_sparse24_kernel<<<grid_for(words), 256, 0, static_cast<cudaStream_t>(stream)>>>(static_cast<uint32_t*>(tiles),
                                                                                       words, seed);
  MB_CUDA(cudaGetLastError());
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_fill_halves_24(void* ptr, size_t count, marlin_dtype dtype, float lo, float hi,
                                                     uint64_t seed, void* stream) {
  if (!(lo < hi) || (lo == 0.0f && hi == 0.0f) || count % 4 != 0) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "marlin_bench_fill_halves_24: need lo < hi, not both zero and a multiple of 4 elements, got [%g, %g) "
                  "and %zu",
                  static_cast<double>(lo), static_cast<double>(hi), count);
    return fail(MARLIN_E_INVALID_ARGUMENT, buf);
  }
  if (ptr == nullptr && count != 0) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fill_halves_24: null pointer");
  if (count == 0) return MARLIN_OK;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const size_t groups = count / 4;
  switch (dtype) {
    case MARLIN_FP16:
      fill_halves_24_kernel<__half><<<grid_for(groups), 256, 0, s>>>(static_cast<__half*>(ptr), groups, lo, hi, seed);
      break;
    case MARLIN_BF16:
      fill_halves_24_kernel<__nv_bfloat16>
          <<<grid_for(groups), 256, 0, s>>>(static_cast<__nv_bfloat16*>(ptr), groups, lo, hi, seed);
      break;
    default:
      return fail(MARLIN_E_INVALID_ARGUMENT,
                  "marlin_bench_fill_halves_24: unknown dtype " + std::to_string(static_cast<int>(dtype)));
  }
  MB_CUDA(cudaGetLastError());
  return MARLIN_OK;
}
