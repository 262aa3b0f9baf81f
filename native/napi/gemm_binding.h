// The GEMM exports every addon shares (planCreate / planBind / planLaunch / planDestroy, workspace and config queries;
// the TypeScript side is @marlin/core's addon kit). An addon's binding file registers them on its own C entry points
// (gemm.h MARLIN_DECLARE_GEMM_ADDON); the whole binding file of a GEMM addon is
//   #include "marlin/fp8.h"
//   MARLIN_GEMM_ADDON(marlin_fp8, "@marlin/fp8")
#pragma once
#include <napi.h>

#include "marlin/gemm.h"

namespace marlin_napi {

struct GemmApi {
  const char* addon;    // module name, e.g. "marlin_fp8" (the `addon` export; also keys the plan handles' type tag)
  const char* package;  // npm package, for messages
  marlin_gemm_api fn;   // its C entry points
};

#define MARLIN_GEMM_API(prefix, package) \
  marlin_napi::GemmApi { #prefix, package, MARLIN_GEMM_API_OF(prefix) }

// Adds the runtime exports (marlin_napi.h RegisterRuntime) and the GEMM exports for `api` (kept by pointer).
void RegisterGemm(Napi::Env env, Napi::Object exports, const GemmApi* api);

}  // namespace marlin_napi

// The Node module `prefix` (e.g. marlin_fp8) of npm package `package`: the runtime and GEMM exports on the C entry
// points prefix_* (RegisterGemm).
#define MARLIN_GEMM_ADDON(prefix, package)                                  \
  namespace {                                                               \
  const marlin_napi::GemmApi kApi = MARLIN_GEMM_API(prefix, package);       \
  Napi::Object Init(Napi::Env env, Napi::Object exports) {                  \
    marlin_napi::RegisterGemm(env, exports, &kApi);                         \
    return exports;                                                         \
  }                                                                         \
  }                                                                         \
  NODE_API_MODULE(prefix, Init)
