// The MoE layer's kernels around the two grouped GEMMs (route.h): alignment, gather, activation, final sum, router.
// Each is small next to the GEMMs at any M; they are written for determinism first (no float atomics, a stable sort)
// and then for few launches at decode, where every microsecond of fixed cost shows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "../../common/act_dtype.cuh"
#include "../../common/ptx.cuh"
#include "route.h"

namespace marlin::moe {
namespace {

// Every kernel here is launched with programmatic stream serialisation (sm_90+) and begins by waiting for the
// previous kernel of the stream, then lets the next one launch: a grouped GEMM that follows then reads the routing
// (written by the alignment, two kernels back and complete by then) and prefetches its experts' weights while this
// kernel runs (moe.cu, kit/problem_list.cuh ExpertProblem).
__device__ __forceinline__ void enter() {
  grid_dependency_wait();
  grid_dependents_launch();
}

bool pdl_capable() {
  static std::atomic<int> cache[64];  // compute capability major + 1 per device; 0 = not queried
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (dev >= 0 && dev < 64 && cache[dev].load(std::memory_order_relaxed) > 0) return cache[dev].load() - 1 >= 9;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  if (dev >= 0 && dev < 64) cache[dev].store(major + 1, std::memory_order_relaxed);
  return major >= 9;
}

template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), unsigned grid, unsigned block, cudaStream_t stream, Args... args) {
  cudaLaunchAttribute attr[1] = {};
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(block);
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_capable() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

constexpr int kAlignThreads = 1024;
constexpr int kAlignWarps = kAlignThreads / 32;
constexpr int kMaxExperts = 512;

__device__ __forceinline__ int local_expert(int id, int num_experts, const int32_t* expert_map) {
  if (id < 0 || id >= num_experts) return -1;
  return expert_map != nullptr ? __ldg(expert_map + id) : id;
}

// Inclusive prefix sum over the block of one value per thread (1024 threads): warp scans, then a scan of the warp
// totals. `warp_sums` holds kAlignWarps ints.
__device__ int block_inclusive_scan(int v, int* warp_sums) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int o = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += o;
  }
  if (lane == 31) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int w = warp_sums[lane];
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const int o = __shfl_up_sync(0xffffffffu, w, d);
      if (lane >= d) w += o;
    }
    warp_sums[lane] = w;
  }
  __syncthreads();
  return v + (warp > 0 ? warp_sums[warp - 1] : 0);
}

