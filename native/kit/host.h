// The host side every GEMM addon shares: kernel resolution and launch, tensor maps, plans, split-K and balanced-wave
// planning, the workspace layout. Nothing here names a weight format: an addon describes each of its variants (codec x
// operand x problem list, kernel-table.json "variants") with a Variant, and the generated translation units
// (tools/gen-kernel-instances.mjs) give the Variant its kernels. docs/adding-an-addon.md says how the parts fit.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>

#include "epilogue.cuh"  // kMaxClusterSplits
#include "marlin/gemm.h"
#include "params.cuh"

namespace marlin::kit {

// One kernel-table row as compiled: family (wgmma / warp-specialised) and tile geometry.
struct ConfigInfo {
  bool wgmma, ws;
  int m_tile, n_tiles, k_stage, stages;
};

// One kernel instance, resolved for one device: its host stub (for cudaLaunchKernel), its function in the device's
// primary context, the block size and the dynamic shared memory it is launched with.
struct KernelRef {
  const void* symbol = nullptr;
  cudaFunction_t fn = nullptr;
  int device = -1;
  unsigned block = 0, smem = 0;
  bool ws = false;
  bool x_map = false;            // takes the activations' tensor map (warp-specialised, or mma.sync with producer warp)
  bool overlap_capable = false;  // sm_90+: programmatic dependent launch exists
  bool cluster_capable = false;  // sm_90+ and its shared memory holds a ClusterTile: split-K across a cluster
  // SMs and resident blocks on the device without clusters (every kernel: the balanced last wave's cut and the cluster
  // rule), and resident clusters of S = 2..8 blocks (cluster_capable only). <= 0: unknown (no balanced wave, no
  // cluster launch). A cluster's blocks must fit one GPC, so fewer run at once.
  int sms = 0, slots = 0;
  int clusters[kMaxClusterSplits + 1] = {};
};

using ResolveFn = marlin_status (*)(int dev, KernelRef* k);

// What the shared host code needs to know about one variant of the kernels.
struct Variant {
  const char* name;     // kernel-table.json variant name
  int bits;             // weight bits the problem must state
  int tile_bytes;       // bytes of one 64 x 64 kernel tile (the codec's kTileBytes)
  bool zero_points;     // the codec has integer zero points (problems with zeros are refused otherwise)
  bool (*config)(int id, ConfigInfo* out);                      // a compiled row of this variant
  ResolveFn (*resolver)(int id, marlin_dtype dtype, bool zeros);  // nullptr: not compiled
  bool grouped;         // "experts" problem list: launched only through plan_launch_experts
};

constexpr int kMaxDevices = 64;

// Workspace areas start on 256-byte boundaries; operand pointers must be 16-byte aligned (every addon's host side).
constexpr size_t kWorkspaceAlign = 256;
inline size_t round_up(size_t v) { return (v + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
// Config ids are below this (tools/gen-kernel-instances.mjs checks it).
constexpr int kMaxConfigId = 256;

// The >48 KB dynamic smem opt-in and the function lookup, per function and device: done once per device (up to 64
// devices; beyond that every plan creation does them again) and remembered in `fns`.
marlin_status resolve_function(const void* kernel, int smem, int dev, std::atomic<cudaFunction_t>* fns,
                               cudaFunction_t* out);
// KernelRef::sms, ::slots and ::clusters of a resolved kernel, queried once per instance and device (`cache`).
void launch_capacity(KernelRef* k, std::atomic<int>* cache);
marlin_status record_cuda(cudaError_t e);

// Workspace layout (all offsets 256-byte aligned):
//   [0, kCounterBytes)                 arrival counters, zeroed once by *_workspace_init, left at 0
//   [kCounterBytes, +partials)         fp32 split-K partial tiles (only when splits > 1)
//   [.., +m*k*2)                       act-order permuted activations (only when perm != NULL)
struct WorkspaceLayout {
  size_t partials_offset, partials_bytes, xperm_offset, xperm_bytes, total;
};

// The C entry points of an addon, on the variant its problem selects (nullptr: no variant takes the problem's bits).
using VariantOf = const Variant* (*)(const marlin_gemm_problem& p);
size_t workspace_bytes(VariantOf variant_of, const marlin_gemm_problem* p, const marlin_gemm_launch* l);
marlin_status workspace_init(void* workspace, size_t bytes, void* stream);
marlin_status gemm(VariantOf variant_of, const marlin_gemm_problem* p, const marlin_gemm_launch* l, void* workspace,
                   size_t workspace_bytes, void* stream);
marlin_status plan_create(VariantOf variant_of, const marlin_gemm_problem* p, const marlin_gemm_launch* l,
                          marlin_gemm_plan** out);
size_t plan_workspace_bytes(const marlin_gemm_plan* plan);
int32_t plan_cluster_size(const marlin_gemm_plan* plan);
int32_t plan_tail_blocks(const marlin_gemm_plan* plan);
marlin_status plan_launch(marlin_gemm_plan* plan, const void* x, void* y, const void* bias, void* workspace,
                          size_t workspace_bytes, void* stream);
void plan_destroy(marlin_gemm_plan* plan);
// Grouped launches (problem_list.cuh ExpertProblem): a plan of an "experts" variant made by plan_create on a problem
// that describes expert 0 over the routing's sorted buffers (m = their rows, no act-order perm), launched on the
// routing the alignment kernel wrote. Expert strides follow from the plan's problem.
struct ExpertRouting {
  const int32_t* block_expert;  // [m_blocks] local expert of each M-block, -1: none
  const int32_t* num_blocks;    // [1] M-blocks in use
  // true: the kernel that wrote the routing completed before the launch's predecessor began, so the GEMM's blocks
  // read it (and prefetch their experts' weights) without waiting for the predecessor; false: they wait first.
  bool visible_before_predecessor;
};
marlin_status plan_launch_experts(marlin_gemm_plan* plan, const ExpertRouting& routing, const void* x, void* y,
                                  const void* bias, void* workspace, size_t workspace_bytes, void* stream);
// The addon's compiled rows over all its variants (ids are unique across kernel-table.json).
int32_t config_count(const Variant* const* variants, int n);
marlin_status config_info(const Variant* const* variants, int n, int32_t id, int32_t out[4]);

}  // namespace marlin::kit

// Defines an addon's C entry points (gemm.h MARLIN_DECLARE_GEMM_ADDON) on the shared host code: `variant_of` picks the
// variant of a problem, VARIANTS... are all of the addon's variants.
#define MARLIN_DEFINE_GEMM_ADDON(prefix, variant_of, ...)                                                            \
  namespace {                                                                                                        \
  const marlin::kit::Variant* const prefix##_variants[] = {__VA_ARGS__};                                             \
  constexpr int prefix##_variant_count = sizeof(prefix##_variants) / sizeof(prefix##_variants[0]);                   \
  }                                                                                                                  \
  extern "C" size_t prefix##_workspace_bytes(const marlin_gemm_problem* p, const marlin_gemm_launch* l) {            \
    return marlin::kit::workspace_bytes(variant_of, p, l);                                                           \
  }                                                                                                                  \
  extern "C" marlin_status prefix##_workspace_init(void* workspace, size_t bytes, void* stream) {                    \
    return marlin::kit::workspace_init(workspace, bytes, stream);                                                    \
  }                                                                                                                  \
  extern "C" marlin_status prefix##_gemm(const marlin_gemm_problem* p, const marlin_gemm_launch* l, void* workspace, \
                                         size_t workspace_bytes, void* stream) {                                     \
    return marlin::kit::gemm(variant_of, p, l, workspace, workspace_bytes, stream);                                  \
  }                                                                                                                  \
  extern "C" marlin_status prefix##_plan_create(const marlin_gemm_problem* p, const marlin_gemm_launch* l,           \
                                                marlin_gemm_plan** out) {                                            \
    return marlin::kit::plan_create(variant_of, p, l, out);                                                          \
  }                                                                                                                  \
  extern "C" size_t prefix##_plan_workspace_bytes(const marlin_gemm_plan* plan) {                                    \
    return marlin::kit::plan_workspace_bytes(plan);                                                                  \
  }                                                                                                                  \
  extern "C" int32_t prefix##_plan_cluster_size(const marlin_gemm_plan* plan) {                                      \
    return marlin::kit::plan_cluster_size(plan);                                                                     \
  }                                                                                                                  \
  extern "C" int32_t prefix##_plan_tail_blocks(const marlin_gemm_plan* plan) {                                       \
    return marlin::kit::plan_tail_blocks(plan);                                                                      \
  }                                                                                                                  \
  extern "C" marlin_status prefix##_plan_launch(marlin_gemm_plan* plan, const void* x, void* y, const void* bias,    \
                                                void* workspace, size_t workspace_bytes, void* stream) {             \
    return marlin::kit::plan_launch(plan, x, y, bias, workspace, workspace_bytes, stream);                           \
  }                                                                                                                  \
  extern "C" void prefix##_plan_destroy(marlin_gemm_plan* plan) { marlin::kit::plan_destroy(plan); }                 \
  extern "C" int32_t prefix##_config_count(void) {                                                                   \
    return marlin::kit::config_count(prefix##_variants, prefix##_variant_count);                                     \
  }                                                                                                                  \
  extern "C" marlin_status prefix##_config_info(int32_t config_id, int32_t out[4]) {                                 \
    return marlin::kit::config_info(prefix##_variants, prefix##_variant_count, config_id, out);                      \
  }
