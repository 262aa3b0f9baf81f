// @marlin/dense C ABI: INT4 (W4A16) and INT8 (W8A16) GEMM on weights in the packed format of docs/format.md (v1).
// Torch-free and Node-free: plain pointers, a stream, a status code.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

// The problem, launch and plan types are shared by every GEMM addon (gemm.h); these names are @marlin/dense's.
typedef marlin_gemm_problem marlin_dense_problem;  // bits 4: INT4 (docs/format.md "INT4"), bits 8: INT8 ("INT8")
typedef marlin_gemm_launch marlin_dense_launch;
typedef marlin_gemm_plan marlin_dense_plan;
#define MARLIN_DENSE_LAUNCH_SERIAL MARLIN_LAUNCH_SERIAL
#define MARLIN_DENSE_LAUNCH_WORKSPACE_SPLITK MARLIN_LAUNCH_WORKSPACE_SPLITK

// The entry points (declared by MARLIN_DECLARE_GEMM_ADDON(marlin_dense) below; every addon has the same set):
//
// Bytes of workspace a call needs (fp32 split-K partials, arrival counters, permuted activations); reads only the
// sizes, dtype, zero-point presence and act-order of p. With l->tail_splits >= 2 it depends on the current device
// (the tiles past its whole waves).
// The workspace needs no zeroing per call: counters are zeroed once when the workspace is created
// (marlin_dense_workspace_init) and every call leaves them at zero again. One workspace per stream.
//   size_t marlin_dense_workspace_bytes(const marlin_dense_problem* p, const marlin_dense_launch* l);
//   marlin_status marlin_dense_workspace_init(void* workspace, size_t bytes, void* stream);

//   marlin_status marlin_dense_gemm(const marlin_dense_problem* p, const marlin_dense_launch* l, void* workspace,
//                                   size_t workspace_bytes, void* stream /* cudaStream_t */);

// ---- prepared launches ------------------------------------------------------------------------------------------
// A plan fixes everything of a call except the activations, the output, the bias, the workspace and the stream:
// the weight operands (w, scales, zeros, perm), the sizes and strides (m, n, k, lda, ldc), the dtype and the launch
// (config, splits). marlin_dense_plan_create validates all of that once, resolves the kernel, its grid, block and
// dynamic shared memory (and opts in to > 48 KB of it) and fills the kernel's parameter block; a launch then only
// checks and patches in the per-call pointers. For the warp-specialised Hopper configs the plan caches the
// activations' TMA descriptor, keyed by (activation pointer, lda): it is encoded again only when x moves.
// The weight buffers must stay allocated while the plan is used (the plan holds their pointers, not the memory).
// A plan belongs to the device that was current at creation; it may be launched from any host thread, but not from
// two threads at once (the descriptor cache is not locked). marlin_dense_gemm is a plan made and launched per call.

// p->x, p->y and p->bias are ignored (given per launch); everything else is validated as marlin_dense_gemm does.
// On success *out owns a new plan (free it with marlin_dense_plan_destroy); on failure *out is NULL.
//   marlin_status marlin_dense_plan_create(const marlin_dense_problem* p, const marlin_dense_launch* l,
//                                          marlin_dense_plan** out);
// Workspace bytes a launch of this plan needs (marlin_dense_workspace_bytes of its problem and launch).
//   size_t marlin_dense_plan_workspace_bytes(const marlin_dense_plan* plan);
// Blocks per thread-block cluster of this plan's launches on the current device: the split count when its split-K
// reduction runs across a cluster (MARLIN_DENSE_LAUNCH_WORKSPACE_SPLITK), 1 otherwise, 0 for NULL.
//   int32_t marlin_dense_plan_cluster_size(const marlin_dense_plan* plan);
// Blocks of the balanced last wave's second launch (marlin_dense_launch.tail_splits): 0 when the plan is one launch.
//   int32_t marlin_dense_plan_tail_blocks(const marlin_dense_plan* plan);
// Enqueues one GEMM y = x * W (+ bias) with the plan's shapes: x is m rows of lda elements, y m rows of ldc, bias
// [n] or NULL. Same statuses as marlin_dense_gemm (MARLIN_E_MISALIGNED, MARLIN_E_WORKSPACE, MARLIN_E_CUDA, ...).
//   marlin_status marlin_dense_plan_launch(marlin_dense_plan* plan, const void* x, void* y, const void* bias,
//                                          void* workspace, size_t workspace_bytes, void* stream /* cudaStream_t */);
//   void marlin_dense_plan_destroy(marlin_dense_plan* plan);  // NULL is a no-op; enqueued launches are unaffected

// Compiled configurations of this addon's variants (the non-experimental rows of kernel-table.json built for them),
// so callers can check the binary agrees with the table.
//   int32_t marlin_dense_config_count(void);
// Fills mTile, nTiles, kTilesPerStage, stages for a config id; returns MARLIN_E_UNSUPPORTED for unknown ids.
//   marlin_status marlin_dense_config_info(int32_t config_id, int32_t out[4]);

MARLIN_DECLARE_GEMM_ADDON(marlin_dense)

#ifdef __cplusplus
}
#endif
