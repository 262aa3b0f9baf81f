// marlin_status strings and the thread-local "last CUDA error" behind MARLIN_E_CUDA (native/include/marlin/status.h).
#include "cuda_status.h"

namespace {
// NOTE: thread-local, so an error raised on a libuv worker thread does not clobber the JS thread's (and vice versa).
thread_local int t_last_cuda_error = 0;
}  // namespace

extern "C" marlin_status marlin_record_cuda_error(int err) {
  if (err == 0) return MARLIN_OK;
  t_last_cuda_error = err;
  return err == static_cast<int>(cudaErrorNoKernelImageForDevice) ? MARLIN_E_NO_KERNEL_IMAGE : MARLIN_E_CUDA;
}

extern "C" int marlin_last_cuda_error(void) { return t_last_cuda_error; }

extern "C" const char* marlin_last_cuda_error_string(void) {
  if (t_last_cuda_error == 0) return "no CUDA error";
  return cudaGetErrorName(static_cast<cudaError_t>(t_last_cuda_error));
}

extern "C" const char* marlin_status_string(marlin_status s) {
  switch (s) {
    case MARLIN_OK: return "ok";
    case MARLIN_E_INVALID_ARGUMENT: return "invalid argument (shape, pointer, stride or enum the kernel cannot take)";
    case MARLIN_E_UNSUPPORTED: return "unsupported (no compiled kernel covers this input)";
    case MARLIN_E_WORKSPACE: return "workspace missing or too small";
    case MARLIN_E_MISALIGNED: return "pointer or leading dimension not 16-byte aligned";
    case MARLIN_E_CUDA: return "CUDA runtime call failed";
    case MARLIN_E_NO_KERNEL_IMAGE: return "no kernel image (SASS) for this GPU architecture in this binary";
  }
  return "unknown marlin_status";
}
