// Weights objects of the MoE benchmarks (moe_bench.h) and the routed problem's host-side checks and uploads.
#include <algorithm>
#include <memory>
#include <new>
#include <string>

#include "moe_internal.cuh"

using namespace marlin::bench;

namespace {

constexpr int32_t kTile = 64;  // packed kernel tiles are 64 x 64 weights (docs/format.md "Tiles")
// The magnitudes of gemm_bench.cu: |w| < 0.08 (INT4, dense), < 0.128 (INT8), so no output saturates.
constexpr float kScaleLo4 = 0.001f;
constexpr float kScaleHi4 = 0.01f;
constexpr float kScaleLo8 = 0.0001f;
constexpr float kScaleHi8 = 0.001f;
constexpr float kFp8FoldFp16 = 256.0f;                 // 2^8
constexpr float kFp8FoldBf16 = 1.329227995784916e36f;  // 2^120
constexpr float kDenseLo = -0.08f;
constexpr float kDenseHi = 0.08f;
constexpr float kActLo = -1.0f;
constexpr float kActHi = 1.0f;

int32_t round_up(int32_t v, int32_t m) { return (v + m - 1) / m * m; }

std::string shape_str(const marlin_bench_moe_weights_args& a) {
  return "E=" + std::to_string(a.experts) + " H=" + std::to_string(a.hidden) + " I=" + std::to_string(a.inter);
}

}  // namespace

