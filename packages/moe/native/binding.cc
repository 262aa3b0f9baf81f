// @marlin/moe addon entry: the shared runtime exports (native/napi RegisterRuntime) and the MoE layer's exports on the
// C entry points of native/include/marlin/moe.h. Thin by design: the TypeScript side (src/binding.ts, src/layer.ts)
// validates with typed errors before anything reaches here; this file unwraps handles, checks that every buffer a
// launch touches is large enough for the plan's sizes, and maps marlin_status to coded JS errors.
//
// An MoE layer call runs through a prepared plan per token count M: planCreate / planBind / planLaunch / planDestroy
// (stacked weights, sizes, expert map and both GEMMs' launches fixed once; per call only x, the routing and out).
#include <napi.h>

#include <atomic>
#include <string>

#include "handles.h"
#include "marlin/moe.h"
#include "marlin_napi.h"
#include "plan_refs.h"

namespace {

using marlin_napi::CodedError;
using marlin_napi::PlanRefs;

// Layout of the Int32Array of numbers passed by src/binding.ts (MoeParam there mirrors it).
enum Param : int {
  kDtype, kCodec, kM, kTopk, kNumExperts, kLocalExperts, kHidden, kInter, kActivation, kFlags,
  kN13, kK13, kNPadded13, kKPadded13, kGroupSize13,
  kN2, kK2, kNPadded2, kKPadded2, kGroupSize2,
  kConfig13, kSplits13, kConfig2, kSplits2, kLaunchFlags, kTail13, kTail2, kParamCount
};

// Operand handles of planCreate, in this order (src/binding.ts MoeOperand).
enum Operand : int {
  kW13, kScales13, kZeros13, kPerm13, kBias13, kW2, kScales2, kZeros2, kPerm2, kBias2, kExpertMap, kOperands
};
constexpr const char* kOperandNames[kOperands] = {"w13.qweight", "w13.scales", "w13.zeros", "w13.perm",
                                                  "w13.bias",    "w2.qweight", "w2.scales", "w2.zeros",
                                                  "w2.perm",     "w2.bias",    "expertMap"};

// "marlin-m" in the lower half: MoE plans are another kind than the GEMM addons' plans.
const napi_type_tag g_plan_tag = marlin_napi::PlanTypeTag(0x6d61726c696e2d6dULL, "marlin_moe");
std::atomic<int64_t> g_live_plans{0};

struct MoePlan {
  marlin_moe_plan* plan = nullptr;  // NULL once destroyed
  PlanRefs refs{kOperandNames, kOperands};
  // What a launch's buffers must hold (bytes): x and out [m][H] in the dtype, ids and weights [m][topk] 4-byte.
  uint64_t act_bytes = 0, route_bytes = 0;
};

void DestroyPlan(napi_env env, MoePlan* h) {
  if (h->plan == nullptr) return;
  marlin_moe_plan_destroy(h->plan);
  h->plan = nullptr;
  g_live_plans.fetch_sub(1);
  h->refs.Release(env);
}

MoePlan* PlanOf(napi_env env, napi_value v, const char* what) {
  return marlin_napi::PlanHolderOf<MoePlan>(env, v, g_plan_tag, what, "@marlin/moe plan");
}

MoePlan* LivePlan(napi_env env, napi_value v) {
  return marlin_napi::LivePlanHolder<MoePlan>(
      env, v, g_plan_tag, "@marlin/moe plan",
      "the MoE plan was already destroyed (its layer was disposed). Fix: create the layer again.");
}

// A buffer of at least `bytes` (MARLIN_E_SHAPE otherwise): the kernels index it by the plan's sizes.
const marlin_buffer_header* Sized(napi_env env, napi_value v, const char* name, uint64_t bytes) {
  const marlin_buffer_header* b = marlin_napi::UnwrapBuffer(env, v, name);
  if (b->bytes < bytes) {
    throw CodedError(env, "MARLIN_E_SHAPE",
                     std::string(name) + " holds " + std::to_string(b->bytes) + " bytes; the launch reads or writes " +
                         std::to_string(bytes) + ". Fix: check the tensor's shape and dtype.");
  }
  return b;
}

void FillWeight(const int32_t* a, int n, int k, int np, int kp, int g, marlin_moe_weight* w) {
  w->n = a[n];
  w->k = a[k];
  w->n_padded = a[np];
  w->k_padded = a[kp];
  w->group_size = a[g];
}

const void* PtrOf(const marlin_buffer_header* h) { return h != nullptr ? h->ptr : nullptr; }

// planCreate(operands: Array(11) of buffer | null, params: Int32Array, swiglu: Float32Array [alpha, limit]) -> plan.
// Validates the problem once and creates both GEMMs' kit plans (marlin_moe_plan_create).
Napi::Value PlanCreate(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (!info[0].IsArray()) throw CodedError(env, "MARLIN_E_VALUE", "planCreate: operands must be an Array.");
  Napi::Array ops = info[0].As<Napi::Array>();
  if (ops.Length() != kOperands) {
    throw CodedError(env, "MARLIN_E_VALUE", "planCreate: operands must hold " + std::to_string(kOperands) + " entries.");
  }
  const int32_t* a = marlin_napi::ArgInt32Params(env, info[1], kParamCount, "moe params");
  float swiglu[2] = {1.702f, 7.0f};
  if (info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array &&
      info[2].As<Napi::Float32Array>().ElementLength() >= 2) {
    swiglu[0] = info[2].As<Napi::Float32Array>()[0];
    swiglu[1] = info[2].As<Napi::Float32Array>()[1];
  } else {
    throw CodedError(env, "MARLIN_E_VALUE", "planCreate: swiglu must be a Float32Array [alpha, limit].");
  }
  napi_value values[kOperands];
  marlin_buffer_header* hdr[kOperands];
  for (int i = 0; i < kOperands; ++i) {
    values[i] = ops.Get(static_cast<uint32_t>(i));
    const bool required = i == kW13 || i == kScales13 || i == kW2 || i == kScales2;
    hdr[i] = required ? marlin_napi::UnwrapBuffer(env, values[i], kOperandNames[i])
                      : marlin_napi::UnwrapOptionalBuffer(env, values[i], kOperandNames[i]);
  }
  marlin_moe_problem p{};
  p.dtype = a[kDtype] == 1 ? MARLIN_BF16 : MARLIN_FP16;
  p.codec = static_cast<marlin_moe_codec>(a[kCodec]);
  p.m = a[kM];
  p.topk = a[kTopk];
  p.num_experts = a[kNumExperts];
  p.local_experts = a[kLocalExperts];
  p.expert_map = static_cast<const int32_t*>(PtrOf(hdr[kExpertMap]));
  p.hidden = a[kHidden];
  p.inter = a[kInter];
  p.activation = static_cast<marlin_moe_activation>(a[kActivation]);
  p.swiglu_alpha = swiglu[0];
  p.swiglu_limit = swiglu[1];
  p.flags = static_cast<uint32_t>(a[kFlags]);
  FillWeight(a, kN13, kK13, kNPadded13, kKPadded13, kGroupSize13, &p.w13);
  FillWeight(a, kN2, kK2, kNPadded2, kKPadded2, kGroupSize2, &p.w2);
  p.w13.w = PtrOf(hdr[kW13]);
  p.w13.scales = PtrOf(hdr[kScales13]);
  p.w13.zeros = static_cast<const uint8_t*>(PtrOf(hdr[kZeros13]));
  p.w13.perm = static_cast<const int32_t*>(PtrOf(hdr[kPerm13]));
  p.w13.bias = PtrOf(hdr[kBias13]);
  p.w2.w = PtrOf(hdr[kW2]);
  p.w2.scales = PtrOf(hdr[kScales2]);
  p.w2.zeros = static_cast<const uint8_t*>(PtrOf(hdr[kZeros2]));
  p.w2.perm = static_cast<const int32_t*>(PtrOf(hdr[kPerm2]));
  p.w2.bias = PtrOf(hdr[kBias2]);
  marlin_moe_launch l{};
  l.config13 = a[kConfig13];
  l.splits13 = a[kSplits13];
  l.config2 = a[kConfig2];
  l.splits2 = a[kSplits2];
  l.flags = static_cast<uint32_t>(a[kLaunchFlags]);
  l.tail13 = a[kTail13];
  l.tail2 = a[kTail2];
  marlin_moe_plan* plan = nullptr;
  marlin_napi::Check(info.Env(), marlin_moe_plan_create(&p, &l, &plan), "marlin_moe_plan_create");
  auto* h = new MoePlan{};
  h->plan = plan;
  h->act_bytes = uint64_t(p.m) * uint64_t(p.hidden) * 2;
  h->route_bytes = uint64_t(p.m) * uint64_t(p.topk) * 4;
  g_live_plans.fetch_add(1);
  // The TS plan cache destroys plans on layer dispose and cache eviction.
  return marlin_napi::PlanExternal(env, h, values, hdr, kOperands, g_plan_tag, DestroyPlan);
}

// planBind(plan, workspace, stream|null): the workspace (sized for the plan, initialised) and stream of next launches.
void PlanBind(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  MoePlan* h = LivePlan(env, info[0]);
  h->refs.Bind(env, info[1], info[2], marlin_moe_plan_workspace_bytes(h->plan), "planBind");
}

// planLaunch(plan, x, topkIds, topkWeights, out): enqueues the whole layer on the bound stream.
void PlanLaunch(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  MoePlan* h = LivePlan(env, info[0]);
  void* stream = h->refs.CheckLaunch(env, "planLaunch");
  const marlin_buffer_header* ws = h->refs.workspace();
  const void* x = Sized(env, info[1], "x", h->act_bytes)->ptr;
  const void* ids = Sized(env, info[2], "topkIds", h->route_bytes)->ptr;
  const void* weights = Sized(env, info[3], "topkWeights", h->route_bytes)->ptr;
  void* out = Sized(env, info[4], "out", h->act_bytes)->ptr;
  marlin_napi::Check(info.Env(),
                     marlin_moe_plan_launch(h->plan, x, static_cast<const int32_t*>(ids),
                                            static_cast<const float*>(weights), out, ws->ptr, ws->bytes, stream),
                     "marlin_moe_plan_launch");
}

// planDestroy(plan): frees the native plan and releases its references now (idempotent; the finalizer is the net).
void PlanDestroy(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  DestroyPlan(env, PlanOf(env, info[0], "planDestroy: the argument"));
}

Napi::Value PlanWorkspaceBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(marlin_moe_plan_workspace_bytes(LivePlan(info.Env(), info[0])->plan)));
}

