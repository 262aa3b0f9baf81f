// The C types every Marlin GEMM addon shares (@marlin/dense, @marlin/fp8, ...): the problem, the launch and its flags.
// Each addon's header (dense.h, fp8.h) declares its entry points on these types; docs/format.md defines the operands.
// Torch-free and Node-free: plain pointers, a stream, a status code.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "status.h"

// Entry points of the addons' C ABI are exported from the .node (the rest of the binary is hidden), so that another
// module in the process (the benchmark harness) can call them through dlsym.
#if defined(__GNUC__)
#define MARLIN_API __attribute__((visibility("default")))
#else
#define MARLIN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum marlin_dtype { MARLIN_FP16 = 0, MARLIN_BF16 = 1 } marlin_dtype;

typedef struct marlin_gemm_problem {
  marlin_dtype dtype;     // activation, scale, bias and output dtype
  int32_t m, n, k;        // logical sizes: x is m x k, y is m x n
  int32_t n_padded;       // Np of the packed weight (multiple of 64)
  int32_t k_padded;       // Kp of the packed weight (multiple of 64)
  int32_t bits;           // weight bits: 4 or 8; which codec a given bit width means is the addon's (dense: INT4 /
                          // INT8, fp8: e4m3)
  int32_t group_size;     // rows per scale group; per-channel: group_size = k
  int64_t lda;            // row stride of x in elements (>= k, multiple of 8)
  int64_t ldc;            // row stride of y in elements (>= n, multiple of 8)
  const void* x;          // m x k activations
  const void* w;          // packed codes, Np/64 * Kp/64 kernel tiles of 64 x 64 weights (bits * 512 bytes each)
  const void* scales;     // [G][Np] in dtype (FP8: with the exponent-bias correction folded in, docs/format.md)
  const uint8_t* zeros;   // [G][Np] or NULL (symmetric: the codec's default zero point)
  const int32_t* perm;    // [k] act-order permutation or NULL
  const void* bias;       // [n] in dtype or NULL
  void* y;                // m x n output
} marlin_gemm_problem;

// Launch flags (marlin_gemm_launch.flags; 0 = the defaults).
//   MARLIN_LAUNCH_SERIAL: no programmatic dependent launch. By default, on sm_90 and newer, a GEMM is launched so that
//     its blocks may start while the previous kernel of the stream is still running: they load the first stages'
//     weights, scales and zero points, then wait for that kernel to complete before they read x, bias or the
//     workspace or write y. The weight operands are therefore read possibly before the previous kernel of the stream
//     has finished: pass this flag when that kernel (not a copy) writes them. Ignored below sm_90.
#define MARLIN_LAUNCH_SERIAL 1u
//   MARLIN_LAUNCH_WORKSPACE_SPLITK: a split-K launch reduces its partials through the workspace even where it could
//     reduce them across a thread-block cluster (sm_90 and newer, 2..8 splits: the default there). Both sum the
//     partials in the same order and give the same bits; the flag exists for comparisons and tests. The environment
//     variable MARLIN_SPLITK=workspace (or MARLIN_DENSE_SPLITK=workspace) sets it on every launch of the process.
#define MARLIN_LAUNCH_WORKSPACE_SPLITK 2u

typedef struct marlin_gemm_launch {
  int32_t config_id;      // row of kernel-table.json (chosen by @marlin/core dispatch)
  int32_t splits;         // split-K factor >= 1 (1 = no cross-block reduction)
  uint32_t flags;         // MARLIN_LAUNCH_* bits; unknown bits are rejected (MARLIN_E_INVALID_ARGUMENT)
  // Balanced last wave: 0 or 1 = off; t >= 2 (needs splits == 1): when the output tiles fill some whole waves of the
  // device's resident blocks and part of one more, the column blocks past the whole waves run as a second launch,
  // split-K t ways, so that the last wave's work is spread over every resident block instead of idling the rest.
  // Ignored (one plain launch) when the tiles make no partial wave or N_padded is not a multiple of the config's
  // block width; the addon's *_plan_tail_blocks says what a plan does.
  int32_t tail_splits;
} marlin_gemm_launch;

