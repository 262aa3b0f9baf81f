// @marlin/sparse C ABI: 2:4 structured-sparse INT4 weight x fp16 / bf16 activation GEMM (Sparse-Marlin) on weights in
// the packed layout of docs/format.md "2:4 sparse (packed)": (Np/64) * (Kp/64) tiles of 1536 bytes (1024 of kept codes,
// 512 of metadata), scales and zero points as the dense INT4 format's ([G][Np], groups counting rows of the dense K).
// The entry points have the contract of dense.h's, on the shared types of gemm.h, with:
//   bits = 4; w = the 2:4 tiles (Np/64 * Kp/64 * 1536 bytes, not bits * 512); perm = NULL (no act-order: a problem with
//   a permutation is MARLIN_E_UNSUPPORTED). The kernels run mma.sp.m16n8k32 (sm_80+) or wgmma.mma_async.sp (sm_90a)
//   on the same bytes. Every metadata nibble must name two increasing positions (validatePackedSparse in
//   @marlin/core): the sparse tensor cores leave other values undefined, and the kernels do not check them.
#pragma once
#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

MARLIN_DECLARE_GEMM_ADDON(marlin_sparse)

#ifdef __cplusplus
}
#endif
