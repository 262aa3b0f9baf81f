// The MoE layer's kernels other than the two grouped GEMMs (route.cu): routing alignment, row gather, activation,
// the final weighted sum and the softmax top-k router. Used by the @marlin/moe host side (moe.cu) and by the
// benchmark's cuBLAS baseline (native/bench), which runs the same routed problem around its own GEMMs.
// Every launcher enqueues on `stream` and returns the launch's cudaError_t. Buffers are device memory.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "marlin/moe.h"

namespace marlin::moe {

// Rows of the sorted, padded buffers for m tokens x topk slots on `local_experts` experts in blocks of `block` rows:
// every routed slot plus at most block - 1 padding rows per expert that has any, rounded up to a whole block.
int64_t alignment_capacity(int m, int topk, int local_experts, int block);

// Alignment (one block of 1024 threads; deterministic, stable in slot order). Writes
//   sorted_ids[capacity]      slot index m * topk + j per row, grouped by local expert ascending, each expert's run
//                             padded to a multiple of `block` with m * topk (rows past the used ones: m * topk too)
//   block_expert[capacity / block]  local expert of each block (-1 past the used blocks)
//   num_blocks[1]             blocks in use
//   slot_row[m * topk]        the sorted row of each slot, -1 when skipped
//   invalid[1]                += slots whose id is neither -1 nor in 0..num_experts-1 (skipped)
// expert_map: [num_experts] global -> local or -1, or nullptr (identity; local_experts == num_experts).
cudaError_t launch_align(const int32_t* topk_ids, int m, int topk, int num_experts, const int32_t* expert_map,
                         int local_experts, int block, int64_t capacity, int32_t* sorted_ids, int32_t* block_expert,
                         int32_t* num_blocks, int32_t* slot_row, int32_t* invalid, cudaStream_t stream);

// xs[r][:] = x[sorted_ids[r] / topk][:] for the used rows (padding rows: 0); act-order: xs[r][c] = x[..][perm_e[c]]
// with e = block_expert[r / block] and perm [E][hidden]; topk_weights != nullptr: round_T(weight[slot] * x) (weight
// on input). Rows past the used blocks are left untouched. x is [m][hidden], xs [capacity][hidden].
cudaError_t launch_gather(marlin_dtype dtype, const void* x, int m, int topk, int hidden, const int32_t* sorted_ids,
                          const int32_t* block_expert, const int32_t* num_blocks, int block, int64_t capacity,
                          const int32_t* perm, const float* topk_weights, void* xs, cudaStream_t stream);

// a[r][i] = round_T(act(h[r][i], h[r][inter + i])) for the used rows; h is [capacity][2 inter], a [capacity][inter].
// perm != nullptr (w2 act-order, [E][inter]): a[r][c] = act(..)[perm_e[c]].
cudaError_t launch_activation(marlin_dtype dtype, marlin_moe_activation act, float alpha, float limit, const void* h,
                              int inter, const int32_t* block_expert, const int32_t* num_blocks, int block,
                              int64_t capacity, const int32_t* perm, void* a, cudaStream_t stream);

// out[t][:] = round_T(sum over j in order of fround(w[t][j] * y2[slot_row[t * topk + j]][:])), skipped slots add 0;
// topk_weights == nullptr: unweighted (weight on input). y2 is [capacity][hidden], out [m][hidden].
cudaError_t launch_reduce(marlin_dtype dtype, const void* y2, int m, int topk, int hidden, const int32_t* slot_row,
                          const float* topk_weights, void* out, cudaStream_t stream);

// Softmax top-k router (moe.h marlin_moe_topk_softmax).
cudaError_t launch_topk_softmax(const void* logits, bool logits_f32, marlin_dtype dtype, int m, int num_experts,
                                int topk, bool renormalize, int32_t* topk_ids, float* topk_weights,
                                cudaStream_t stream);

}  // namespace marlin::moe
