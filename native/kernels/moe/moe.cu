// C entry points of @marlin/moe (native/include/marlin/moe.h): a plan holds the two grouped GEMMs as kit plans of the
// "*-moe" variants (kit/problem_list.cuh ExpertProblem, generated units kit_*_moe_*.cu) and launches the layer's six
// kernels on one stream: align, gather, GEMM 1, activation, GEMM 2, reduce (route.cu has the four small ones).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <new>

#include "kit/host.h"
#include "marlin/moe.h"
#include "marlin_moe_instances.inc"  // generated from kernel-table.json: the *-moe variants
#include "route.h"

namespace {

using marlin::kit::aligned16;
using marlin::kit::ConfigInfo;
using marlin::kit::round_up;
using marlin::kit::Variant;
namespace gen = marlin::kit::generated;


const Variant* const kVariants[] = {&gen::variant_int4_moe, &gen::variant_int8_moe, &gen::variant_fp8_moe};
constexpr int kVariantCount = sizeof(kVariants) / sizeof(kVariants[0]);

// The kit's plan_create picks a variant per problem; here the codec decides (INT8 and FP8 share bits 8).
const Variant* int4_moe(const marlin_gemm_problem&) { return &gen::variant_int4_moe; }
const Variant* int8_moe(const marlin_gemm_problem&) { return &gen::variant_int8_moe; }
const Variant* fp8_moe(const marlin_gemm_problem&) { return &gen::variant_fp8_moe; }
marlin::kit::VariantOf variant_fn(marlin_moe_codec c) {
  switch (c) {
    case MARLIN_MOE_INT4: return int4_moe;
    case MARLIN_MOE_INT8: return int8_moe;
    case MARLIN_MOE_FP8: return fp8_moe;
  }
  return nullptr;
}

// The workspace: a head of two counters, the kit's region (split-K counters and partials of either GEMM), then the
// routing and the row buffers. GEMM 2 writes its output over the gathered input rows (dead after GEMM 1).
struct Layout {
  size_t kit, kit_bytes, sorted, block_expert, slot_row, xs, h, a, total;
};
constexpr size_t kHeadBytes = marlin::kit::kWorkspaceAlign;  // [0] blocks in use, [1] invalid ids seen
constexpr int kNumBlocksWord = 0, kInvalidWord = 1;

}  // namespace

struct marlin_moe_plan {
  marlin_moe_problem p;
  marlin_gemm_plan* g13 = nullptr;
  marlin_gemm_plan* g2 = nullptr;
  int block = 0;
  int64_t capacity = 0;
  Layout layout{};
  ~marlin_moe_plan() {
    marlin::kit::plan_destroy(g13);
    marlin::kit::plan_destroy(g2);
  }
};

