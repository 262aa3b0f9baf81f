// The second baseline of the 2:4 sparse series: fp16 2:4 structured sparsity through cuSPARSELt, the library behind
// torch._cslt_sparse_mm (to_sparse_semi_structured). Loaded with dlopen at run time, from the paths the caller found
// (PyTorch's bundled copy in site-packages) or by soname; the toolkit here ships no cuSPARSELt header, so the entry
// points, enum values and opaque objects are declared below from the ABI of cusparseLt.h 0.7.1 - 0.8.x (the versions
// NVIDIA's nvmath-python bindings are generated from). Any other release is reported unavailable, never called.
#include <dlfcn.h>
#include <library_types.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench_internal.cuh"
#include "cublas_loader.cuh"

using namespace marlin::bench;

namespace {

using LtStatus = int;  // cusparseStatus_t

// The opaque structs are fixed-size byte arrays whose size changed between releases (11024 bytes in 0.4, 512 in 0.7.1 -
// 0.8.1); the library only writes inside its own size, so each object gets more than any release declares, aligned
// past what 0.8.0 fixed ("host memory alignment ... could cause crashes").
struct alignas(256) LtOpaque {
  uint8_t data[16384];
};

// cusparse.h / cusparseLt.h values (0.7.1 - 0.8.x).
constexpr int kOrderCol = 1;        // CUSPARSE_ORDER_COL
constexpr int kOrderRow = 2;        // CUSPARSE_ORDER_ROW
constexpr int kOpN = 0;             // CUSPARSE_OPERATION_NON_TRANSPOSE
constexpr int kOpT = 1;             // CUSPARSE_OPERATION_TRANSPOSE
constexpr int kSparsity50 = 0;      // CUSPARSELT_SPARSITY_50_PERCENT
constexpr int kCompute32F = 2;      // CUSPARSE_COMPUTE_32F (32I = 0, 16F = 1)
constexpr int kAlgDefault = 0;      // CUSPARSELT_MATMUL_ALG_DEFAULT
constexpr uint32_t kAlignment = 16;  // bytes: every buffer here comes from cudaMalloc
// Oldest and first unsupported release (major * 1000 + minor * 100 + patch).
constexpr int kMinVersion = 701;
constexpr int kMaxVersionExclusive = 900;

struct LtApi {
  LtStatus (*init)(LtOpaque* handle);
  LtStatus (*destroy)(const LtOpaque* handle);
  LtStatus (*get_property)(libraryPropertyType type, int* value);
  LtStatus (*dense_init)(const LtOpaque* handle, LtOpaque* mat, int64_t rows, int64_t cols, int64_t ld,
                         uint32_t alignment, cudaDataType type, int order);
  LtStatus (*structured_init)(const LtOpaque* handle, LtOpaque* mat, int64_t rows, int64_t cols, int64_t ld,
                              uint32_t alignment, cudaDataType type, int order, int sparsity);
  LtStatus (*mat_destroy)(const LtOpaque* mat);
  LtStatus (*matmul_init)(const LtOpaque* handle, LtOpaque* matmul, int op_a, int op_b, const LtOpaque* a,
                          const LtOpaque* b, const LtOpaque* c, const LtOpaque* d, int compute_type);
  LtStatus (*alg_init)(const LtOpaque* handle, LtOpaque* alg, const LtOpaque* matmul, int alg_kind);
  LtStatus (*plan_init)(const LtOpaque* handle, LtOpaque* plan, const LtOpaque* matmul, const LtOpaque* alg);
  LtStatus (*plan_destroy)(const LtOpaque* plan);
  LtStatus (*workspace)(const LtOpaque* handle, const LtOpaque* plan, size_t* bytes);
  LtStatus (*compressed_size)(const LtOpaque* handle, const LtOpaque* plan, size_t* compressed,
                              size_t* compress_buffer);
  LtStatus (*compress)(const LtOpaque* handle, const LtOpaque* plan, const void* dense, void* compressed,
                       void* compress_buffer, cudaStream_t stream);
  LtStatus (*matmul)(const LtOpaque* handle, const LtOpaque* plan, const void* alpha, const void* a, const void* b,
                     const void* beta, const void* c, void* d, void* workspace, cudaStream_t* streams,
                     int32_t stream_count);
  // 0.8.0 and later only (must be called there to release an algorithm selection); NULL before.
  LtStatus (*alg_destroy)(const LtOpaque* alg);
};

std::vector<DlSymbol> lt_symbols(LtApi& a) {
  return {
      {"cusparseLtInit", reinterpret_cast<void**>(&a.init)},
      {"cusparseLtDestroy", reinterpret_cast<void**>(&a.destroy)},
      {"cusparseLtGetProperty", reinterpret_cast<void**>(&a.get_property)},
      {"cusparseLtDenseDescriptorInit", reinterpret_cast<void**>(&a.dense_init)},
      {"cusparseLtStructuredDescriptorInit", reinterpret_cast<void**>(&a.structured_init)},
      {"cusparseLtMatDescriptorDestroy", reinterpret_cast<void**>(&a.mat_destroy)},
      {"cusparseLtMatmulDescriptorInit", reinterpret_cast<void**>(&a.matmul_init)},
      {"cusparseLtMatmulAlgSelectionInit", reinterpret_cast<void**>(&a.alg_init)},
      {"cusparseLtMatmulPlanInit", reinterpret_cast<void**>(&a.plan_init)},
      {"cusparseLtMatmulPlanDestroy", reinterpret_cast<void**>(&a.plan_destroy)},
      {"cusparseLtMatmulGetWorkspace", reinterpret_cast<void**>(&a.workspace)},
      {"cusparseLtSpMMACompressedSize", reinterpret_cast<void**>(&a.compressed_size)},
      {"cusparseLtSpMMACompress", reinterpret_cast<void**>(&a.compress)},
      {"cusparseLtMatmul", reinterpret_cast<void**>(&a.matmul)},
  };
}

struct Loaded {
  bool ok = false;
  LtApi api{};
  int version = 0;
  std::string library;
  std::string error = "cuSPARSELt was not looked for (marlin_bench_cusparselt_load not called)";
};

std::mutex g_mu;
Loaded g_loaded;

std::string dl_error() {
  const char* e = dlerror();
  return e != nullptr ? e : "dlopen failed";
}

// Opens `name` and resolves every symbol; on success fills `l` and keeps the library loaded for the process.
bool try_open(const char* name, Loaded& l, std::string& why) {
  dlerror();
  void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    why = dl_error();
    return false;
  }
  LtApi api{};
  for (const DlSymbol& s : lt_symbols(api)) {
    *s.slot = dlsym(h, s.name);
    if (*s.slot == nullptr) {
      why = std::string("missing symbol ") + s.name;
      dlclose(h);
      return false;
    }
  }
  api.alg_destroy = reinterpret_cast<LtStatus (*)(const LtOpaque*)>(dlsym(h, "cusparseLtMatmulAlgSelectionDestroy"));
  int major = -1, minor = -1, patch = -1;
  if (api.get_property(MAJOR_VERSION, &major) != 0 || api.get_property(MINOR_VERSION, &minor) != 0 ||
      api.get_property(PATCH_LEVEL, &patch) != 0) {
    why = "cusparseLtGetProperty failed";
    dlclose(h);
    return false;
  }
  const int version = major * 1000 + minor * 100 + patch;
  if (major != 0 || version < kMinVersion || version >= kMaxVersionExclusive) {
    why = "version " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
          " (this harness declares the ABI of 0.7.1 to 0.8.x only)";
    dlclose(h);
    return false;
  }
  l.ok = true;
  l.api = api;
  l.version = version;
  l.library = name;
  l.error.clear();
  return true;
}