Napi::Value PlanCapacity(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), marlin_moe_plan_capacity(LivePlan(info.Env(), info[0])->plan));
}

Napi::Value PlanBlockSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), marlin_moe_plan_block_size(LivePlan(info.Env(), info[0])->plan));
}

// planInvalidIdOffset(plan) -> byte offset, inside the bound workspace, of the int32 count of skipped invalid ids.
Napi::Value PlanInvalidIdOffset(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  MoePlan* h = LivePlan(env, info[0]);
  const marlin_buffer_header* ws = h->refs.workspace();
  if (ws == nullptr || ws->ptr == nullptr) {
    throw CodedError(env, "MARLIN_E_VALUE", "planInvalidIdOffset: no live workspace bound (call planBind).");
  }
  const int32_t* counter = marlin_moe_invalid_id_counter(h->plan, ws->ptr);
  const auto offset = reinterpret_cast<const uint8_t*>(counter) - static_cast<const uint8_t*>(ws->ptr);
  if (counter == nullptr || offset < 0 || uint64_t(offset) + 4 > ws->bytes) {
    throw CodedError(env, "MARLIN_E_VALUE", "planInvalidIdOffset: the counter is not inside the workspace.");
  }
  return Napi::Number::New(env, double(offset));
}

Napi::Value LivePlans(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(g_live_plans.load()));
}

