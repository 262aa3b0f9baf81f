// Native self-test of the MoE layer (marlin_moe_*), independent of Node: stacked experts packed with the docs/format.md
// formulas (host_pack.h), random and edge-case routings, every compiled row of the *-moe variants, and a float64 CPU
// reference of moe.h's rounding points. Every case also checks: a second launch gives the same bits (determinism), a
// CUDA graph replay gives the same bits as the eager launch, and the device-side invalid-id counter.
// Build + run (GPU host): see tools/native-selftest.sh. Exit code 0 = all cases pass.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "case_check.h"
#include "host_pack.h"
#include "kit/host.h"
#include "marlin/moe.h"
#include "marlin_moe_instances.inc"  // generated: the *-moe variants' rows

namespace {

using namespace marlin_test;

enum Routing { kUniform = 0, kAllOnOne = 1, kSomeNone = 2, kExpertMap = 3, kInvalidIds = 4, kSkewed = 5 };

struct MoeCase {
  marlin_dtype dt = MARLIN_FP16;
  marlin_moe_codec codec = MARLIN_MOE_INT4;
  int E = 8, topk = 2, m = 1, H = 256, I = 128, group = 128;
  bool zeros = false, bias = false, swiglu = false, on_input = false, act_order = false;
  int config = 0, splits13 = 1, splits2 = 1;
  int tail = 0;  // balanced last wave of both GEMMs (marlin_moe_launch.tail13 / tail2)
  Routing routing = kUniform;
};

struct HostWeight {  // one stacked weight, dequantized for the reference and packed for the kernels
  int n, k, np, kp, groups;
  std::vector<float> wdq;         // [E][k][n] round_T((q - z) * s), rows in packed (act-order) order
  std::vector<int32_t> perm;      // [E][k]
  std::vector<uint16_t> bias;     // [E][n]
  std::vector<uint32_t> packed;   // [E][tiles]
  std::vector<uint16_t> scales;   // [E][G][Np] as stored (FP8: folded)
  std::vector<uint8_t> zeros;     // [E][G][Np]
};

HostWeight make_weight(const MoeCase& c, int n, int k, std::mt19937& rng) {
  HostWeight w{n, k, (n + 63) / 64 * 64, (k + 63) / 64 * 64, 0, {}, {}, {}, {}, {}, {}};
  const int group = c.group == 0 ? k : c.group;
  w.groups = (k + group - 1) / group;
  const bool fp8 = c.codec == MARLIN_MOE_FP8, int4 = c.codec == MARLIN_MOE_INT4;
  const int default_zero = int4 ? 8 : fp8 ? 0 : 128;
  const int fold = fp8 ? (c.dt == MARLIN_FP16 ? 8 : 120) : 0;
  std::uniform_int_distribution<int> code(0, int4 ? 15 : 255);
  std::uniform_real_distribution<float> uni(-1.f, 1.f), sc(0.002f, 0.02f);
  for (int e = 0; e < c.E; ++e) {
    std::vector<uint8_t> q(size_t(k) * n);
    for (auto& v : q) {
      v = uint8_t(code(rng));
      if (fp8 && (v & 0x7F) == 0x7F) v ^= 1;  // never a NaN code
    }
    std::vector<uint16_t> s(size_t(w.groups) * w.np, 0), stored(size_t(w.groups) * w.np, 0);
    std::vector<uint8_t> z(size_t(w.groups) * w.np, uint8_t(default_zero));
    for (int g = 0; g < w.groups; ++g)
      for (int j = 0; j < n; ++j) {
        s[size_t(g) * w.np + j] = float_to_bits(sc(rng), c.dt);
        stored[size_t(g) * w.np + j] = float_to_bits(std::ldexp(bits_to_float(s[size_t(g) * w.np + j], c.dt), fold), c.dt);
        if (c.zeros) z[size_t(g) * w.np + j] = uint8_t(code(rng));
      }
    std::vector<int32_t> perm(k);
    std::iota(perm.begin(), perm.end(), 0);
    if (c.act_order) std::shuffle(perm.begin(), perm.end(), rng);
    const auto packed = int4 ? pack_int4(q, k, n, w.kp, w.np, 8) : pack_8bit(q, k, n, w.kp, w.np, default_zero);
    w.packed.insert(w.packed.end(), packed.begin(), packed.end());
    w.scales.insert(w.scales.end(), stored.begin(), stored.end());
    w.zeros.insert(w.zeros.end(), z.begin(), z.end());
    w.perm.insert(w.perm.end(), perm.begin(), perm.end());
    for (int j = 0; j < n; ++j) w.bias.push_back(float_to_bits(uni(rng) * 0.1f, c.dt));
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < n; ++j) {
        const int g = kk / group;
        const double qv = q[size_t(kk) * n + j];
        const double wv = fp8 ? e4m3_value(uint8_t(qv)) : qv - z[size_t(g) * w.np + j];
        w.wdq.push_back(bits_to_float(float_to_bits(float(wv * bits_to_float(s[size_t(g) * w.np + j], c.dt)), c.dt), c.dt));
      }
  }
  return w;
}

