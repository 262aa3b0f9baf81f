// Error recording, sample statistics and small device queries shared by the harness.
#include <algorithm>
#include <cstdio>
#include <string>

#include "bench_internal.cuh"

namespace marlin::bench {
namespace {
thread_local std::string g_last_error;
thread_local int32_t g_last_cuda_error = 0;
}  // namespace

marlin_status fail(marlin_status status, const std::string& what) {
  g_last_error = what;
  g_last_cuda_error = 0;
  return status;
}

const char* status_name(marlin_status s) {
  switch (s) {
    case MARLIN_OK: return "MARLIN_OK";
    case MARLIN_E_INVALID_ARGUMENT: return "MARLIN_E_INVALID_ARGUMENT";
    case MARLIN_E_UNSUPPORTED: return "MARLIN_E_UNSUPPORTED";
    case MARLIN_E_WORKSPACE: return "MARLIN_E_WORKSPACE";
    case MARLIN_E_MISALIGNED: return "MARLIN_E_MISALIGNED";
    case MARLIN_E_CUDA: return "MARLIN_E_CUDA";
    case MARLIN_E_NO_KERNEL_IMAGE: return "MARLIN_E_NO_KERNEL_IMAGE";
  }
  return "MARLIN_E_?";
}

marlin_status fail_addon_call(const std::string& prefix, const std::string& call, marlin_status st,
                              const char* (*cuda_error)(void)) {
  std::string msg = prefix + call + " failed: " + status_name(st);
  if (st == MARLIN_E_CUDA && cuda_error != nullptr) msg += std::string("; CUDA: ") + cuda_error();
  return fail(st, msg);
}

marlin_status fail_cuda(cudaError_t err, const char* call, const char* file, int line) {
  // Clear the sticky per-thread runtime error so the next probe does not see it again.
  cudaGetLastError();
  const char* base = file;
  for (const char* p = file; *p != '\0'; ++p) {
    if (*p == '/') base = p + 1;
  }
  char buf[768];
  std::snprintf(buf, sizeof buf, "%s (%s) in %s at %s:%d", cudaGetErrorName(err), cudaGetErrorString(err), call, base,
                line);
  g_last_error = buf;
  g_last_cuda_error = static_cast<int32_t>(err);
  return MARLIN_E_CUDA;
}

void clear_error() {
  g_last_error.clear();
  g_last_cuda_error = 0;
}

Summary summarize(double* values, int count) {
  std::sort(values, values + count);
  const double median =
      (count % 2 == 1) ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
  return Summary{median, values[0], values[count - 1]};
}

marlin_status l2_bytes(int64_t* out) {
  int dev = 0;
  int l2 = 0;
  MB_CUDA(cudaGetDevice(&dev));
  MB_CUDA(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  *out = l2;
  return MARLIN_OK;
}

}  // namespace marlin::bench

extern "C" const char* marlin_bench_last_error(void) { return marlin::bench::g_last_error.c_str(); }

extern "C" int32_t marlin_bench_last_cuda_error(void) { return marlin::bench::g_last_cuda_error; }
