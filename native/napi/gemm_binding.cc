// The GEMM exports every addon shares (gemm_binding.h), on the addon's C entry points (GemmApi).
// Thin by design: validation with typed messages happens in TypeScript (core's addon kit) before anything reaches
// here; this file only unwraps handles and maps marlin_status to coded JS errors.
// A GEMM runs through a prepared plan: planCreate / planBind / planLaunch / planDestroy (weight operands, sizes and
// launch fixed once; per call only x, out, bias).
#include "gemm_binding.h"

#include <atomic>
#include <string>

#include "handles.h"
#include "marlin_napi.h"
#include "plan_refs.h"

namespace marlin_napi {
namespace {

// The addon's entry points (one GemmApi per .node: every addon links its own copy of this file).
const GemmApi* g_api = nullptr;


// Layout of the Int32Array of problem numbers passed by src/binding.ts (GemmParam there mirrors it).
enum Param : int {
  kDtype, kM, kN, kK, kNPadded, kKPadded, kBits, kGroupSize, kLda, kLdc, kConfigId, kSplits, kHasPerm, kFlags,
  kTailSplits, kParamCount
};

const int32_t* ArgParams(napi_env env, napi_value v) { return ArgInt32Params(env, v, kParamCount, "gemm params"); }

void FillProblem(const int32_t* a, marlin_gemm_problem* p, marlin_gemm_launch* l) {
  p->dtype = a[kDtype] == 1 ? MARLIN_BF16 : MARLIN_FP16;
  p->m = a[kM];
  p->n = a[kN];
  p->k = a[kK];
  p->n_padded = a[kNPadded];
  p->k_padded = a[kKPadded];
  p->bits = a[kBits];
  p->group_size = a[kGroupSize];
  p->lda = a[kLda];
  p->ldc = a[kLdc];
  l->config_id = a[kConfigId];
  l->splits = a[kSplits];
  l->flags = static_cast<uint32_t>(a[kFlags]);
  l->tail_splits = a[kTailSplits];
}

// ---- prepared plans -----------------------------------------------------------------------------------------------

// Type tag of a plan handle: "marlin-d" in the lower half, the addon's name hashed in the upper (PlanTypeTag), so a
// plan of one addon is refused by another and by every other External.
napi_type_tag g_plan_tag = {};

std::atomic<int64_t> g_live_plans{0};

// A marlin_gemm_plan plus the JS handles of the buffers it points into (PlanRefs): the weight operands (qweight,
// scales, zeros, perm) fixed at creation, the workspace and stream bound by planBind. Every handle is held by a strong
// reference, so its header outlives the plan; a launch checks that none was released since.
constexpr int kOperands = 4;
constexpr const char* kOperandNames[kOperands] = {"w.qweight", "w.scales", "w.zeros", "w.perm"};
struct PlanHolder {
  marlin_gemm_plan* plan = nullptr;  // NULL once destroyed
  PlanRefs refs{kOperandNames, kOperands};
};

// Frees the native plan and drops every reference (idempotent). Enqueued launches are unaffected.
void DestroyPlan(napi_env env, PlanHolder* h) {
  if (h->plan == nullptr) return;
  g_api->fn.plan_destroy(h->plan);
  h->plan = nullptr;
  g_live_plans.fetch_sub(1);
  h->refs.Release(env);
}

// The holder behind a plan handle, destroyed or not; `what` names the caller in the error for anything else.
PlanHolder* PlanHolderOf(napi_env env, napi_value v, const char* what) {
  return marlin_napi::PlanHolderOf<PlanHolder>(env, v, g_plan_tag, what, std::string(g_api->package) + " gemm plan");
}

// A live plan (throws MARLIN_E_DISPOSED once destroyed).
PlanHolder* UnwrapPlan(napi_env env, napi_value v) {
  return LivePlanHolder<PlanHolder>(
      env, v, g_plan_tag, std::string(g_api->package) + " gemm plan",
      "the gemm plan was already destroyed (its weight was disposed). Fix: upload the weight again.");
}

// planCreate(qweight, scales, zeros|null, perm|null, params: Int32Array) -> plan handle (params: the Param layout
// above); the problem's x, y and bias are given per launch. Validates, resolves the kernel and builds its parameters once.
Napi::Value PlanCreate(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  marlin_gemm_problem p{};
  marlin_gemm_launch l{};
  FillProblem(ArgParams(env, info[4]), &p, &l);
  marlin_buffer_header* hdr[kOperands] = {
      UnwrapBuffer(env, info[0], kOperandNames[0]), UnwrapBuffer(env, info[1], kOperandNames[1]),
      UnwrapOptionalBuffer(env, info[2], kOperandNames[2]), UnwrapOptionalBuffer(env, info[3], kOperandNames[3])};
  p.w = hdr[0]->ptr;
  p.scales = hdr[1]->ptr;
  p.zeros = hdr[2] != nullptr ? static_cast<const uint8_t*>(hdr[2]->ptr) : nullptr;
  p.perm = hdr[3] != nullptr ? static_cast<const int32_t*>(hdr[3]->ptr) : nullptr;
  marlin_gemm_plan* plan = nullptr;
  Check(info.Env(), g_api->fn.plan_create(&p, &l, &plan), "plan_create");
  auto* h = new PlanHolder{};
  h->plan = plan;
  g_live_plans.fetch_add(1);
  // The TS plan cache destroys plans on weight dispose and cache eviction.
  return PlanExternal(env, h, info, hdr, kOperands, g_plan_tag, DestroyPlan);
}

// planBind(plan, workspace, stream|null): the workspace (sized for the plan) and stream of the next launches.
void PlanBind(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  PlanHolder* h = UnwrapPlan(env, info[0]);
  h->refs.Bind(env, info[1], info[2], g_api->fn.plan_workspace_bytes(h->plan), "planBind");
}

// planLaunch(plan, x, out, bias|null): enqueues one GEMM with the plan's weight, sizes, workspace and stream.
void PlanLaunch(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  PlanHolder* h = UnwrapPlan(env, info[0]);
  void* stream = h->refs.CheckLaunch(env, "planLaunch");
  const marlin_buffer_header* ws = h->refs.workspace();
  const void* x = UnwrapBuffer(env, info[1], "x")->ptr;
  void* y = UnwrapBuffer(env, info[2], "out")->ptr;
  const marlin_buffer_header* bias = UnwrapOptionalBuffer(env, info[3], "bias");
  Check(info.Env(),
        g_api->fn.plan_launch(h->plan, x, y, bias != nullptr ? bias->ptr : nullptr, ws->ptr, ws->bytes, stream),
        "plan_launch");
}

// planDestroy(plan): frees the native plan and releases its references now (idempotent; the finalizer is the net).
void PlanDestroy(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  DestroyPlan(env, PlanHolderOf(env, info[0], "planDestroy: the argument"));
}

// planWorkspaceBytes(plan) -> workspace bytes a launch of the plan needs.
Napi::Value PlanWorkspaceBytes(const Napi::CallbackInfo& info) {
  PlanHolder* h = UnwrapPlan(info.Env(), info[0]);
  return Napi::Number::New(info.Env(), static_cast<double>(g_api->fn.plan_workspace_bytes(h->plan)));
}

// livePlans() -> native plans created and not yet destroyed (for leak tests).
Napi::Value LivePlans(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_live_plans.load()));
}

