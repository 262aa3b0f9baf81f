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

namespace marlin_napi {
namespace {

// The addon's entry points (one GemmApi per .node: every addon links its own copy of this file).
const GemmApi* g_api = nullptr;


// Layout of the Int32Array of problem numbers passed by src/binding.ts (GemmParam there mirrors it).
enum Param : int {
  kDtype, kM, kN, kK, kNPadded, kKPadded, kBits, kGroupSize, kLda, kLdc, kConfigId, kSplits, kHasPerm, kFlags,
  kTailSplits, kParamCount
};

const int32_t* ArgParams(napi_env env, napi_value v) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (is_ta) napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr);
  if (!is_ta || type != napi_int32_array || length < kParamCount) {
    throw CodedError(env, "MARLIN_E_VALUE",
                     "gemm params must be an Int32Array of at least " + std::to_string(kParamCount) + " numbers.");
  }
  return static_cast<const int32_t*>(data);
}

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

// Type tag of a plan handle (upper half "marlin-d" in ASCII). Plans never cross addons: the tag tells them apart from
// every other External and from another addon's plans.
// The lower half is the addon's name hashed (FNV-1a), so a plan of one addon is refused by another.
napi_type_tag g_plan_tag = {0x6d61726c696e2d64ULL, 0};
uint64_t Fnv1a(const char* s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s != 0; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ULL;
  return h;
}

std::atomic<int64_t> g_live_plans{0};

// A marlin_gemm_plan plus the JS handles of the buffers it points into. The weight operands (qweight, scales,
// zeros, perm) are fixed at creation; the workspace and the stream are bound by planBind and change only when the
// caller moves the plan to another stream or the stream's workspace is reallocated. Every handle is held by a strong
// reference, so its header outlives the plan; a launch checks that none was released since (a freed buffer throws
// MARLIN_E_DISPOSED, never reaches the kernel).
struct PlanHolder {
  static constexpr int kOperands = 4;
  marlin_gemm_plan* plan = nullptr;  // NULL once destroyed
  napi_ref operand_refs[kOperands] = {};
  marlin_buffer_header* operands[kOperands] = {};
  napi_ref ws_ref = nullptr;
  marlin_buffer_header* ws = nullptr;
  napi_ref stream_ref = nullptr;
  StreamHandle* stream = nullptr;  // NULL: the legacy default stream
};
constexpr const char* kOperandNames[PlanHolder::kOperands] = {"w.qweight", "w.scales", "w.zeros", "w.perm"};

void DeleteRef(napi_env env, napi_ref* ref) {
  if (*ref != nullptr) napi_delete_reference(env, *ref);
  *ref = nullptr;
}

napi_ref NewRef(napi_env env, napi_value v) {
  napi_ref ref = nullptr;
  if (napi_create_reference(env, v, 1, &ref) != napi_ok) {
    throw CodedError(env, "MARLIN_E_VALUE", "gemm plan: could not reference an operand handle.");
  }
  return ref;
}

void UnbindWorkspace(napi_env env, PlanHolder* h) {
  DeleteRef(env, &h->ws_ref);
  DeleteRef(env, &h->stream_ref);
  h->ws = nullptr;
  h->stream = nullptr;
}

// Frees the native plan and drops every reference (idempotent). Enqueued launches are unaffected.
void DestroyPlan(napi_env env, PlanHolder* h) {
  if (h->plan == nullptr) return;
  g_api->fn.plan_destroy(h->plan);
  h->plan = nullptr;
  g_live_plans.fetch_sub(1);
  for (int i = 0; i < PlanHolder::kOperands; ++i) {
    DeleteRef(env, &h->operand_refs[i]);
    h->operands[i] = nullptr;
  }
  UnbindWorkspace(env, h);
}

// The holder behind a plan handle, destroyed or not; `what` names the caller in the error for anything else.
PlanHolder* PlanHolderOf(napi_env env, napi_value v, const char* what) {
  napi_valuetype type;
  bool ok = false;
  void* data = nullptr;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, v, &g_plan_tag, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    throw CodedError(env, "MARLIN_E_DISPOSED", std::string(what) + " is not a " + std::string(g_api->package) + " gemm plan handle.");
  }
  return static_cast<PlanHolder*>(data);
}

// A live plan (throws MARLIN_E_DISPOSED once destroyed).
PlanHolder* UnwrapPlan(napi_env env, napi_value v) {
  PlanHolder* h = PlanHolderOf(env, v, "plan");
  if (h->plan == nullptr) {
    throw CodedError(env, "MARLIN_E_DISPOSED",
                     "the gemm plan was already destroyed (its weight was disposed). Fix: upload the weight again.");
  }
  return h;
}

