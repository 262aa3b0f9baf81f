// Native self-test of the shared kernels, independent of Node: packs random codes with the docs/format.md formulas
// (written again here, independently of the TypeScript packer) for INT4, INT8 (marlin_dense_*) and FP8 e4m3
// (marlin_fp8_*), runs every configuration, split count and feature, and compares with a float64 CPU reference of the
// same semantics. The second run of every case goes through a prepared plan (*_plan_create / _launch) and must equal
// the first bit for bit.
// Build + run (GPU host):  see tools/native-selftest.sh. Exit code 0 = all cases pass.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "case_check.h"
#include "host_pack.h"
#include "kit/host.h"
#include "marlin/dense.h"
#include "marlin/fp8.h"
#include "marlin_dense_instances.inc"  // generated: X(id, wgmma, ws, ...) per compiled configuration of int4 / int8
#include "marlin_fp8_instances.inc"    // and of fp8

namespace {

using namespace marlin_test;

// An INT4 problem without zero points, act-order or bias (callers set those); ldc = n.
marlin_dense_problem dense_problem(marlin_dtype dt, int m, int n, int k, int np, int kp, int group, int64_t lda,
                                   const void* x, const void* w, const void* scales, void* y) {
  marlin_dense_problem p{};
  p.dtype = dt;
  p.m = m;
  p.n = n;
  p.k = k;
  p.n_padded = np;
  p.k_padded = kp;
  p.bits = 4;
  p.group_size = group;
  p.lda = lda;
  p.ldc = n;
  p.x = x;
  p.w = w;
  p.scales = scales;
  p.y = y;
  return p;
}

// The weight format of a case, and the addon entry points that run it.
enum Fmt : int { kInt4 = 0, kInt8 = 1, kFp8 = 2 };
using Api = marlin_gemm_api;
const Api kDenseApi = MARLIN_GEMM_API_OF(marlin_dense), kFp8Api = MARLIN_GEMM_API_OF(marlin_fp8);
const Api& api_of(int fmt) { return fmt == kFp8 ? kFp8Api : kDenseApi; }
const char* fmt_name(int fmt) { return fmt == kInt4 ? "int4" : fmt == kInt8 ? "int8" : "fp8"; }

struct Case {
  marlin_dtype dt;
  int m, n, k, group;
  bool zeros, act_order, bias;
  int config, splits;
  int64_t lda_pad;
  int tail = 0;  // marlin_gemm_launch.tail_splits (balanced last wave)
  int fmt = kInt4;
};

// check = false (profile runs): skip the f64 reference; NaN and run-to-run equality are still checked.
int g_clustered_cases = 0;   // split-K cases whose default launch reduced across a cluster (sm_90)
int g_clustered_chains = 0;  // chain links that did (chain_case)
int g_tail_cases = 0;        // cases whose plan ran a balanced last wave's second launch

bool run_case(const Case& c, std::mt19937& rng, bool verbose, bool check = true) {
  const int m = c.m, n = c.n, k = c.k, g = c.group;
  const int np = (n + 63) / 64 * 64, kp = (k + 63) / 64 * 64, groups = (k + g - 1) / g;
  const int64_t lda = k + c.lda_pad;
  const Api& api = api_of(c.fmt);
  const int default_zero = c.fmt == kInt4 ? 8 : c.fmt == kInt8 ? 128 : 0;
  // FP8 scales are stored with the exponent-bias correction folded in (docs/format.md "FP8 e4m3").
  const int fold = c.fmt == kFp8 ? (c.dt == MARLIN_FP16 ? 8 : 120) : 0;
  std::uniform_int_distribution<int> code(0, c.fmt == kInt4 ? 15 : 255);
  std::uniform_real_distribution<float> uni(-1.f, 1.f), sc(0.002f, 0.02f);
  // Codes in packed (act-order-sorted) row order; perm maps packed row -> original column.
  std::vector<uint8_t> q(size_t(k) * n);
  for (auto& v : q) {
    v = uint8_t(code(rng));
    if (c.fmt == kFp8 && (v & 0x7F) == 0x7F) v ^= 1;  // never a NaN code (the packer refuses them)
  }
  std::vector<uint16_t> scales(size_t(groups) * np, 0), stored(size_t(groups) * np, 0);
  std::vector<uint8_t> zeros(size_t(groups) * np, uint8_t(default_zero));
  for (int gi = 0; gi < groups; ++gi)
    for (int j = 0; j < n; ++j) {
      const uint16_t s = float_to_bits(sc(rng), c.dt);
      scales[size_t(gi) * np + j] = s;
      stored[size_t(gi) * np + j] = float_to_bits(std::ldexp(bits_to_float(s, c.dt), fold), c.dt);  // exact
      if (c.zeros) zeros[size_t(gi) * np + j] = uint8_t(code(rng));
    }
  std::vector<int32_t> perm(k);
  for (int i = 0; i < k; ++i) perm[i] = i;
  if (c.act_order) std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<uint16_t> x(size_t(m) * lda), bias(n);
  for (auto& v : x) v = float_to_bits(uni(rng), c.dt);
  for (auto& v : bias) v = float_to_bits(uni(rng), c.dt);
  // The padding code is irrelevant (activations are zero-filled past K) but must not be a NaN code.
  const auto packed = c.fmt == kInt4 ? pack_int4(q, k, n, kp, np, 8) : pack_8bit(q, k, n, kp, np, default_zero);

  // Reference: w = round_T((q - z) * s), y = round_T(sum f64(x[perm]) * w + bias).
  std::vector<float> wdq(size_t(k) * n);
  for (int kk = 0; kk < k; ++kk)
    for (int j = 0; j < n; ++j) {
      const int gi = kk / g;
      const float s = bits_to_float(scales[size_t(gi) * np + j], c.dt);
      const int z = zeros[size_t(gi) * np + j];
      const uint8_t qv = q[size_t(kk) * n + j];
      const double w = c.fmt == kFp8 ? e4m3_value(qv) : double(int(qv) - z);
      wdq[size_t(kk) * n + j] = bits_to_float(float_to_bits(float(w * s), c.dt), c.dt);  // w * s exact in f64
    }
  std::vector<double> ref(size_t(m) * n, 0.0);
  for (int i = 0; check && i < m; ++i) {
    double* r = &ref[size_t(i) * n];
    for (int kk = 0; kk < k; ++kk) {
      const double xv = bits_to_float(x[size_t(i) * lda + perm[kk]], c.dt);
      const float* wr = &wdq[size_t(kk) * n];
      for (int j = 0; j < n; ++j) r[j] += xv * wr[j];
    }
    if (c.bias)
      for (int j = 0; j < n; ++j) r[j] += bits_to_float(bias[j], c.dt);
  }

  void *dx, *dw, *ds, *dz, *dp, *db, *dy, *dws;
  CHECK_CUDA(cudaMalloc(&dx, x.size() * 2));
  CHECK_CUDA(cudaMalloc(&dw, packed.size() * 4));
  CHECK_CUDA(cudaMalloc(&ds, scales.size() * 2));
  CHECK_CUDA(cudaMalloc(&dz, zeros.size()));
  CHECK_CUDA(cudaMalloc(&dp, perm.size() * 4));
  CHECK_CUDA(cudaMalloc(&db, bias.size() * 2));
  CHECK_CUDA(cudaMalloc(&dy, size_t(m) * n * 2));
  CHECK_CUDA(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dw, packed.data(), packed.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(ds, stored.data(), stored.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dz, zeros.data(), zeros.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dp, perm.data(), perm.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(db, bias.data(), bias.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemset(dy, 0xff, size_t(m) * n * 2));  // NaN poison

  marlin_dense_problem p = dense_problem(c.dt, m, n, k, np, kp, g, lda, dx, dw, ds, dy);
  p.bits = c.fmt == kInt4 ? 4 : 8;
  p.zeros = c.zeros ? static_cast<uint8_t*>(dz) : nullptr;
  p.perm = c.act_order ? static_cast<int32_t*>(dp) : nullptr;
  p.bias = c.bias ? db : nullptr;
  marlin_dense_launch l{c.config, c.splits, 0u, c.tail};
  const size_t wsb = api.workspace_bytes(&p, &l);
  CHECK_CUDA(cudaMalloc(&dws, wsb));
  if (api.workspace_init(dws, wsb, nullptr) != MARLIN_OK) {
    std::printf("FAIL config %d: no workspace size (unknown config id?)\n", c.config);
    return false;
  }
  std::vector<uint16_t> y1(size_t(m) * n), y2(size_t(m) * n);
  int cluster = 0;  // blocks per cluster of the default launch (1: split-K through the workspace, or none)
  int tail_blocks = 0;  // blocks of its balanced last wave's second launch (0: none)
  marlin_status st = api.gemm(&p, &l, dws, wsb, nullptr);
  const int major = device_major();
  if (st == MARLIN_E_UNSUPPORTED && major < 9) {  // the hopper family runs on sm_90 only
    for (void* ptr : {dx, dw, ds, dz, dp, db, dy, dws}) CHECK_CUDA(cudaFree(ptr));
    if (verbose) std::printf("skip config %d: not for sm_%d0\n", c.config, major);
    return true;
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaMemcpy(y1.data(), dy, y1.size() * 2, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemset(dy, 0xff, size_t(m) * n * 2));
  if (st == MARLIN_OK) {  // the same problem through a prepared plan (x, y, bias given at launch); split-K launches
    // reduce through the workspace here, so `same` also holds the cluster reduction (sm_90) to the workspace's bits
    marlin_dense_problem fixed = p;
    fixed.x = nullptr;
    fixed.y = nullptr;
    fixed.bias = nullptr;
    marlin_dense_launch lw = l;
    lw.flags |= MARLIN_DENSE_LAUNCH_WORKSPACE_SPLITK;
    marlin_dense_plan* plan = nullptr;
    st = api.plan_create(&fixed, &l, &plan);  // how the default launch above ran
    cluster = api.plan_cluster_size(plan);
    tail_blocks = api.plan_tail_blocks(plan);
    api.plan_destroy(plan);
    if (cluster > 1) ++g_clustered_cases;
    if (tail_blocks > 0) ++g_tail_cases;
    plan = nullptr;
    if (st == MARLIN_OK) st = api.plan_create(&fixed, &lw, &plan);
    if (st == MARLIN_OK && api.plan_cluster_size(plan) != 1) st = MARLIN_E_INVALID_ARGUMENT;  // flag ignored
    if (st == MARLIN_OK && api.plan_workspace_bytes(plan) != wsb) st = MARLIN_E_WORKSPACE;
    if (st == MARLIN_OK) st = api.plan_launch(plan, p.x, p.y, p.bias, dws, wsb, nullptr);
    api.plan_destroy(plan);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaMemcpy(y2.data(), dy, y2.size() * 2, cudaMemcpyDeviceToHost));
  for (void* ptr : {dx, dw, ds, dz, dp, db, dy, dws}) CHECK_CUDA(cudaFree(ptr));

  const RefError err = ref_error(y1, ref, c.dt);
  const bool nan = err.nan;
  const bool same = std::memcmp(y1.data(), y2.data(), y1.size() * 2) == 0;
  // Without a reference (check = false) there is nothing to compare against: printed as nan.
  const double rel = check ? err.rel : NAN;
  const double max_err = check ? err.max_err : NAN;
  const double tol = c.dt == MARLIN_FP16 ? 2e-3 : 1.2e-2;  // output rounding to T dominates: 2^-11 / 2^-8 relative
  const bool ok = st == MARLIN_OK && !nan && same && (!check || rel < tol);
  if (!ok || verbose)
    std::printf("%s %s %s m=%d n=%d k=%d g=%d zeros=%d act=%d bias=%d cfg=%d splits=%d cluster=%d tail=%d/%d lda+%lld: status=%d rel=%.2e max=%.2e nan=%d det=%d\n",
                ok ? "ok  " : "FAIL", fmt_name(c.fmt), c.dt == MARLIN_FP16 ? "fp16" : "bf16", m, n, k, g, c.zeros, c.act_order, c.bias,
                c.config, c.splits, cluster, c.tail, tail_blocks, (long long)c.lda_pad, int(st), rel, max_err, int(nan),
                int(same));
  return ok;
}

// Overlapped launches (programmatic dependent launch, the default on sm_90+; dense.h MARLIN_DENSE_LAUNCH_SERIAL): a
// chain of dependent GEMMs on one stream that ping-pongs two activation buffers, so every call reads what the previous
// one wrote (read after write) and overwrites what the one before it read (write after read), with the split-K
// launches sharing one workspace. Launched overlapped, serially, and as a captured graph replayed twice, the chain must
// give the same bits; the serial result must be finite. `links` = (config, splits) per call, cycled; n = k.
bool chain_case(const std::vector<std::pair<int, int>>& links, int m, int n, int calls, std::mt19937& rng,
                bool verbose) {
  // Values must stay O(1) through the chain, or the comparison is between infinities: codes 1..15 (q - 8 has mean 0;
  // codes 0..15 have mean -0.5, which grows a rank-one component ~10x per call) and scales with gain ~1 per call:
  // sqrt(k) * rms(q - 8) * s = 45 * 4.32 * 0.0051 for k = 2048.
  const int k = n, g = 128, groups = k / g;
  std::uniform_int_distribution<int> code(1, 15);
  const float s0 = 1.0f / (std::sqrt(float(k)) * 4.32f);
  std::uniform_real_distribution<float> sc(0.9f * s0, 1.1f * s0);
  const marlin_dtype dt = MARLIN_FP16;
  void* dw[2];
  void* ds[2];
  for (int i = 0; i < 2; ++i) {
    std::vector<uint8_t> q(size_t(k) * n);
    for (auto& v : q) v = uint8_t(code(rng));
    std::vector<uint16_t> scales(size_t(groups) * n);
    for (auto& v : scales) v = float_to_bits(sc(rng), dt);
    dw[i] = device_copy(pack_int4(q, k, n, k, n, 8));
    ds[i] = device_copy(scales);
  }
  ChainIo io = chain_io(m, k, n, dt, rng);
  const std::vector<uint16_t>& x = io.x;
  void* (&buf)[2] = io.buf;
  size_t wsb = 0;
  for (const auto& [cfg, sp] : links) {
    marlin_dense_problem p = dense_problem(dt, m, n, k, n, k, g, k, buf[0], dw[0], ds[0], buf[1]);
    const marlin_dense_launch l{cfg, sp, 0};
    wsb = std::max(wsb, marlin_dense_workspace_bytes(&p, &l));
  }
  void* dws = nullptr;
  CHECK_CUDA(cudaMalloc(&dws, wsb));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const ChainRuns runs = run_chain(marlin_dense_workspace_init(dws, wsb, stream), x, buf, m, n, stream, [&](uint32_t flags) {
    marlin_status st = MARLIN_OK;
    for (int i = 0; i < calls && st == MARLIN_OK; ++i) {
      const auto [cfg, sp] = links[i % links.size()];
      marlin_dense_problem p = dense_problem(dt, m, n, k, n, k, g, k, buf[i & 1], dw[i & 1], ds[i & 1], buf[(i + 1) & 1]);
      const marlin_dense_launch l{cfg, sp, flags};
      st = marlin_dense_gemm(&p, &l, dws, wsb, stream);
    }
    return st;
  });
  CHECK_CUDA(cudaStreamDestroy(stream));
  for (void* ptr : {dw[0], dw[1], ds[0], ds[1], buf[0], buf[1], dws}) CHECK_CUDA(cudaFree(ptr));
  const int major = device_major();
  std::string desc;
  for (const auto& [cfg, sp] : links) {
    // How each link launches: split-K across a cluster of N blocks (sm_90) shows as /cN.
    marlin_dense_problem p = dense_problem(dt, m, n, k, n, k, g, k, nullptr, dw[0], ds[0], nullptr);
    const marlin_dense_launch l{cfg, sp, 0};
    marlin_dense_plan* plan = nullptr;
    int cluster = 0;
    if (marlin_dense_plan_create(&p, &l, &plan) == MARLIN_OK) cluster = marlin_dense_plan_cluster_size(plan);
    marlin_dense_plan_destroy(plan);
    if (cluster > 1) ++g_clustered_chains;
    desc += " " + std::to_string(cfg) + "/" + std::to_string(sp) + (cluster > 1 ? "/c" + std::to_string(cluster) : "");
  }
  if (runs.st == MARLIN_E_UNSUPPORTED && major < 9) {
    if (verbose) std::printf("skip chain%s: not for sm_%d0\n", desc.c_str(), major);
    return true;
  }
  return check_chain(runs, dt, m, n, calls, desc, verbose);
}

}  // namespace

// `dense_selftest --profile M N K config splits [nocheck]`: one problem run eagerly twice (two kernel launches each:
// gemm and the prepared plan), for ncu / compute-sanitizer; `nocheck` skips the f64 CPU reference (large shapes).
int profile(int argc, char** argv) {
  if (argc < 7) return 2;
  const bool check = !(argc > 7 && std::strcmp(argv[7], "nocheck") == 0);
  std::mt19937 rng(99);
  Case c{MARLIN_FP16, std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]), 128, false, false, false,
         std::atoi(argv[5]), std::atoi(argv[6]), 0};
  bool ok = true;
  for (int i = 0; i < 2; ++i) ok = run_case(c, rng, true, check) && ok;
  return ok ? 0 : 1;
}

__global__ void empty_kernel() {}

// The first warp-specialised configuration of this build (-1 if none), from the generated instance list.
int first_ws_config() {
  int id = -1;
#define MARLIN_SELFTEST_WS(ID, WG, WS, MT, NT, KS, ST) \
  if (WS && id < 0) id = ID;
  MARLIN_INT4_FOR_EACH_CONFIG(MARLIN_SELFTEST_WS)
#undef MARLIN_SELFTEST_WS
  return id;
}

using LaunchKernelFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                                    CUstream, void**, void**);

