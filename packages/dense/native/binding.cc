// @marlin/dense addon entry: the shared runtime and GEMM exports (native/napi/gemm_binding.h) on the INT4 / INT8 entry
// points of native/include/marlin/dense.h.
#include <napi.h>

#include "gemm_binding.h"
#include "marlin/dense.h"

namespace {
const marlin_napi::GemmApi kApi = MARLIN_GEMM_API(marlin_dense, "@marlin/dense");

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  marlin_napi::RegisterGemm(env, exports, &kApi);
  return exports;
}
}  // namespace

NODE_API_MODULE(marlin_dense, Init)
