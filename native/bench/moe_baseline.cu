// The MoE layer's cuBLAS baseline: the routed problem of marlin_bench_moe with dense fp16 / bf16 experts. The
// alignment, gather, activation and weighted sum are route.cu's kernels (the ones @marlin/moe runs, linked into this
// addon), so the two layers differ only in their GEMMs: cuBLAS here, one cublasGemmGroupedBatchedEx per GEMM (one
// group per touched expert) or one cublasGemmEx per touched expert. cuBLAS takes each expert's row count from the
// host, which generated the routing; the device alignment is checked against those counts before timing.
#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "cublas_loader.cuh"
#include "kernels/moe/route.h"
#include "moe_internal.cuh"

using namespace marlin::bench;
using namespace marlin::bench::moe;

namespace {

// cublasGemmGroupedBatchedEx (cublas_api.h, cuBLAS 12.5+); pointer arrays in device memory, the rest on the host.
using GroupedGemmFn = cublasStatus_t (*)(cublasHandle_t, const int* transa, const int* transb, const int* m,
                                         const int* n, const int* k, const void* alpha, const void* const a[],
                                         cudaDataType a_type, const int* lda, const void* const b[],
                                         cudaDataType b_type, const int* ldb, const void* beta, void* const c[],
                                         cudaDataType c_type, const int* ldc, int group_count, const int* group_size,
                                         int compute_type);

// Resolved from the library cublas_loader.cu loaded (same soname, RTLD_NOLOAD): the entry point is optional, so a
// cuBLAS without it still runs every other benchmark.
marlin_status grouped_gemm(GroupedGemmFn* out) {
  static std::once_flag once;
  static GroupedGemmFn fn = nullptr;
  static std::string error;
  std::call_once(once, [] {
    marlin_bench_cublas_info info{};
    marlin_bench_cublas_probe(&info);
    if (info.available == 0) {
      error = info.error;
      return;
    }
    void* lib = dlopen(info.library, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (lib == nullptr) {
      error = std::string(info.library) + " is not loaded";
      return;
    }
    fn = reinterpret_cast<GroupedGemmFn>(dlsym(lib, "cublasGemmGroupedBatchedEx"));
    if (fn == nullptr) error = std::string(info.library) + " has no cublasGemmGroupedBatchedEx (cuBLAS 12.5+)";
  });
  if (fn == nullptr) return fail(MARLIN_E_UNSUPPORTED, error);
  *out = fn;
  return MARLIN_OK;
}

// One GEMM of the layer over the touched experts of one rotation, as cublasGemmGroupedBatchedEx takes it: host
// arrays per group (one group per expert) and device arrays of operand pointers.
struct GroupedCall {
  std::vector<int> trans, m, n, k, lda, ldb, ldc, size;
  std::vector<float> alpha, beta;
  const void* const* a = nullptr;  // device [groups]
  const void* const* b = nullptr;
  void* const* c = nullptr;
};

struct BaselineCtx {
  bool gemms = true;                // false: the routing kernels alone
  const CublasHandle* handle = nullptr;
  GroupedGemmFn grouped = nullptr;  // null: one cublasGemmEx per expert
  marlin_dtype dtype{};
  marlin_moe_activation act{};
  float alpha = 0.0f, limit = 0.0f;
  int32_t m = 0, topk = 0, experts = 0, hidden = 0, inter = 0, block = 0;
  int64_t capacity = 0, slots = 0;
  const marlin_bench_moe_weights* w = nullptr;
  const std::vector<RotationRuns>* runs = nullptr;
  const int32_t* copy_of = nullptr;
  std::vector<GroupedCall> g13, g2;  // per rotation
  const int32_t* ids = nullptr;
  const float* weights = nullptr;
  const void* x = nullptr;
  void* out = nullptr;
  int32_t *sorted = nullptr, *block_expert = nullptr, *num_blocks = nullptr, *slot_row = nullptr, *invalid = nullptr;
  void *xs = nullptr, *h = nullptr, *a = nullptr;  // y2 reuses xs (dead after GEMM 1), as the Marlin layer does
};

marlin_status run_grouped(const BaselineCtx& c, const GroupedCall& g) {
  const cudaDataType t = c.dtype == MARLIN_BF16 ? CUDA_R_16BF : CUDA_R_16F;
  const cublasStatus_t st =
      c.grouped(c.handle->get(), g.trans.data(), g.trans.data(), g.m.data(), g.n.data(), g.k.data(), g.alpha.data(),
                g.a, t, g.lda.data(), g.b, t, g.ldb.data(), g.beta.data(), g.c, t, g.ldc.data(),
                static_cast<int>(g.size.size()), g.size.data(), kCublasCompute32F);
  if (st != kCublasStatusSuccess) return fail_cublas(st, "cublasGemmGroupedBatchedEx");
  return MARLIN_OK;
}

marlin_status baseline_launch(void* ctx, int32_t rotation, void* stream) {
  const BaselineCtx& c = *static_cast<const BaselineCtx*>(ctx);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  namespace mm = marlin::moe;
  MB_CUDA(mm::launch_align(c.ids + rotation * c.slots, c.m, c.topk, c.experts, nullptr, c.experts, c.block,
                           c.capacity, c.sorted, c.block_expert, c.num_blocks, c.slot_row, c.invalid, s));
  MB_CUDA(mm::launch_gather(c.dtype, c.x, c.m, c.topk, c.hidden, c.sorted, c.block_expert, c.num_blocks, c.block,
                            c.capacity, nullptr, nullptr, c.xs, s));
  const MoeWeightCopy& wc = c.w->copies[static_cast<size_t>(c.copy_of[rotation])];
  const std::vector<ExpertRun>& runs = (*c.runs)[static_cast<size_t>(rotation)].runs;
  const int64_t H = c.hidden, I = c.inter;
  if (!c.gemms) {
    // No GEMM 1: the activation reads whatever h holds.
  } else if (c.grouped != nullptr) {
    MB_TRY(run_grouped(c, c.g13[static_cast<size_t>(rotation)]));
  } else {
    for (const ExpertRun& e : runs) {
      MB_TRY(cublas_row_major_gemm(*c.handle, c.dtype, e.rows, static_cast<int>(2 * I), c.hidden,
                                   static_cast<const uint16_t*>(c.xs) + e.offset * H,
                                   static_cast<const uint8_t*>(wc.w13) + e.expert * c.w->w13_stride,
                                   static_cast<uint16_t*>(c.h) + e.offset * 2 * I));
    }
  }
  MB_CUDA(mm::launch_activation(c.dtype, c.act, c.alpha, c.limit, c.h, c.inter, c.block_expert, c.num_blocks, c.block,
                                c.capacity, nullptr, c.a, s));
  if (!c.gemms) {
    // No GEMM 2: the sum reads the gathered rows.
  } else if (c.grouped != nullptr) {
    MB_TRY(run_grouped(c, c.g2[static_cast<size_t>(rotation)]));
  } else {
    for (const ExpertRun& e : runs) {
      MB_TRY(cublas_row_major_gemm(*c.handle, c.dtype, e.rows, c.hidden, c.inter,
                                   static_cast<const uint16_t*>(c.a) + e.offset * I,
                                   static_cast<const uint8_t*>(wc.w2) + e.expert * c.w->w2_stride,
                                   static_cast<uint16_t*>(c.xs) + e.offset * H));
    }
  }
  MB_CUDA(mm::launch_reduce(c.dtype, c.xs, c.m, c.topk, c.hidden, c.slot_row, c.weights, c.out, s));
  return MARLIN_OK;
}

// The device alignment of rotation `rot` must give the host's runs: the same blocks, each on the same expert.
marlin_status check_alignment(const BaselineCtx& c, int32_t rot, cudaStream_t s) {
  const RotationRuns& rr = (*c.runs)[static_cast<size_t>(rot)];
  std::vector<int32_t> expect;
  for (const ExpertRun& e : rr.runs) expect.insert(expect.end(), (e.rows + c.block - 1) / c.block, e.expert);
  int32_t blocks = 0;
  MB_CUDA(cudaMemcpyAsync(&blocks, c.num_blocks, sizeof blocks, cudaMemcpyDeviceToHost, s));
  MB_CUDA(cudaStreamSynchronize(s));
  std::vector<int32_t> got;
  if (blocks > 0 && static_cast<size_t>(blocks) == expect.size()) {
    got.resize(expect.size());
    MB_CUDA(cudaMemcpyAsync(got.data(), c.block_expert, got.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, s));
    MB_CUDA(cudaStreamSynchronize(s));
  }
  if (static_cast<size_t>(blocks) != expect.size() || got != expect) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                "marlin_bench_moe_cublas: rotation " + std::to_string(rot) + ": the device alignment made " +
                    std::to_string(blocks) + " blocks, the host's per-expert counts " +
                    std::to_string(expect.size()) + " (or the blocks' experts differ): cuBLAS would read wrong rows");
  }
  return MARLIN_OK;
}

}  // namespace

