// GEMM benchmarks: a Marlin addon's kernel (through its C ABI, marlin_bench_gemm_api) and the cuBLAS fp16/bf16
// baseline, on the same shape, with the same rotation and graph method (marlin_bench_time_graph). Every buffer is
// allocated, filled and freed inside one call.
#include <cstdio>
#include <string>
#include <vector>

#include "bench_internal.cuh"
#include "cublas_loader.cuh"

using namespace marlin::bench;

namespace {

constexpr int32_t kTileN = 64;  // output columns per packed kernel tile (docs/format.md "Tiles")
constexpr int32_t kTileK = 64;  // k rows per kernel tile: Kp = ceil(K / 64) * 64 for INT4 and every 8-bit format
// Scales. INT4: [0.001, 0.01) with codes q - 8 in [-8, 7] gives |w| < 0.08, the magnitude of real Llama weights, so
// neither accumulation nor output saturate. INT8: [0.0001, 0.001) with q - 128 in [-128, 127] gives |w| < 0.128.
// FP8: logical scales [0.0001, 0.001) times e4m3 values up to 448 (real FP8 checkpoints: amax / 448).
constexpr float kScaleLo4 = 0.001f;
constexpr float kScaleHi4 = 0.01f;
constexpr float kScaleLo8 = 0.0001f;
constexpr float kScaleHi8 = 0.001f;
// FP8 scales are stored with the exponent-bias correction folded in (docs/format.md "FP8"): s * 2^8 for fp16,
// s * 2^120 for bf16.
constexpr float kFp8FoldFp16 = 256.0f;
constexpr float kFp8FoldBf16 = 1.329227995784916e36f;  // 2^120
// Activations in [-1, 1): typical post-norm hidden states.
constexpr float kActLo = -1.0f;
constexpr float kActHi = 1.0f;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

std::string shape_str(int32_t m, int32_t n, int32_t k) {
  return "M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k);
}

marlin_status check_shape(const char* fn, int32_t m, int32_t n, int32_t k, marlin_dtype dtype) {
  if (m < 1 || n < 1 || k < 1) return fail(MARLIN_E_INVALID_ARGUMENT, std::string(fn) + ": " + shape_str(m, n, k) +
                                                                         " (all sizes must be >= 1)");
  if (dtype != MARLIN_FP16 && dtype != MARLIN_BF16) {
    return fail(MARLIN_E_INVALID_ARGUMENT, std::string(fn) + ": dtype must be MARLIN_FP16 or MARLIN_BF16");
  }
  return MARLIN_OK;
}

const char* variant_name(marlin_bench_variant v) {
  switch (v) {
    case MARLIN_BENCH_INT4: return "int4";
    case MARLIN_BENCH_INT8: return "int8";
    case MARLIN_BENCH_FP8: return "fp8";
    case MARLIN_BENCH_INT4_SPARSE: return "int4-sparse";
  }
  return "?";
}

// Records an addon call's failure with the addon's own CUDA error (its copy of the runtime holds it).
marlin_status fail_addon(const marlin_bench_gemm_api* api, marlin_status st, const std::string& call) {
  return fail_addon_call(api->prefix, call, st, api->last_cuda_error_string);
}

// ---- Marlin (any addon, any variant) ----

struct MarlinCtx {
  const marlin_bench_gemm_api* api;
  std::vector<marlin_gemm_plan*> plans;  // one per rotation copy (the weight operands are fixed in a plan)
  const void* x;
  void* y;
  void* workspace;
  size_t workspace_bytes;
  ~MarlinCtx() {
    for (marlin_gemm_plan* p : plans) api->entry.plan_destroy(p);
  }
};

marlin_status marlin_launch(void* ctx, int32_t rotation, void* stream) {
  MarlinCtx* c = static_cast<MarlinCtx*>(ctx);
  const marlin_status st =
      c->api->entry.plan_launch(c->plans[rotation], c->x, c->y, nullptr, c->workspace, c->workspace_bytes, stream);
  if (st != MARLIN_OK) return fail_addon(c->api, st, "_plan_launch");
  return MARLIN_OK;
}

// ---- cuBLAS ----

struct CublasCtx {
  const CublasHandle* handle;
  marlin_dtype dtype;
  int32_t m, n, k;
  const void* x;
  std::vector<const void*> w;
  void* y;
};

marlin_status cublas_launch(void* ctx, int32_t rotation, void* /*stream: bound to the handle*/) {
  const CublasCtx* c = static_cast<const CublasCtx*>(ctx);
  return cublas_row_major_gemm(*c->handle, c->dtype, c->m, c->n, c->k, c->x, c->w[rotation], c->y);
}

}  // namespace

