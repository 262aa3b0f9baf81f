// @marlin/moe C ABI: a whole mixture-of-experts layer on stacked quantized experts (docs/format.md "Stacked experts")
// in one call on one stream, graph-capturable, no host synchronisation:
//
//   align    routed slots (token m, slot j) -> sorted by local expert, each expert's run padded to a multiple of the
//            block size B (the M tile of the GEMMs' config); the local expert of each block; slots whose expert is
//            -1, out of range or not local (expert map -1) are skipped and contribute zero. Deterministic (stable).
//   gather   xs[r] = x[token of sorted slot r] (act-order: the columns permuted by the expert's w13 perm; with
//            MARLIN_MOE_WEIGHT_ON_INPUT: round_T(topk weight * x)); padding rows = 0
//   GEMM 1   h = xs . w13_e (+ bias13_e), grouped: one launch, each M-block on its expert's weights
//   act      a[r, i] = round_T(act(h[r, i], h[r, I + i])): silu(gate) * up, or gpt-oss's clamped SwiGLU
//   GEMM 2   y2 = a . w2_e (+ bias2_e), grouped
//   reduce   out[m] = round_T(sum over j = 0..k-1, in order, of fround(topk weight[m, j] * y2[slot (m, j)]))
//            (no multiply with MARLIN_MOE_WEIGHT_ON_INPUT; skipped slots add nothing)
//
// Both GEMMs are the shared kit's kernels (native/kit) on the "experts" problem list: the codec is chosen by bits /
// code type as in @marlin/dense (INT4, INT8) and @marlin/fp8 (e4m3). Rounding points match core's referenceMoe.
#pragma once
#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum marlin_moe_activation {
  MARLIN_MOE_SILU = 0,       // silu(gate) * up
  MARLIN_MOE_SWIGLU_OAI = 1  // gpt-oss: g = min(g, limit), u = clamp(u, -limit, limit), g * sigmoid(alpha g) * (u + 1)
} marlin_moe_activation;

// Weight codec of both stacked weights (the variant of the kit's kernels).
typedef enum marlin_moe_codec {
  MARLIN_MOE_INT4 = 0,  // bits 4, zero points optional (GPTQ / AWQ)
  MARLIN_MOE_INT8 = 1,  // bits 8, zero points optional
  MARLIN_MOE_FP8 = 2    // bits 8, e4m3, scales with the exponent-bias fold (docs/format.md "FP8 e4m3")
} marlin_moe_codec;

// One stacked weight: E experts of n outputs x k inputs, each expert's slice exactly a packed dense weight.
typedef struct marlin_moe_weight {
  int32_t n, k;               // logical sizes (multiples of 16)
  int32_t n_padded, k_padded; // Np, Kp of one expert (as marlin_gemm_problem)
  int32_t group_size;         // 32, 64, 128 or k (per-channel)
  const void* w;              // [E][tiles] packed codes; expert stride = Np/64 * Kp/64 * bits * 512 bytes
  const void* scales;         // [E][G][Np] in the activation dtype
  const uint8_t* zeros;       // [E][G][Np] or NULL
  const int32_t* perm;        // [E][k] act-order permutations or NULL
  const void* bias;           // [E][n] in the activation dtype or NULL
} marlin_moe_weight;

// Flags (marlin_moe_problem.flags).
#define MARLIN_MOE_WEIGHT_ON_INPUT 1u  // multiply the routing weight into the input rows instead of the outputs

typedef struct marlin_moe_problem {
  marlin_dtype dtype;           // activations, scales, biases, output
  marlin_moe_codec codec;
  int32_t m;                    // tokens (rows of x and out), >= 1
  int32_t topk;                 // slots per token, 1..16
  int32_t num_experts;          // global expert ids are 0..num_experts-1 (1..512)
  int32_t local_experts;        // experts stacked in w13 / w2 (== num_experts without an expert map)
  const int32_t* expert_map;    // [num_experts] global id -> local index or -1 (device memory), or NULL (identity)
  int32_t hidden, inter;        // H, I: w13 is [E][2I][H], w2 is [E][H][I]
  marlin_moe_activation activation;
  float swiglu_alpha, swiglu_limit;  // MARLIN_MOE_SWIGLU_OAI only (gpt-oss: 1.702, 7.0)
  uint32_t flags;               // MARLIN_MOE_* bits
  marlin_moe_weight w13, w2;
} marlin_moe_problem;