// workspaceInit(workspace, stream|null): zeroes the counters of a fresh workspace once.
void WorkspaceInit(const Napi::CallbackInfo& info) {
  const marlin_buffer_header* ws = marlin_napi::UnwrapBuffer(info.Env(), info[0], "workspace");
  marlin_napi::Check(info.Env(),
                     marlin_moe_workspace_init(ws->ptr, ws->bytes, marlin_napi::UnwrapStream(info.Env(), info[1])),
                     "marlin_moe_workspace_init");
}

int32_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw CodedError(info.Env(), "MARLIN_E_VALUE", std::string(name) + " must be a number.");
  return info[i].As<Napi::Number>().Int32Value();
}

// topkSoftmax(logits, logitsF32, dtype, m, numExperts, topk, renormalize, topkIds, topkWeights, stream|null).
void TopkSoftmax(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  const bool f32 = info[1].ToBoolean().Value();
  const int32_t dtype = IntArg(info, 2, "dtype");
  const int32_t m = IntArg(info, 3, "m");
  const int32_t experts = IntArg(info, 4, "numExperts");
  const int32_t topk = IntArg(info, 5, "topk");
  const bool renormalize = info[6].ToBoolean().Value();
  if (m < 1 || experts < 1 || topk < 1) throw CodedError(env, "MARLIN_E_VALUE", "topkSoftmax: sizes must be >= 1.");
  const uint64_t logit_bytes = uint64_t(m) * uint64_t(experts) * (f32 ? 4 : 2);
  const uint64_t route_bytes = uint64_t(m) * uint64_t(topk) * 4;
  const void* logits = Sized(env, info[0], "routerLogits", logit_bytes)->ptr;
  void* ids = Sized(env, info[7], "topkIds", route_bytes)->ptr;
  void* weights = Sized(env, info[8], "topkWeights", route_bytes)->ptr;
  marlin_napi::Check(info.Env(),
                     marlin_moe_topk_softmax(logits, f32 ? 1 : 0, dtype == 1 ? MARLIN_BF16 : MARLIN_FP16, m, experts,
                                             topk, renormalize ? 1 : 0, static_cast<int32_t*>(ids),
                                             static_cast<float*>(weights), marlin_napi::UnwrapStream(env, info[9])),
                     "marlin_moe_topk_softmax");
}

