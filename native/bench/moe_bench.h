// MoE layer benchmarks of the harness (docs/benchmark.md "MoE layers"): the whole @marlin/moe layer
// (marlin_moe_plan_launch: alignment, gather, both grouped GEMMs, activation, reduction) called through dlsym on
// marlin_moe.node, and the fp16 / bf16 cuBLAS baseline on the same routed problem around the SAME routing kernels
// (native/kernels/moe/route.cu, linked into marlin_bench.node). Same protocol as the GEMM benchmarks (bench.h): data
// built on the GPU, never zeros, weights read from HBM on every call, >= 20 calls per CUDA graph, median of replays.
//
// Weights live in a weights object (one per model and dtype, `copies` full layer copies), so a sweep over M and
// routings fills them once. The routing is the caller's: for each rotation r its top-k ids ([m][topk]) and the weight
// copy it reads; TypeScript (tools/bench/src/moe-routing.ts) relabels experts between rotations so that no expert's
// bytes are read twice within 4x the L2 size of streamed weights, and adds copies where relabelling cannot.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "marlin/bench.h"
#include "marlin/moe.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- marlin_moe.node's entry points (moe.h), resolved with dlsym ---------------------------------------------

typedef struct marlin_bench_moe_api {
  marlin_status (*plan_create)(const marlin_moe_problem* p, const marlin_moe_launch* l, marlin_moe_plan** out);
  size_t (*plan_workspace_bytes)(const marlin_moe_plan* plan);
  int32_t (*plan_capacity)(const marlin_moe_plan* plan);
  int32_t (*plan_block_size)(const marlin_moe_plan* plan);
  marlin_status (*workspace_init)(void* workspace, size_t bytes, void* stream);
  marlin_status (*plan_launch)(marlin_moe_plan* plan, const void* x, const int32_t* topk_ids,
                               const float* topk_weights, void* out, void* workspace, size_t workspace_bytes,
                               void* stream);
  const int32_t* (*invalid_id_counter)(const marlin_moe_plan* plan, const void* workspace);
  void (*plan_destroy)(marlin_moe_plan* plan);
  int32_t (*config_count)(void);                                   // optional
  marlin_status (*config_info)(int32_t config_id, int32_t out[4]);  // optional
  const char* (*last_cuda_error_string)(void);                      // optional: the addon's own CUDA error name
} marlin_bench_moe_api;

// Opens marlin_moe.node at `path` (dlopen RTLD_NOW | RTLD_LOCAL, never closed) and resolves marlin_moe_*.
// MARLIN_E_UNSUPPORTED (last error: the dlopen message or every missing symbol) when it cannot.
MARLIN_API marlin_status marlin_bench_load_moe_api(const char* path, marlin_bench_moe_api* out);

// ---- weights -------------------------------------------------------------------------------------------------

typedef enum marlin_bench_moe_format {
  // Stacked INT4 experts (docs/format.md "Stacked experts"): per copy w13 codes [E][tiles] (n = 2I, k = H), w13
  // scales [E][G][Np], w2 codes (n = H, k = I), w2 scales; random code bytes, scales uniform in [0.001, 0.01).
  MARLIN_BENCH_MOE_INT4 = 0,
  // The baseline's dense experts, row-major K x N per expert as cublasGemmEx reads them in cublas_row_major_gemm:
  // w13 [E][H][2I], w2 [E][I][H], uniform in [-0.08, 0.08) (the dequantized INT4 magnitude).
  MARLIN_BENCH_MOE_DENSE = 1,
  // Stacked INT8 experts (4096-byte tiles, implicit zero point 128): random code bytes, scales in [0.0001, 0.001).
  MARLIN_BENCH_MOE_INT8 = 2,
  // Stacked FP8 e4m3 experts: random e4m3 codes without NaNs, logical scales in [0.0001, 0.001) stored with the
  // exponent-bias fold (x 2^8 for fp16, x 2^120 for bf16; docs/format.md "FP8 e4m3"). 128 x 128 block scales are
  // group-128 scales in this layout.
  MARLIN_BENCH_MOE_FP8 = 3
} marlin_bench_moe_format;

typedef struct marlin_bench_moe_weights_args {
  marlin_bench_moe_format format;
  marlin_dtype dtype;          // scales (INT4) or weights (dense)
  int32_t experts, hidden, inter;
  int32_t group_size;          // quantized: 32, 64, 128 or <= 0 for per-channel; ignored for dense
  int32_t copies;              // full layer copies, >= 1
  uint64_t seed;
} marlin_bench_moe_weights_args;