marlin_status fail_lt(LtStatus st, const char* call) {
  return fail(MARLIN_E_CUDA, std::string("cuSPARSELt status ") + std::to_string(st) + " in " + call);
}

#define MB_SPLT(call)                                   \
  do {                                                  \
    const LtStatus mb_lt_ = (call);                     \
    if (mb_lt_ != 0) return fail_lt(mb_lt_, #call);     \
  } while (0)

// The objects of one benchmark, released in reverse order on scope exit (each only once initialised).
struct LtObjects {
  const LtApi* api = nullptr;
  LtOpaque handle, a, b, d, matmul, alg, plan;
  bool have_handle = false, have_a = false, have_b = false, have_d = false, have_alg = false, have_plan = false;
  ~LtObjects() {
    if (api == nullptr) return;
    if (have_plan) api->plan_destroy(&plan);
    if (have_alg && api->alg_destroy != nullptr) api->alg_destroy(&alg);
    if (have_d) api->mat_destroy(&d);
    if (have_b) api->mat_destroy(&b);
    if (have_a) api->mat_destroy(&a);
    if (have_handle) api->destroy(&handle);
  }
};

struct LtCtx {
  const LtApi* api;
  const LtObjects* o;
  const void* x;               // [M16][K] dense B (row-major, used transposed)
  std::vector<const void*> w;  // compressed W [N][K] per rotation
  void* y;                     // [M16][N] (column-major N x M16)
  void* workspace;
};

marlin_status lt_launch(void* ctx, int32_t rotation, void* stream) {
  const LtCtx* c = static_cast<const LtCtx*>(ctx);
  const float alpha = 1.0f;
  const float beta = 0.0f;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  MB_SPLT(c->api->matmul(&c->o->handle, &c->o->plan, &alpha, c->w[rotation], c->x, &beta, c->y, c->y, c->workspace,
                         &s, 1));
  return MARLIN_OK;
}

}  // namespace