// planCreate(qweight, scales, zeros|null, perm|null, params: Int32Array) -> plan handle (params: the Param layout
// above); the problem's x, y and bias are given per launch. Validates, resolves the kernel and builds its parameters once.
Napi::Value PlanCreate(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  marlin_gemm_problem p{};
  marlin_gemm_launch l{};
  FillProblem(ArgParams(env, info[4]), &p, &l);
  marlin_buffer_header* hdr[PlanHolder::kOperands] = {
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
  try {
    for (int i = 0; i < PlanHolder::kOperands; ++i) {
      if (hdr[i] == nullptr) continue;
      h->operand_refs[i] = NewRef(env, info[i]);
      h->operands[i] = hdr[i];
    }
  } catch (...) {
    DestroyPlan(env, h);
    delete h;
    throw;
  }
  // Safety net only: the TS plan cache destroys plans explicitly (weight dispose, cache eviction).
  auto ext = Napi::External<PlanHolder>::New(info.Env(), h, [](Napi::Env e, PlanHolder* ph) {
    DestroyPlan(e, ph);
    delete ph;
  });
  ext.TypeTag(&g_plan_tag);
  return ext;
}

// planBind(plan, workspace, stream|null): the workspace (sized for the plan) and stream of the next launches.
void PlanBind(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  PlanHolder* h = UnwrapPlan(env, info[0]);
  marlin_buffer_header* ws = UnwrapBuffer(env, info[1], "workspace");
  if (ws->bytes < g_api->fn.plan_workspace_bytes(h->plan)) {
    Check(info.Env(), MARLIN_E_WORKSPACE, "planBind");
  }
  napi_valuetype type;
  napi_typeof(env, info[2], &type);
  StreamHandle* stream = nullptr;
  if (type != napi_null && type != napi_undefined) stream = UnwrapStreamHandle(env, info[2]);
  napi_ref ws_ref = NewRef(env, info[1]);
  napi_ref stream_ref = nullptr;
  if (stream != nullptr) {
    try {
      stream_ref = NewRef(env, info[2]);
    } catch (...) {
      DeleteRef(env, &ws_ref);
      throw;
    }
  }
  UnbindWorkspace(env, h);
  h->ws_ref = ws_ref;
  h->ws = ws;
  h->stream_ref = stream_ref;
  h->stream = stream;
}

// planLaunch(plan, x, out, bias|null): enqueues one GEMM with the plan's weight, sizes, workspace and stream.
void PlanLaunch(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  PlanHolder* h = UnwrapPlan(env, info[0]);
  for (int i = 0; i < PlanHolder::kOperands; ++i) {
    const marlin_buffer_header* o = h->operands[i];
    if (o != nullptr && o->ptr == nullptr && o->bytes != 0) {
      throw CodedError(env, "MARLIN_E_DISPOSED",
                       std::string(kOperandNames[i]) +
                           " was already freed. Fix: do not use a weight after dispose() (upload it again).");
    }
  }
  if (h->ws == nullptr) throw CodedError(env, "MARLIN_E_VALUE", "planLaunch: no workspace bound (call planBind).");
  if (h->ws->ptr == nullptr) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "workspace was already freed. Fix: bind the stream's current workspace.");
  }
  void* stream = nullptr;
  if (h->stream != nullptr) {
    stream = h->stream->stream;
    if (stream == nullptr) {
      throw CodedError(env, "MARLIN_E_DISPOSED", "stream was already destroyed. Fix: do not use a Stream after dispose().");
    }
  }
  const void* x = UnwrapBuffer(env, info[1], "x")->ptr;
  void* y = UnwrapBuffer(env, info[2], "out")->ptr;
  const marlin_buffer_header* bias = UnwrapOptionalBuffer(env, info[3], "bias");
  Check(info.Env(),
        g_api->fn.plan_launch(h->plan, x, y, bias != nullptr ? bias->ptr : nullptr, h->ws->ptr, h->ws->bytes, stream),
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
Napi::Value ConfigInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw CodedError(env, "MARLIN_E_VALUE", "configInfo: id must be a number.");
  int32_t out[4] = {0, 0, 0, 0};
  Check(env, g_api->fn.config_info(info[0].As<Napi::Number>().Int32Value(), out), "config_info");
  Napi::Array a = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) a.Set(i, Napi::Number::New(env, out[i]));
  return a;
}

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
  g_plan_tag.upper = Fnv1a(api->addon);
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