// `dense_selftest --launch-cost`: host time per call, all enqueued on one stream without syncing inside the timed
// loop (best of 5 x 2000 calls), of:
//   - two trivial runtime calls (cudaGetDevice, cudaGetLastError),
//   - an empty kernel <<<256, 256>>> through the three launch APIs: <<<>>>, cudaLaunchKernel, and the driver's
//     cuLaunchKernel with the CUfunction looked up once (what a prepared plan uses),
//   - marlin_dense_gemm (validation + plan + launch per call) vs marlin_dense_plan_launch (plan made once) on the
//     benchmark's eager problem (M = 1, K = N = 4096, config 0, 4 splits),
//   - on sm_90, the same pair on the first warp-specialised config (M = 64; marlin_dense_gemm encodes the TMA
//     descriptor per call, the plan only when x changes), and the plan with x alternating between two buffers.
// Splits the eager gemm() host time into CUDA's launch, our C path, and (by difference with the bench) N-API + TS.
int launch_cost() {
  constexpr int kCalls = 2000;
  const int n = 4096, k = 4096, m_max = 64;
  void *dx, *dx2, *dw, *ds, *dy, *dws;
  CHECK_CUDA(cudaMalloc(&dx, size_t(m_max) * k * 2));
  CHECK_CUDA(cudaMalloc(&dx2, size_t(m_max) * k * 2));
  CHECK_CUDA(cudaMalloc(&dw, size_t(k) * n / 2));
  CHECK_CUDA(cudaMalloc(&ds, size_t(k / 128) * n * 2));
  CHECK_CUDA(cudaMalloc(&dy, size_t(m_max) * n * 2));
  CHECK_CUDA(cudaMemset(dw, 0, size_t(k) * n / 2));
  CHECK_CUDA(cudaMemset(ds, 0, size_t(k / 128) * n * 2));
  CHECK_CUDA(cudaMemset(dx, 0, size_t(m_max) * k * 2));
  CHECK_CUDA(cudaMemset(dx2, 0, size_t(m_max) * k * 2));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  constexpr size_t kWorkspaceBytes = size_t(64) << 20;  // ample for every problem below
  CHECK_CUDA(cudaMalloc(&dws, kWorkspaceBytes));
  if (marlin_dense_workspace_init(dws, kWorkspaceBytes, stream) != MARLIN_OK) return 1;
  auto time_us = [&](auto&& body) {
    for (int i = 0; i < 50; ++i) body();
    cudaStreamSynchronize(stream);
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kCalls; ++i) body();
      const auto t1 = std::chrono::steady_clock::now();
      cudaStreamSynchronize(stream);
      best = std::min(best, std::chrono::duration<double, std::micro>(t1 - t0).count() / kCalls);
    }
    return best;
  };
  int dev = 0;
  const int major = device_major();
  const double get_device = time_us([&] { cudaGetDevice(&dev); });
  const double last_error = time_us([&] { (void)cudaGetLastError(); });
  const double empty = time_us([&] { empty_kernel<<<256, 256, 0, stream>>>(); });
  const void* empty_sym = reinterpret_cast<const void*>(&empty_kernel);
  const double empty_rt = time_us([&] { cudaLaunchKernel(empty_sym, dim3(256), dim3(256), nullptr, 0, stream); });
  double empty_drv = -1;
  {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    cudaFunction_t fn = nullptr;
    if (cudaGetDriverEntryPointByVersion("cuLaunchKernel", &f, 12000, cudaEnableDefault, &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess && cudaGetFuncBySymbol(&fn, empty_sym) == cudaSuccess) {
      const auto launch = reinterpret_cast<LaunchKernelFn>(f);
      empty_drv = time_us([&] {
        launch(reinterpret_cast<CUfunction>(fn), 256, 1, 1, 256, 1, 1, 0, reinterpret_cast<CUstream>(stream),
               nullptr, nullptr);
      });
    }
  }
  CHECK_CUDA(cudaGetLastError());

  // Host time of marlin_dense_gemm and of a plan's launch for one problem; a failing status aborts the mode.
  struct Pair {
    double gemm = -1, plan = -1, plan_alternating = -1, plan_serial = -1;
  };
  bool failed = false;
  auto time_pair = [&](int m, int config, int splits) {
    Pair r;
    marlin_dense_problem p = dense_problem(MARLIN_FP16, m, n, k, n, k, 128, k, dx, dw, ds, dy);
    const marlin_dense_launch l{config, splits};
    if (marlin_dense_workspace_bytes(&p, &l) > kWorkspaceBytes) return r;
    marlin_status st = marlin_dense_gemm(&p, &l, dws, kWorkspaceBytes, stream);
    marlin_dense_plan* plan = nullptr;
    if (st == MARLIN_OK) st = marlin_dense_plan_create(&p, &l, &plan);
    if (st == MARLIN_OK) st = marlin_dense_plan_launch(plan, dx2, dy, nullptr, dws, kWorkspaceBytes, stream);
    if (st != MARLIN_OK) {
      std::printf("launch cost: config %d M=%d failed with status %d\n", config, m, int(st));
      failed = true;
      marlin_dense_plan_destroy(plan);
      return r;
    }
    r.gemm = time_us([&] { marlin_dense_gemm(&p, &l, dws, kWorkspaceBytes, stream); });
    r.plan = time_us([&] { marlin_dense_plan_launch(plan, dx, dy, nullptr, dws, kWorkspaceBytes, stream); });
    int i = 0;
    r.plan_alternating = time_us([&] {
      marlin_dense_plan_launch(plan, (++i & 1) ? dx : dx2, dy, nullptr, dws, kWorkspaceBytes, stream);
    });
    marlin_dense_plan_destroy(plan);
    // The same plan launched serially: cuLaunchKernelEx without the dependent-launch attribute.
    const marlin_dense_launch serial{config, splits, MARLIN_DENSE_LAUNCH_SERIAL};
    plan = nullptr;
    if (marlin_dense_plan_create(&p, &serial, &plan) == MARLIN_OK) {
      r.plan_serial = time_us([&] { marlin_dense_plan_launch(plan, dx, dy, nullptr, dws, kWorkspaceBytes, stream); });
    }
    marlin_dense_plan_destroy(plan);
    CHECK_CUDA(cudaStreamSynchronize(stream));
    return r;
  };
  const Pair decode = time_pair(1, 0, 4);
  const int ws_config = first_ws_config();
  Pair ws;
  if (major >= 9 && ws_config >= 0) ws = time_pair(64, ws_config, 1);

  std::printf("launch cost (host us per call, best of 5 x %d):\n", kCalls);
  std::printf("  cudaGetDevice %.3f, cudaGetLastError %.3f\n", get_device, last_error);
  std::printf("  empty kernel <<<256,256>>>: <<<>>> %.3f, cudaLaunchKernel %.3f, cuLaunchKernel (CUfunction) %.3f\n",
              empty, empty_rt, empty_drv);
  std::printf("  config 0 (M=1 4096x4096, 4 splits): marlin_dense_gemm %.3f, marlin_dense_plan_launch %.3f "
              "(x alternating between 2 buffers: %.3f)\n",
              decode.gemm, decode.plan, decode.plan_alternating);
  std::printf("  config 0 plan launched serially (MARLIN_DENSE_LAUNCH_SERIAL: no launch attribute): %.3f\n",
              decode.plan_serial);
  if (ws.gemm >= 0) {
    std::printf("  config %d (warp-specialised, M=64 4096x4096, 1 split): marlin_dense_gemm %.3f, "
                "marlin_dense_plan_launch %.3f (x alternating between 2 buffers, TMA descriptor re-encoded: %.3f)\n",
                ws_config, ws.gemm, ws.plan, ws.plan_alternating);
  } else {
    std::printf("  warp-specialised configs: not timed (%s)\n", major < 9 ? "not sm_90" : "none compiled");
  }
  std::printf("  C path over the empty <<<>>> launch: marlin_dense_gemm %+.3f, plan %+.3f\n", decode.gemm - empty,
              decode.plan - empty);
  for (void* ptr : {dx, dx2, dw, ds, dy, dws}) CHECK_CUDA(cudaFree(ptr));
  CHECK_CUDA(cudaStreamDestroy(stream));
  return failed ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--profile") == 0) return profile(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "--launch-cost") == 0) return launch_cost();
  const bool verbose = argc > 1 && std::strcmp(argv[1], "-v") == 0;
  std::mt19937 rng(1234);
  std::vector<Case> cases;
  std::vector<int> configs, configs8;  // the INT4 and the 8-bit rows (ids of kernel-table.json need not be contiguous)
#define MARLIN_SELFTEST_ID(ID, WG, WS, MT, NT, KS, ST) configs.push_back(ID);
  MARLIN_INT4_FOR_EACH_CONFIG(MARLIN_SELFTEST_ID)
#undef MARLIN_SELFTEST_ID
#define MARLIN_SELFTEST_ID(ID, WG, WS, MT, NT, KS, ST) configs8.push_back(ID);
  MARLIN_INT8_FOR_EACH_CONFIG(MARLIN_SELFTEST_ID)
#undef MARLIN_SELFTEST_ID
  {  // int8 and fp8 share the 8-bit rows
    std::vector<int> fp8;
#define MARLIN_SELFTEST_ID(ID, WG, WS, MT, NT, KS, ST) fp8.push_back(ID);
    MARLIN_FP8_FOR_EACH_CONFIG(MARLIN_SELFTEST_ID)
#undef MARLIN_SELFTEST_ID
    if (fp8 != configs8) {
      std::printf("FAIL the fp8 and int8 variants were built with different rows\n");
      return 1;
    }
  }
  const int ms[] = {1, 3, 8, 9, 16, 17, 33, 64, 65, 130};
  for (int cfg : configs)
    for (int m : ms)
      for (int splits : {1, 3})
        cases.push_back({MARLIN_FP16, m, 256, 512, 128, false, false, false, cfg, splits, 0});
  for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16})
    for (int g : {32, 64, 128, 7392})
      for (bool z : {false, true})
        cases.push_back({dt, 5, 208, 7392, g == 7392 ? 7392 : g, z, false, true, 1, 4, 8});
  for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16}) {
    cases.push_back({dt, 7, 80, 1088, 64, true, true, true, 0, 2, 0});
    cases.push_back({dt, 40, 4096, 10944, 128, false, true, false, 2, 2, 0});
    cases.push_back({dt, 200, 1024, 4096, 128, true, false, true, configs.back(), 1, 16});
    cases.push_back({dt, 1, 14336, 4096, 128, false, false, false, 0, 1, 0});
  }
  cases.push_back({MARLIN_FP16, 4, 4096, 14784, 128, false, false, true, 0, 16, 0});
  // Every configuration on ragged edges: a partial last column block (320 = 4 tiles + 1), K = 1104 (a partial last
  // k-tile and stage) and 1088 (a partial last stage of whole k-tiles), M off every tile boundary, strided rows, zero
  // points, act-order, split-K.
  for (int cfg : configs)
    for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16}) {
      cases.push_back({dt, 77, 320, 1104, 16 * 69, true, false, true, cfg, 1, 24});
      cases.push_back({dt, 131, 320, 1104, 64, true, true, false, cfg, 2, 0});
      // K = 1088: whole k-tiles but an odd count (17), so the last stage of a 2-k-tile config is partial; on the
      // warp-specialised configs this is the 3D activation box (K % 64 == 0) reading zeros past K.
      cases.push_back({dt, 45, 320, 1088, 32, true, false, true, cfg, 3, 8});
    }
  // Balanced last wave (tail_splits): 300 column blocks of 128 (x 2 token blocks for config 1 at M = 20) make a
  // partial wave on any GPU with fewer than 300 resident blocks (H100 / H200: 264 for these rows), so the column
  // blocks past the whole waves run as a second, split-K launch from a column offset: bias, zero points, act-order,
  // several token blocks, a partial last k-tile. N = 38464 is not a whole number of 128-column blocks: one launch.
  {
    auto has = [&](int id) { return std::find(configs.begin(), configs.end(), id) != configs.end(); };
    const int ws_row = has(19) ? 19 : -1;  // a 2-block warp-specialised row (64 tokens x 128 columns)
    cases.push_back({MARLIN_FP16, 1, 38400, 2048, 128, false, false, true, 0, 1, 0, 4});
    cases.push_back({MARLIN_BF16, 5, 38400, 2064, 64, true, true, true, 0, 1, 0, 3});
    cases.push_back({MARLIN_FP16, 20, 38400, 1024, 128, true, false, false, 1, 1, 8, 8});
    cases.push_back({MARLIN_FP16, 3, 38464, 1024, 128, false, false, true, 0, 1, 0, 4});
    if (ws_row >= 0) cases.push_back({MARLIN_BF16, 40, 38400, 1024, 128, true, false, true, ws_row, 1, 0, 2});
  }
  // 8-bit weights (INT8 through marlin_dense_*, FP8 e4m3 through marlin_fp8_*): every 8-bit row across M tile
  // boundaries, every group size and dtype, zero points (INT8), act-order (INT8), bias, ragged edges, strided rows,
  // split-K, and one M >= 16384.
  const int ms8[] = {1, 8, 9, 16, 17, 33, 64, 65, 129, 256};
  for (int fmt : {kInt8, kFp8}) {
    const bool z8 = fmt == kInt8;
    for (int cfg : configs8)
      for (int m : ms8)
        for (int splits : {1, 3}) {
          Case c{MARLIN_FP16, m, 256, 512, 128, false, false, false, cfg, splits, 0};
          c.fmt = fmt;
          cases.push_back(c);
        }
    for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16})
      for (int g : {32, 64, 128, 7392})
        for (bool z : {false, true}) {
          if (z && !z8) continue;
          Case c{dt, 5, 208, 7392, g, z, false, true, configs8.front(), 4, 8};
          c.fmt = fmt;
          cases.push_back(c);
        }
    for (int cfg : configs8)
      for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16}) {
        for (Case c : {Case{dt, 77, 320, 1104, 16 * 69, z8, false, true, cfg, 1, 24},
                       Case{dt, 131, 320, 1104, 64, z8, z8, false, cfg, 2, 0},
                       Case{dt, 45, 320, 1088, 32, z8, false, true, cfg, 3, 8}}) {
          c.fmt = fmt;
          cases.push_back(c);
        }
      }
    Case big{MARLIN_BF16, 16400, 192, 256, 128, z8, false, true, configs8.back(), 1, 0};
    big.fmt = fmt;
    cases.push_back(big);
  }
  int fails = 0;
  for (const Case& c : cases) fails += run_case(c, rng, verbose) ? 0 : 1;
  // Overlapped launches: every dispatched row on its own (decode, 2-block and 1-block warp-specialised, split-K and
  // not), then rows of different kernels after each other.
  struct Chain {
    std::vector<std::pair<int, int>> links;
    int m;
    int n = 2048;  // = k
  };
  // The last two split as clusters on sm_90 (70B o_proj's shape: 256 blocks of clusters of 4), so the cluster
  // reduction also runs overlapped with its neighbours and inside a replayed graph.
  const std::vector<Chain> chains = {{{{0, 4}}, 1},   {{{0, 1}}, 8},   {{{1, 3}}, 16},  {{{15, 4}}, 32},
                                     {{{19, 2}}, 64}, {{{13, 3}}, 96}, {{{10, 1}}, 128}, {{{21, 2}}, 256},
                                     {{{20, 1}}, 300}, {{{0, 4}, {19, 3}, {20, 2}, {1, 1}, {13, 1}}, 48},
                                     {{{0, 4}}, 1, 8192}, {{{19, 4}}, 64, 8192}};
  size_t chain_count = 0;
  for (const Chain& ch : chains) {
    bool known = true;
    for (const auto& [cfg, sp] : ch.links) {
      int32_t info[4];
      known = known && marlin_dense_config_info(cfg, info) == MARLIN_OK;
    }
    if (!known) continue;  // a row not compiled into this build
    ++chain_count;
    fails += chain_case(ch.links, ch.m, ch.n, 9, rng, verbose) ? 0 : 1;
  }
  // On sm_90 the split cases must have exercised the cluster reduction, or `det` compared the workspace path with itself.
  if (device_major() >= 9 && (g_clustered_cases == 0 || g_clustered_chains == 0)) {
    std::printf("FAIL no split-K case (%d) or chain link (%d) reduced across a cluster on sm_%d0\n", g_clustered_cases,
                g_clustered_chains, device_major());
    ++fails;
  }
  if (g_tail_cases < 3) {  // the three whole-block tail cases above (a plain launch needs 300+ resident blocks)
    std::printf("FAIL only %d cases ran a balanced last wave\n", g_tail_cases);
    ++fails;
  }
  std::printf("dense selftest: %zu cases (%d split-K across a cluster, bitwise equal to the workspace path; %d with a "
              "balanced last wave) + %zu launch chains (%d links across a cluster), %d failed\n",
              cases.size(), g_clustered_cases, g_tail_cases, chain_count, g_clustered_chains, fails);
  return fails == 0 ? 0 : 1;
}