extern "C" void marlin_bench_cusparselt_load(const char* const* paths, int32_t path_count, const char* const* deps,
                                             int32_t dep_count, marlin_bench_cusparselt_info* out) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_loaded.ok) {
    std::vector<const char*> names;
    for (int32_t i = 0; paths != nullptr && i < path_count; ++i) {
      if (paths[i] != nullptr && paths[i][0] != '\0') names.push_back(paths[i]);
    }
    names.push_back("libcusparseLt.so.0");
    std::string errors;
    bool deps_loaded = false;
    for (const char* name : names) {
      std::string why;
      bool ok = try_open(name, g_loaded, why);
      // A wheel's library may need a sibling wheel's (e.g. the CUDA runtime): loaded once, then the load retried.
      if (!ok && !deps_loaded && dep_count > 0) {
        deps_loaded = true;
        for (int32_t i = 0; deps != nullptr && i < dep_count; ++i) {
          if (deps[i] != nullptr) dlopen(deps[i], RTLD_NOW | RTLD_LOCAL);
        }
        dlerror();
        std::string again;
        ok = try_open(name, g_loaded, again);
        if (!ok) why += "; after loading its dependencies: " + again;
      }
      if (ok) break;
      errors += std::string(name) + ": " + why + "; ";
    }
    if (!g_loaded.ok) {
      if (errors.size() >= 2) errors.resize(errors.size() - 2);
      g_loaded.error = "cuSPARSELt not found (" + errors + ")";
    }
  }
  if (out == nullptr) return;
  std::memset(out, 0, sizeof *out);
  out->available = g_loaded.ok ? 1 : 0;
  out->version = g_loaded.version;
  std::snprintf(out->library, sizeof out->library, "%s", g_loaded.library.c_str());
  std::snprintf(out->error, sizeof out->error, "%s", g_loaded.error.c_str());
}

