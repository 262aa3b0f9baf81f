// Internal to native/: turn a cudaError_t into a marlin_status and remember it for marlin_last_cuda_error().
// Kernels and the runtime use MARLIN_CUDA_TRY so every CUDA failure reaches JS with its name.
#pragma once
#include <cuda_runtime_api.h>
#include "marlin/status.h"

#ifdef __cplusplus
extern "C" {
#endif
// Records err as this thread's last CUDA error. Returns MARLIN_OK for cudaSuccess, MARLIN_E_NO_KERNEL_IMAGE for
// cudaErrorNoKernelImageForDevice, MARLIN_E_CUDA otherwise.
marlin_status marlin_record_cuda_error(int err);
#ifdef __cplusplus
}
#endif

#define MARLIN_CUDA_TRY(expr)                                   \
  do {                                                          \
    const cudaError_t marlin_err_ = (expr);                     \
    if (marlin_err_ != cudaSuccess) {                           \
      return marlin_record_cuda_error(static_cast<int>(marlin_err_)); \
    }                                                           \
  } while (0)
