// cuBLAS loaded at run time with dlopen/dlsym, so the addon has no link-time dependency on libcublas and still loads
// (and runs every non-cuBLAS benchmark) on machines without it. Only the handful of entry points the baseline needs
// are declared, with the ABI of cublas_api.h (CUDA 12/13): the toolkit here ships no cuBLAS headers.
#pragma once
#include <cuda_runtime.h>
#include <library_types.h>

#include "bench_internal.cuh"

namespace marlin::bench {

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

// y[M x N] = x[M x K] * W[K x N], all row-major, fp32 accumulation, dtype in/out. Issues one cublasGemmEx.
marlin_status cublas_row_major_gemm(const CublasHandle& h, marlin_dtype dtype, int m, int n, int k, const void* x,
                                    const void* w, void* y);

}  // namespace marlin::bench
