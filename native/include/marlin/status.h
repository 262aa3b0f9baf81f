// Status codes shared by every Marlin C entry point. Stable numbers: the TypeScript layer maps them to error codes.
#pragma once
#ifdef __cplusplus
extern "C" {
#endif

typedef enum marlin_status {
  MARLIN_OK = 0,
  MARLIN_E_INVALID_ARGUMENT = 1,   // a shape, pointer, stride or enum the kernel cannot take
  MARLIN_E_UNSUPPORTED = 2,        // valid input, but no compiled kernel covers it (config id, arch)
  MARLIN_E_WORKSPACE = 3,          // workspace missing or smaller than marlin_dense_workspace_bytes()
  MARLIN_E_MISALIGNED = 4,         // a pointer or leading dimension is not 16-byte aligned
  MARLIN_E_CUDA = 5,               // a CUDA runtime call failed; marlin_last_cuda_error() says which
  MARLIN_E_NO_KERNEL_IMAGE = 6     // this binary has no SASS for the device's architecture
} marlin_status;

const char* marlin_status_string(marlin_status s);
// The CUDA error (cudaError_t as int) behind the last MARLIN_E_CUDA on this thread, and its name.
int marlin_last_cuda_error(void);
const char* marlin_last_cuda_error_string(void);

#ifdef __cplusplus
}
#endif
