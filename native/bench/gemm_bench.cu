// GEMM benchmarks: the Marlin dense W4A16 kernel and the cuBLAS fp16/bf16 baseline, on the same shape, with the same
// rotation and graph method (marlin_bench_time_graph). Every buffer is allocated, filled and freed inside one call.
#include <cstdio>
#include <string>
#include <vector>

#include "bench_internal.cuh"
#include "cublas_loader.cuh"

using namespace marlin::bench;

namespace {

constexpr int32_t kTileN = 64;      // output columns per packed tile (docs/format.md "Tiles")
constexpr int32_t kTileK4 = 64;     // k rows per INT4 tile
constexpr size_t kTileBytes = 2048; // bytes per tile
// Scales are drawn from [0.001, 0.01): with codes q - 8 in [-8, 7] the dequantized weights are |w| < 0.08, the
// magnitude of real Llama weights, so neither accumulation nor output saturate.
constexpr float kScaleLo = 0.001f;
constexpr float kScaleHi = 0.01f;
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

// ---- Marlin dense ----

struct DenseCtx {
  marlin_dense_problem problem;     // x, y, perm, bias fixed; w / scales / zeros swapped per rotation
  marlin_dense_launch launch;
  std::vector<const void*> w, scales;
  std::vector<const uint8_t*> zeros;
  void* workspace;
  size_t workspace_bytes;
};

marlin_status dense_launch(void* ctx, int32_t rotation, void* stream) {
  DenseCtx* c = static_cast<DenseCtx*>(ctx);
  marlin_dense_problem p = c->problem;
  p.w = c->w[rotation];
  p.scales = c->scales[rotation];
  p.zeros = c->zeros[rotation];
  const marlin_status st = marlin_dense_gemm(&p, &c->launch, c->workspace, c->workspace_bytes, stream);
  if (st != MARLIN_OK) {
    std::string msg = std::string("marlin_dense_gemm failed: ") + marlin_status_string(st) + " (config " +
                      std::to_string(c->launch.config_id) + ", splits " + std::to_string(c->launch.splits) + ")";
    if (st == MARLIN_E_CUDA) msg += std::string("; CUDA: ") + marlin_last_cuda_error_string();
    return fail(st, msg);
  }
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
  const int32_t group = a->group_size <= 0 ? a->k : a->group_size;

  // Packed sizes, docs/format.md "Padding" and "Tiles".
  const int64_t kp = round_up(a->k, kTileK4);
  const int64_t np = round_up(a->n, kTileN);
  const int64_t groups = (a->k + group - 1) / group;
  const size_t code_bytes = static_cast<size_t>(np / kTileN) * static_cast<size_t>(kp / kTileK4) * kTileBytes;
  const size_t scale_bytes = static_cast<size_t>(groups * np) * 2;
  const size_t zero_bytes = a->has_zeros ? static_cast<size_t>(groups * np) : 0;
  const size_t copy_bytes = align256(code_bytes) + align256(scale_bytes) + align256(zero_bytes);

  const int64_t lda = round_up(a->k, 8);
  const int64_t ldc = round_up(a->n, 8);
  const size_t x_bytes = static_cast<size_t>(a->m) * static_cast<size_t>(lda) * 2;
  const size_t y_bytes = static_cast<size_t>(a->m) * static_cast<size_t>(ldc) * 2;

  DenseCtx ctx{};
  marlin_dense_problem& p = ctx.problem;
  p.dtype = a->dtype;
  p.m = a->m;
  p.n = a->n;
  p.k = a->k;
  p.n_padded = static_cast<int32_t>(np);
  p.k_padded = static_cast<int32_t>(kp);
  p.bits = 4;
  p.group_size = group;
  p.lda = lda;
  p.ldc = ldc;
  ctx.launch.config_id = a->config_id;
  ctx.launch.splits = a->splits;
  ctx.launch.flags = a->serial != 0 ? MARLIN_DENSE_LAUNCH_SERIAL : 0u;
  ctx.launch.tail_splits = a->tail_splits;
  const size_t ws_bytes = marlin_dense_workspace_bytes(&p, &ctx.launch);

  int32_t rotations = 0;
  MB_TRY(marlin_bench_rotation_count(copy_bytes, x_bytes + y_bytes + ws_bytes, &rotations));

  Stream stream;
  MB_TRY(stream.create());
  const cudaStream_t s = stream.get();
  DeviceBuffer x;
  DeviceBuffer y;
  DeviceBuffer ws;
  MB_TRY(x.allocate(x_bytes));
  MB_TRY(y.allocate(y_bytes));
  MB_TRY(ws.allocate(ws_bytes));
  uint64_t seed = a->seed;
  MB_TRY(marlin_bench_fill_halves(x.get(), x_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  MB_TRY(marlin_bench_fill_halves(y.get(), y_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  const marlin_status ws_st = marlin_dense_workspace_init(ws.get(), ws_bytes, s);
  if (ws_st != MARLIN_OK) {
    return fail(ws_st, std::string("marlin_dense_workspace_init failed: ") + marlin_status_string(ws_st));
  }

  std::vector<DeviceBuffer> copies(static_cast<size_t>(rotations));
  for (int32_t r = 0; r < rotations; ++r) {
    MB_TRY(copies[r].allocate(copy_bytes));
    uint8_t* base = copies[r].as<uint8_t>();
    uint8_t* codes = base;
    uint8_t* scales = base + align256(code_bytes);
    uint8_t* zeros = a->has_zeros ? scales + align256(scale_bytes) : nullptr;
    MB_TRY(marlin_bench_fill_bytes(codes, code_bytes, seed++, s));
    MB_TRY(marlin_bench_fill_halves(scales, scale_bytes / 2, a->dtype, kScaleLo, kScaleHi, seed++, s));
    if (zeros != nullptr) MB_TRY(marlin_bench_fill_u8_below(zeros, zero_bytes, 16, seed++, s));
    ctx.w.push_back(codes);
    ctx.scales.push_back(scales);
    ctx.zeros.push_back(zeros);
  }
  p.x = x.get();
  p.y = y.get();
  ctx.workspace = ws.get();
  ctx.workspace_bytes = ws_bytes;
  MB_CUDA(cudaStreamSynchronize(s));

  marlin_bench_timing_request req{};
  req.launch = dense_launch;
  req.ctx = &ctx;
  req.rotations = rotations;
  req.calls = a->calls;
  req.replays = a->replays;
  req.stream = s;
  MB_TRY(marlin_bench_time_graph(&req, &out->timing));
  out->bytes_per_rotation = code_bytes + scale_bytes + zero_bytes;
  out->workspace_bytes = ws_bytes;
  // How the timed launches ran (a plan of the same problem and launch: the rule depends on nothing else).
  p.w = ctx.w[0];
  p.scales = ctx.scales[0];
  p.zeros = ctx.zeros[0];
  marlin_dense_plan* plan = nullptr;
  const marlin_status plan_st = marlin_dense_plan_create(&p, &ctx.launch, &plan);
  if (plan_st != MARLIN_OK) return fail(plan_st, std::string("marlin_dense_plan_create failed: ") + marlin_status_string(plan_st));
  out->cluster_size = marlin_dense_plan_cluster_size(plan);
  out->tail_blocks = marlin_dense_plan_tail_blocks(plan);
  marlin_dense_plan_destroy(plan);
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

  Stream stream;
  MB_TRY(stream.create());
  const cudaStream_t s = stream.get();
  DeviceBuffer x;
  DeviceBuffer y;
  DeviceBuffer ws;
  MB_TRY(x.allocate(x_bytes));
  MB_TRY(y.allocate(y_bytes));
  MB_TRY(ws.allocate(kCublasWorkspaceBytes));
  uint64_t seed = a->seed;
  MB_TRY(marlin_bench_fill_halves(x.get(), x_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
  MB_TRY(marlin_bench_fill_halves(y.get(), y_bytes / 2, a->dtype, kActLo, kActHi, seed++, s));
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
  MB_TRY(h.create(s, ws.get(), ws.bytes()));
  ctx.handle = &h;
  ctx.dtype = a->dtype;
  ctx.m = a->m;
  ctx.n = a->n;
  ctx.k = a->k;
  ctx.x = x.get();
  ctx.y = y.get();

  marlin_bench_timing_request req{};
  req.launch = cublas_launch;
  req.ctx = &ctx;
  req.rotations = rotations;
  req.calls = a->calls;
  req.replays = a->replays;
  req.stream = s;
  MB_TRY(marlin_bench_time_graph(&req, &out->timing));
  out->bytes_per_rotation = w_bytes;
  out->workspace_bytes = kCublasWorkspaceBytes;
  out->cluster_size = 0;
  return MARLIN_OK;
}
