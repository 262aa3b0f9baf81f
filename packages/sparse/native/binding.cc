// @marlin/sparse addon entry: the shared runtime and GEMM exports (native/napi/gemm_binding.h) on the 2:4 sparse entry
// points of native/include/marlin/sparse.h.
#include <napi.h>

#include "gemm_binding.h"
#include "marlin/sparse.h"

namespace {
const marlin_napi::GemmApi kApi = MARLIN_GEMM_API(marlin_sparse, "@marlin/sparse");

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  marlin_napi::RegisterGemm(env, exports, &kApi);
  return exports;
}
}  // namespace

NODE_API_MODULE(marlin_sparse, Init)