namespace {

bool valid_weight(const marlin_moe_weight& w, int n, int k) {
  return w.n == n && w.k == k && w.w != nullptr && w.scales != nullptr;
}

marlin_status validate(const marlin_moe_problem& p) {
  if (p.dtype != MARLIN_FP16 && p.dtype != MARLIN_BF16) return MARLIN_E_INVALID_ARGUMENT;
  if (variant_fn(p.codec) == nullptr) return MARLIN_E_INVALID_ARGUMENT;
  if (p.m < 1 || p.topk < 1 || p.topk > 16 || p.num_experts < 1 || p.num_experts > 512) return MARLIN_E_INVALID_ARGUMENT;
  if (p.topk > p.num_experts || p.local_experts < 1 || p.local_experts > p.num_experts) return MARLIN_E_INVALID_ARGUMENT;
  if (p.expert_map == nullptr && p.local_experts != p.num_experts) return MARLIN_E_INVALID_ARGUMENT;
  if (p.hidden < 16 || p.inter < 16 || p.hidden % 16 != 0 || p.inter % 16 != 0) return MARLIN_E_INVALID_ARGUMENT;
  if (p.activation != MARLIN_MOE_SILU && p.activation != MARLIN_MOE_SWIGLU_OAI) return MARLIN_E_INVALID_ARGUMENT;
  if (p.activation == MARLIN_MOE_SWIGLU_OAI && !(std::isfinite(p.swiglu_alpha) && std::isfinite(p.swiglu_limit)))
    return MARLIN_E_INVALID_ARGUMENT;
  if ((p.flags & ~MARLIN_MOE_WEIGHT_ON_INPUT) != 0) return MARLIN_E_INVALID_ARGUMENT;
  if (!valid_weight(p.w13, 2 * p.inter, p.hidden) || !valid_weight(p.w2, p.hidden, p.inter))
    return MARLIN_E_INVALID_ARGUMENT;
  for (const marlin_moe_weight* w : {&p.w13, &p.w2}) {
    if ((w->perm && !aligned16(w->perm)) || (w->bias && (reinterpret_cast<uintptr_t>(w->bias) & 1)))
      return MARLIN_E_MISALIGNED;
  }
  // Slots and rows are int32 on the device.
  if (int64_t(p.m) * p.topk > (int64_t(1) << 30)) return MARLIN_E_UNSUPPORTED;
  return MARLIN_OK;
}

// The kit problem of one grouped GEMM: expert 0 over `rows` sorted rows (x, y, bias come at launch).
marlin_gemm_problem gemm_problem(const marlin_moe_problem& p, const marlin_moe_weight& w, int64_t rows) {
  marlin_gemm_problem g{};
  g.dtype = p.dtype;
  g.m = int32_t(rows);
  g.n = w.n;
  g.k = w.k;
  g.n_padded = w.n_padded;
  g.k_padded = w.k_padded;
  g.bits = p.codec == MARLIN_MOE_INT4 ? 4 : 8;
  g.group_size = w.group_size;
  g.lda = w.k;
  g.ldc = w.n;
  g.w = w.w;
  g.scales = w.scales;
  g.zeros = w.zeros;
  return g;
}

marlin_status plan_init(marlin_moe_plan& pl, const marlin_moe_problem& p, const marlin_moe_launch& l) {
  if (const marlin_status s = validate(p); s != MARLIN_OK) return s;
  const marlin::kit::VariantOf vf = variant_fn(p.codec);
  const Variant* v = vf(marlin_gemm_problem{});
  ConfigInfo c13, c2;
  if (!v->config(l.config13, &c13) || !v->config(l.config2, &c2)) return MARLIN_E_UNSUPPORTED;
  if (c13.m_tile != c2.m_tile) return MARLIN_E_INVALID_ARGUMENT;  // one alignment serves both GEMMs
  pl.p = p;
  pl.block = c13.m_tile;
  pl.capacity = marlin::moe::alignment_capacity(p.m, p.topk, p.local_experts, pl.block);
  if (pl.capacity > INT32_MAX / 2) return MARLIN_E_UNSUPPORTED;
  // The kit validates configs, splits, flags and balanced last waves (the wave is cut for capacity's M-blocks).
  const marlin_gemm_launch l13{l.config13, l.splits13, l.flags, l.tail13}, l2{l.config2, l.splits2, l.flags, l.tail2};
  const marlin_gemm_problem g13 = gemm_problem(p, p.w13, pl.capacity), g2 = gemm_problem(p, p.w2, pl.capacity);
  if (const marlin_status s = marlin::kit::plan_create(vf, &g13, &l13, &pl.g13); s != MARLIN_OK) return s;
  if (const marlin_status s = marlin::kit::plan_create(vf, &g2, &l2, &pl.g2); s != MARLIN_OK) return s;
  const size_t cap = size_t(pl.capacity), H = size_t(p.hidden), I = size_t(p.inter);
  Layout& w = pl.layout;
  w.kit = kHeadBytes;
  w.kit_bytes = std::max(marlin::kit::plan_workspace_bytes(pl.g13), marlin::kit::plan_workspace_bytes(pl.g2));
  w.sorted = w.kit + round_up(w.kit_bytes);
  w.block_expert = w.sorted + round_up(cap * 4);
  w.slot_row = w.block_expert + round_up(cap / pl.block * 4);
  w.xs = w.slot_row + round_up(size_t(p.m) * p.topk * 4);
  w.h = w.xs + round_up(cap * H * 2);
  w.a = w.h + round_up(cap * 2 * I * 2);
  w.total = w.a + round_up(cap * I * 2);
  return MARLIN_OK;
}

marlin_status cuda(cudaError_t e) { return marlin::kit::record_cuda(e); }

marlin_status launch(marlin_moe_plan& pl, const void* x, const int32_t* ids, const float* weights, void* out,
                     void* workspace, size_t bytes, cudaStream_t stream) {
  const marlin_moe_problem& p = pl.p;
  if (!x || !ids || !weights || !out) return MARLIN_E_INVALID_ARGUMENT;
  if (!aligned16(x) || !aligned16(out) || (reinterpret_cast<uintptr_t>(ids) & 3) ||
      (reinterpret_cast<uintptr_t>(weights) & 3))
    return MARLIN_E_MISALIGNED;
  if (!workspace || bytes < pl.layout.total || !aligned16(workspace)) return MARLIN_E_WORKSPACE;
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  const Layout& w = pl.layout;
  int32_t* head = reinterpret_cast<int32_t*>(ws);
  int32_t* sorted = reinterpret_cast<int32_t*>(ws + w.sorted);
  int32_t* block_expert = reinterpret_cast<int32_t*>(ws + w.block_expert);
  int32_t* slot_row = reinterpret_cast<int32_t*>(ws + w.slot_row);
  void* xs = ws + w.xs;
  void* h = ws + w.h;
  void* a = ws + w.a;
  void* y2 = xs;  // GEMM 2's output reuses the gathered rows, dead after GEMM 1
  const bool on_input = (p.flags & MARLIN_MOE_WEIGHT_ON_INPUT) != 0;
  // The alignment runs two kernels before each GEMM and the kernel in between (gather, activation) lets the GEMM
  // launch only after its own wait for the previous kernel (route.cu enter()): the routing is complete by then.
  const marlin::kit::ExpertRouting routing{block_expert, head + kNumBlocksWord, true};
  namespace moe = marlin::moe;
  if (marlin_status s = cuda(moe::launch_align(ids, p.m, p.topk, p.num_experts, p.expert_map, p.local_experts,
                                               pl.block, pl.capacity, sorted, block_expert, head + kNumBlocksWord,
                                               slot_row, head + kInvalidWord, stream));
      s != MARLIN_OK)
    return s;
  if (marlin_status s = cuda(moe::launch_gather(p.dtype, x, p.m, p.topk, p.hidden, sorted, block_expert,
                                                head + kNumBlocksWord, pl.block, pl.capacity, p.w13.perm,
                                                on_input ? weights : nullptr, xs, stream));
      s != MARLIN_OK)
    return s;
  if (marlin_status s = marlin::kit::plan_launch_experts(pl.g13, routing, xs, h, p.w13.bias, ws + w.kit, w.kit_bytes,
                                                         stream);
      s != MARLIN_OK)
    return s;
  if (marlin_status s = cuda(moe::launch_activation(p.dtype, p.activation, p.swiglu_alpha, p.swiglu_limit, h, p.inter,
                                                    block_expert, head + kNumBlocksWord, pl.block, pl.capacity,
                                                    p.w2.perm, a, stream));
      s != MARLIN_OK)
    return s;
  if (marlin_status s =
          marlin::kit::plan_launch_experts(pl.g2, routing, a, y2, p.w2.bias, ws + w.kit, w.kit_bytes, stream);
      s != MARLIN_OK)
    return s;
  return cuda(moe::launch_reduce(p.dtype, y2, p.m, p.topk, p.hidden, slot_row, on_input ? nullptr : weights, out,
                                 stream));
}

}  // namespace