// A prepared launch (see dense.h "prepared launches"); every addon's plans are this one type.
typedef struct marlin_gemm_plan marlin_gemm_plan;

#ifdef __cplusplus
}
#endif

// One addon's entry points as a table (the Node-API glue, the self-test and the benchmark harness drive any addon
// through it): MARLIN_GEMM_API_OF(marlin_fp8) fills one from the declarations below.
typedef struct marlin_gemm_api {
  size_t (*workspace_bytes)(const marlin_gemm_problem* p, const marlin_gemm_launch* l);
  marlin_status (*workspace_init)(void* workspace, size_t bytes, void* stream);
  marlin_status (*gemm)(const marlin_gemm_problem* p, const marlin_gemm_launch* l, void* workspace,
                        size_t workspace_bytes, void* stream);
  marlin_status (*plan_create)(const marlin_gemm_problem* p, const marlin_gemm_launch* l, marlin_gemm_plan** out);
  size_t (*plan_workspace_bytes)(const marlin_gemm_plan* plan);
  int32_t (*plan_cluster_size)(const marlin_gemm_plan* plan);
  int32_t (*plan_tail_blocks)(const marlin_gemm_plan* plan);
  marlin_status (*plan_launch)(marlin_gemm_plan* plan, const void* x, void* y, const void* bias, void* workspace,
                               size_t workspace_bytes, void* stream);
  void (*plan_destroy)(marlin_gemm_plan* plan);
  int32_t (*config_count)(void);
  marlin_status (*config_info)(int32_t config_id, int32_t out[4]);
} marlin_gemm_api;

#define MARLIN_GEMM_API_OF(prefix)                                                                         \
  {                                                                                                        \
    prefix##_workspace_bytes, prefix##_workspace_init, prefix##_gemm, prefix##_plan_create,                \
        prefix##_plan_workspace_bytes, prefix##_plan_cluster_size, prefix##_plan_tail_blocks,              \
        prefix##_plan_launch, prefix##_plan_destroy, prefix##_config_count, prefix##_config_info           \
  }

// Declares one addon's entry points, all with the same contract (documented in dense.h): <prefix>_workspace_bytes,
// _workspace_init, _gemm, _plan_create, _plan_workspace_bytes, _plan_cluster_size, _plan_tail_blocks, _plan_launch,
// _plan_destroy, _config_count, _config_info.
#define MARLIN_DECLARE_GEMM_ADDON(prefix)                                                                            \
  MARLIN_API size_t prefix##_workspace_bytes(const marlin_gemm_problem* p, const marlin_gemm_launch* l);              \
  MARLIN_API marlin_status prefix##_workspace_init(void* workspace, size_t bytes, void* stream);                     \
  MARLIN_API marlin_status prefix##_gemm(const marlin_gemm_problem* p, const marlin_gemm_launch* l, void* workspace, \
                                         size_t workspace_bytes, void* stream);                                     \
  MARLIN_API marlin_status prefix##_plan_create(const marlin_gemm_problem* p, const marlin_gemm_launch* l,           \
                                                marlin_gemm_plan** out);                                            \
  MARLIN_API size_t prefix##_plan_workspace_bytes(const marlin_gemm_plan* plan);                                     \
  MARLIN_API int32_t prefix##_plan_cluster_size(const marlin_gemm_plan* plan);                                       \
  MARLIN_API int32_t prefix##_plan_tail_blocks(const marlin_gemm_plan* plan);                                        \
  MARLIN_API marlin_status prefix##_plan_launch(marlin_gemm_plan* plan, const void* x, void* y, const void* bias,    \
                                                void* workspace, size_t workspace_bytes, void* stream);             \
  MARLIN_API void prefix##_plan_destroy(marlin_gemm_plan* plan);                                                     \
  MARLIN_API int32_t prefix##_config_count(void);                                                                    \
  MARLIN_API marlin_status prefix##_config_info(int32_t config_id, int32_t out[4]);