// One block. Counting sort of the routed slots by local expert, stable in slot order: per chunk of 1024 slots a
// slot's rank is its rank among equal experts in its warp (match.any) plus the counts of earlier warps of the chunk
// (a [warp][expert] byte table) plus the expert's cursor; integer counts only, so the result is the same every run.
__global__ void __launch_bounds__(kAlignThreads) align_kernel(const int32_t* __restrict__ topk_ids, int slots,
                                                              int num_experts, const int32_t* __restrict__ expert_map,
                                                              int local_experts, int block, int capacity,
                                                              int32_t* __restrict__ sorted_ids,
                                                              int32_t* __restrict__ block_expert,
                                                              int32_t* __restrict__ num_blocks,
                                                              int32_t* __restrict__ slot_row,
                                                              int32_t* __restrict__ invalid) {
  enter();
  __shared__ int counts[kMaxExperts];
  __shared__ int cursor[kMaxExperts + 1];  // next free row of each expert's run; [kMaxExperts]: the total
  __shared__ int start[kMaxExperts];       // first row of each expert's run
  __shared__ int warp_sums[kAlignWarps];
  __shared__ __align__(4) uint8_t warp_counts[kAlignWarps][kMaxExperts];
  __shared__ int bad;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int e = tid; e < local_experts; e += kAlignThreads) counts[e] = 0;
  for (int i = tid; i < kAlignWarps * kMaxExperts / 4; i += kAlignThreads)
    reinterpret_cast<uint32_t*>(&warp_counts[0][0])[i] = 0;
  if (tid == 0) bad = 0;
  __syncthreads();
  for (int i = tid; i < slots; i += kAlignThreads) {
    const int id = topk_ids[i];
    const int e = local_expert(id, num_experts, expert_map);
    if (e >= 0 && e < local_experts) atomicAdd(&counts[e], 1);
    else if (id != -1 && (id < 0 || id >= num_experts)) atomicAdd(&bad, 1);
  }
  __syncthreads();
  // Padded run of each expert, in rows; the scan gives the run's end. local_experts <= 512 < 1024 threads.
  const int padded = tid < local_experts ? (counts[tid] + block - 1) / block * block : 0;
  const int end = block_inclusive_scan(padded, warp_sums);
  if (tid < local_experts) cursor[tid] = start[tid] = end - padded;
  if (tid == kAlignThreads - 1) cursor[kMaxExperts] = end;  // the total: the last thread's inclusive sum
  __syncthreads();
  const int total = cursor[kMaxExperts];
  const int used_blocks = total / block, cap_blocks = capacity / block;
  if (tid == 0) {
    *num_blocks = used_blocks;
    if (bad > 0) atomicAdd(invalid, bad);
  }
  for (int b = tid; b < cap_blocks; b += kAlignThreads) block_expert[b] = -1;
  for (int r = tid; r < capacity; r += kAlignThreads) sorted_ids[r] = slots;
  __syncthreads();
  // Expert of each used block: the last expert whose run starts at or before it (runs of empty experts are empty).
  for (int b = tid; b < used_blocks; b += kAlignThreads) {
    int lo = 0, hi = local_experts - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (start[mid] <= b * block) lo = mid;
      else hi = mid - 1;
    }
    block_expert[b] = lo;
  }
  __syncthreads();
  const unsigned lt = (1u << lane) - 1u;
  for (int base = 0; base < slots; base += kAlignThreads) {
    const int i = base + tid;
    int e = -1;
    if (i < slots) {
      e = local_expert(topk_ids[i], num_experts, expert_map);
      if (e >= local_experts) e = -1;
    }
    const unsigned same = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(same & lt);
    const bool leader = rank == 0;
    if (leader && e >= 0) warp_counts[warp][e] = uint8_t(__popc(same));
    __syncthreads();
    if (e >= 0) {
      int pos = cursor[e] + rank;
      for (int w = 0; w < warp; ++w) pos += warp_counts[w][e];
      sorted_ids[pos] = i;
      slot_row[i] = pos;
    } else if (i < slots) {
      slot_row[i] = -1;
    }
    __syncthreads();
    if (leader && e >= 0) {
      atomicAdd(&cursor[e], __popc(same));
      warp_counts[warp][e] = 0;
    }
    __syncthreads();
  }
}

// Row r of the sorted buffer: its expert's x row (or zeros for padding). One block per row, grid-stride.
template <typename T>
__global__ void gather_kernel(const uint16_t* __restrict__ x, int slots, int topk, int hidden,
                              const int32_t* __restrict__ sorted_ids, const int32_t* __restrict__ block_expert,
                              const int32_t* __restrict__ num_blocks, int block, int capacity,
                              const int32_t* __restrict__ perm, const float* __restrict__ topk_weights,
                              uint16_t* __restrict__ xs) {
  enter();
  const int used = min(*num_blocks * block, capacity);
  for (int r = blockIdx.x; r < used; r += gridDim.x) {
    const int slot = sorted_ids[r];
    uint16_t* dst = xs + size_t(r) * hidden;
    if (slot >= slots) {  // padding: zeros, so that the GEMM reads finite values
      for (int c = threadIdx.x * 8; c < hidden; c += blockDim.x * 8) *reinterpret_cast<int4*>(dst + c) = int4{};
      continue;
    }
    const uint16_t* src = x + size_t(slot / topk) * hidden;
    if (perm == nullptr && topk_weights == nullptr) {
      for (int c = threadIdx.x * 8; c < hidden; c += blockDim.x * 8)
        *reinterpret_cast<int4*>(dst + c) = *reinterpret_cast<const int4*>(src + c);
      continue;
    }
    const int32_t* pe = perm != nullptr ? perm + size_t(block_expert[r / block]) * hidden : nullptr;
    const float w = topk_weights != nullptr ? topk_weights[slot] : 1.0f;
    for (int c = threadIdx.x; c < hidden; c += blockDim.x) {
      const int s = pe != nullptr ? min(max(pe[c], 0), hidden - 1) : c;  // NOTE: perms are validated at pack time
      dst[c] = topk_weights != nullptr ? to_bits<T>(__fmul_rn(w, to_float<T>(src[s]))) : src[s];
    }
  }
}

