// @marlin/dense addon entry: the shared runtime exports plus the W4A16 GEMM (native/include/marlin/dense.h).
// Thin by design: validation with typed messages happens in TypeScript (src/gemm.ts) before anything reaches here;
// this file only unwraps handles and maps marlin_status to coded JS errors.
#include <napi.h>

#include "marlin/dense.h"
#include "marlin_napi.h"
#ifdef MARLIN_WITH_BENCH
#include "bench_binding.h"
#endif

namespace {

using marlin_napi::Check;
using marlin_napi::CodedError;
using marlin_napi::UnwrapBuffer;
using marlin_napi::UnwrapOptionalBuffer;
using marlin_napi::UnwrapStream;

// Layout of the Int32Array of problem numbers passed by src/native.ts (GEMM_PARAMS there mirrors it).
enum Param : int {
  kDtype, kM, kN, kK, kNPadded, kKPadded, kBits, kGroupSize, kLda, kLdc, kConfigId, kSplits, kHasPerm, kParamCount
};

const int32_t* ArgParams(napi_env env, napi_value v) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (is_ta) napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr);
  if (!is_ta || type != napi_int32_array || length < kParamCount) {
    throw CodedError(env, "MARLIN_E_VALUE", "gemm params must be an Int32Array of at least 13 numbers.");
  }
  return static_cast<const int32_t*>(data);
}

void FillProblem(const int32_t* a, marlin_dense_problem* p, marlin_dense_launch* l) {
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
}

// gemm(x, w, scales, zeros|null, perm|null, bias|null, y, workspace, stream|null, params: Int32Array)
// Enqueues one GEMM on the stream and returns at once (a launch takes microseconds).
void Gemm(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  marlin_dense_problem p{};
  marlin_dense_launch l{};
  FillProblem(ArgParams(env, info[9]), &p, &l);
  p.x = UnwrapBuffer(env, info[0], "x")->ptr;
  p.w = UnwrapBuffer(env, info[1], "w.qweight")->ptr;
  p.scales = UnwrapBuffer(env, info[2], "w.scales")->ptr;
  const marlin_buffer_header* zeros = UnwrapOptionalBuffer(env, info[3], "w.zeros");
  const marlin_buffer_header* perm = UnwrapOptionalBuffer(env, info[4], "w.perm");
  const marlin_buffer_header* bias = UnwrapOptionalBuffer(env, info[5], "bias");
  p.zeros = zeros != nullptr ? static_cast<const uint8_t*>(zeros->ptr) : nullptr;
  p.perm = perm != nullptr ? static_cast<const int32_t*>(perm->ptr) : nullptr;
  p.bias = bias != nullptr ? bias->ptr : nullptr;
  p.y = UnwrapBuffer(env, info[6], "out")->ptr;
  const marlin_buffer_header* ws = UnwrapBuffer(env, info[7], "workspace");
  Check(info.Env(), marlin_dense_gemm(&p, &l, ws->ptr, ws->bytes, UnwrapStream(env, info[8])), "marlin_dense_gemm");
}

// workspaceBytes(params) -> bytes the native side needs for this problem and launch.
Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  const int32_t* a = ArgParams(info.Env(), info[0]);
  marlin_dense_problem p{};
  marlin_dense_launch l{};
  FillProblem(a, &p, &l);
  // NOTE: only perm's presence matters for sizing (it adds the gathered-activation buffer): any non-null pointer.
  static const int32_t kPresent = 0;
  p.perm = a[kHasPerm] != 0 ? &kPresent : nullptr;
  return Napi::Number::New(info.Env(), static_cast<double>(marlin_dense_workspace_bytes(&p, &l)));
}

// workspaceInit(workspace, stream|null): zeroes the arrival counters once, when the workspace is created.
void WorkspaceInit(const Napi::CallbackInfo& info) {
  const marlin_buffer_header* ws = UnwrapBuffer(info.Env(), info[0], "workspace");
  Check(info.Env(), marlin_dense_workspace_init(ws->ptr, ws->bytes, UnwrapStream(info.Env(), info[1])),
        "marlin_dense_workspace_init");
}

Napi::Value ConfigCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), marlin_dense_config_count());
}

// configInfo(id) -> [mTile, nTiles, kTilesPerStage, stages]
Napi::Value ConfigInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw CodedError(env, "MARLIN_E_VALUE", "configInfo: id must be a number.");
  int32_t out[4] = {0, 0, 0, 0};
  Check(env, marlin_dense_config_info(info[0].As<Napi::Number>().Int32Value(), out), "marlin_dense_config_info");
  Napi::Array a = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) a.Set(i, Napi::Number::New(env, out[i]));
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  marlin_napi::RegisterRuntime(env, exports);
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("workspaceBytes", Napi::Function::New(env, WorkspaceBytes, "workspaceBytes"));
  exports.Set("workspaceInit", Napi::Function::New(env, WorkspaceInit, "workspaceInit"));
  exports.Set("configCount", Napi::Function::New(env, ConfigCount, "configCount"));
  exports.Set("configInfo", Napi::Function::New(env, ConfigInfo, "configInfo"));
  exports.Set("addon", Napi::String::New(env, "marlin_dense"));
#ifdef MARLIN_WITH_BENCH
  marlin_register_bench(env, exports);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(marlin_dense, Init)
