// The GEMM exports every addon shares (planCreate / planBind / planLaunch / planDestroy, workspace and config queries;
// the TypeScript side is @marlin/core's addon kit). An addon's binding file registers them on its own C entry points
// (gemm.h MARLIN_DECLARE_GEMM_ADDON):
//   static const marlin_napi::GemmApi kApi = MARLIN_GEMM_API(marlin_fp8, "@marlin/fp8");
//   ... marlin_napi::RegisterGemm(env, exports, &kApi);   (also registers the runtime exports)
#pragma once
#include <napi.h>

#include "marlin/gemm.h"

namespace marlin_napi {

struct GemmApi {
  const char* addon;    // module name, e.g. "marlin_fp8" (the `addon` export; also keys the plan handles' type tag)
  const char* package;  // npm package, for messages
  size_t (*workspace_bytes)(const marlin_gemm_problem*, const marlin_gemm_launch*);
  marlin_status (*workspace_init)(void*, size_t, void*);
  marlin_status (*plan_create)(const marlin_gemm_problem*, const marlin_gemm_launch*, marlin_gemm_plan**);
  size_t (*plan_workspace_bytes)(const marlin_gemm_plan*);
  int32_t (*plan_cluster_size)(const marlin_gemm_plan*);
  int32_t (*plan_tail_blocks)(const marlin_gemm_plan*);
  marlin_status (*plan_launch)(marlin_gemm_plan*, const void*, void*, const void*, void*, size_t, void*);
  void (*plan_destroy)(marlin_gemm_plan*);
  int32_t (*config_count)(void);
  marlin_status (*config_info)(int32_t, int32_t*);
};

#define MARLIN_GEMM_API(prefix, package)                                                                            \
  marlin_napi::GemmApi {                                                                                            \
    #prefix, package, prefix##_workspace_bytes, prefix##_workspace_init, prefix##_plan_create,                     \
        prefix##_plan_workspace_bytes, prefix##_plan_cluster_size, prefix##_plan_tail_blocks, prefix##_plan_launch, \
        prefix##_plan_destroy, prefix##_config_count, prefix##_config_info                                         \
  }

// Adds the runtime exports (marlin_napi.h RegisterRuntime) and the GEMM exports for `api` (kept by pointer).
void RegisterGemm(Napi::Env env, Napi::Object exports, const GemmApi* api);

}  // namespace marlin_napi