// y[n] = round_T(sum_k' x[perm[k']] * w[k'][n] (+ bias)) for expert e, in f64.
std::vector<float> ref_gemm(const HostWeight& w, int e, const std::vector<float>& x, bool bias, marlin_dtype dt) {
  std::vector<double> acc(w.n, 0.0);
  const float* we = &w.wdq[size_t(e) * w.k * w.n];
  const int32_t* pe = &w.perm[size_t(e) * w.k];
  for (int kk = 0; kk < w.k; ++kk) {
    const double xv = x[pe[kk]];
    for (int j = 0; j < w.n; ++j) acc[j] += xv * we[size_t(kk) * w.n + j];
  }
  std::vector<float> y(w.n);
  for (int j = 0; j < w.n; ++j) {
    const double b = bias ? bits_to_float(w.bias[size_t(e) * w.n + j], dt) : 0.0;
    y[j] = bits_to_float(float_to_bits(float(acc[j] + b), dt), dt);
  }
  return y;
}

double act_ref(bool swiglu, double g, double u) {
  if (swiglu) {
    const double gc = std::min(g, 7.0), uc = std::min(std::max(u, -7.0), 7.0);
    return gc / (1.0 + std::exp(-1.702 * gc)) * (uc + 1.0);
  }
  return g / (1.0 + std::exp(-g)) * u;
}

struct Routed {
  int num_experts;
  std::vector<int32_t> ids, map;  // map empty: identity
  std::vector<float> weights;
  int invalid = 0;
};

Routed make_routing(const MoeCase& c, std::mt19937& rng) {
  Routed r;
  r.num_experts = c.routing == kExpertMap ? 2 * c.E : c.E;
  if (c.routing == kExpertMap) {
    r.map.assign(r.num_experts, -1);
    for (int e = 0; e < c.E; ++e) r.map[2 * e + 1] = c.E - 1 - e;  // odd global ids local, in reverse order
  }
  std::vector<int> all(r.num_experts);
  std::iota(all.begin(), all.end(), 0);
  std::uniform_real_distribution<float> wd(0.05f, 1.0f);
  std::uniform_int_distribution<int> coin(0, 3);
  for (int t = 0; t < c.m; ++t) {
    if (c.routing == kSkewed) {  // experts 0..k-1 take most tokens: a hot set with a long tail
      for (int j = 0; j < c.topk; ++j) all[j] = j;
      if (coin(rng) == 0) std::shuffle(all.begin(), all.end(), rng);
      std::sort(all.begin(), all.begin() + c.topk);
    } else {
      std::shuffle(all.begin(), all.end(), rng);
    }
    for (int j = 0; j < c.topk; ++j) {
      int id = c.routing == kAllOnOne ? j : all[j];
      if (c.routing == kSomeNone && coin(rng) == 0) id = -1;
      if (c.routing == kInvalidIds && coin(rng) == 0) {
        id = r.num_experts + coin(rng);
        ++r.invalid;
      }
      r.ids.push_back(id);
      r.weights.push_back(wd(rng));
    }
  }
  return r;
}

