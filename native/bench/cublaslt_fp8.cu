// The second baseline: cuBLASLt FP8 W8A8 (e4m3 x e4m3, per-tensor scales, fp32 accumulation, fp16 / bf16 output),
// the GEMM torch._scaled_mm runs on Hopper. cuBLASLt is loaded with dlopen like cuBLAS (cublas_loader.cu): the
// harness has no link-time dependency on it and the toolkit here ships no cuBLASLt header, so the few entry points,
// enum values and the heuristic-result struct are declared below with the ABI of cublasLt.h (CUDA 12 / 13).
#include <string>
#include <vector>

#include "bench_internal.cuh"
#include "cublas_loader.cuh"

using namespace marlin::bench;

namespace {

using LtHandle = void*;
using LtDesc = void*;
using LtLayout = void*;
using LtPref = void*;
using LtStatus = int;

// cublasLt.h values (stable since CUDA 11.8 / 12.0, where FP8 arrived).
constexpr int kLtDescComputeType = 0;     // CUBLASLT_MATMUL_DESC_COMPUTE_TYPE (not set: given at create)
constexpr int kLtDescTransA = 3;          // CUBLASLT_MATMUL_DESC_TRANSA
constexpr int kLtDescTransB = 4;          // CUBLASLT_MATMUL_DESC_TRANSB
constexpr int kLtDescAScalePointer = 17;  // CUBLASLT_MATMUL_DESC_A_SCALE_POINTER
constexpr int kLtDescBScalePointer = 18;  // CUBLASLT_MATMUL_DESC_B_SCALE_POINTER
constexpr int kLtDescFastAccum = 25;      // CUBLASLT_MATMUL_DESC_FAST_ACCUM
constexpr int kLtPrefMaxWorkspace = 1;    // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
constexpr int kOpN = 0;
constexpr int kOpT = 1;
static_assert(kLtDescComputeType == 0, "documentation only");

struct LtAlgo {
  uint64_t data[8];
};
struct LtHeuristicResult {  // cublasLtMatmulHeuristicResult_t
  LtAlgo algo;
  size_t workspace_size;
  LtStatus state;
  float waves_count;
  int reserved[4];
};

struct LtApi {
  LtStatus (*create)(LtHandle*);
  LtStatus (*destroy)(LtHandle);
  size_t (*get_version)(void);
  LtStatus (*desc_create)(LtDesc*, int compute_type, cudaDataType scale_type);
  LtStatus (*desc_destroy)(LtDesc);
  LtStatus (*desc_set)(LtDesc, int attr, const void* buf, size_t bytes);
  LtStatus (*layout_create)(LtLayout*, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
  LtStatus (*layout_destroy)(LtLayout);
  LtStatus (*pref_create)(LtPref*);
  LtStatus (*pref_destroy)(LtPref);
  LtStatus (*pref_set)(LtPref, int attr, const void* buf, size_t bytes);
  LtStatus (*heuristic)(LtHandle, LtDesc, LtLayout a, LtLayout b, LtLayout c, LtLayout d, LtPref, int requested,
                        LtHeuristicResult* results, int* returned);
  LtStatus (*matmul)(LtHandle, LtDesc, const void* alpha, const void* a, LtLayout, const void* b, LtLayout,
                     const void* beta, const void* c, LtLayout, void* d, LtLayout, const LtAlgo* algo,
                     void* workspace, size_t workspace_bytes, cudaStream_t stream);
};

std::vector<DlSymbol> lt_symbols(LtApi& a) {
  return {
      {"cublasLtCreate", reinterpret_cast<void**>(&a.create)},
      {"cublasLtDestroy", reinterpret_cast<void**>(&a.destroy)},
      {"cublasLtGetVersion", reinterpret_cast<void**>(&a.get_version)},
      {"cublasLtMatmulDescCreate", reinterpret_cast<void**>(&a.desc_create)},
      {"cublasLtMatmulDescDestroy", reinterpret_cast<void**>(&a.desc_destroy)},
      {"cublasLtMatmulDescSetAttribute", reinterpret_cast<void**>(&a.desc_set)},
      {"cublasLtMatrixLayoutCreate", reinterpret_cast<void**>(&a.layout_create)},
      {"cublasLtMatrixLayoutDestroy", reinterpret_cast<void**>(&a.layout_destroy)},
      {"cublasLtMatmulPreferenceCreate", reinterpret_cast<void**>(&a.pref_create)},
      {"cublasLtMatmulPreferenceDestroy", reinterpret_cast<void**>(&a.pref_destroy)},
      {"cublasLtMatmulPreferenceSetAttribute", reinterpret_cast<void**>(&a.pref_set)},
      {"cublasLtMatmulAlgoGetHeuristic", reinterpret_cast<void**>(&a.heuristic)},
      {"cublasLtMatmul", reinterpret_cast<void**>(&a.matmul)},
  };
}

// Loaded once per process (thread-safe static initialisation).
const LoadedApi<LtApi>& loaded() {
  static const LoadedApi<LtApi> l =
      dlopen_api<LtApi>({"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}, lt_symbols, "cuBLASLt",
                        "Install the CUDA 13 (or 12) cuBLAS runtime library (it ships libcublasLt) or add its folder "
                        "to LD_LIBRARY_PATH.");
  return l;
}

marlin_status fail_lt(LtStatus st, const char* call) {
  return fail(MARLIN_E_CUDA, std::string("cuBLASLt status ") + std::to_string(st) + " in " + call);
}

#define MB_LT(call)                                             \
  do {                                                          \
    const LtStatus mb_lt_ = (call);                             \
    if (mb_lt_ != 0) return fail_lt(mb_lt_, #call);             \
  } while (0)

// Owners of the cuBLASLt objects of one benchmark (destroyed in reverse order on scope exit).
struct LtObjects {
  const LtApi* api = nullptr;
  LtHandle handle = nullptr;
  LtDesc desc = nullptr;
  LtLayout a = nullptr, b = nullptr, c = nullptr;
  LtPref pref = nullptr;
  ~LtObjects() {
    if (api == nullptr) return;
    if (pref != nullptr) api->pref_destroy(pref);
    if (c != nullptr) api->layout_destroy(c);
    if (b != nullptr) api->layout_destroy(b);
    if (a != nullptr) api->layout_destroy(a);
    if (desc != nullptr) api->desc_destroy(desc);
    if (handle != nullptr) api->destroy(handle);
  }
};

struct LtCtx {
  const LtApi* api;
  const LtObjects* o;
  LtAlgo algo;
  const void* x;                // [M16][K] e4m3 (column-major K x M16: operand B)
  std::vector<const void*> w;   // [N][K] e4m3 per rotation (column-major K x N, transposed: operand A)
  void* y;                      // [M16][N] out dtype (column-major N x M16)
  void* workspace;
  size_t workspace_bytes;
};

marlin_status lt_launch(void* ctx, int32_t rotation, void* stream) {
  const LtCtx* c = static_cast<const LtCtx*>(ctx);
  const float alpha = 1.0f;
  const float beta = 0.0f;
  MB_LT(c->api->matmul(c->o->handle, c->o->desc, &alpha, c->w[rotation], c->o->a, c->x, c->o->b, &beta, c->y,
                       c->o->c, c->y, c->o->c, &c->algo, c->workspace, c->workspace_bytes,
                       static_cast<cudaStream_t>(stream)));
  return MARLIN_OK;
}

}  // namespace

extern "C" void marlin_bench_cublaslt_probe(marlin_bench_cublas_info* out) {
  if (out == nullptr) return;
  const auto& l = loaded();
  if (!library_info(l.lib, out)) return;
  out->version = static_cast<int32_t>(l.api.get_version());
}

extern "C" marlin_status marlin_bench_cublaslt_fp8_gemm(const marlin_bench_cublaslt_fp8_args* a,
                                                        marlin_bench_gemm_result* out) {
  clear_error();
  if (a == nullptr || out == nullptr) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cublaslt_fp8_gemm: null argument");
  }
  if (a->m < 1 || a->n < 16 || a->k < 16 || a->n % 16 != 0 || a->k % 16 != 0) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cublaslt_fp8_gemm: M=" + std::to_string(a->m) + " N=" +
                                               std::to_string(a->n) + " K=" + std::to_string(a->k) +
                                               " (FP8 needs N and K multiples of 16)");
  }
  if (a->out_dtype != MARLIN_FP16 && a->out_dtype != MARLIN_BF16) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cublaslt_fp8_gemm: out_dtype must be fp16 or bf16");
  }
  const auto& l = loaded();
  if (!l.lib.ok) return fail(MARLIN_E_UNSUPPORTED, l.lib.error);
  const LtApi* api = &l.api;

  // cuBLASLt's FP8 kernels need every dimension a multiple of 16 (torch._scaled_mm pads M the same way).
  const int32_t m16 = (a->m + 15) / 16 * 16;
  const size_t w_bytes = static_cast<size_t>(a->k) * static_cast<size_t>(a->n);
  const size_t x_bytes = static_cast<size_t>(m16) * static_cast<size_t>(a->k);
  const size_t y_bytes = static_cast<size_t>(m16) * static_cast<size_t>(a->n) * 2;
  int32_t rotations = 0;
  MB_TRY(marlin_bench_rotation_count(align256(w_bytes), x_bytes + y_bytes + kCublasWorkspaceBytes + 256, &rotations));

  GemmBuffers b;
  MB_TRY(b.allocate(x_bytes, y_bytes, kCublasWorkspaceBytes));
  const cudaStream_t s = b.stream.get();
  // Two fp32 per-tensor scales, each on its own 256-byte line as separately allocated tensors would be (torch's
  // layout): [0] activations, [kScaleStride] weights. With the weight scale 4 bytes in, cublasLtMatmul returned
  // NOT_SUPPORTED for an algorithm its heuristic had returned.
  constexpr int kScaleStride = 64;
  DeviceBuffer scales;
  MB_TRY(scales.allocate(2 * kScaleStride * sizeof(float)));
  uint64_t seed = a->seed;
  MB_TRY(marlin_bench_fill_e4m3(b.x.get(), x_bytes, seed++, s));
  MB_TRY(marlin_bench_fill_halves(b.y.get(), y_bytes / 2, a->out_dtype, -1.0f, 1.0f, seed++, s));
  // Per-tensor scales of amax / 448 magnitude: activations in [-1, 1), weights of |w| < 0.5.
  const float host_scales[2] = {1.0f / 448.0f, 0.5f / 448.0f};
  MB_CUDA(cudaMemcpyAsync(scales.get(), &host_scales[0], sizeof(float), cudaMemcpyHostToDevice, s));
  MB_CUDA(cudaMemcpyAsync(scales.as<float>() + kScaleStride, &host_scales[1], sizeof(float), cudaMemcpyHostToDevice,
                          s));
  std::vector<DeviceBuffer> copies(static_cast<size_t>(rotations));
  LtCtx ctx{};
  for (int32_t r = 0; r < rotations; ++r) {
    MB_TRY(copies[r].allocate(w_bytes));
    MB_TRY(marlin_bench_fill_e4m3(copies[r].get(), w_bytes, seed++, s));
    ctx.w.push_back(copies[r].get());
  }
  MB_CUDA(cudaStreamSynchronize(s));

  LtObjects o;
  o.api = api;
  MB_LT(api->create(&o.handle));
  MB_LT(api->desc_create(&o.desc, kCublasCompute32F, CUDA_R_32F));
  // Row-major y[M x N] = x[M x K] W^T with W stored [N][K]: column-major D (N x M) = op(A) B with A = W as K x N
  // (ld K) transposed and B = x as K x M (ld K): the "TN" layout FP8 GEMMs require.
  const int32_t trans_a = kOpT;
  const int32_t trans_b = kOpN;
  MB_LT(api->desc_set(o.desc, kLtDescTransA, &trans_a, sizeof trans_a));
  MB_LT(api->desc_set(o.desc, kLtDescTransB, &trans_b, sizeof trans_b));
  const float* d_scales = scales.as<float>();
  const void* scale_w = d_scales + kScaleStride;
  const void* scale_x = d_scales;
  MB_LT(api->desc_set(o.desc, kLtDescAScalePointer, &scale_w, sizeof scale_w));
  MB_LT(api->desc_set(o.desc, kLtDescBScalePointer, &scale_x, sizeof scale_x));
  const int8_t fast_accum = 0;  // torch._scaled_mm's default (use_fast_accum=False)
  MB_LT(api->desc_set(o.desc, kLtDescFastAccum, &fast_accum, sizeof fast_accum));
  const cudaDataType out_type = a->out_dtype == MARLIN_BF16 ? CUDA_R_16BF : CUDA_R_16F;
  MB_LT(api->layout_create(&o.a, CUDA_R_8F_E4M3, static_cast<uint64_t>(a->k), static_cast<uint64_t>(a->n), a->k));
  MB_LT(api->layout_create(&o.b, CUDA_R_8F_E4M3, static_cast<uint64_t>(a->k), static_cast<uint64_t>(m16), a->k));
  MB_LT(api->layout_create(&o.c, out_type, static_cast<uint64_t>(a->n), static_cast<uint64_t>(m16), a->n));
  MB_LT(api->pref_create(&o.pref));
  const uint64_t max_ws = kCublasWorkspaceBytes;
  MB_LT(api->pref_set(o.pref, kLtPrefMaxWorkspace, &max_ws, sizeof max_ws));
  LtHeuristicResult result{};
  int returned = 0;
  const LtStatus hst = api->heuristic(o.handle, o.desc, o.a, o.b, o.c, o.c, o.pref, 1, &result, &returned);
  if (hst != 0 || returned < 1) {
    return fail(MARLIN_E_UNSUPPORTED, "cuBLASLt has no FP8 e4m3 algorithm for M=" + std::to_string(m16) + " N=" +
                                          std::to_string(a->n) + " K=" + std::to_string(a->k) +
                                          " on this device (status " + std::to_string(hst) + "; FP8 needs sm_89+)");
  }

  ctx.api = api;
  ctx.o = &o;
  ctx.algo = result.algo;
  ctx.x = b.x.get();
  ctx.y = b.y.get();
  ctx.workspace = b.ws.get();
  ctx.workspace_bytes = kCublasWorkspaceBytes;

  return time_baseline(lt_launch, &ctx, rotations, a->calls, a->replays, s, w_bytes, m16, out);
}
