// @marlin/fp8 addon entry: the shared runtime and GEMM exports (native/napi/gemm_binding.h) on the FP8 entry points of
// native/include/marlin/fp8.h.
#include <napi.h>

#include "gemm_binding.h"
#include "marlin/fp8.h"

namespace {
const marlin_napi::GemmApi kApi = MARLIN_GEMM_API(marlin_fp8, "@marlin/fp8");

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  marlin_napi::RegisterGemm(env, exports, &kApi);
  return exports;
}
}  // namespace

NODE_API_MODULE(marlin_fp8, Init)