bool run_case(const MoeCase& c, std::mt19937& rng, bool verbose) {
  const int H = c.H, I = c.I, m = c.m, k = c.topk;
  const HostWeight w13 = make_weight(c, 2 * I, H, rng), w2 = make_weight(c, H, I, rng);
  const Routed r = make_routing(c, rng);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<uint16_t> x(size_t(m) * H);
  for (auto& v : x) v = float_to_bits(uni(rng), c.dt);

  // Reference (moe.h rounding points), in f64 with T roundings.
  std::vector<double> ref(size_t(m) * H, 0.0);
  for (int t = 0; t < m; ++t)
    for (int j = 0; j < k; ++j) {
      const int id = r.ids[size_t(t) * k + j];
      if (id < 0 || id >= r.num_experts) continue;
      const int e = r.map.empty() ? id : r.map[id];
      if (e < 0) continue;
      const float wt = r.weights[size_t(t) * k + j];
      std::vector<float> xs(H);
      for (int i = 0; i < H; ++i) {
        const float xv = bits_to_float(x[size_t(t) * H + i], c.dt);
        xs[i] = c.on_input ? bits_to_float(float_to_bits(wt * xv, c.dt), c.dt) : xv;
      }
      const std::vector<float> h = ref_gemm(w13, e, xs, c.bias, c.dt);
      std::vector<float> a(I);
      for (int i = 0; i < I; ++i) a[i] = bits_to_float(float_to_bits(float(act_ref(c.swiglu, h[i], h[I + i])), c.dt), c.dt);
      const std::vector<float> y2 = ref_gemm(w2, e, a, c.bias, c.dt);
      for (int n = 0; n < H; ++n) ref[size_t(t) * H + n] += c.on_input ? double(y2[n]) : double(wt) * y2[n];
    }

  auto upload = [](const void* src, size_t bytes) {
    void* d = nullptr;
    CHECK_CUDA(cudaMalloc(&d, std::max<size_t>(bytes, 16)));
    if (bytes > 0) CHECK_CUDA(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
    return d;
  };
  std::vector<void*> owned;
  auto up = [&](const void* src, size_t bytes) {
    owned.push_back(upload(src, bytes));
    return owned.back();
  };
  marlin_moe_problem p{};
  p.dtype = c.dt;
  p.codec = c.codec;
  p.m = m;
  p.topk = k;
  p.num_experts = r.num_experts;
  p.local_experts = c.E;
  p.expert_map = r.map.empty() ? nullptr : static_cast<const int32_t*>(up(r.map.data(), r.map.size() * 4));
  p.hidden = H;
  p.inter = I;
  p.activation = c.swiglu ? MARLIN_MOE_SWIGLU_OAI : MARLIN_MOE_SILU;
  p.swiglu_alpha = 1.702f;
  p.swiglu_limit = 7.0f;
  p.flags = c.on_input ? MARLIN_MOE_WEIGHT_ON_INPUT : 0u;
  for (auto [dst, src] : {std::make_pair(&p.w13, &w13), std::make_pair(&p.w2, &w2)}) {
    dst->n = src->n;
    dst->k = src->k;
    dst->n_padded = src->np;
    dst->k_padded = src->kp;
    dst->group_size = c.group == 0 ? src->k : c.group;
    dst->w = up(src->packed.data(), src->packed.size() * 4);
    dst->scales = up(src->scales.data(), src->scales.size() * 2);
    dst->zeros = c.zeros ? static_cast<const uint8_t*>(up(src->zeros.data(), src->zeros.size())) : nullptr;
    dst->perm = c.act_order ? static_cast<const int32_t*>(up(src->perm.data(), src->perm.size() * 4)) : nullptr;
    dst->bias = c.bias ? up(src->bias.data(), src->bias.size() * 2) : nullptr;
  }
  void* dx = up(x.data(), x.size() * 2);
  void* dids = up(r.ids.data(), r.ids.size() * 4);
  void* dwts = up(r.weights.data(), r.weights.size() * 4);
  void* dout = nullptr;
  CHECK_CUDA(cudaMalloc(&dout, size_t(m) * H * 2));
  owned.push_back(dout);

  const marlin_moe_launch l{c.config, c.splits13, c.config, c.splits2, 0u, c.tail, c.tail};
  marlin_moe_plan* plan = nullptr;
  marlin_status st = marlin_moe_plan_create(&p, &l, &plan);
  std::vector<uint16_t> y1(size_t(m) * H), y2(size_t(m) * H), y3(size_t(m) * H);
  int invalid = -1;
  bool same = false, graph_same = false;
  if (st == MARLIN_OK) {
    const size_t wsb = marlin_moe_plan_workspace_bytes(plan);
    void* ws = nullptr;
    CHECK_CUDA(cudaMalloc(&ws, wsb));
    owned.push_back(ws);
    st = marlin_moe_workspace_init(ws, wsb, nullptr);
    cudaStream_t s;
    CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto run = [&](std::vector<uint16_t>& out) {
      CHECK_CUDA(cudaMemsetAsync(dout, 0xff, out.size() * 2, s));  // NaN poison
      if (st == MARLIN_OK)
        st = marlin_moe_plan_launch(plan, dx, static_cast<int32_t*>(dids), static_cast<float*>(dwts), dout, ws, wsb, s);
      CHECK_CUDA(cudaStreamSynchronize(s));
      CHECK_CUDA(cudaMemcpy(out.data(), dout, out.size() * 2, cudaMemcpyDeviceToHost));
    };
    run(y1);
    run(y2);
    if (st == MARLIN_OK) {  // graph capture of one launch, replayed
      cudaGraph_t g;
      cudaGraphExec_t ge;
      CHECK_CUDA(cudaMemsetAsync(dout, 0xff, y3.size() * 2, s));
      CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      st = marlin_moe_plan_launch(plan, dx, static_cast<int32_t*>(dids), static_cast<float*>(dwts), dout, ws, wsb, s);
      CHECK_CUDA(cudaStreamEndCapture(s, &g));
      CHECK_CUDA(cudaGraphInstantiate(&ge, g, 0));
      CHECK_CUDA(cudaGraphLaunch(ge, s));
      CHECK_CUDA(cudaGraphLaunch(ge, s));
      CHECK_CUDA(cudaStreamSynchronize(s));
      CHECK_CUDA(cudaMemcpy(y3.data(), dout, y3.size() * 2, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaGraphExecDestroy(ge));
      CHECK_CUDA(cudaGraphDestroy(g));
      graph_same = std::memcmp(y1.data(), y3.data(), y1.size() * 2) == 0;
    }
    CHECK_CUDA(cudaMemcpy(&invalid, marlin_moe_invalid_id_counter(plan, ws), 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaStreamDestroy(s));
    same = std::memcmp(y1.data(), y2.data(), y1.size() * 2) == 0;
  }
  const int block = plan ? marlin_moe_plan_block_size(plan) : 0;
  marlin_moe_plan_destroy(plan);
  for (void* ptr : owned) CHECK_CUDA(cudaFree(ptr));

  const auto [rel, max_err, nan] = ref_error(y1, ref, c.dt);
  // Four roundings to T on the way (h, a, y2, out): a few times the dense GEMM's tolerance.
  const double tol = c.dt == MARLIN_FP16 ? 4e-3 : 2.5e-2;
  // Four alignments ran (two eager launches, the graph replayed twice), each counting the same invalid slots.
  const bool invalid_ok = invalid == 4 * r.invalid;
  const bool ok = st == MARLIN_OK && !nan && same && graph_same && rel < tol && invalid_ok;
  const char* codec = c.codec == MARLIN_MOE_INT4 ? "int4" : c.codec == MARLIN_MOE_INT8 ? "int8" : "fp8";
  if (!ok || verbose)
    std::printf("%s %s %s E=%d k=%d m=%d H=%d I=%d g=%d z=%d bias=%d swiglu=%d on_input=%d act=%d cfg=%d(B=%d) "
                "splits=%d/%d tail=%d routing=%d: status=%d rel=%.2e max=%.2e nan=%d det=%d graph=%d invalid=%d/%d\n",
                ok ? "ok  " : "FAIL", codec, c.dt == MARLIN_FP16 ? "fp16" : "bf16", c.E, k, m, H, I, c.group, c.zeros,
                c.bias, c.swiglu, c.on_input, c.act_order, c.config, block, c.splits13, c.splits2, c.tail, int(c.routing),
                int(st), rel, max_err, int(nan), int(same), int(graph_same), invalid, 4 * r.invalid);
  return ok;
}

// Rows (config ids) of one variant, and whether each is a hopper-family row (sm_90a only).
struct Row {
  int id, m_tile;
  bool wgmma;
};
std::vector<Row> rows_of(marlin_moe_codec codec) {
  std::vector<Row> rows;
#define MARLIN_ROW(ID, WG, WS, MT, NT, KS, ST) rows.push_back({ID, MT, WG});
  if (codec == MARLIN_MOE_INT4) {
    MARLIN_INT4_MOE_FOR_EACH_CONFIG(MARLIN_ROW)
  } else {
    MARLIN_INT8_MOE_FOR_EACH_CONFIG(MARLIN_ROW)
  }
#undef MARLIN_ROW
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  const bool verbose = argc > 1 && std::string(argv[1]) == "-v";
  int major = 0, dev = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  std::mt19937 rng(1234);
  std::vector<MoeCase> cases;
  auto add = [&](MoeCase c) { cases.push_back(c); };
  // Every row of every codec: M across block boundaries, split-K on the second GEMM.
  for (marlin_moe_codec codec : {MARLIN_MOE_INT4, MARLIN_MOE_INT8, MARLIN_MOE_FP8}) {
    for (const Row& row : rows_of(codec)) {
      if (row.wgmma && major < 9) continue;
      for (int m : {1, 3, row.m_tile + 1, 4 * row.m_tile + 3}) {
        MoeCase c;
        c.codec = codec;
        c.config = row.id;
        c.m = m;
        c.splits2 = m == 3 ? 2 : 1;
        add(c);
      }
    }
  }
  const int small = rows_of(MARLIN_MOE_INT4).front().id;  // the M-tile-8 decode row
  const int small8 = rows_of(MARLIN_MOE_INT8).front().id;
  // Features on the decode row.
  for (marlin_dtype dt : {MARLIN_FP16, MARLIN_BF16}) {
    MoeCase c;
    c.dt = dt;
    c.config = small;
    c.m = 13;
    add(c);
    c.zeros = true;
    add(c);
    c.zeros = false;
    c.bias = true;
    c.swiglu = true;
    add(c);
    c.on_input = true;
    c.topk = 1;
    add(c);
    c.on_input = false;
    c.topk = 2;
    c.act_order = true;
    add(c);
    c.act_order = false;
    for (int g : {32, 64, 0}) {
      c.group = g;
      add(c);
    }
    c.group = 128;
    c.codec = MARLIN_MOE_FP8;
    c.config = small8;
    add(c);
    c.group = 0;
    add(c);
    c.codec = MARLIN_MOE_INT8;
    c.zeros = true;
    c.group = 64;
    add(c);
  }
  // Routings and expert counts.
  for (Routing rt : {kAllOnOne, kSomeNone, kExpertMap, kInvalidIds, kSkewed}) {
    MoeCase c;
    c.config = small;
    c.m = 37;
    c.routing = rt;
    add(c);
  }
  {
    MoeCase c;
    c.config = small;
    c.E = 1;
    c.topk = 1;
    c.m = 9;
    add(c);
    c.E = 128;
    c.topk = 8;
    c.m = 21;
    c.H = 192;
    c.I = 96;  // a Qwen3-30B-A3B tensor-parallel shard's intermediate size
    add(c);
    c.E = 512;
    c.topk = 16;
    c.m = 5;
    c.H = 64;
    c.I = 64;
    add(c);
    c.E = 8;
    c.topk = 2;
    c.H = 2880;
    c.I = 2880;  // gpt-oss sizes (not multiples of 64)
    c.m = 3;
    c.swiglu = true;
    c.bias = true;
    add(c);
    c.swiglu = c.bias = false;
    c.H = 64;
    c.I = 64;
    c.m = 16400;  // M beyond 16384
    add(c);
    // A balanced last wave: w13's 4 M-blocks x 128 column blocks overfill one wave of config 0 on an H100, so its
    // columns past the whole waves run as a second, split-K launch.
    c.m = 2;
    c.I = 8192;
    c.tail = 3;
    add(c);
    c.swiglu = c.bias = true;
    c.dt = MARLIN_BF16;
    add(c);
  }
  int failed = 0;
  for (const MoeCase& c : cases) failed += run_case(c, rng, verbose) ? 0 : 1;
  std::printf("moe_selftest: %zu cases, %d failed\n", cases.size(), failed);
  return failed == 0 ? 0 : 1;
}
