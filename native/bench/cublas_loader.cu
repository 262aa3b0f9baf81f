// dlopen/dlsym loader of cuBLAS (see cublas_loader.cuh) and the probe / row-major GEMM helpers built on it.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "cublas_loader.cuh"

namespace marlin::bench {
namespace {

std::vector<DlSymbol> cublas_symbols(CublasApi& a) {
  return {
      {"cublasCreate_v2", reinterpret_cast<void**>(&a.create)},
      {"cublasDestroy_v2", reinterpret_cast<void**>(&a.destroy)},
      {"cublasSetStream_v2", reinterpret_cast<void**>(&a.set_stream)},
      {"cublasSetWorkspace_v2", reinterpret_cast<void**>(&a.set_workspace)},
      {"cublasGetVersion_v2", reinterpret_cast<void**>(&a.get_version)},
      {"cublasGemmEx", reinterpret_cast<void**>(&a.gemm_ex)},
  };
}

// Loaded once per process (thread-safe static initialisation).
const LoadedApi<CublasApi>& loaded() {
  static const LoadedApi<CublasApi> l =
      dlopen_api<CublasApi>({"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, cublas_symbols, "cuBLAS",
                            "Install the CUDA 13 (or 12) cuBLAS runtime library or add its folder to LD_LIBRARY_PATH.");
  return l;
}

const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

}  // namespace

DlLibrary dlopen_first(std::initializer_list<const char*> sonames, const std::vector<DlSymbol>& syms,
                       const char* what, const char* install) {
  DlLibrary lib;
  std::string errors;
  for (const char* name : sonames) {
    void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = dlerror();
      errors += std::string(name) + ": " + (e != nullptr ? e : "dlopen failed") + "; ";
      continue;
    }
    bool all = true;
    for (const DlSymbol& s : syms) {
      *s.slot = dlsym(handle, s.name);
      if (*s.slot == nullptr) {
        errors += std::string(name) + ": missing symbol " + s.name + "; ";
        all = false;
        break;
      }
    }
    if (all) {
      lib.ok = true;
      lib.soname = name;
      return lib;
    }
    dlclose(handle);
  }
  for (const DlSymbol& s : syms) *s.slot = nullptr;
  if (errors.size() >= 2) errors.resize(errors.size() - 2);  // drop the last "; "
  lib.error = std::string(what) + " not found (" + errors + "). " + install;
  return lib;
}

bool library_info(const DlLibrary& lib, marlin_bench_cublas_info* out) {
  std::memset(out, 0, sizeof *out);
  out->available = lib.ok ? 1 : 0;
  if (!lib.ok) {
    std::snprintf(out->error, sizeof out->error, "%s", lib.error.c_str());
    return false;
  }
  std::snprintf(out->library, sizeof out->library, "%s", lib.soname.c_str());
  return true;
}

marlin_status time_baseline(marlin_bench_launch_fn launch, void* ctx, int32_t rotations, int32_t calls,
                            int32_t replays, cudaStream_t stream, size_t w_bytes, int32_t m_run,
                            marlin_bench_gemm_result* out) {
  MB_TRY(time_rotations(launch, ctx, rotations, calls, replays, stream, &out->timing));
  out->bytes_per_rotation = w_bytes;
  out->workspace_bytes = kCublasWorkspaceBytes;
  out->cluster_size = 0;
  out->tail_blocks = 0;
  out->m_run = m_run;
  return MARLIN_OK;
}

marlin_status cublas_api(const CublasApi** out) {
  const auto& l = loaded();
  if (!l.lib.ok) {
    *out = nullptr;
    return fail(MARLIN_E_UNSUPPORTED, l.lib.error);
  }
  *out = &l.api;
  return MARLIN_OK;
}

marlin_status fail_cublas(cublasStatus_t st, const char* call) {
  return fail(MARLIN_E_CUDA, std::string(cublas_status_name(st)) + " (" + std::to_string(st) + ") in " + call);
}

marlin_status CublasHandle::create(cudaStream_t stream, void* workspace, size_t workspace_bytes) {
  MB_TRY(cublas_api(&api_));
  cublasStatus_t st = api_->create(&h_);
  if (st != kCublasStatusSuccess) {
    h_ = nullptr;
    return fail_cublas(st, "cublasCreate");
  }
  st = api_->set_stream(h_, stream);
  if (st != kCublasStatusSuccess) return fail_cublas(st, "cublasSetStream");
  // NOTE: without a user workspace cuBLAS may allocate one on first use, which is illegal inside stream capture.
  st = api_->set_workspace(h_, workspace, workspace_bytes);
  if (st != kCublasStatusSuccess) return fail_cublas(st, "cublasSetWorkspace");
  return MARLIN_OK;
}

marlin_status cublas_row_major_gemm(const CublasHandle& h, marlin_dtype dtype, int m, int n, int k, const void* x,
                                    const void* w, void* y) {
  // Row-major y = x W is column-major y^T (N x M) = W^T (N x K, ld N) * x^T (K x M, ld K): no transposes.
  const cudaDataType t = dtype == MARLIN_BF16 ? CUDA_R_16BF : CUDA_R_16F;
  const float alpha = 1.0f;
  const float beta = 0.0f;
  const cublasStatus_t st = h.api()->gemm_ex(h.get(), kCublasOpN, kCublasOpN, n, m, k, &alpha, w, t, n, x, t, k,
                                             &beta, y, t, n, kCublasCompute32F, kCublasGemmDefault);
  if (st != kCublasStatusSuccess) return fail_cublas(st, "cublasGemmEx");
  return MARLIN_OK;
}

}  // namespace marlin::bench

extern "C" void marlin_bench_cublas_probe(marlin_bench_cublas_info* out) {
  using namespace marlin::bench;
  if (out == nullptr) return;
  const auto& l = loaded();
  if (!library_info(l.lib, out)) return;
  cublasHandle_t h = nullptr;
  if (l.api.create(&h) == kCublasStatusSuccess) {
    int v = 0;
    if (l.api.get_version(h, &v) == kCublasStatusSuccess) out->version = v;
    l.api.destroy(h);
  } else {
    std::snprintf(out->error, sizeof out->error, "%s loaded but cublasCreate failed (no usable device?)",
                  l.lib.soname.c_str());
  }
}