// workspaceBytes(params) -> bytes the native side needs for this problem and launch.
Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  const int32_t* a = ArgParams(info.Env(), info[0]);
  marlin_gemm_problem p{};
  marlin_gemm_launch l{};
  FillProblem(a, &p, &l);
  // NOTE: only perm's presence matters for sizing (it adds the gathered-activation buffer): any non-null pointer.
  static const int32_t kPresent = 0;
  p.perm = a[kHasPerm] != 0 ? &kPresent : nullptr;
  return Napi::Number::New(info.Env(), static_cast<double>(g_api->fn.workspace_bytes(&p, &l)));
}

// workspaceInit(workspace, stream|null): zeroes the arrival counters once, when the workspace is created.
void WorkspaceInit(const Napi::CallbackInfo& info) {
  const marlin_buffer_header* ws = UnwrapBuffer(info.Env(), info[0], "workspace");
  Check(info.Env(), g_api->fn.workspace_init(ws->ptr, ws->bytes, UnwrapStream(info.Env(), info[1])), "workspace_init");
}

Napi::Value ConfigCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_api->fn.config_count());
}

// configInfo(id) -> [mTile, nTiles, kTilesPerStage, stages]
Napi::Value ConfigInfo(const Napi::CallbackInfo& info) { return ConfigInfoArray(info, g_api->fn.config_info); }

// planClusterSize(plan) -> blocks per cluster of the plan's launches on the current device (1: no cluster).
Napi::Value PlanClusterSize(const Napi::CallbackInfo& info) {
  PlanHolder* h = UnwrapPlan(info.Env(), info[0]);
  return Napi::Number::New(info.Env(), g_api->fn.plan_cluster_size(h->plan));
}

// planTailBlocks(plan) -> blocks of the plan's balanced-last-wave launch (0: the plan is one launch).
Napi::Value PlanTailBlocks(const Napi::CallbackInfo& info) {
  PlanHolder* h = UnwrapPlan(info.Env(), info[0]);
  return Napi::Number::New(info.Env(), g_api->fn.plan_tail_blocks(h->plan));
}

}  // namespace

void RegisterGemm(Napi::Env env, Napi::Object exports, const GemmApi* api) {
  g_api = api;
  g_plan_tag = PlanTypeTag(0x6d61726c696e2d64ULL, api->addon);  // "marlin-d"
  RegisterRuntime(env, exports);
  exports.Set("workspaceBytes", Napi::Function::New(env, WorkspaceBytes, "workspaceBytes"));
  exports.Set("workspaceInit", Napi::Function::New(env, WorkspaceInit, "workspaceInit"));
  exports.Set("configCount", Napi::Function::New(env, ConfigCount, "configCount"));
  exports.Set("configInfo", Napi::Function::New(env, ConfigInfo, "configInfo"));
  exports.Set("planClusterSize", Napi::Function::New(env, PlanClusterSize, "planClusterSize"));
  exports.Set("planTailBlocks", Napi::Function::New(env, PlanTailBlocks, "planTailBlocks"));
  exports.Set("planCreate", Napi::Function::New(env, PlanCreate, "planCreate"));
  exports.Set("planBind", Napi::Function::New(env, PlanBind, "planBind"));
  exports.Set("planLaunch", Napi::Function::New(env, PlanLaunch, "planLaunch"));
  exports.Set("planDestroy", Napi::Function::New(env, PlanDestroy, "planDestroy"));
  exports.Set("planWorkspaceBytes", Napi::Function::New(env, PlanWorkspaceBytes, "planWorkspaceBytes"));
  exports.Set("livePlans", Napi::Function::New(env, LivePlans, "livePlans"));
  exports.Set("addon", Napi::String::New(env, api->addon));
}

}  // namespace marlin_napi