typedef struct marlin_bench_moe_weights marlin_bench_moe_weights;

MARLIN_API marlin_status marlin_bench_moe_weights_create(const marlin_bench_moe_weights_args* args,
                                                         marlin_bench_moe_weights** out);
// Device bytes of all copies.
MARLIN_API size_t marlin_bench_moe_weights_bytes(const marlin_bench_moe_weights* w);
MARLIN_API void marlin_bench_moe_weights_destroy(marlin_bench_moe_weights* w);

// ---- one routed problem --------------------------------------------------------------------------------------

typedef struct marlin_bench_moe_routing {
  int32_t m, topk;
  int32_t rotations;       // >= 1; graph call i runs rotation i % rotations
  const int32_t* ids;      // host [rotations][m][topk], each in 0..experts-1 (or -1: routed nowhere)
  const float* weights;    // host [m][topk] routing weights (every rotation)
  const int32_t* copy_of;  // host [rotations]: the weight copy each rotation reads
} marlin_bench_moe_routing;

typedef struct marlin_bench_moe_result {
  marlin_bench_timing timing;
  size_t workspace_bytes;   // Marlin: the plan's workspace; cuBLAS: routing + row buffers + its 32 MiB workspace
  int32_t block_size;       // alignment block B
  int64_t capacity;         // rows of the sorted, padded buffers
  int32_t gemm_launches;    // cuBLAS GEMM calls per layer call (rotation 0); Marlin: 2
} marlin_bench_moe_result;

typedef struct marlin_bench_moe_args {
  const marlin_bench_moe_api* api;
  const marlin_bench_moe_weights* weights;  // MARLIN_BENCH_MOE_INT4, _INT8 or _FP8 (the layer's codec)
  marlin_bench_moe_routing routing;
  marlin_moe_activation activation;
  float swiglu_alpha, swiglu_limit;
  marlin_moe_launch launch;                 // from @marlin/core's moe dispatch
  uint64_t seed;
  int32_t calls, replays;                   // 0 = marlin_bench_time_graph's defaults
} marlin_bench_moe_args;

// One plan per weight copy, the ids of every rotation uploaded once, one eager launch per rotation (the invalid-id
// counter must stay 0), then marlin_bench_time_graph of marlin_moe_plan_launch over the rotations.
MARLIN_API marlin_status marlin_bench_moe(const marlin_bench_moe_args* args, marlin_bench_moe_result* out);

typedef enum marlin_bench_moe_baseline {
  MARLIN_BENCH_MOE_GROUPED = 0,      // one cublasGemmGroupedBatchedEx per GEMM, one group per touched expert
  MARLIN_BENCH_MOE_PER_EXPERT = 1,   // one cublasGemmEx per touched expert per GEMM
  // No GEMM: alignment, gather, activation and sum alone, the layer's fixed cost (any weights object; none is read)
  MARLIN_BENCH_MOE_ROUTING_ONLY = 2
} marlin_bench_moe_baseline;

typedef struct marlin_bench_moe_cublas_args {
  const marlin_bench_moe_weights* weights;  // MARLIN_BENCH_MOE_DENSE (any format for ROUTING_ONLY)
  marlin_bench_moe_routing routing;
  marlin_moe_activation activation;
  float swiglu_alpha, swiglu_limit;
  int32_t block;                            // alignment block B (the Marlin plan's, so both align alike)
  marlin_bench_moe_baseline mode;
  uint64_t seed;
  int32_t calls, replays;
} marlin_bench_moe_cublas_args;

// The baseline layer: align, gather, activation and reduce of route.cu, and between them the two GEMMs through
// cuBLAS (fp32 compute, the weights' dtype in and out) on each touched expert's rows: the per-expert row counts
// come from the host ids (the alignment's result is checked against them once before timing).
// MARLIN_E_UNSUPPORTED when cuBLAS (or, for GROUPED, cublasGemmGroupedBatchedEx: cuBLAS 12.5+) is missing.
MARLIN_API marlin_status marlin_bench_moe_cublas(const marlin_bench_moe_cublas_args* args,
                                                 marlin_bench_moe_result* out);

#ifdef __cplusplus
}
#endif
