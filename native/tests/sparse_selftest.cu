// Native self-test of the 2:4 sparse kernels (marlin_sparse_*), independent of Node: random 2:4 INT4 weights packed
// with the docs/format.md "2:4 sparse (packed)" formulas, written again here word by word (lane -> elements, the way
// the document states them) and independently of the TypeScript packer (which goes element -> word), every compiled
// row of the int4-sparse variant (mma.sp rows on every arch, wgmma.sp rows on sm_90a), compared with a float64 CPU
// reference of the dense semantics (pruned weights are exact zeros). Every case also runs through a prepared plan with
// the workspace split-K and must give the same bits (determinism; on sm_90 the cluster reduction against the
// workspace's); chains of dependent GEMMs must give the same bits launched overlapped, serially and as a replayed
// graph. The mma.sp rows run on sm_90 too (the producer-warp pipeline); built with MARLIN_CUDA_ARCHS=80-virtual the
// same binary runs their sm_80 (cp.async) code on any GPU (JIT), and the wgmma rows are skipped.
// Build + run (GPU host): see tools/native-selftest.sh. Exit code 0 = all cases pass.
#include <cuda_runtime.h>

#include <algorithm>
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
#include "marlin/sparse.h"
#include "marlin_sparse_instances.inc"  // generated: X(id, wgmma, ws, ...) per compiled row of int4-sparse