extern "C" marlin_status marlin_bench_cusparselt_gemm(const marlin_bench_cusparselt_args* a,
                                                      marlin_bench_gemm_result* out) {
  clear_error();
  if (a == nullptr || out == nullptr) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cusparselt_gemm: null argument");
  }
  if (a->m < 1 || a->n < 16 || a->k < 16 || a->n % 16 != 0 || a->k % 16 != 0) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cusparselt_gemm: M=" + std::to_string(a->m) + " N=" +
                                               std::to_string(a->n) + " K=" + std::to_string(a->k) +
                                               " (N and K must be multiples of 16)");
  }
  if (a->dtype != MARLIN_FP16 && a->dtype != MARLIN_BF16) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cusparselt_gemm: dtype must be fp16 or bf16");
  }
  const LtApi* api = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g_loaded.ok) return fail(MARLIN_E_UNSUPPORTED, g_loaded.error);
    api = &g_loaded.api;
  }
  // Dense operands padded to 16 rows, as torch's semi-structured path pads its dense input.
  const int32_t m16 = (a->m + 15) / 16 * 16;
  const cudaDataType t = a->dtype == MARLIN_BF16 ? CUDA_R_16BF : CUDA_R_16F;

  // Seven 16 KiB objects: on the heap, not the caller's (Node's) stack.
  const std::unique_ptr<LtObjects> owned = std::make_unique<LtObjects>();
  LtObjects& o = *owned;
  o.api = api;
  MB_SPLT(api->init(&o.handle));
  o.have_handle = true;
  // y^T (N x M16, column-major = y [M16][N]) = W (N x K, row-major, 2:4 along K) * x^T (x: M16 x K row-major, op T):
  // the layout torch._cslt_sparse_mm uses for F.linear with a transposed result.
  MB_SPLT(api->structured_init(&o.handle, &o.a, a->n, a->k, a->k, kAlignment, t, kOrderRow, kSparsity50));
  o.have_a = true;
  MB_SPLT(api->dense_init(&o.handle, &o.b, m16, a->k, a->k, kAlignment, t, kOrderRow));
  o.have_b = true;
  MB_SPLT(api->dense_init(&o.handle, &o.d, a->n, m16, a->n, kAlignment, t, kOrderCol));
  o.have_d = true;
  MB_SPLT(api->matmul_init(&o.handle, &o.matmul, kOpN, kOpT, &o.a, &o.b, &o.d, &o.d, kCompute32F));
  MB_SPLT(api->alg_init(&o.handle, &o.alg, &o.matmul, kAlgDefault));
  o.have_alg = true;
  MB_SPLT(api->plan_init(&o.handle, &o.plan, &o.matmul, &o.alg));
  o.have_plan = true;
  size_t ws_bytes = 0;
  size_t compressed_bytes = 0;
  size_t compress_buffer_bytes = 0;
  MB_SPLT(api->workspace(&o.handle, &o.plan, &ws_bytes));
  MB_SPLT(api->compressed_size(&o.handle, &o.plan, &compressed_bytes, &compress_buffer_bytes));

  const size_t dense_bytes = static_cast<size_t>(a->n) * static_cast<size_t>(a->k) * 2;
  const size_t x_bytes = static_cast<size_t>(m16) * static_cast<size_t>(a->k) * 2;
  const size_t y_bytes = static_cast<size_t>(m16) * static_cast<size_t>(a->n) * 2;
  int32_t rotations = 0;
  MB_TRY(marlin_bench_rotation_count(
      align256(compressed_bytes),
      x_bytes + y_bytes + align256(ws_bytes) + align256(dense_bytes) + align256(compress_buffer_bytes), &rotations));

  GemmBuffers b;
  MB_TRY(b.allocate(x_bytes, y_bytes, ws_bytes));
  const cudaStream_t s = b.stream.get();
  uint64_t seed = a->seed;
  MB_TRY(marlin_bench_fill_halves(b.x.get(), x_bytes / 2, a->dtype, -1.0f, 1.0f, seed++, s));
  MB_TRY(marlin_bench_fill_halves(b.y.get(), y_bytes / 2, a->dtype, -1.0f, 1.0f, seed++, s));
  DeviceBuffer dense;
  DeviceBuffer compress_buffer;
  MB_TRY(dense.allocate(dense_bytes));
  MB_TRY(compress_buffer.allocate(compress_buffer_bytes));
  std::vector<DeviceBuffer> copies(static_cast<size_t>(rotations));
  LtCtx ctx{api, &o, b.x.get(), {}, b.y.get(), b.ws.get()};
  for (int32_t r = 0; r < rotations; ++r) {
    MB_TRY(copies[r].allocate(compressed_bytes));
    // Weights of the dequantized INT4 magnitude, two of each four along K zero.
    MB_TRY(marlin_bench_fill_halves_24(dense.get(), dense_bytes / 2, a->dtype, -0.08f, 0.08f, seed++, s));
    MB_SPLT(api->compress(&o.handle, &o.plan, dense.get(), copies[r].get(), compress_buffer.get(), s));
    ctx.w.push_back(copies[r].get());
  }
  MB_CUDA(cudaStreamSynchronize(s));
  dense.reset();
  compress_buffer.reset();

  MB_TRY(time_baseline(lt_launch, &ctx, rotations, a->calls, a->replays, s, compressed_bytes, m16, out));
  out->workspace_bytes = ws_bytes;
  return MARLIN_OK;
}
