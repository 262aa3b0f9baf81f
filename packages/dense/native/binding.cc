// @marlin/dense addon entry: the shared runtime and GEMM exports (native/napi/gemm_binding.h) on the INT4 / INT8 entry
// points of native/include/marlin/dense.h.
#include <napi.h>

#include "gemm_binding.h"
#include "marlin/dense.h"

MARLIN_GEMM_ADDON(marlin_dense, "@marlin/dense")
