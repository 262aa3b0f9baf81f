// The @marlin/moe layer under the protocol: marlin_moe_plan_launch of marlin_moe.node (through dlsym), one plan per
// weight copy, the routing of every rotation on the device, timed with marlin_bench_time_graph.
#include <string>
#include <vector>

#include "moe_internal.cuh"

using namespace marlin::bench;
using namespace marlin::bench::moe;

namespace {

// Records a marlin_moe_* failure with the addon's own CUDA error (its copy of the runtime holds it).
marlin_status fail_moe(const marlin_bench_moe_api* api, marlin_status st, const std::string& call) {
  return fail_addon_call("marlin_moe", call, st, api->last_cuda_error_string);
}

marlin_moe_weight quant_weight(int32_t n, int32_t k, int32_t np, int32_t kp, int32_t group, const void* codes,
                               const void* scales) {
  marlin_moe_weight o{};
  o.n = n;
  o.k = k;
  o.n_padded = np;
  o.k_padded = kp;
  o.group_size = group;
  o.w = codes;
  o.scales = scales;
  return o;
}

struct MarlinCtx {
  const marlin_bench_moe_api* api = nullptr;
  std::vector<marlin_moe_plan*> plans;  // one per weight copy
  const int32_t* copy_of = nullptr;     // host [rotations]
  const int32_t* ids = nullptr;         // device [rotations][m][topk]
  int64_t slots = 0;
  const float* weights = nullptr;
  const void* x = nullptr;
  void* out = nullptr;
  void* ws = nullptr;
  size_t ws_bytes = 0;
  ~MarlinCtx() {
    for (marlin_moe_plan* p : plans) api->plan_destroy(p);
  }
};

marlin_status marlin_launch(void* ctx, int32_t rotation, void* stream) {
  MarlinCtx* c = static_cast<MarlinCtx*>(ctx);
  const marlin_status st = c->api->plan_launch(c->plans[static_cast<size_t>(c->copy_of[rotation])], c->x,
                                               c->ids + rotation * c->slots, c->weights, c->out, c->ws, c->ws_bytes,
                                               stream);
  if (st != MARLIN_OK) return fail_moe(c->api, st, "_plan_launch");
  return MARLIN_OK;
}

}  // namespace

extern "C" marlin_status marlin_bench_moe(const marlin_bench_moe_args* a, marlin_bench_moe_result* out) {
  clear_error();
  if (a == nullptr || out == nullptr || a->api == nullptr || a->api->plan_create == nullptr) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_moe: null argument or MoE API (marlin_bench_load_moe_api)");
  }
  MB_TRY(check_weights(a->weights, false, "marlin_bench_moe"));
  const marlin_bench_moe_weights& w = *a->weights;
  const marlin_bench_moe_api* api = a->api;
  const marlin_bench_moe_routing& r = a->routing;
  std::vector<RotationRuns> runs;
  // The block only shapes the host's runs, which the Marlin path does not use: 1 keeps the check generic.
  MB_TRY(routing_runs(r, w.args.experts, static_cast<int32_t>(w.copies.size()), 1, &runs));

  RoutedBuffers b;
  MB_TRY(upload_routing(r, w.args.dtype, w.args.hidden, a->seed, &b));
  const cudaStream_t s = b.stream.get();

  marlin_moe_problem p{};
  p.dtype = w.args.dtype;
  p.codec = w.args.format == MARLIN_BENCH_MOE_INT4   ? MARLIN_MOE_INT4
            : w.args.format == MARLIN_BENCH_MOE_INT8 ? MARLIN_MOE_INT8
                                                     : MARLIN_MOE_FP8;
  p.m = r.m;
  p.topk = r.topk;
  p.num_experts = w.args.experts;
  p.local_experts = w.args.experts;
  p.expert_map = nullptr;
  p.hidden = w.args.hidden;
  p.inter = w.args.inter;
  p.activation = a->activation;
  p.swiglu_alpha = a->swiglu_alpha;
  p.swiglu_limit = a->swiglu_limit;
  p.flags = 0;

  MarlinCtx ctx;
  ctx.api = api;
  for (const MoeWeightCopy& c : w.copies) {
    p.w13 = quant_weight(2 * w.args.inter, w.args.hidden, w.np13, w.kp13, w.group13, c.w13, c.s13);
    p.w2 = quant_weight(w.args.hidden, w.args.inter, w.np2, w.kp2, w.group2, c.w2, c.s2);
    marlin_moe_plan* plan = nullptr;
    const marlin_status st = api->plan_create(&p, &a->launch, &plan);
    if (st != MARLIN_OK) {
      const marlin_moe_launch& l = a->launch;
      return fail_moe(api, st,
                      "_plan_create (M=" + std::to_string(r.m) + " E=" + std::to_string(p.num_experts) + " H=" +
                          std::to_string(p.hidden) + " I=" + std::to_string(p.inter) + " topk=" +
                          std::to_string(r.topk) + ", configs " + std::to_string(l.config13) + "/" +
                          std::to_string(l.splits13) + " and " + std::to_string(l.config2) + "/" +
                          std::to_string(l.splits2) + ")");
    }
    ctx.plans.push_back(plan);
  }
  size_t ws_bytes = 0;
  for (marlin_moe_plan* plan : ctx.plans) ws_bytes = std::max(ws_bytes, api->plan_workspace_bytes(plan));
  DeviceBuffer ws;
  MB_TRY(ws.allocate(ws_bytes));
  const marlin_status ws_st = api->workspace_init(ws.get(), ws_bytes, s);
  if (ws_st != MARLIN_OK) return fail_moe(api, ws_st, "_workspace_init");

  ctx.copy_of = r.copy_of;
  ctx.ids = b.ids.as<int32_t>();
  ctx.slots = int64_t(r.m) * r.topk;
  ctx.weights = b.weights.as<float>();
  ctx.x = b.x.get();
  ctx.out = b.out.get();
  ctx.ws = ws.get();
  ctx.ws_bytes = ws_bytes;

  // One eager launch per rotation outside any capture (first-launch work done before the graph is built), then the
  // invalid-id counter must still be 0: every routed slot reached an expert.
  for (int32_t rot = 0; rot < r.rotations; ++rot) MB_TRY(marlin_launch(&ctx, rot, s));
  MB_CUDA(cudaStreamSynchronize(s));
  int32_t invalid = 0;
  MB_CUDA(cudaMemcpy(&invalid, api->invalid_id_counter(ctx.plans[0], ws.get()), sizeof invalid,
                     cudaMemcpyDeviceToHost));
  if (invalid != 0) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                "marlin_bench_moe: the layer skipped " + std::to_string(invalid) + " slots as invalid expert ids");
  }

  MB_TRY(time_rotations(marlin_launch, &ctx, r.rotations, cyclic_calls(r.rotations, a->calls), a->replays, s,
                        &out->timing));
  out->workspace_bytes = ws_bytes;
  out->block_size = api->plan_block_size(ctx.plans[0]);
  out->capacity = api->plan_capacity(ctx.plans[0]);
  out->gemm_launches = 2;
  return MARLIN_OK;
}
