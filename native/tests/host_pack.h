// Host helpers of the Node-free native tests (dense_selftest.cu, moe_selftest.cu): CUDA error checks, 16-bit
// conversions, and the packers of docs/format.md written again from the document, independently of the TypeScript
// packer, so that a test of the kernels is also a test of the format's description.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "marlin/gemm.h"

#define CHECK_CUDA(x)                                                                        \
  do {                                                                                       \
    cudaError_t e_ = (x);                                                                    \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                          \
    }                                                                                        \
  } while (0)

namespace marlin_test {

inline float bits_to_float(uint16_t b, marlin_dtype dt) {
  if (dt == MARLIN_FP16) return __half2float(__ushort_as_half(b));
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bits(float f, marlin_dtype dt) {
  if (dt == MARLIN_FP16) return __half_as_ushort(__float2half_rn(f));
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

// OCP E4M3FN byte -> value (bias 7, subnormals below exponent 1; the NaN codes 0x7F / 0xFF are never generated).
inline double e4m3_value(uint8_t b) {
  const int e = (b >> 3) & 15, mant = b & 7;
  const double v = e == 0 ? std::ldexp(mant / 8.0, -6) : std::ldexp(1.0 + mant / 8.0, e - 7);
  return (b & 0x80) ? -v : v;
}

// docs/format.md "INT8" (FP8 e4m3 uses the same bytes): 32-row format tiles of 2048 bytes, tile (nb, kb) at
// nb * (Kp/32) + kb; lane l of warp slot w holds words (w*32+l)*4 + 2j (+1) for k step j; byte b of word 2j ->
// (n = 16w + g + 8(b>>1), k = 16j + 2t + (b&1)), of word 2j+1 the same at k + 8.
inline std::vector<uint32_t> pack_8bit(const std::vector<uint8_t>& q, int k, int n, int kp, int np, int pad_code) {
  std::vector<uint32_t> out(size_t(kp / 32) * (np / 64) * 512, 0);
  for (int nb = 0; nb < np / 64; ++nb)
    for (int kb = 0; kb < kp / 32; ++kb)
      for (int w = 0; w < 4; ++w)
        for (int l = 0; l < 32; ++l)
          for (int j = 0; j < 2; ++j)
            for (int half = 0; half < 2; ++half) {
              uint32_t word = 0;
              const int g = l >> 2, t = l & 3;
              for (int b = 0; b < 4; ++b) {
                const int nn = nb * 64 + 16 * w + g + 8 * (b >> 1);
                const int kk = kb * 32 + 16 * j + 2 * t + (b & 1) + 8 * half;
                const uint32_t code = (nn < n && kk < k) ? q[size_t(kk) * n + nn] : uint32_t(pad_code);
                word |= (code & 255u) << (8 * b);
              }
              out[(size_t(nb) * (kp / 32) + kb) * 512 + (w * 32 + l) * 4 + 2 * j + half] = word;
            }
  return out;
}

// docs/format.md: tile (nb, kb) at nb*(Kp/64)+kb; word (w*32+l)*4+j; nibble p -> (n = 16w + g + 8(p&1),
// k = 16j + 2t + ((p>>2)&1) + 8((p>>1)&1)).
inline std::vector<uint32_t> pack_int4(const std::vector<uint8_t>& q, int k, int n, int kp, int np, int zero_code) {
  std::vector<uint32_t> out(size_t(kp / 64) * (np / 64) * 512, 0);
  for (int nb = 0; nb < np / 64; ++nb)
    for (int kb = 0; kb < kp / 64; ++kb)
      for (int w = 0; w < 4; ++w)
        for (int l = 0; l < 32; ++l)
          for (int j = 0; j < 4; ++j) {
            uint32_t word = 0;
            const int g = l >> 2, t = l & 3;
            for (int p = 0; p < 8; ++p) {
              const int nn = nb * 64 + 16 * w + g + 8 * (p & 1);
              const int kk = kb * 64 + 16 * j + 2 * t + ((p >> 2) & 1) + 8 * ((p >> 1) & 1);
              const uint32_t code = (nn < n && kk < k) ? q[size_t(kk) * n + nn] : uint32_t(zero_code);
              word |= (code & 15u) << (4 * p);
            }
            out[(size_t(nb) * (kp / 64) + kb) * 512 + (w * 32 + l) * 4 + j] = word;
          }
  return out;
}

}  // namespace marlin_test