extern "C" marlin_status marlin_bench_moe_weights_create(const marlin_bench_moe_weights_args* a,
                                                         marlin_bench_moe_weights** out) {
  clear_error();
  if (a == nullptr || out == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_weights_create: null argument");
  *out = nullptr;
  if (a->experts < 1 || a->experts > 512 || a->hidden < 16 || a->inter < 16 || a->hidden % 16 != 0 ||
      a->inter % 16 != 0 || a->copies < 1) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_weights_create: " + shape_str(*a) + " copies=" +
                                               std::to_string(a->copies) +
                                               " (1..512 experts, H and I multiples of 16, copies >= 1)");
  }
  if (a->dtype != MARLIN_FP16 && a->dtype != MARLIN_BF16) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_weights_create: dtype must be fp16 or bf16");
  }
  if (a->format != MARLIN_BENCH_MOE_INT4 && a->format != MARLIN_BENCH_MOE_DENSE && a->format != MARLIN_BENCH_MOE_INT8 &&
      a->format != MARLIN_BENCH_MOE_FP8) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_weights_create: unknown format " +
                                               std::to_string(static_cast<int>(a->format)));
  }
  marlin_bench_moe_weights* w = new (std::nothrow) marlin_bench_moe_weights();
  if (w == nullptr) return fail(MARLIN_E_CUDA, "marlin_bench_moe_weights_create: out of host memory");
  std::unique_ptr<marlin_bench_moe_weights> owner(w);
  w->args = *a;
  const size_t E = static_cast<size_t>(a->experts);
  const size_t H = static_cast<size_t>(a->hidden);
  const size_t I = static_cast<size_t>(a->inter);
  const bool quantized = a->format != MARLIN_BENCH_MOE_DENSE;
  if (quantized) {
    w->group13 = a->group_size > 0 ? a->group_size : a->hidden;
    w->group2 = a->group_size > 0 ? a->group_size : a->inter;
    w->np13 = round_up(2 * a->inter, kTile);
    w->kp13 = round_up(a->hidden, kTile);
    w->np2 = round_up(a->hidden, kTile);
    w->kp2 = round_up(a->inter, kTile);
    // One kernel tile is 64 x 64 weights: 2048 bytes of INT4 codes, 4096 of 8-bit ones.
    const size_t tile_bytes = a->format == MARLIN_BENCH_MOE_INT4 ? 2048 : 4096;
    w->w13_stride = static_cast<size_t>(w->np13 / kTile) * static_cast<size_t>(w->kp13 / kTile) * tile_bytes;
    w->w2_stride = static_cast<size_t>(w->np2 / kTile) * static_cast<size_t>(w->kp2 / kTile) * tile_bytes;
    const size_t g13 = (H + w->group13 - 1) / w->group13;
    const size_t g2 = (I + w->group2 - 1) / w->group2;
    w->s13_stride = g13 * static_cast<size_t>(w->np13) * 2;
    w->s2_stride = g2 * static_cast<size_t>(w->np2) * 2;
  } else {
    w->w13_stride = H * 2 * I * 2;
    w->w2_stride = I * H * 2;
  }
  const size_t w13_bytes = align256(E * w->w13_stride), s13_bytes = align256(E * w->s13_stride);
  const size_t w2_bytes = align256(E * w->w2_stride), s2_bytes = align256(E * w->s2_stride);
  const size_t copy_bytes = w13_bytes + s13_bytes + w2_bytes + s2_bytes;

  float scale_lo = a->format == MARLIN_BENCH_MOE_INT4 ? kScaleLo4 : kScaleLo8;
  float scale_hi = a->format == MARLIN_BENCH_MOE_INT4 ? kScaleHi4 : kScaleHi8;
  if (a->format == MARLIN_BENCH_MOE_FP8) {
    const float fold = a->dtype == MARLIN_BF16 ? kFp8FoldBf16 : kFp8FoldFp16;
    scale_lo *= fold;
    scale_hi *= fold;
  }
  auto fill_codes = [&](void* p, size_t bytes, uint64_t sd, cudaStream_t st) {
    return a->format == MARLIN_BENCH_MOE_FP8 ? marlin_bench_fill_e4m3(p, bytes, sd, st)
                                             : marlin_bench_fill_bytes(p, bytes, sd, st);
  };
  Stream stream;
  MB_TRY(stream.create());
  const cudaStream_t s = stream.get();
  w->copies.resize(static_cast<size_t>(a->copies));
  uint64_t seed = a->seed;
  for (MoeWeightCopy& c : w->copies) {
    const marlin_status st = c.buf.allocate(copy_bytes);
    if (st != MARLIN_OK) {
      return fail(st, std::string("marlin_bench_moe_weights_create: ") + shape_str(*a) + ", " +
                          std::to_string(a->copies) + " copies of " + std::to_string(copy_bytes) +
                          " bytes: " + marlin_bench_last_error());
    }
    uint8_t* base = c.buf.as<uint8_t>();
    c.w13 = base;
    c.s13 = quantized ? base + w13_bytes : nullptr;
    c.w2 = base + w13_bytes + s13_bytes;
    c.s2 = quantized ? base + w13_bytes + s13_bytes + w2_bytes : nullptr;
    if (quantized) {
      MB_TRY(fill_codes(c.w13, E * w->w13_stride, seed++, s));
      MB_TRY(marlin_bench_fill_halves(c.s13, E * w->s13_stride / 2, a->dtype, scale_lo, scale_hi, seed++, s));
      MB_TRY(fill_codes(c.w2, E * w->w2_stride, seed++, s));
      MB_TRY(marlin_bench_fill_halves(c.s2, E * w->s2_stride / 2, a->dtype, scale_lo, scale_hi, seed++, s));
    } else {
      MB_TRY(marlin_bench_fill_halves(c.w13, E * w->w13_stride / 2, a->dtype, kDenseLo, kDenseHi, seed++, s));
      MB_TRY(marlin_bench_fill_halves(c.w2, E * w->w2_stride / 2, a->dtype, kDenseLo, kDenseHi, seed++, s));
    }
    w->bytes += copy_bytes;
  }
  MB_CUDA(cudaStreamSynchronize(s));
  *out = owner.release();
  return MARLIN_OK;
}

extern "C" size_t marlin_bench_moe_weights_bytes(const marlin_bench_moe_weights* w) {
  return w != nullptr ? w->bytes : 0;
}

extern "C" void marlin_bench_moe_weights_destroy(marlin_bench_moe_weights* w) { delete w; }

namespace marlin::bench::moe {

marlin_status check_weights(const marlin_bench_moe_weights* w, bool dense, const char* what) {
  if (w == nullptr || w->copies.empty()) return fail(MARLIN_E_INVALID_ARGUMENT, std::string(what) + ": no weights");
  if ((w->args.format == MARLIN_BENCH_MOE_DENSE) != dense) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                std::string(what) + (dense ? ": needs dense weights" : ": needs quantized (INT4, INT8, FP8) weights"));
  }
  return MARLIN_OK;
}

