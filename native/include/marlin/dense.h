// @marlin/dense C ABI: W4A16 GEMM on weights in the packed format of docs/format.md (version 1).
// Torch-free and Node-free: plain pointers, a stream, a status code.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum marlin_dtype { MARLIN_FP16 = 0, MARLIN_BF16 = 1 } marlin_dtype;

typedef struct marlin_dense_problem {
  marlin_dtype dtype;     // activation, scale, bias and output dtype
  int32_t m, n, k;        // logical sizes: x is m x k, y is m x n
  int32_t n_padded;       // Np of the packed weight (multiple of 64)
  int32_t k_padded;       // Kp of the packed weight (multiple of 64 for int4)
  int32_t bits;           // 4 (8 reserved for the int8 path)
  int32_t group_size;     // rows per scale group; per-channel: group_size = k
  int64_t lda;            // row stride of x in elements (>= k, multiple of 8)
  int64_t ldc;            // row stride of y in elements (>= n, multiple of 8)
  const void* x;          // m x k activations
  const void* w;          // packed codes, Np/64 * Kp/64 tiles of 2048 bytes
  const void* scales;     // [G][Np] in dtype
  const uint8_t* zeros;   // [G][Np] or NULL (symmetric, zero point 8)
  const int32_t* perm;    // [k] act-order permutation or NULL
  const void* bias;       // [n] in dtype or NULL
  void* y;                // m x n output
} marlin_dense_problem;

// Launch flags (marlin_dense_launch.flags; 0 = the defaults).
//   MARLIN_DENSE_LAUNCH_SERIAL: no programmatic dependent launch. By default, on sm_90 and newer, a GEMM is launched
//     so that its blocks may start while the previous kernel of the stream is still running: they load the first
//     stages' weights, scales and zero points, then wait for that kernel to complete before they read x, bias or the
//     workspace or write y. The weight operands are therefore read possibly before the previous kernel of the stream
//     has finished: pass this flag when that kernel (not a copy) writes them. Ignored below sm_90.
#define MARLIN_DENSE_LAUNCH_SERIAL 1u
//   MARLIN_DENSE_LAUNCH_WORKSPACE_SPLITK: a split-K launch reduces its partials through the workspace even where it
//     could reduce them across a thread-block cluster (sm_90 and newer, 2..8 splits: the default there). Both sum the
//     partials in the same order and give the same bits; the flag exists for comparisons and tests. The environment
//     variable MARLIN_DENSE_SPLITK=workspace sets it on every launch of the process.
#define MARLIN_DENSE_LAUNCH_WORKSPACE_SPLITK 2u

typedef struct marlin_dense_launch {
  int32_t config_id;      // row of kernel-table.json (chosen by @marlin/core dispatch)
  int32_t splits;         // split-K factor >= 1 (1 = no cross-block reduction)
  uint32_t flags;         // MARLIN_DENSE_LAUNCH_* bits; unknown bits are rejected (MARLIN_E_INVALID_ARGUMENT)
  // Balanced last wave: 0 or 1 = off; t >= 2 (needs splits == 1): when the output tiles fill some whole waves of the
  // device's resident blocks and part of one more, the column blocks past the whole waves run as a second launch,
  // split-K t ways, so that the last wave's work is spread over every resident block instead of idling the rest.
  // Ignored (one plain launch) when the tiles make no partial wave or N_padded is not a multiple of the config's
  // block width; marlin_dense_plan_tail_blocks says what a plan does.
  int32_t tail_splits;
} marlin_dense_launch;

// Bytes of workspace a call needs (fp32 split-K partials, arrival counters, permuted activations); reads only the
// sizes, dtype, zero-point presence and act-order of p. With l->tail_splits >= 2 it depends on the current device
// (the tiles past its whole waves).
// The workspace needs no zeroing per call: counters are zeroed once when the workspace is created
// (marlin_dense_workspace_init) and every call leaves them at zero again. One workspace per stream.
size_t marlin_dense_workspace_bytes(const marlin_dense_problem* p, const marlin_dense_launch* l);
marlin_status marlin_dense_workspace_init(void* workspace, size_t bytes, void* stream);

marlin_status marlin_dense_gemm(const marlin_dense_problem* p, const marlin_dense_launch* l, void* workspace,
                                size_t workspace_bytes, void* stream /* cudaStream_t */);

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
typedef struct marlin_dense_plan marlin_dense_plan;

// p->x, p->y and p->bias are ignored (given per launch); everything else is validated as marlin_dense_gemm does.
// On success *out owns a new plan (free it with marlin_dense_plan_destroy); on failure *out is NULL.
marlin_status marlin_dense_plan_create(const marlin_dense_problem* p, const marlin_dense_launch* l,
                                       marlin_dense_plan** out);
// Workspace bytes a launch of this plan needs (marlin_dense_workspace_bytes of its problem and launch).
size_t marlin_dense_plan_workspace_bytes(const marlin_dense_plan* plan);
// Blocks per thread-block cluster of this plan's launches on the current device: the split count when its split-K
// reduction runs across a cluster (MARLIN_DENSE_LAUNCH_WORKSPACE_SPLITK), 1 otherwise, 0 for NULL.
int32_t marlin_dense_plan_cluster_size(const marlin_dense_plan* plan);
// Blocks of the balanced last wave's second launch (marlin_dense_launch.tail_splits): 0 when the plan is one launch.
int32_t marlin_dense_plan_tail_blocks(const marlin_dense_plan* plan);
// Enqueues one GEMM y = x * W (+ bias) with the plan's shapes: x is m rows of lda elements, y m rows of ldc, bias
// [n] or NULL. Same statuses as marlin_dense_gemm (MARLIN_E_MISALIGNED, MARLIN_E_WORKSPACE, MARLIN_E_CUDA, ...).
marlin_status marlin_dense_plan_launch(marlin_dense_plan* plan, const void* x, void* y, const void* bias,
                                       void* workspace, size_t workspace_bytes, void* stream /* cudaStream_t */);
void marlin_dense_plan_destroy(marlin_dense_plan* plan);  // NULL is a no-op; enqueued launches are unaffected

// Compiled configurations (mirrors kernel-table.json) so callers can check the binary agrees with the table.
int32_t marlin_dense_config_count(void);
// Fills mTile, nTiles, kTilesPerStage, stages for a config id; returns MARLIN_E_UNSUPPORTED for unknown ids.
marlin_status marlin_dense_config_info(int32_t config_id, int32_t out[4]);

#ifdef __cplusplus
}
#endif
