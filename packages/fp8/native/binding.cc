// @marlin/fp8 addon entry: the shared runtime and GEMM exports (native/napi/gemm_binding.h) on the FP8 entry points of
// native/include/marlin/fp8.h.
#include <napi.h>

#include "gemm_binding.h"
#include "marlin/fp8.h"

MARLIN_GEMM_ADDON(marlin_fp8, "@marlin/fp8")
