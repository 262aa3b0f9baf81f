// @marlin/fp8 C ABI: FP8 e4m3 weight x fp16 / bf16 activation GEMM (W8A16) on weights in the packed format of
// docs/format.md ("FP8 e4m3": the INT8 byte layout, bits = 8, no zero points, scales with the exponent-bias
// correction folded in). The entry points have the contract of dense.h's, on the shared types of gemm.h.
#pragma once
#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

MARLIN_DECLARE_GEMM_ADDON(marlin_fp8)

#ifdef __cplusplus
}
#endif
