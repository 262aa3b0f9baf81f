// @marlin/sparse addon entry: the shared runtime and GEMM exports (native/napi/gemm_binding.h) on the 2:4 sparse entry
// points of native/include/marlin/sparse.h.
#include <napi.h>

#include "gemm_binding.h"
#include "marlin/sparse.h"

MARLIN_GEMM_ADDON(marlin_sparse, "@marlin/sparse")