// The kit configs of the two GEMMs (kernel-table.json rows of the *-moe variants, chosen by @marlin/core dispatch).
// Both rows must have the same M tile: it is the alignment's block size B.
typedef struct marlin_moe_launch {
  int32_t config13, splits13;
  int32_t config2, splits2;
  uint32_t flags;               // MARLIN_LAUNCH_* bits, applied to both GEMM launches
  int32_t tail13, tail2;        // balanced last wave of each GEMM (marlin_gemm_launch.tail_splits; 0 = off)
} marlin_moe_launch;

typedef struct marlin_moe_plan marlin_moe_plan;

// Workspace of a plan (bytes, 256-byte aligned); zero it once with marlin_moe_workspace_init before first use.
// Holds the split-K counters and partials, the alignment, the gathered rows and both GEMMs' outputs; one per stream.
MARLIN_API marlin_status marlin_moe_plan_create(const marlin_moe_problem* p, const marlin_moe_launch* l,
                                                marlin_moe_plan** out);
MARLIN_API size_t marlin_moe_plan_workspace_bytes(const marlin_moe_plan* plan);
// Rows of the sorted, padded buffers (the alignment's capacity: m * topk + min(E_local, m * topk) * (B - 1), rounded up
// to B) and B.
MARLIN_API int32_t marlin_moe_plan_capacity(const marlin_moe_plan* plan);
MARLIN_API int32_t marlin_moe_plan_block_size(const marlin_moe_plan* plan);
MARLIN_API marlin_status marlin_moe_workspace_init(void* workspace, size_t bytes, void* stream);
// x [m][H], topk_ids [m][topk] int32, topk_weights [m][topk] f32, out [m][H] (device memory, 16-byte aligned
// x / out). Invalid expert ids on the device (not -1, >= num_experts) are skipped like -1 and counted: see
// marlin_moe_plan_invalid_ids.
MARLIN_API marlin_status marlin_moe_plan_launch(marlin_moe_plan* plan, const void* x, const int32_t* topk_ids,
                                                const float* topk_weights, void* out, void* workspace,
                                                size_t workspace_bytes, void* stream);
// Device address (inside the workspace) of an int32 count of expert ids the last launch skipped as out of range; 0
// after workspace_init, accumulated over launches.
MARLIN_API const int32_t* marlin_moe_invalid_id_counter(const marlin_moe_plan* plan, const void* workspace);
MARLIN_API void marlin_moe_plan_destroy(marlin_moe_plan* plan);

// Router: per token, the top-k experts of softmax(logits) (ties: lower id first) and their probabilities (over all E
// logits, or over the k chosen with `renormalize`). logits [m][num_experts] in `dtype` (fp16 / bf16) or f32
// (`logits_f32`), ids [m][topk] int32, weights [m][topk] f32. num_experts <= 512, topk <= min(16, num_experts).
MARLIN_API marlin_status marlin_moe_topk_softmax(const void* logits, int32_t logits_f32, marlin_dtype dtype, int32_t m,
                                                 int32_t num_experts, int32_t topk, int32_t renormalize,
                                                 int32_t* topk_ids, float* topk_weights, void* stream);

// The compiled kit rows of the moe variants (as the GEMM addons' *_config_count / *_config_info).
MARLIN_API int32_t marlin_moe_config_count(void);
MARLIN_API marlin_status marlin_moe_config_info(int32_t config_id, int32_t out[4]);

#ifdef __cplusplus
}
#endif