marlin_status routing_runs(const marlin_bench_moe_routing& r, int32_t experts, int32_t copies, int32_t block,
                           std::vector<RotationRuns>* out) {
  if (r.m < 1 || r.topk < 1 || r.topk > 16 || r.topk > experts || r.rotations < 1 || r.ids == nullptr ||
      r.weights == nullptr || r.copy_of == nullptr || block < 1) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                "MoE routing: m=" + std::to_string(r.m) + " topk=" + std::to_string(r.topk) + " rotations=" +
                    std::to_string(r.rotations) + " block=" + std::to_string(block) +
                    " (need m >= 1, 1 <= topk <= min(16, experts), rotations >= 1, block >= 1, ids, weights, copy_of)");
  }
  const int64_t slots = int64_t(r.m) * r.topk;
  out->assign(static_cast<size_t>(r.rotations), RotationRuns{});
  std::vector<int32_t> counts(static_cast<size_t>(experts));
  for (int32_t rot = 0; rot < r.rotations; ++rot) {
    if (r.copy_of[rot] < 0 || r.copy_of[rot] >= copies) {
      return fail(MARLIN_E_INVALID_ARGUMENT, "MoE routing: rotation " + std::to_string(rot) + " reads copy " +
                                                 std::to_string(r.copy_of[rot]) + " of " + std::to_string(copies));
    }
    std::fill(counts.begin(), counts.end(), 0);
    const int32_t* ids = r.ids + rot * slots;
    for (int64_t i = 0; i < slots; ++i) {
      const int32_t e = ids[i];
      if (e == -1) continue;
      if (e < 0 || e >= experts) {
        return fail(MARLIN_E_INVALID_ARGUMENT, "MoE routing: rotation " + std::to_string(rot) + " slot " +
                                                   std::to_string(i) + " routes to expert " + std::to_string(e) +
                                                   " of " + std::to_string(experts));
      }
      ++counts[static_cast<size_t>(e)];
    }
    RotationRuns& rr = (*out)[static_cast<size_t>(rot)];
    int64_t offset = 0;
    for (int32_t e = 0; e < experts; ++e) {
      const int32_t n = counts[static_cast<size_t>(e)];
      if (n == 0) continue;
      rr.runs.push_back(ExpertRun{e, n, offset});
      offset += (int64_t(n) + block - 1) / block * block;
    }
    rr.used_rows = offset;
  }
  return MARLIN_OK;
}

marlin_status upload_routing(const marlin_bench_moe_routing& r, marlin_dtype dtype, int32_t hidden, uint64_t seed,
                             RoutedBuffers* b) {
  const size_t slots = static_cast<size_t>(r.m) * static_cast<size_t>(r.topk);
  const size_t act_bytes = static_cast<size_t>(r.m) * static_cast<size_t>(hidden) * 2;
  MB_TRY(b->stream.create());
  MB_TRY(b->ids.allocate(slots * static_cast<size_t>(r.rotations) * sizeof(int32_t)));
  MB_TRY(b->weights.allocate(slots * sizeof(float)));
  MB_TRY(b->x.allocate(act_bytes));
  MB_TRY(b->out.allocate(act_bytes));
  const cudaStream_t s = b->stream.get();
  MB_CUDA(cudaMemcpyAsync(b->ids.get(), r.ids, b->ids.bytes(), cudaMemcpyHostToDevice, s));
  MB_CUDA(cudaMemcpyAsync(b->weights.get(), r.weights, b->weights.bytes(), cudaMemcpyHostToDevice, s));
  MB_TRY(marlin_bench_fill_halves(b->x.get(), act_bytes / 2, dtype, kActLo, kActHi, seed, s));
  MB_TRY(marlin_bench_fill_halves(b->out.get(), act_bytes / 2, dtype, kActLo, kActHi, seed + 1, s));
  // The host arrays are the caller's: they must not be read after this returns.
  MB_CUDA(cudaStreamSynchronize(s));
  return MARLIN_OK;
}

int32_t cyclic_calls(int32_t rotations, int32_t requested) {
  const int32_t want = requested > 20 ? requested : 20;
  return (want + rotations - 1) / rotations * rotations;
}

}  // namespace marlin::bench::moe