extern "C" {

marlin_status marlin_moe_plan_create(const marlin_moe_problem* p, const marlin_moe_launch* l, marlin_moe_plan** out) {
  if (!out) return MARLIN_E_INVALID_ARGUMENT;
  *out = nullptr;
  if (!p || !l) return MARLIN_E_INVALID_ARGUMENT;
  auto* pl = new (std::nothrow) marlin_moe_plan;
  if (pl == nullptr) return MARLIN_E_INVALID_ARGUMENT;  // NOTE: host out-of-memory for a small struct
  if (const marlin_status s = plan_init(*pl, *p, *l); s != MARLIN_OK) {
    delete pl;
    return s;
  }
  *out = pl;
  return MARLIN_OK;
}

size_t marlin_moe_plan_workspace_bytes(const marlin_moe_plan* plan) { return plan ? plan->layout.total : 0; }
int32_t marlin_moe_plan_capacity(const marlin_moe_plan* plan) { return plan ? int32_t(plan->capacity) : 0; }
int32_t marlin_moe_plan_block_size(const marlin_moe_plan* plan) { return plan ? plan->block : 0; }

marlin_status marlin_moe_workspace_init(void* workspace, size_t bytes, void* stream) {
  const size_t head = kHeadBytes + marlin::kit::kCounterBytes;  // our counters, then the kit's
  if (!workspace || bytes < head || !aligned16(workspace)) return MARLIN_E_WORKSPACE;
  return cuda(cudaMemsetAsync(workspace, 0, head, static_cast<cudaStream_t>(stream)));
}

marlin_status marlin_moe_plan_launch(marlin_moe_plan* plan, const void* x, const int32_t* topk_ids,
                                     const float* topk_weights, void* out, void* workspace, size_t workspace_bytes,
                                     void* stream) {
  if (!plan) return MARLIN_E_INVALID_ARGUMENT;
  return launch(*plan, x, topk_ids, topk_weights, out, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
}

const int32_t* marlin_moe_invalid_id_counter(const marlin_moe_plan* plan, const void* workspace) {
  if (!plan || !workspace) return nullptr;
  return static_cast<const int32_t*>(workspace) + kInvalidWord;
}

void marlin_moe_plan_destroy(marlin_moe_plan* plan) { delete plan; }

marlin_status marlin_moe_topk_softmax(const void* logits, int32_t logits_f32, marlin_dtype dtype, int32_t m,
                                      int32_t num_experts, int32_t topk, int32_t renormalize, int32_t* topk_ids,
                                      float* topk_weights, void* stream) {
  if (!logits || !topk_ids || !topk_weights) return MARLIN_E_INVALID_ARGUMENT;
  if (!logits_f32 && dtype != MARLIN_FP16 && dtype != MARLIN_BF16) return MARLIN_E_INVALID_ARGUMENT;
  if (m < 1 || num_experts < 1 || num_experts > 512 || topk < 1 || topk > 16 || topk > num_experts)
    return MARLIN_E_INVALID_ARGUMENT;
  return cuda(marlin::moe::launch_topk_softmax(logits, logits_f32 != 0, dtype, m, num_experts, topk, renormalize != 0,
                                               topk_ids, topk_weights, static_cast<cudaStream_t>(stream)));
}

int32_t marlin_moe_config_count(void) { return marlin::kit::config_count(kVariants, kVariantCount); }

marlin_status marlin_moe_config_info(int32_t config_id, int32_t out[4]) {
  return marlin::kit::config_info(kVariants, kVariantCount, config_id, out);
}

}  // extern "C"
