// cuBLAS loaded at run time with dlopen/dlsym, so the addon has no link-time dependency on libcublas and still loads
// (and runs every non-cuBLAS benchmark) on machines without it. Only the handful of entry points the baseline needs
// are declared, with the ABI of cublas_api.h (CUDA 12/13): the toolkit here ships no cuBLAS headers.
#pragma once
#include <cuda_runtime.h>
#include <library_types.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "bench_internal.cuh"

namespace marlin::bench {

// ---- run-time loading (cuBLAS here, cuBLASLt in cublaslt_fp8.cu) ----

// An entry point to resolve with dlsym and the function pointer it fills.
struct DlSymbol {
  const char* name;
  void** slot;
};

// Which library dlopen_first loaded, or why none did.
struct DlLibrary {
  bool ok = false;
  std::string soname;  // the soname that loaded
  std::string error;   // when !ok: "<what> not found (<each soname's dlopen / dlsym failure>). <install>"
};

// Tries each soname in order (RTLD_NOW | RTLD_LOCAL); the first library with every symbol wins and stays loaded for
// the process, its slots filled. A library lacking a symbol is closed and the next one tried; when none loads, every
// slot is NULL.
DlLibrary dlopen_first(std::initializer_list<const char*> sonames, const std::vector<DlSymbol>& syms,
                       const char* what, const char* install);

// A table of entry points (a struct of function pointers) loaded at run time, and from which library.
template <typename Api>
struct LoadedApi {
  Api api{};
  DlLibrary lib;
};

// dlopen_first for an Api table: `symbols` names each of its function pointers.
template <typename Api>
LoadedApi<Api> dlopen_api(std::initializer_list<const char*> sonames, std::vector<DlSymbol> (*symbols)(Api&),
                          const char* what, const char* install) {
  LoadedApi<Api> l;
  l.lib = dlopen_first(sonames, symbols(l.api), what, install);
  return l;
}

// Fills a probe's `available`, `library` and `error` from `lib` (version stays 0); returns lib.ok.
bool library_info(const DlLibrary& lib, marlin_bench_cublas_info* out);

using cublasHandle_t = struct cublasContext*;
using cublasStatus_t = int;

// Enum values from cublas_api.h (stable since CUDA 11).
constexpr int kCublasStatusSuccess = 0;
constexpr int kCublasOpN = 0;
constexpr int kCublasCompute32F = 68;  // CUBLAS_COMPUTE_32F: fp32 accumulation
constexpr int kCublasGemmDefault = -1;  // CUBLAS_GEMM_DEFAULT: cuBLAS's own heuristic (tensor cores when eligible)

struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t*);                                 // cublasCreate_v2
  cublasStatus_t (*destroy)(cublasHandle_t);                                 // cublasDestroy_v2
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);                // cublasSetStream_v2
  cublasStatus_t (*set_workspace)(cublasHandle_t, void*, size_t);            // cublasSetWorkspace_v2
  cublasStatus_t (*get_version)(cublasHandle_t, int*);                       // cublasGetVersion_v2
  cublasStatus_t (*gemm_ex)(cublasHandle_t, int transa, int transb, int m, int n, int k, const void* alpha,
                            const void* a, cudaDataType a_type, int lda, const void* b, cudaDataType b_type, int ldb,
                            const void* beta, void* c, cudaDataType c_type, int ldc, int compute_type,
                            int algo);                                       // cublasGemmEx
};

// The loaded API, or nullptr with marlin_bench_last_error() set (MARLIN_E_UNSUPPORTED) when cuBLAS is missing.
marlin_status cublas_api(const CublasApi** out);

// Bytes of workspace handed to cuBLAS so it never allocates during graph capture (32 MiB: NVIDIA's recommendation
// for Hopper; larger than any Ampere need).
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

// A handle bound to a stream with a caller-owned workspace, destroyed on scope exit.
class CublasHandle {
 public:
  CublasHandle() = default;
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  ~CublasHandle() {
    if (h_ != nullptr) api_->destroy(h_);
  }
  marlin_status create(cudaStream_t stream, void* workspace, size_t workspace_bytes);
  cublasHandle_t get() const { return h_; }
  const CublasApi* api() const { return api_; }

 private:
  const CublasApi* api_ = nullptr;
  cublasHandle_t h_ = nullptr;
};

// Records a cuBLAS failure and returns MARLIN_E_CUDA.
marlin_status fail_cublas(cublasStatus_t st, const char* call);

// Times a cuBLAS / cuBLASLt baseline over `rotations` weight copies of `w_bytes` each (time_rotations) and fills the
// rest of `out`: kCublasWorkspaceBytes of workspace, no cluster, no tail launch, `m_run` rows computed.
marlin_status time_baseline(marlin_bench_launch_fn launch, void* ctx, int32_t rotations, int32_t calls,
                            int32_t replays, cudaStream_t stream, size_t w_bytes, int32_t m_run,
                            marlin_bench_gemm_result* out);

// y[M x N] = x[M x K] * W[K x N], all row-major, fp32 accumulation, dtype in/out. Issues one cublasGemmEx.
marlin_status cublas_row_major_gemm(const CublasHandle& h, marlin_dtype dtype, int m, int n, int k, const void* x,
                                    const void* w, void* y);

}  // namespace marlin::bench