namespace {

using namespace marlin_test;

// The six index pairs a metadata nibble may name (idx0 < idx1; PTX "Sparse matrix storage").
constexpr int kPairs[6][2] = {{0, 1}, {0, 2}, {1, 2}, {0, 3}, {1, 3}, {2, 3}};

// A logical 2:4 weight: for group j (rows 4j .. 4j + 3) and column n, the index pair and the two kept codes; scales
// and zero points [groups][np] as the dense format's (groups count rows of the dense K).
struct Sparse24 {
  int k, n, kp, np, group, groups;
  std::vector<uint8_t> pair, code0, code1;  // [k / 4][n]
  std::vector<uint16_t> scales;             // [groups][np], padded columns 0
  std::vector<uint8_t> zeros;               // [groups][np], 8 where there are none and in padded columns
  int group_of(int row) const { return std::min(row / group, groups - 1); }
};

// docs/format.md "2:4 sparse (packed)": tile (nb, kb) at nb * (Kp/64) + kb, 384 words. Code word (w * 32 + l) * 2 + s,
// nibble p: column 16w + g + 8(p & 1), group q = t + 4((p >> 1) & 1) of step s (tile group 8s + q), kept code
// i = (p >> 2) & 1. Metadata word 256 + w * 32 + l, nibble c: step s = t >> 1, half h = t & 1, column 16w + g + 8(c >> 2),
// group q = 4h + (c & 3) of step s; nibble = idx0 | idx1 << 2. Padding (rows >= K, columns >= N): pair (0, 1) with the
// zero-point code of the group (8 in padded columns).
std::vector<uint32_t> pack_sparse24(const Sparse24& w) {
  const int ktiles = w.kp / 64;
  std::vector<uint32_t> out(size_t(ktiles) * (w.np / 64) * 384, 0);
  auto real = [&](int j, int col) { return 4 * j < w.k && col < w.n; };
  auto kept = [&](int j, int col, int i) -> uint32_t {
    if (real(j, col)) return i == 0 ? w.code0[size_t(j) * w.n + col] : w.code1[size_t(j) * w.n + col];
    return col < w.n ? w.zeros[size_t(w.group_of(4 * j)) * w.np + col] : 8u;
  };
  auto nibble = [&](int j, int col) -> uint32_t {
    const int pr = real(j, col) ? w.pair[size_t(j) * w.n + col] : 0;
    return uint32_t(kPairs[pr][0] | kPairs[pr][1] << 2);
  };
  for (int nb = 0; nb < w.np / 64; ++nb)
    for (int kb = 0; kb < ktiles; ++kb) {
      uint32_t* tile = &out[(size_t(nb) * ktiles + kb) * 384];
      for (int wn = 0; wn < 4; ++wn)
        for (int l = 0; l < 32; ++l) {
          const int g = l >> 2, t = l & 3;
          for (int s = 0; s < 2; ++s) {
            uint32_t word = 0;
            for (int p = 0; p < 8; ++p) {
              const int col = nb * 64 + 16 * wn + g + 8 * (p & 1);
              const int q = t + 4 * ((p >> 1) & 1);
              word |= (kept(kb * 16 + 8 * s + q, col, (p >> 2) & 1) & 15u) << (4 * p);
            }
            tile[(wn * 32 + l) * 2 + s] = word;
          }
          uint32_t meta = 0;
          const int s = t >> 1, h = t & 1;
          for (int c = 0; c < 8; ++c) {
            const int col = nb * 64 + 16 * wn + g + 8 * (c >> 2);
            meta |= nibble(kb * 16 + 8 * s + 4 * h + (c & 3), col) << (4 * c);
          }
          tile[256 + wn * 32 + l] = meta;
        }
    }
  return out;
}

// A random 2:4 weight: uniform index pairs, codes in [lo, hi], scales in [s_lo, s_hi].
Sparse24 random_sparse(int k, int n, int group, bool zeros, marlin_dtype dt, std::mt19937& rng, int lo = 0,
                       int hi = 15, float s_lo = 0.002f, float s_hi = 0.02f) {
  Sparse24 w;
  w.k = k;
  w.n = n;
  w.kp = (k + 63) / 64 * 64;
  w.np = (n + 63) / 64 * 64;
  w.group = group;
  w.groups = (k + group - 1) / group;
  std::uniform_int_distribution<int> pr(0, 5), code(lo, hi), zp(0, 15);
  std::uniform_real_distribution<float> sc(s_lo, s_hi);
  const size_t cells = size_t(k / 4) * n;
  w.pair.resize(cells);
  w.code0.resize(cells);
  w.code1.resize(cells);
  for (size_t i = 0; i < cells; ++i) {
    w.pair[i] = uint8_t(pr(rng));
    w.code0[i] = uint8_t(code(rng));
    w.code1[i] = uint8_t(code(rng));
  }
  w.scales.assign(size_t(w.groups) * w.np, 0);
  w.zeros.assign(size_t(w.groups) * w.np, 8);
  for (int gi = 0; gi < w.groups; ++gi)
    for (int j = 0; j < n; ++j) {
      w.scales[size_t(gi) * w.np + j] = float_to_bits(sc(rng), dt);
      if (zeros) w.zeros[size_t(gi) * w.np + j] = uint8_t(zp(rng));
    }
  return w;
}

// The dense equivalent as the reference reads it: w[k][n] = round_T((code - z) * s) at the kept rows, 0 elsewhere.
std::vector<float> dequantize(const Sparse24& w, marlin_dtype dt) {
  std::vector<float> out(size_t(w.k) * w.n, 0.f);
  for (int j = 0; j < w.k / 4; ++j)
    for (int col = 0; col < w.n; ++col) {
      const size_t cell = size_t(j) * w.n + col, gi = size_t(w.group_of(4 * j)) * w.np + col;
      const float s = bits_to_float(w.scales[gi], dt);
      const int z = w.zeros[gi];
      const int* pr = kPairs[w.pair[cell]];
      const int codes[2] = {w.code0[cell], w.code1[cell]};
      for (int i = 0; i < 2; ++i) {
        const double v = double(codes[i] - z) * s;  // exact in f64
        out[size_t(4 * j + pr[i]) * w.n + col] = bits_to_float(float_to_bits(float(v), dt), dt);
      }
    }
  return out;
}

const marlin_gemm_api kApi = MARLIN_GEMM_API_OF(marlin_sparse);

marlin_gemm_problem sparse_problem(marlin_dtype dt, int m, const Sparse24& w, int64_t lda, const void* x,
                                   const void* dw, const void* ds, const void* dz, void* y) {
  marlin_gemm_problem p{};
  p.dtype = dt;
  p.m = m;
  p.n = w.n;
  p.k = w.k;
  p.n_padded = w.np;
  p.k_padded = w.kp;
  p.bits = 4;
  p.group_size = w.group;
  p.lda = lda;
  p.ldc = w.n;
  p.x = x;
  p.w = dw;
  p.scales = ds;
  p.zeros = static_cast<const uint8_t*>(dz);
  p.y = y;
  return p;
}

struct Case {
  marlin_dtype dt;
  int m, n, k, group;
  bool zeros, bias;
  int config, splits;
  int64_t lda_pad = 0;
  int tail = 0;
};

int g_cases_run = 0, g_clustered_cases = 0, g_clustered_chains = 0, g_tail_cases = 0;
std::vector<int> g_wgmma_rows;  // rows of the wgmma family (they run only from an sm_90a image)
int g_wgmma_cases_run = 0;

bool run_case(const Case& c, std::mt19937& rng, bool verbose) {
  const int m = c.m;
  const int64_t lda = c.k + c.lda_pad;
  const Sparse24 w = random_sparse(c.k, c.n, c.group, c.zeros, c.dt, rng);
  const auto packed = pack_sparse24(w);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<uint16_t> x(size_t(m) * lda), bias(c.n);
  for (auto& v : x) v = float_to_bits(uni(rng), c.dt);
  for (auto& v : bias) v = float_to_bits(uni(rng), c.dt);
  const std::vector<float> wdq = dequantize(w, c.dt);
  std::vector<double> ref(size_t(m) * c.n, 0.0);
  for (int i = 0; i < m; ++i) {
    double* r = &ref[size_t(i) * c.n];
    for (int kk = 0; kk < c.k; ++kk) {
      const double xv = bits_to_float(x[size_t(i) * lda + kk], c.dt);
      const float* wr = &wdq[size_t(kk) * c.n];
      for (int j = 0; j < c.n; ++j) r[j] += xv * wr[j];
    }
    if (c.bias)
      for (int j = 0; j < c.n; ++j) r[j] += bits_to_float(bias[j], c.dt);
  }

  void *dx, *dw, *ds, *dz, *db, *dy, *dws = nullptr;
  CHECK_CUDA(cudaMalloc(&dx, x.size() * 2));
  CHECK_CUDA(cudaMalloc(&dw, packed.size() * 4));
  CHECK_CUDA(cudaMalloc(&ds, w.scales.size() * 2));
  CHECK_CUDA(cudaMalloc(&dz, w.zeros.size()));
  CHECK_CUDA(cudaMalloc(&db, bias.size() * 2));
  CHECK_CUDA(cudaMalloc(&dy, size_t(m) * c.n * 2));
  CHECK_CUDA(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dw, packed.data(), packed.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(ds, w.scales.data(), w.scales.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(dz, w.zeros.data(), w.zeros.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(db, bias.data(), bias.size() * 2, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemset(dy, 0xff, size_t(m) * c.n * 2));  // NaN poison

  marlin_gemm_problem p = sparse_problem(c.dt, m, w, lda, dx, dw, ds, c.zeros ? dz : nullptr, dy);
  p.bias = c.bias ? db : nullptr;
  const marlin_gemm_launch l{c.config, c.splits, 0u, c.tail};
  const size_t wsb = kApi.workspace_bytes(&p, &l);
  CHECK_CUDA(cudaMalloc(&dws, std::max<size_t>(wsb, 256)));
  auto free_all = [&] {
    for (void* ptr : {dx, dw, ds, dz, db, dy, dws}) CHECK_CUDA(cudaFree(ptr));
  };
  if (wsb == 0 || kApi.workspace_init(dws, wsb, nullptr) != MARLIN_OK) {
    std::printf("FAIL config %d: no workspace size (not a compiled row?)\n", c.config);
    free_all();
    return false;
  }
  std::vector<uint16_t> y1(size_t(m) * c.n), y2(y1.size());
  marlin_status st = kApi.gemm(&p, &l, dws, wsb, nullptr);
  if (st == MARLIN_E_UNSUPPORTED) {  // the wgmma rows exist only as sm_90a SASS (not in a compute_80 PTX build)
    free_all();
    if (verbose) std::printf("skip config %d: not on this device / build\n", c.config);
    return true;
  }
  ++g_cases_run;
  if (std::find(g_wgmma_rows.begin(), g_wgmma_rows.end(), c.config) != g_wgmma_rows.end()) ++g_wgmma_cases_run;
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaMemcpy(y1.data(), dy, y1.size() * 2, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemset(dy, 0xff, size_t(m) * c.n * 2));
  int cluster = 0, tail_blocks = 0;
  if (st == MARLIN_OK) {  // again through a plan that reduces split-K through the workspace: the same bits
    marlin_gemm_problem fixed = p;
    fixed.x = nullptr;
    fixed.y = nullptr;
    fixed.bias = nullptr;
    marlin_gemm_plan* plan = nullptr;
    st = kApi.plan_create(&fixed, &l, &plan);
    cluster = kApi.plan_cluster_size(plan);
    tail_blocks = kApi.plan_tail_blocks(plan);
    kApi.plan_destroy(plan);
    if (cluster > 1) ++g_clustered_cases;
    if (tail_blocks > 0) ++g_tail_cases;
    marlin_gemm_launch lw = l;
    lw.flags |= MARLIN_LAUNCH_WORKSPACE_SPLITK;
    plan = nullptr;
    if (st == MARLIN_OK) st = kApi.plan_create(&fixed, &lw, &plan);
    if (st == MARLIN_OK && kApi.plan_workspace_bytes(plan) != wsb) st = MARLIN_E_WORKSPACE;
    if (st == MARLIN_OK) st = kApi.plan_launch(plan, p.x, p.y, p.bias, dws, wsb, nullptr);
    kApi.plan_destroy(plan);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaMemcpy(y2.data(), dy, y2.size() * 2, cudaMemcpyDeviceToHost));
  free_all();

  const auto [rel, max_err, nan] = ref_error(y1, ref, c.dt);
  const bool same = std::memcmp(y1.data(), y2.data(), y1.size() * 2) == 0;
  const double tol = c.dt == MARLIN_FP16 ? 2e-3 : 1.2e-2;  // the output rounding to T dominates, as for dense
  const bool ok = st == MARLIN_OK && !nan && same && rel < tol;
  if (!ok || verbose)
    std::printf("%s %s m=%d n=%d k=%d g=%d zeros=%d bias=%d cfg=%d splits=%d cluster=%d tail=%d/%d lda+%lld: "
                "status=%d rel=%.2e max=%.2e nan=%d det=%d\n",
                ok ? "ok  " : "FAIL", c.dt == MARLIN_FP16 ? "fp16" : "bf16", m, c.n, c.k, c.group, int(c.zeros),
                int(c.bias), c.config, c.splits, cluster, c.tail, tail_blocks, (long long)c.lda_pad, int(st), rel,
                max_err, int(nan), int(same));
  return ok;
}

// A chain of dependent GEMMs on one stream (n = k) that ping-pongs two activation buffers, split-K launches sharing one
// workspace: launched serially, overlapped (programmatic dependent launch, sm_90) and as a captured graph replayed
// twice, the bits must agree and the result be finite. Codes 1..15 (q - 8 has mean 0) and scales that keep the values
// O(1) per call: half the weights are pruned, so rms(w) = sqrt(1/2) * 4.32 * s.
bool chain_case(const std::vector<std::pair<int, int>>& links, int m, int n, int calls, std::mt19937& rng,
                bool verbose) {
  const int k = n;
  const marlin_dtype dt = MARLIN_FP16;
  const float s0 = 1.0f / (std::sqrt(float(k) / 2) * 4.32f);
  Sparse24 w[2];
  void *dw[2], *ds[2];
  for (int i = 0; i < 2; ++i) {
    w[i] = random_sparse(k, n, 128, false, dt, rng, 1, 15, 0.9f * s0, 1.1f * s0);
    dw[i] = device_copy(pack_sparse24(w[i]));
    ds[i] = device_copy(w[i].scales);
  }
  ChainIo io = chain_io(m, k, n, dt, rng);
  const std::vector<uint16_t>& x = io.x;
  void* (&buf)[2] = io.buf;
  size_t wsb = 256;
  for (const auto& [cfg, sp] : links) {
    const marlin_gemm_problem p = sparse_problem(dt, m, w[0], k, buf[0], dw[0], ds[0], nullptr, buf[1]);
    const marlin_gemm_launch l{cfg, sp, 0u, 0};
    wsb = std::max(wsb, kApi.workspace_bytes(&p, &l));
  }
  void* dws = nullptr;
  CHECK_CUDA(cudaMalloc(&dws, wsb));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const ChainRuns runs = run_chain(kApi.workspace_init(dws, wsb, stream), x, buf, m, n, stream, [&](uint32_t flags) {
    marlin_status st = MARLIN_OK;
    for (int i = 0; i < calls && st == MARLIN_OK; ++i) {
      const auto [cfg, sp] = links[i % links.size()];
      const marlin_gemm_problem p =
          sparse_problem(dt, m, w[i & 1], k, buf[i & 1], dw[i & 1], ds[i & 1], nullptr, buf[(i + 1) & 1]);
      const marlin_gemm_launch l{cfg, sp, flags, 0};
      st = kApi.gemm(&p, &l, dws, wsb, stream);
    }
    return st;
  });
  CHECK_CUDA(cudaStreamDestroy(stream));
  std::string desc;
  for (const auto& [cfg, sp] : links) {
    const marlin_gemm_problem p = sparse_problem(dt, m, w[0], k, nullptr, dw[0], ds[0], nullptr, nullptr);
    const marlin_gemm_launch l{cfg, sp, 0u, 0};
    marlin_gemm_plan* plan = nullptr;
    int cluster = 0;
    if (kApi.plan_create(&p, &l, &plan) == MARLIN_OK) cluster = kApi.plan_cluster_size(plan);
    kApi.plan_destroy(plan);
    if (cluster > 1) ++g_clustered_chains;
    desc += " " + std::to_string(cfg) + "/" + std::to_string(sp) + (cluster > 1 ? "/c" + std::to_string(cluster) : "");
  }
  for (void* ptr : {dw[0], dw[1], ds[0], ds[1], buf[0], buf[1], dws}) CHECK_CUDA(cudaFree(ptr));
  if (runs.st == MARLIN_E_UNSUPPORTED) {
    if (verbose) std::printf("skip chain%s: not on this device / build\n", desc.c_str());
    return true;
  }
  return check_chain(runs, dt, m, n, calls, desc, verbose);
}

// What the addon must refuse: act-order (no variant takes a permutation), 8-bit weights, a row of another variant,
// zero points on nothing else wrong (accepted). Statuses only; nothing is launched.
bool refusals(int any_row) {
  std::mt19937 rng(7);
  const Sparse24 w = random_sparse(256, 128, 128, false, MARLIN_FP16, rng);
  void *dx, *dw, *ds, *dy, *dp;
  CHECK_CUDA(cudaMalloc(&dx, 256 * 2));
  CHECK_CUDA(cudaMalloc(&dw, size_t(w.kp / 64) * (w.np / 64) * 1536));
  CHECK_CUDA(cudaMalloc(&ds, w.scales.size() * 2));
  CHECK_CUDA(cudaMalloc(&dy, 128 * 2));
  CHECK_CUDA(cudaMalloc(&dp, 256 * 4));
  bool ok = true;
  auto expect = [&](const char* what, marlin_gemm_problem p, int config, marlin_status want) {
    const marlin_gemm_launch l{config, 1, 0u, 0};
    marlin_gemm_plan* plan = nullptr;
    const marlin_status got = kApi.plan_create(&p, &l, &plan);
    kApi.plan_destroy(plan);
    if (got != want) {
      std::printf("FAIL refusal %s: status %d, expected %d\n", what, int(got), int(want));
      ok = false;
    }
  };
  const marlin_gemm_problem base = sparse_problem(MARLIN_FP16, 1, w, 256, dx, dw, ds, nullptr, dy);
  marlin_gemm_problem p = base;
  p.perm = static_cast<const int32_t*>(dp);
  expect("act-order", p, any_row, MARLIN_E_UNSUPPORTED);
  p = base;
  p.bits = 8;
  expect("bits 8", p, any_row, MARLIN_E_UNSUPPORTED);
  expect("a dense row (config 0)", base, 0, MARLIN_E_UNSUPPORTED);
  expect("a plain problem", base, any_row, MARLIN_OK);
  for (void* ptr : {dx, dw, ds, dy, dp}) CHECK_CUDA(cudaFree(ptr));
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const bool verbose = argc > 1 && std::strcmp(argv[1], "-v") == 0;
  std::mt19937 rng(2024);
  std::vector<int> rows, ws_rows;
#define MARLIN_SELFTEST_ID(ID, WG, WS, MT, NT, KS, ST) \
  rows.push_back(ID);                                  \
  if (WS) ws_rows.push_back(ID);                       \
  if (WG) g_wgmma_rows.push_back(ID);
  MARLIN_INT4_SPARSE_FOR_EACH_CONFIG(MARLIN_SELFTEST_ID)
#undef MARLIN_SELFTEST_ID
  std::vector<Case> cases;
  // Every row across the token-tile boundaries (8, 16, 64, 128) and split-K.
  for (int cfg : rows)
    for (int m : {1, 3, 8, 9, 16, 17, 33, 64, 65, 130, 257})
      for (int splits : {1, 3}) cases.push_back({MARLIN_FP16, m, 256, 512, 128, false, false, cfg, splits});
  // Every group size (32 / 64 / 128 / per-channel: the decode rows post-scale at >= 128) x zero points x dtype, with
  // bias, strided rows and split-K, on every row.
  for (int cfg : rows)
    for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16})
      for (int g : {32, 64, 128, 7392})
        for (bool z : {false, true}) cases.push_back({dt, cfg == rows.front() ? 5 : 70, 208, 7392, g, z, true, cfg, 4, 8});
  // Ragged edges on every row: a partial last column block (N = 320), K = 1104 (a partial last k-tile: padded groups
  // with the last group's zero point) and 1088 (whole k-tiles, partial last stage), M off every tile, zero points.
  for (int cfg : rows)
    for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16}) {
      cases.push_back({dt, 77, 320, 1104, 16 * 69, true, true, cfg, 1, 24});
      cases.push_back({dt, 131, 320, 1104, 64, true, false, cfg, 2, 0});
      cases.push_back({dt, 45, 320, 1088, 32, true, true, cfg, 3, 8});
      cases.push_back({dt, 19, 80, 144, 16 * 9, false, true, cfg, 1, 0});  // K = 144: 3 k-tiles, 2.25 of them real
    }
  // M >= 16384 on every row (many token blocks), a large-N decode shape, many splits.
  for (int cfg : rows) cases.push_back({MARLIN_BF16, 16400, 128, 256, 128, true, true, cfg, 1, 0});
  for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16}) {
    cases.push_back({dt, 1, 14336, 4096, 128, false, false, rows.front(), 1, 0});
    cases.push_back({dt, 4, 4096, 14784, 128, false, true, rows.front(), 16, 0});
  }
  // Balanced last wave on the warp-specialised rows (300 column blocks of 128 or 256).
  for (int cfg : ws_rows) cases.push_back({MARLIN_FP16, 40, 38400, 1024, 128, true, true, cfg, 1, 0, 2});

  int fails = refusals(rows.front()) ? 0 : 1;
  for (const Case& c : cases) fails += run_case(c, rng, verbose) ? 0 : 1;

  struct Chain {
    std::vector<std::pair<int, int>> links;
    int m;
    int n = 2048;
  };
  std::vector<Chain> chains;
  for (int cfg : rows) chains.push_back({{{cfg, cfg == rows.front() ? 4 : 2}}, cfg == rows.front() ? 1 : 64});
  {
    std::vector<std::pair<int, int>> mixed;
    for (size_t i = 0; i < rows.size(); ++i) mixed.push_back({rows[i], int(i % 3) + 1});
    chains.push_back({mixed, 48});
  }
  chains.push_back({{{rows.front(), 4}}, 1, 8192});  // 8192-wide: split-K across clusters on sm_90
  if (!ws_rows.empty()) chains.push_back({{{ws_rows.front(), 4}}, 64, 8192});
  for (const Chain& ch : chains) fails += chain_case(ch.links, ch.m, ch.n, 9, rng, verbose) ? 0 : 1;

  // The sm_90a image (its wgmma rows ran) reduces split-K across clusters: it must have, or `det` compared the
  // workspace path with itself. A compute_80 PTX build has neither.
  if (g_wgmma_cases_run > 0 && (g_clustered_cases == 0 || g_clustered_chains == 0)) {
    std::printf("FAIL no split-K case (%d) or chain link (%d) reduced across a cluster on sm_%d0\n", g_clustered_cases,
                g_clustered_chains, device_major());
    ++fails;
  }
  if (g_cases_run == 0) {
    std::printf("FAIL no case ran\n");
    ++fails;
  }
  std::printf("sparse selftest: %d of %zu cases ran on %zu rows (%d on wgmma.sp rows, %d split-K across a cluster, %d "
              "with a balanced last wave) + %zu launch chains (%d links across a cluster), %d failed\n",
              g_cases_run, cases.size(), rows.size(), g_wgmma_cases_run, g_clustered_cases, g_tail_cases,
              chains.size(), g_clustered_chains, fails);
  return fails == 0 ? 0 : 1;
}
