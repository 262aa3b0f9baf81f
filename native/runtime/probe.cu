// marlin_probe / marlin_device_info_get / marlin_has_kernel_image (native/include/marlin/runtime.h).
// Probing never fails hard: with a static cudart the addon loads without a driver, and cudart's own message for a
// missing driver ("driver version is insufficient") is misleading, so we look for libcuda.so.1 ourselves first.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "cuda_status.h"
#include "marlin/runtime.h"

namespace {

// The smallest kernel this addon can carry: compiled with the same -gencode list as every kernel of the addon, so
// "is there SASS for this device" has the same answer for it as for the GEMM kernels.
__global__ void marlin_kernel_image_probe(int* out) {
  if (out != nullptr) *out = 1;
}

typedef int (*cu_driver_get_version_fn)(int*);

void set_error(marlin_probe_result* out, cudaError_t err) {
  if (out->cuda_error != 0) return;  // keep the first error met
  out->cuda_error = static_cast<int32_t>(err);
  snprintf(out->cuda_error_name, sizeof(out->cuda_error_name), "%s", cudaGetErrorName(err));
}

}  // namespace

extern "C" void marlin_probe(marlin_probe_result* out) {
  memset(out, 0, sizeof(*out));
  int runtime_version = 0;
  if (cudaRuntimeGetVersion(&runtime_version) == cudaSuccess) out->runtime_version = runtime_version;

  // 1. Is there a driver at all? RTLD_NOLOAD first: if cudart already loaded it we reuse that handle.
  void* libcuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (libcuda == nullptr) libcuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (libcuda == nullptr) return;  // driver_loaded = 0: no NVIDIA driver on this machine
  out->driver_loaded = 1;

  // 2. Driver version through the driver API itself (needs no cuInit and no device).
  auto get_version = reinterpret_cast<cu_driver_get_version_fn>(dlsym(libcuda, "cuDriverGetVersion"));
  int driver_version = 0;
  if (get_version != nullptr && get_version(&driver_version) == 0) out->driver_version = driver_version;
  // NOTE: the handle is deliberately not dlclose'd: cudart keeps libcuda loaded for the process anyway.

  // 3. Devices. A too-old driver answers cudaErrorInsufficientDriver here, which the caller reports as DRIVER_TOO_OLD.
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    set_error(out, err);
    cudaGetLastError();  // clear the (non-sticky) error so later calls start clean
    return;
  }
  out->device_count = count;
}

extern "C" marlin_status marlin_device_info_get(int32_t ordinal, marlin_device_info* out) {
  memset(out, 0, sizeof(*out));
  out->ordinal = ordinal;
  cudaDeviceProp prop;
  MARLIN_CUDA_TRY(cudaGetDeviceProperties(&prop, ordinal));
  snprintf(out->name, sizeof(out->name), "%s", prop.name);
  out->total_mem = static_cast<int64_t>(prop.totalGlobalMem);

  struct {
    cudaDeviceAttr attr;
    int32_t* dst;
  } const attrs[] = {
      {cudaDevAttrComputeCapabilityMajor, &out->major},
      {cudaDevAttrComputeCapabilityMinor, &out->minor},
      {cudaDevAttrMultiProcessorCount, &out->sm_count},
      {cudaDevAttrMaxSharedMemoryPerBlockOptin, &out->max_smem_per_block_optin},
      {cudaDevAttrL2CacheSize, &out->l2_bytes},
      {cudaDevAttrClockRate, &out->clock_khz},
      {cudaDevAttrMemoryClockRate, &out->mem_clock_khz},
      {cudaDevAttrGlobalMemoryBusWidth, &out->mem_bus_bits},
  };
  for (const auto& a : attrs) {
    int v = 0;
    MARLIN_CUDA_TRY(cudaDeviceGetAttribute(&v, a.attr, ordinal));
    *a.dst = v;
  }

  // Free memory is per device: switch, ask, and switch back so the caller's current device is unchanged.
  int current = 0;
  MARLIN_CUDA_TRY(cudaGetDevice(&current));
  MARLIN_CUDA_TRY(cudaSetDevice(ordinal));
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t err = cudaMemGetInfo(&free_bytes, &total_bytes);
  cudaSetDevice(current);
  MARLIN_CUDA_TRY(err);
  out->free_mem = static_cast<int64_t>(free_bytes);
  return MARLIN_OK;
}

extern "C" marlin_status marlin_has_kernel_image(int32_t ordinal, int32_t* out) {
  *out = 0;
  int current = 0;
  MARLIN_CUDA_TRY(cudaGetDevice(&current));
  MARLIN_CUDA_TRY(cudaSetDevice(ordinal));
  cudaFuncAttributes attr;
  const cudaError_t err = cudaFuncGetAttributes(&attr, marlin_kernel_image_probe);
  cudaSetDevice(current);
  if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction) {
    cudaGetLastError();  // not sticky; clear it so the next call does not see it
    return MARLIN_OK;     // *out = 0: this binary lacks SASS for the device
  }
  MARLIN_CUDA_TRY(err);
  // The PTX target of the image the device runs (every kernel of the addon has the same -gencode list): what the
  // kernels' __CUDA_ARCH__ was, so callers can size and choose launches as the device code will run them.
  *out = attr.ptxVersion > 0 ? attr.ptxVersion : 1;
  return MARLIN_OK;
}