Napi::Value ConfigCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), marlin_moe_config_count());
}

// configInfo(id) -> [mTile, nTiles, kTilesPerStage, stages]
Napi::Value ConfigInfo(const Napi::CallbackInfo& info) {
  return marlin_napi::ConfigInfoArray(info, marlin_moe_config_info);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  marlin_napi::RegisterRuntime(env, exports);
  struct Entry {
    const char* name;
    Napi::Function::Callback fn;
  };
  const Entry entries[] = {
      {"planCreate", PlanCreate},       {"planWorkspaceBytes", PlanWorkspaceBytes},
      {"planCapacity", PlanCapacity},   {"planBlockSize", PlanBlockSize},
      {"planInvalidIdOffset", PlanInvalidIdOffset}, {"livePlans", LivePlans},
      {"configCount", ConfigCount},     {"configInfo", ConfigInfo},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  struct VoidEntry {
    const char* name;
    Napi::Function::VoidCallback fn;
  };
  const VoidEntry void_entries[] = {
      {"planBind", PlanBind},           {"planLaunch", PlanLaunch},   {"planDestroy", PlanDestroy},
      {"workspaceInit", WorkspaceInit}, {"topkSoftmax", TopkSoftmax},
  };
  for (const VoidEntry& e : void_entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  exports.Set("addon", Napi::String::New(env, "marlin_moe"));
  return exports;
}

}  // namespace

NODE_API_MODULE(marlin_moe, Init)
