// dlopen/dlsym loader of cuBLAS (see cublas_loader.cuh) and the probe / row-major GEMM helpers built on it.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "cublas_loader.cuh"

namespace marlin::bench {
namespace {

struct Loaded {
  CublasApi api{};
  bool ok = false;
  std::string soname;
  std::string error;
};

// Tries each soname in order; the first library with every symbol wins. The library stays loaded for the process.
Loaded load() {
  Loaded l;
  const char* candidates[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
  std::string errors;
  for (const char* name : candidates) {
    void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      errors += std::string(name) + ": " + (e != nullptr ? e : "dlopen failed") + "; ";
      continue;
    }
    struct Sym {
      const char* name;
      void** slot;
    };
    CublasApi api{};
    Sym syms[] = {
        {"cublasCreate_v2", reinterpret_cast<void**>(&api.create)},
        {"cublasDestroy_v2", reinterpret_cast<void**>(&api.destroy)},
        {"cublasSetStream_v2", reinterpret_cast<void**>(&api.set_stream)},
        {"cublasSetWorkspace_v2", reinterpret_cast<void**>(&api.set_workspace)},
        {"cublasGetVersion_v2", reinterpret_cast<void**>(&api.get_version)},
        {"cublasGemmEx", reinterpret_cast<void**>(&api.gemm_ex)},
    };
    bool all = true;
    for (const Sym& s : syms) {
      *s.slot = dlsym(lib, s.name);
      if (*s.slot == nullptr) {
        errors += std::string(name) + ": missing symbol " + s.name + "; ";
        all = false;
        break;
      }
    }
    if (!all) {
      dlclose(lib);
      continue;
    }
    l.api = api;
    l.ok = true;
    l.soname = name;
    return l;
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);  // drop the last "; "
  l.error = "cuBLAS not found (" + errors +
            "). Install the CUDA 13 (or 12) cuBLAS runtime library or add its folder to LD_LIBRARY_PATH.";
  return l;
}

const Loaded& loaded() {
  static std::once_flag once;
  static Loaded l;
  std::call_once(once, [] { l = load(); });
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

marlin_status cublas_api(const CublasApi** out) {
  const Loaded& l = loaded();
  if (!l.ok) {
    *out = nullptr;
    return fail(MARLIN_E_UNSUPPORTED, l.error);
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
  std::memset(out, 0, sizeof *out);
  const Loaded& l = loaded();
  out->available = l.ok ? 1 : 0;
  if (!l.ok) {
    std::snprintf(out->error, sizeof out->error, "%s", l.error.c_str());
    return;
  }
  std::snprintf(out->library, sizeof out->library, "%s", l.soname.c_str());
  cublasHandle_t h = nullptr;
  if (l.api.create(&h) == kCublasStatusSuccess) {
    int v = 0;
    if (l.api.get_version(h, &v) == kCublasStatusSuccess) out->version = v;
    l.api.destroy(h);
  } else {
    std::snprintf(out->error, sizeof out->error, "%s loaded but cublasCreate failed (no usable device?)",
                  l.soname.c_str());
  }
}