template <typename T>
__device__ __forceinline__ float activate(marlin_moe_activation act, float alpha, float limit, float g, float u) {
  if (act == MARLIN_MOE_SWIGLU_OAI) {
    const float gc = fminf(g, limit), uc = fminf(fmaxf(u, -limit), limit);
    return gc / (1.0f + expf(-alpha * gc)) * (uc + 1.0f);
  }
  return g / (1.0f + expf(-g)) * u;
}

// a[r][c] for the used rows, 8 columns per thread (16-byte loads of gate and up, one 16-byte store): at decode the
// used rows are few and I is up to 14336, so the columns, not the rows, must spread over the GPU. Grid-stride over
// (row, 8-column chunk); with a w2 act-order perm the columns are gathered one by one instead.
template <typename T>
__global__ void activation_kernel(marlin_moe_activation act, float alpha, float limit, const uint16_t* __restrict__ h,
                                  int inter, const int32_t* __restrict__ block_expert,
                                  const int32_t* __restrict__ num_blocks, int block, int capacity,
                                  const int32_t* __restrict__ perm, uint16_t* __restrict__ a) {
  enter();
  const int used = min(*num_blocks * block, capacity);
  const int chunks = inter / 8;  // inter is a multiple of 16
  const int64_t items = int64_t(used) * chunks;
  for (int64_t it = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; it < items; it += int64_t(gridDim.x) * blockDim.x) {
    const int r = int(it / chunks), c0 = int(it % chunks) * 8;
    const uint16_t* hr = h + size_t(r) * 2 * inter;
    int4 o;
    uint16_t* ov = reinterpret_cast<uint16_t*>(&o);
    if (perm == nullptr) {
      const int4 gv = *reinterpret_cast<const int4*>(hr + c0), uv = *reinterpret_cast<const int4*>(hr + inter + c0);
      const uint16_t* g = reinterpret_cast<const uint16_t*>(&gv);
      const uint16_t* u = reinterpret_cast<const uint16_t*>(&uv);
#pragma unroll
      for (int q = 0; q < 8; ++q) ov[q] = to_bits<T>(activate<T>(act, alpha, limit, to_float<T>(g[q]), to_float<T>(u[q])));
    } else {
      const int32_t* pe = perm + size_t(max(block_expert[r / block], 0)) * inter;
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const int i = min(max(pe[c0 + q], 0), inter - 1);  // NOTE: perms are validated at pack time
        ov[q] = to_bits<T>(activate<T>(act, alpha, limit, to_float<T>(hr[i]), to_float<T>(hr[inter + i])));
      }
    }
    *reinterpret_cast<int4*>(a + size_t(r) * inter + c0) = o;
  }
}

// out[t] = sum of the token's slots in slot order, one thread per 8 columns of a token: every slot's row and 16-byte
// load is issued before the first add (at decode the k loads of one thread would otherwise queue one L2 round trip
// after another: k = 8 made it the slowest routing kernel).
template <typename T>
__global__ void reduce_kernel(const uint16_t* __restrict__ y2, int m, int topk, int hidden,
                              const int32_t* __restrict__ slot_row, const float* __restrict__ topk_weights,
                              uint16_t* __restrict__ out) {
  enter();
  constexpr int kMaxTopk = 16;  // moe.h: topk <= 16
  const int chunks = hidden / 8;
  const int64_t items = int64_t(m) * chunks;
  for (int64_t it = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; it < items; it += int64_t(gridDim.x) * blockDim.x) {
    const int t = int(it / chunks), c = int(it % chunks) * 8;
    int rows[kMaxTopk];
    int4 v[kMaxTopk];
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j) rows[j] = j < topk ? slot_row[t * topk + j] : -1;
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j)
      v[j] = rows[j] >= 0 ? *reinterpret_cast<const int4*>(y2 + size_t(rows[j]) * hidden + c) : int4{};
    float acc[8] = {};