extern "C" marlin_status marlin_bench_moe_cublas(const marlin_bench_moe_cublas_args* a,
                                                 marlin_bench_moe_result* out) {
  clear_error();
  if (a == nullptr || out == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_cublas: null argument");
  const bool gemms = a->mode != MARLIN_BENCH_MOE_ROUTING_ONLY;
  if (gemms) {
    MB_TRY(check_weights(a->weights, true, "marlin_bench_moe_cublas"));
  } else if (a->weights == nullptr || a->weights->copies.empty()) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_cublas: no weights");
  }
  if (a->mode != MARLIN_BENCH_MOE_GROUPED && a->mode != MARLIN_BENCH_MOE_PER_EXPERT &&
      a->mode != MARLIN_BENCH_MOE_ROUTING_ONLY) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                "marlin_bench_moe_cublas: unknown mode " + std::to_string(static_cast<int>(a->mode)));
  }
  const marlin_bench_moe_weights& w = *a->weights;
  const marlin_bench_moe_routing& r = a->routing;
  BaselineCtx ctx;
  if (a->mode == MARLIN_BENCH_MOE_GROUPED) MB_TRY(grouped_gemm(&ctx.grouped));
  std::vector<RotationRuns> runs;
  MB_TRY(routing_runs(r, w.args.experts, static_cast<int32_t>(w.copies.size()), a->block, &runs));

  RoutedBuffers b;
  MB_TRY(upload_routing(r, w.args.dtype, w.args.hidden, a->seed, &b));
  const cudaStream_t s = b.stream.get();

  const int64_t H = w.args.hidden, I = w.args.inter;
  const int64_t slots = int64_t(r.m) * r.topk;
  const int64_t capacity = marlin::moe::alignment_capacity(r.m, r.topk, w.args.experts, a->block);
  for (const RotationRuns& rr : runs) {
    if (rr.used_rows > capacity) {
      return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe_cublas: the host's runs need " +
                                                 std::to_string(rr.used_rows) + " rows, the alignment holds " +
                                                 std::to_string(capacity));
    }
  }
  // Routing buffers, then the rows: xs (also y2) [capacity][H], h [capacity][2I], a [capacity][I].
  const size_t sorted_b = align256(size_t(capacity) * 4), blocks_b = align256(size_t(capacity / a->block + 1) * 4);
  const size_t slot_b = align256(size_t(slots) * 4), small_b = 256;
  const size_t xs_b = align256(size_t(capacity * H) * 2), h_b = align256(size_t(capacity * 2 * I) * 2);
  const size_t a_b = align256(size_t(capacity * I) * 2);
  DeviceBuffer buf;
  MB_TRY(buf.allocate(sorted_b + blocks_b + slot_b + 2 * small_b + xs_b + h_b + a_b));
  uint8_t* p = buf.as<uint8_t>();
  ctx.sorted = reinterpret_cast<int32_t*>(p);
  ctx.block_expert = reinterpret_cast<int32_t*>(p += sorted_b);
  ctx.slot_row = reinterpret_cast<int32_t*>(p += blocks_b);
  ctx.num_blocks = reinterpret_cast<int32_t*>(p += slot_b);
  ctx.invalid = reinterpret_cast<int32_t*>(p += small_b);
  ctx.xs = (p += small_b);
  ctx.h = (p += xs_b);
  ctx.a = (p += h_b);
  MB_CUDA(cudaMemsetAsync(ctx.invalid, 0, sizeof(int32_t), s));
  // Without GEMM 1 the activation reads h as it is: random values, as a GEMM would have left.
  if (!gemms) MB_TRY(marlin_bench_fill_halves(ctx.h, h_b / 2, w.args.dtype, -1.0f, 1.0f, a->seed + 2, s));

  DeviceBuffer cublas_ws;
  CublasHandle handle;
  if (gemms) {
    MB_TRY(cublas_ws.allocate(kCublasWorkspaceBytes));
    MB_TRY(handle.create(s, cublas_ws.get(), cublas_ws.bytes()));
  }

  ctx.gemms = gemms;
  ctx.handle = &handle;
  ctx.dtype = w.args.dtype;
  ctx.act = a->activation;
  ctx.alpha = a->swiglu_alpha;
  ctx.limit = a->swiglu_limit;
  ctx.m = r.m;
  ctx.topk = r.topk;
  ctx.experts = w.args.experts;
  ctx.hidden = w.args.hidden;
  ctx.inter = w.args.inter;
  ctx.block = a->block;
  ctx.capacity = capacity;
  ctx.slots = slots;
  ctx.w = &w;
  ctx.runs = &runs;
  ctx.copy_of = r.copy_of;
  ctx.ids = b.ids.as<int32_t>();
  ctx.weights = b.weights.as<float>();
  ctx.x = b.x.get();
  ctx.out = b.out.get();

  // Grouped: each rotation's operand pointers, uploaded once ([rotation][GEMM][A, B, C][touched experts]).
  DeviceBuffer pointers;
  if (ctx.grouped != nullptr) {
    std::vector<const void*> host;
    std::vector<size_t> base;
    for (int32_t rot = 0; rot < r.rotations; ++rot) {
      const MoeWeightCopy& wc = w.copies[static_cast<size_t>(r.copy_of[rot])];
      const std::vector<ExpertRun>& rr = runs[static_cast<size_t>(rot)].runs;
      base.push_back(host.size());
      for (const ExpertRun& e : rr) host.push_back(static_cast<const uint8_t*>(wc.w13) + e.expert * w.w13_stride);
      for (const ExpertRun& e : rr) host.push_back(static_cast<const uint16_t*>(ctx.xs) + e.offset * H);
      for (const ExpertRun& e : rr) host.push_back(static_cast<const uint16_t*>(ctx.h) + e.offset * 2 * I);
      for (const ExpertRun& e : rr) host.push_back(static_cast<const uint8_t*>(wc.w2) + e.expert * w.w2_stride);
      for (const ExpertRun& e : rr) host.push_back(static_cast<const uint16_t*>(ctx.a) + e.offset * I);
      for (const ExpertRun& e : rr) host.push_back(static_cast<const uint16_t*>(ctx.xs) + e.offset * H);
    }
    MB_TRY(pointers.allocate(host.size() * sizeof(void*)));
    MB_CUDA(cudaMemcpyAsync(pointers.get(), host.data(), host.size() * sizeof(void*), cudaMemcpyHostToDevice, s));
    MB_CUDA(cudaStreamSynchronize(s));
    const void** dev = pointers.as<const void*>();
    for (int32_t rot = 0; rot < r.rotations; ++rot) {
      const std::vector<ExpertRun>& rr = runs[static_cast<size_t>(rot)].runs;
      const size_t n = rr.size();
      const void** at = dev + base[static_cast<size_t>(rot)];
      // Column-major C (N x rows) = A (N x K, ld N: the row-major K x N weight) x B (K x rows, ld K: the rows).
      auto make = [&](int32_t N, int32_t K, const void** ops) {
        GroupedCall g;
        for (const ExpertRun& e : rr) {
          g.trans.push_back(kCublasOpN);
          g.m.push_back(N);
          g.n.push_back(e.rows);
          g.k.push_back(K);
          g.lda.push_back(N);
          g.ldb.push_back(K);
          g.ldc.push_back(N);
          g.size.push_back(1);
          g.alpha.push_back(1.0f);
          g.beta.push_back(0.0f);
        }
        g.a = ops;
        g.b = ops + n;
        g.c = const_cast<void* const*>(reinterpret_cast<const void* const*>(ops + 2 * n));
        return g;
      };
      ctx.g13.push_back(make(static_cast<int32_t>(2 * I), w.args.hidden, at));
      ctx.g2.push_back(make(w.args.hidden, w.args.inter, at + 3 * n));
    }
  }

  // One eager call per rotation outside any capture, each alignment checked against the host's runs.
  for (int32_t rot = 0; rot < r.rotations; ++rot) {
    MB_TRY(baseline_launch(&ctx, rot, s));
    MB_TRY(check_alignment(ctx, rot, s));
  }
  MB_CUDA(cudaStreamSynchronize(s));

  MB_TRY(time_rotations(baseline_launch, &ctx, r.rotations, cyclic_calls(r.rotations, a->calls), a->replays, s,
                        &out->timing));
  out->workspace_bytes = buf.bytes() + cublas_ws.bytes();
  out->block_size = a->block;
  out->capacity = capacity;
  out->gemm_launches = !gemms ? 0 : ctx.grouped != nullptr ? 2 : 2 * static_cast<int32_t>(runs[0].runs.size());
  return MARLIN_OK;
}