extern "C" marlin_status marlin_bench_dense_gemm(const marlin_bench_dense_args* a, marlin_bench_gemm_result* out) {
  clear_error();
  if (a == nullptr || out == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_dense_gemm: null argument");
  MB_TRY(check_shape("marlin_bench_dense_gemm", a->m, a->n, a->k, a->dtype));
  if (a->variant != MARLIN_BENCH_INT4 && a->variant != MARLIN_BENCH_INT8 && a->variant != MARLIN_BENCH_FP8 &&
      a->variant != MARLIN_BENCH_INT4_SPARSE) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                "marlin_bench_dense_gemm: unknown variant " + std::to_string(static_cast<int>(a->variant)));
  }
  if (a->variant == MARLIN_BENCH_FP8 && a->has_zeros != 0) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_dense_gemm: FP8 weights have no zero points");
  }
  const marlin_bench_gemm_api* api = nullptr;
  MB_TRY(resolve_api(a->api, &api));
  const bool sparse = a->variant == MARLIN_BENCH_INT4_SPARSE;
  const bool eight = a->variant != MARLIN_BENCH_INT4 && !sparse;
  const int32_t bits = eight ? 8 : 4;
  const int32_t group = a->group_size <= 0 ? a->k : a->group_size;

  // Packed sizes, docs/format.md "Padding" and "Tiles": Np/64 * Kp/64 kernel tiles of 64 x 64 weights.
  const int64_t kp = round_up(a->k, kTileK);
  const int64_t np = round_up(a->n, kTileN);
  const int64_t groups = (a->k + group - 1) / group;
  // 2:4 tiles hold half the codes plus 2-bit positions: 384 x bits bytes (docs/format.md "2:4 sparse (packed)").
  const size_t tile_bytes = static_cast<size_t>(kTileN) * kTileK * bits / 8 * (sparse ? 3 : 4) / 4;
  const size_t tile_count = static_cast<size_t>(np / kTileN) * static_cast<size_t>(kp / kTileK);
  const size_t code_bytes = tile_count * tile_bytes;
  const size_t scale_bytes = static_cast<size_t>(groups * np) * 2;
  const size_t zero_bytes = a->has_zeros ? static_cast<size_t>(groups * np) : 0;
  const size_t copy_bytes = align256(code_bytes) + align256(scale_bytes) + align256(zero_bytes);

  const int64_t lda = round_up(a->k, 8);
  const int64_t ldc = round_up(a->n, 8);
  const size_t x_bytes = static_cast<size_t>(a->m) * static_cast<size_t>(lda) * 2;
  const size_t y_bytes = static_cast<size_t>(a->m) * static_cast<size_t>(ldc) * 2;

  marlin_gemm_problem p{};
  p.dtype = a->dtype;
  p.m = a->m;
  p.n = a->n;
  p.k = a->k;
  p.n_padded = static_cast<int32_t>(np);
  p.k_padded = static_cast<int32_t>(kp);
  p.bits = bits;
  p.group_size = group;
  p.lda = lda;
  p.ldc = ldc;
  marlin_gemm_launch launch{};
  launch.config_id = a->config_id;
  launch.splits = a->splits;
  launch.flags = a->serial != 0 ? MARLIN_LAUNCH_SERIAL : 0u;
  launch.tail_splits = a->tail_splits;
  // zeros decide the workspace size too (p.zeros non-NULL = has zero points); any non-NULL pointer says so here.
  static const uint8_t kHasZeros = 1;
  p.zeros = a->has_zeros ? &kHasZeros : nullptr;
  const size_t ws_bytes = api->entry.workspace_bytes(&p, &launch);
  p.zeros = nullptr;

  int32_t rotations = 0;
  MB_TRY(marlin_bench_rotation_count(copy_bytes, x_bytes + y_bytes + ws_bytes, &rotations));

  GemmBuffers b;
  MB_TRY(b.allocate(x_bytes, y_bytes, ws_bytes));
  const cudaStream_t s = b.stream.get();
  uint64_t seed = a->seed;
  MB_TRY(marlin_bench_fill_halves(b.x.get(), x_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  MB_TRY(marlin_bench_fill_halves(b.y.get(), y_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  const marlin_status ws_st = api->entry.workspace_init(b.ws.get(), ws_bytes, s);
  if (ws_st != MARLIN_OK) return fail_addon(api, ws_st, "_workspace_init");

  float scale_lo = eight ? kScaleLo8 : kScaleLo4;
  float scale_hi = eight ? kScaleHi8 : kScaleHi4;
  if (a->variant == MARLIN_BENCH_FP8) {
    const float fold = a->dtype == MARLIN_BF16 ? kFp8FoldBf16 : kFp8FoldFp16;
    scale_lo *= fold;
    scale_hi *= fold;
  }
  std::vector<DeviceBuffer> copies(static_cast<size_t>(rotations));
  MarlinCtx ctx{api, {}, b.x.get(), b.y.get(), b.ws.get(), ws_bytes};
  for (int32_t r = 0; r < rotations; ++r) {
    MB_TRY(copies[r].allocate(copy_bytes));
    uint8_t* base = copies[r].as<uint8_t>();
    uint8_t* codes = base;
    uint8_t* scales = base + align256(code_bytes);
    uint8_t* zeros = a->has_zeros ? scales + align256(scale_bytes) : nullptr;
    if (a->variant == MARLIN_BENCH_FP8) {
      MB_TRY(marlin_bench_fill_e4m3(codes, code_bytes, seed++, s));
    } else if (sparse) {
      MB_TRY(marlin_bench_fill_sparse24(codes, tile_count, seed++, s));
    } else {
      MB_TRY(marlin_bench_fill_bytes(codes, code_bytes, seed++, s));
    }
    MB_TRY(marlin_bench_fill_halves(scales, scale_bytes / 2, a->dtype, scale_lo, scale_hi, seed++, s));
    if (zeros != nullptr) MB_TRY(marlin_bench_fill_u8_below(zeros, zero_bytes, eight ? 256 : 16, seed++, s));
    p.w = codes;
    p.scales = scales;
    p.zeros = zeros;
    marlin_gemm_plan* plan = nullptr;
    const marlin_status plan_st = api->entry.plan_create(&p, &launch, &plan);
    if (plan_st != MARLIN_OK) {
      return fail_addon(api, plan_st,
                        std::string("_plan_create (") + variant_name(a->variant) + ", " + shape_str(a->m, a->n, a->k) +
                            ", config " + std::to_string(a->config_id) + ", splits " + std::to_string(a->splits) +
                            ", tail splits " + std::to_string(a->tail_splits) + ")");
    }
    ctx.plans.push_back(plan);
  }
  // One eager launch per plan, outside any capture: whatever a plan does on its first launch (descriptor encoding,
  // lazy loading) is done before the graph is built.
  for (int32_t r = 0; r < rotations; ++r) MB_TRY(marlin_launch(&ctx, r, s));
  MB_CUDA(cudaStreamSynchronize(s));

  MB_TRY(time_rotations(marlin_launch, &ctx, rotations, a->calls, a->replays, s, &out->timing));
  out->bytes_per_rotation = code_bytes + scale_bytes + zero_bytes;
  out->workspace_bytes = ws_bytes;
  // How the timed launches ran (every copy's plan has the same problem and launch).
  out->cluster_size = api->entry.plan_cluster_size(ctx.plans[0]);
  out->tail_blocks = api->entry.plan_tail_blocks(ctx.plans[0]);
  out->m_run = a->m;
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_cublas_gemm(const marlin_bench_cublas_args* a, marlin_bench_gemm_result* out) {
  clear_error();
  if (a == nullptr || out == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_cublas_gemm: null argument");
  MB_TRY(check_shape("marlin_bench_cublas_gemm", a->m, a->n, a->k, a->dtype));
  const CublasApi* api = nullptr;
  MB_TRY(cublas_api(&api));

  const size_t w_bytes = static_cast<size_t>(a->k) * static_cast<size_t>(a->n) * 2;
  const size_t x_bytes = static_cast<size_t>(a->m) * static_cast<size_t>(a->k) * 2;
  const size_t y_bytes = static_cast<size_t>(a->m) * static_cast<size_t>(a->n) * 2;
  int32_t rotations = 0;
  MB_TRY(marlin_bench_rotation_count(align256(w_bytes), x_bytes + y_bytes + kCublasWorkspaceBytes, &rotations));

  GemmBuffers b;
  MB_TRY(b.allocate(x_bytes, y_bytes, kCublasWorkspaceBytes));
  const cudaStream_t s = b.stream.get();
  uint64_t seed = a->seed;
  MB_TRY(marlin_bench_fill_halves(b.x.get(), x_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  MB_TRY(marlin_bench_fill_halves(b.y.get(), y_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  // Dense weights of the same magnitude as the dequantized INT4 ones.
  std::vector<DeviceBuffer> copies(static_cast<size_t>(rotations));
  CublasCtx ctx{};
  for (int32_t r = 0; r < rotations; ++r) {
    MB_TRY(copies[r].allocate(w_bytes));
    MB_TRY(marlin_bench_fill_halves(copies[r].get(), w_bytes / 2, a->dtype, -0.08f, 0.08f, seed++, s));
    ctx.w.push_back(copies[r].get());
  }
  MB_CUDA(cudaStreamSynchronize(s));

  CublasHandle h;
  MB_TRY(h.create(s, b.ws.get(), b.ws.bytes()));
  ctx.handle = &h;
  ctx.dtype = a->dtype;
  ctx.m = a->m;
  ctx.n = a->n;
  ctx.k = a->k;
  ctx.x = b.x.get();
  ctx.y = b.y.get();

  return time_baseline(cublas_launch, &ctx, rotations, a->calls, a->replays, s, w_bytes, a->m, out);
}