#pragma unroll
    for (int j = 0; j < kMaxTopk; ++j) {
      if (rows[j] < 0) continue;
      const float w = topk_weights != nullptr ? topk_weights[t * topk + j] : 1.0f;
      const uint16_t* hv = reinterpret_cast<const uint16_t*>(&v[j]);
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const float y = to_float<T>(hv[q]);
        // Two roundings, never one fused multiply-add: the reference rounds the product, then the sum.
        acc[q] = __fadd_rn(acc[q], topk_weights != nullptr ? __fmul_rn(w, y) : y);
      }
    }
    int4 o;
    uint16_t* ov = reinterpret_cast<uint16_t*>(&o);
#pragma unroll
    for (int q = 0; q < 8; ++q) ov[q] = to_bits<T>(acc[q]);
    *reinterpret_cast<int4*>(out + size_t(t) * hidden + c) = o;
  }
}

constexpr int kRouterValues = kMaxExperts / 32;  // logits per lane

// One warp per token: softmax statistics over all E logits, then k rounds of a warp argmax (ties: lower id).
__global__ void topk_softmax_kernel(const void* __restrict__ logits, bool f32, bool bf16, int m, int num_experts,
                                    int topk, bool renormalize, int32_t* __restrict__ topk_ids,
                                    float* __restrict__ topk_weights) {
  enter();
  const int lane = threadIdx.x & 31;
  const int t = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (t >= m) return;
  float v[kRouterValues];
  float mx = -INFINITY;
#pragma unroll
  for (int q = 0; q < kRouterValues; ++q) {
    const int e = q * 32 + lane;
    float x = -INFINITY;
    if (e < num_experts) {
      const size_t i = size_t(t) * num_experts + e;
      if (f32) x = static_cast<const float*>(logits)[i];
      else if (bf16) x = to_float<__nv_bfloat16>(static_cast<const uint16_t*>(logits)[i]);
      else x = to_float<half>(static_cast<const uint16_t*>(logits)[i]);
    }
    v[q] = x;
    mx = fmaxf(mx, x);
  }
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, d));
  float total = 0.0f;
#pragma unroll
  for (int q = 0; q < kRouterValues; ++q) total += q * 32 + lane < num_experts ? expf(v[q] - mx) : 0.0f;
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) total += __shfl_xor_sync(0xffffffffu, total, d);
  unsigned taken = 0;  // bit q: this lane's value q is chosen
  float chosen_sum = 0.0f, my_p = 0.0f;
  int my_id = -1;
  for (int j = 0; j < topk; ++j) {
    float best = -INFINITY;
    int best_e = 0x7fffffff;
#pragma unroll
    for (int q = 0; q < kRouterValues; ++q) {
      const int e = q * 32 + lane;
      if (e < num_experts && !(taken >> q & 1u) && (v[q] > best || (v[q] == best && e < best_e))) {
        best = v[q];
        best_e = e;
      }
    }
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, d);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, d);
      if (ob > best || (ob == best && oe < best_e)) {
        best = ob;
        best_e = oe;
      }
    }
    if ((best_e & 31) == lane) taken |= 1u << (best_e >> 5);
    const float p = expf(best - mx);
    chosen_sum += p;
    if (lane == j) {
      my_id = best_e;
      my_p = p;
    }
  }
  if (lane < topk) {
    topk_ids[size_t(t) * topk + lane] = my_id;
    topk_weights[size_t(t) * topk + lane] = my_p / (renormalize ? chosen_sum : total);
  }
}

