// The small device runtime compiled into every @marlin addon: devices, buffers, streams, events.
// Every addon links its own static CUDA runtime, but all of them bind to the same per-process primary context, so a
// pointer or stream made by one addon is valid in another (same process, same device).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

// ABI version of marlin_buffer_header; bump on any layout change. Addons refuse buffers with another version.
#define MARLIN_BUFFER_ABI 1

typedef struct marlin_device_info {
  int32_t ordinal;
  char name[256];
  int32_t major, minor;           // compute capability
  int32_t sm_count;
  int64_t total_mem, free_mem;
  int32_t max_smem_per_block_optin;
  int32_t l2_bytes;
  int32_t clock_khz, mem_clock_khz, mem_bus_bits;
} marlin_device_info;

typedef struct marlin_probe_result {
  int32_t driver_loaded;          // libcuda.so.1 could be opened
  int32_t driver_version;         // cuDriverGetVersion, e.g. 13000; 0 when unknown
  int32_t runtime_version;        // CUDA runtime linked into this addon
  int32_t device_count;
  int32_t cuda_error;             // first cudaError_t met while probing, 0 if none
  char cuda_error_name[64];
} marlin_probe_result;

// Never fails hard: fills what it could find (no driver, old driver, no device...).
void marlin_probe(marlin_probe_result* out);
marlin_status marlin_device_info_get(int32_t ordinal, marlin_device_info* out);
// Whether this binary carries code for the device (cudaFuncGetAttributes on a kernel of this addon): 0 = none, else the
// PTX target of the image it runs (ptxVersion, e.g. 90 for sm_90a SASS, 80 for sm_80 SASS or JIT-compiled compute_80).
marlin_status marlin_has_kernel_image(int32_t ordinal, int32_t* out);

marlin_status marlin_set_device(int32_t ordinal);
marlin_status marlin_malloc(void** ptr, size_t bytes);
marlin_status marlin_free(void* ptr);
marlin_status marlin_memset_async(void* ptr, int value, size_t bytes, void* stream);
marlin_status marlin_memcpy_h2d(void* dst, const void* src, size_t bytes, void* stream);  // blocking when stream == NULL
marlin_status marlin_memcpy_d2h(void* dst, const void* src, size_t bytes, void* stream);
marlin_status marlin_memcpy_d2d(void* dst, const void* src, size_t bytes, void* stream);
marlin_status marlin_mem_get_info(size_t* free_bytes, size_t* total_bytes);

marlin_status marlin_stream_create(void** stream);
marlin_status marlin_stream_destroy(void* stream);
marlin_status marlin_stream_synchronize(void* stream);
marlin_status marlin_device_synchronize(void);

#ifdef __cplusplus
}
#endif