// Blocks for a row-parallel kernel over up to `rows` rows: enough to fill the GPU, never more than the rows.
unsigned row_grid(int64_t rows) { return unsigned(std::max<int64_t>(1, std::min<int64_t>(rows, 4096))); }

}  // namespace

int64_t alignment_capacity(int m, int topk, int local_experts, int block) {
  const int64_t slots = int64_t(m) * topk;
  const int64_t rows = slots + std::min<int64_t>(local_experts, slots) * (block - 1);
  return (rows + block - 1) / block * block;
}

cudaError_t launch_align(const int32_t* topk_ids, int m, int topk, int num_experts, const int32_t* expert_map,
                         int local_experts, int block, int64_t capacity, int32_t* sorted_ids, int32_t* block_expert,
                         int32_t* num_blocks, int32_t* slot_row, int32_t* invalid, cudaStream_t stream) {
  if (local_experts < 1 || local_experts > kMaxExperts || block < 1 || capacity > INT32_MAX) return cudaErrorInvalidValue;
  return launch(align_kernel, 1, kAlignThreads, stream, topk_ids, m * topk, num_experts, expert_map, local_experts,
                block, int(capacity), sorted_ids, block_expert, num_blocks, slot_row, invalid);
}

cudaError_t launch_gather(marlin_dtype dtype, const void* x, int m, int topk, int hidden, const int32_t* sorted_ids,
                          const int32_t* block_expert, const int32_t* num_blocks, int block, int64_t capacity,
                          const int32_t* perm, const float* topk_weights, void* xs, cudaStream_t stream) {
  auto* kernel = dtype == MARLIN_BF16 ? gather_kernel<__nv_bfloat16> : gather_kernel<half>;
  return launch(kernel, row_grid(capacity), 128, stream, static_cast<const uint16_t*>(x), m * topk, topk, hidden,
                sorted_ids, block_expert, num_blocks, block, int(capacity), perm, topk_weights,
                static_cast<uint16_t*>(xs));
}

cudaError_t launch_activation(marlin_dtype dtype, marlin_moe_activation act, float alpha, float limit, const void* h,
                              int inter, const int32_t* block_expert, const int32_t* num_blocks, int block,
                              int64_t capacity, const int32_t* perm, void* a, cudaStream_t stream) {
  auto* kernel = dtype == MARLIN_BF16 ? activation_kernel<__nv_bfloat16> : activation_kernel<half>;
  const int64_t items = capacity * (inter / 8);  // an upper bound: the used rows are known on the device only
  return launch(kernel, row_grid((items + 255) / 256), 256, stream, act, alpha, limit, static_cast<const uint16_t*>(h),
                inter, block_expert, num_blocks, block, int(capacity), perm, static_cast<uint16_t*>(a));
}

cudaError_t launch_reduce(marlin_dtype dtype, const void* y2, int m, int topk, int hidden, const int32_t* slot_row,
                          const float* topk_weights, void* out, cudaStream_t stream) {
  auto* kernel = dtype == MARLIN_BF16 ? reduce_kernel<__nv_bfloat16> : reduce_kernel<half>;
  const int64_t items = int64_t(m) * (hidden / 8);
  return launch(kernel, row_grid((items + 127) / 128), 128, stream, static_cast<const uint16_t*>(y2), m, topk, hidden,
                slot_row, topk_weights, static_cast<uint16_t*>(out));
}

cudaError_t launch_topk_softmax(const void* logits, bool logits_f32, marlin_dtype dtype, int m, int num_experts,
                                int topk, bool renormalize, int32_t* topk_ids, float* topk_weights,
                                cudaStream_t stream) {
  if (num_experts < 1 || num_experts > kMaxExperts || topk < 1 || topk > 16 || topk > num_experts || m < 1)
    return cudaErrorInvalidValue;
  constexpr int kWarps = 4;
  return launch(topk_softmax_kernel, unsigned((m + kWarps - 1) / kWarps), kWarps * 32, stream, logits, logits_f32,
                dtype == MARLIN_BF16, m, num_experts, topk, renormalize, topk_ids, topk_weights);
}

}  // namespace marlin::moe
