// The shared host side of every GEMM addon (host.h): validation, workspace layout, act-order gather, kernel
// resolution, tensor maps, plans and the launch of the configuration chosen by @marlin/core dispatch (ids from
// kernel-table.json). Every launch goes through a plan (marlin_gemm_plan): validation, kernel resolution and the
// parameter block once, per-call pointers and the launch after; *_gemm makes a plan on the stack per call.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "host.h"
#include "problem_list.cuh"
#include "../runtime/cuda_status.h"

namespace marlin::kit {

marlin_status record_cuda(cudaError_t e) { return marlin_record_cuda_error(static_cast<int>(e)); }


namespace {

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// `tail_tiles` x `tail_splits`: the partials of a balanced last wave's second launch (plan_tail), 0 without one.
WorkspaceLayout layout_of(const marlin_gemm_problem& p, const marlin_gemm_launch& l, const ConfigInfo& c,
                          size_t tail_tiles = 0, int tail_splits = 0) {
  WorkspaceLayout w{};
  const size_t m_blocks = ceil_div(p.m, c.m_tile), n_blocks = ceil_div(p.n_padded, 64 * c.n_tiles);
  w.partials_offset = kCounterBytes;
  const size_t tile_bytes = size_t(c.m_tile) * c.n_tiles * 64 * 4;
  const size_t split_tiles = l.splits > 1 ? m_blocks * n_blocks * l.splits : 0;
  const size_t tail_split_tiles = tail_splits > 1 ? tail_tiles * tail_splits : 0;
  const size_t partial_tiles = std::max(split_tiles, tail_split_tiles);
  w.partials_bytes = partial_tiles > 0 ? round_up(partial_tiles * tile_bytes) : 0;
  w.xperm_offset = w.partials_offset + w.partials_bytes;
  w.xperm_bytes = p.perm != nullptr ? round_up(size_t(p.m) * p.k * 2) : 0;
  w.total = w.xperm_offset + w.xperm_bytes;
  return w;
}

// x_perm[m][k'] = x[m][perm[k']]: one block per row; the gather makes act-order groups contiguous again.
__global__ void gather_columns(const uint16_t* __restrict__ x, int64_t lda, const int32_t* __restrict__ perm,
                               uint16_t* __restrict__ out, int k) {
  const uint16_t* row = x + size_t(blockIdx.x) * lda;
  uint16_t* dst = out + size_t(blockIdx.x) * k;
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    const int src = min(max(perm[i], 0), k - 1);  // NOTE: perm is validated on the host at pack time
    dst[i] = row[src];
  }
}

// A driver API function (the static runtime does not link libcuda), as of the CUDA 12.0 ABI; nullptr if the driver
// does not provide it. Callers look each one up once.
template <typename Fn>
Fn driver_entry_point(const char* name) {
  void* f = nullptr;
  cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  if (cudaGetDriverEntryPointByVersion(name, &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess) {
    return nullptr;
  }
  return reinterpret_cast<Fn>(f);
}

// cuTensorMapEncodeTiled from the driver (looked up once).
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiledFn encode_tiled() {
  static const EncodeTiledFn fn = driver_entry_point<EncodeTiledFn>("cuTensorMapEncodeTiled");
  return fn;
}

// Tensor map of the activations for the copy-engine stages (tma_stage.cuh: the warp-specialised kernel and the
// mma.sync rows on sm_90), boxes landing in the 128-byte-swizzled layout their wgmma descriptors / ldmatrix reads
// expect (one m_tile x 128-byte block per k-tile); out-of-range elements read 0.
//   K % 64 == 0: 3D (64 k innermost, M rows of lda elements, K / 64 k-tiles 128 B apart), one box of
//     64 k x m_tile rows x k_stage k-tiles per stage: one copy instead of k_stage;
//   otherwise 2D (K innermost, M rows), boxes of 64 k x m_tile rows, one per k-tile: zero fill past K needs K as a
//     dimension of its own. tma_stage.cuh derives the same choice from p.k (x_box3()).
marlin_status activation_tensor_map(const Params& prm, int m_tile, int k_stage, CUtensorMap* map) {
  const EncodeTiledFn encode = encode_tiled();
  if (encode == nullptr) return MARLIN_E_UNSUPPORTED;  // NOTE: a driver without tensor maps predates sm_90 support
  const bool box3 = x_box3(prm);
  const cuuint64_t dims[3] = {cuuint64_t(box3 ? kTileK : prm.k), cuuint64_t(prm.m), cuuint64_t(prm.k / kTileK)};
  const cuuint64_t strides[2] = {cuuint64_t(prm.lda) * 2, cuuint64_t(kTileK) * 2};
  const cuuint32_t box[3] = {cuuint32_t(kTileK), cuuint32_t(m_tile), cuuint32_t(k_stage)};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, box3 ? 3 : 2, const_cast<int4*>(prm.x), dims, strides,
                            box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? MARLIN_OK : MARLIN_E_INVALID_ARGUMENT;
}

// cuLaunchKernelEx from the driver (looked up once, like cuTensorMapEncodeTiled). A plan launches its kernel through
// it with the CUfunction resolved at plan creation: the runtime's launch path (cudaLaunchKernelExC, cudaLaunchKernel,
// and <<<>>> on top of them) looks the function up from the host stub on every call. MARLIN_DENSE_LAUNCH=runtime
// forces cudaLaunchKernelExC (an A/B switch for host-time measurements; both launch the same function with the same
// parameters and launch attributes).
using LaunchKernelExFn = CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**);
LaunchKernelExFn driver_launch() {
  static const LaunchKernelExFn fn = [] {
    const char* mode = std::getenv("MARLIN_DENSE_LAUNCH");
    if (mode != nullptr && std::strcmp(mode, "runtime") == 0) return LaunchKernelExFn(nullptr);
    return driver_entry_point<LaunchKernelExFn>("cuLaunchKernelEx");
  }();
  return fn;
}

// The attributes of a launch, in the driver's (CUlaunchAttribute) or the runtime's (cudaLaunchAttribute) struct: with
// programmatic stream serialisation (`pdl`), and as clusters of `cluster` consecutive blocks with the load-balancing
// scheduling policy (cluster > 1). The launches and the cluster-capacity query use this one list. The two APIs share
// the ids and the policy values (asserted below) and differ only in the value member's name. Returns the count.
template <typename Attr>
auto& launch_attribute_value(Attr& a) {
  if constexpr (std::is_same_v<Attr, CUlaunchAttribute>) return a.value;
  else return a.val;
}
static_assert(int(CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION) ==
                  int(cudaLaunchAttributeProgrammaticStreamSerialization) &&
              int(CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) == int(cudaLaunchAttributeClusterDimension) &&
              int(CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE) ==
                  int(cudaLaunchAttributeClusterSchedulingPolicyPreference) &&
              int(CU_CLUSTER_SCHEDULING_POLICY_LOAD_BALANCING) == int(cudaClusterSchedulingPolicyLoadBalancing));
constexpr int kMaxLaunchAttributes = 3;
template <typename Attr>
unsigned launch_attributes(bool pdl, unsigned cluster, Attr (&attrs)[kMaxLaunchAttributes]) {
  using Id = decltype(attrs[0].id);
  unsigned n = 0;
  if (pdl) {
    attrs[n].id = Id(CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
    launch_attribute_value(attrs[n++]).programmaticStreamSerializationAllowed = 1;
  }
  if (cluster > 1) {
    attrs[n].id = Id(CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION);
    auto& dim = launch_attribute_value(attrs[n++]).clusterDim;
    dim.x = cluster;
    dim.y = dim.z = 1;
    attrs[n].id = Id(CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE);
    auto& value = launch_attribute_value(attrs[n++]);
    value.clusterSchedulingPolicyPreference =
        decltype(value.clusterSchedulingPolicyPreference)(CU_CLUSTER_SCHEDULING_POLICY_LOAD_BALANCING);
  }
  return n;
}

}  // namespace

marlin_status resolve_function(const void* kernel, int smem, int dev, std::atomic<cudaFunction_t>* fns,
                               cudaFunction_t* out) {
  const bool cached = dev >= 0 && dev < kMaxDevices;
  cudaFunction_t f = cached ? fns[dev].load(std::memory_order_acquire) : nullptr;
  if (f == nullptr) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e == cudaSuccess) e = cudaGetFuncBySymbol(&f, kernel);
    if (e != cudaSuccess) return record_cuda(e);
    if (cached) fns[dev].store(f, std::memory_order_release);
  }
  *out = f;
  return MARLIN_OK;
}

// KernelRef::sms, ::slots and (cluster_capable kernels) ::clusters of a resolved kernel, queried once per instance and
// device (`cache`, one row per device: [0] = slots, [1] = SMs, [S] = clusters of S, each stored + 1 so that 0 means not
// queried yet; nullptr for devices past kMaxDevices: queried every time), the clusters with the launches' cluster
// attributes (launch_attributes: the load-balancing policy admits the most resident clusters of the three policies and
// was the fastest in an A/B of the three policies). A failed query leaves the kernel without cluster launches or a
// balanced wave.
void launch_capacity(KernelRef* k, std::atomic<int>* cache) {
  std::atomic<int> uncached[kMaxClusterSplits + 1] = {};
  if (cache == nullptr) cache = uncached;
  if (cache[0].load(std::memory_order_acquire) == 0) {
    int per_sm = 0, sms = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k->symbol, int(k->block), k->smem) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, k->device) != cudaSuccess) {
      (void)cudaGetLastError();
      k->cluster_capable = false;
      return;
    }
    for (int s = 2; s <= kMaxClusterSplits && k->cluster_capable; ++s) {
      cudaLaunchAttribute attrs[kMaxLaunchAttributes] = {};
      cudaLaunchConfig_t cfg{};
      cfg.gridDim = dim3(unsigned(s));
      cfg.blockDim = dim3(k->block);
      cfg.dynamicSmemBytes = k->smem;
      cfg.attrs = attrs;
      cfg.numAttrs = launch_attributes(false, unsigned(s), attrs);
      int n = 0;
      if (cudaOccupancyMaxActiveClusters(&n, k->symbol, &cfg) != cudaSuccess) {
        (void)cudaGetLastError();
        n = 0;
      }
      cache[s].store(n + 1, std::memory_order_relaxed);
    }
    cache[1].store(sms + 1, std::memory_order_relaxed);
    cache[0].store(per_sm * sms + 1, std::memory_order_release);
  }
  k->slots = cache[0].load(std::memory_order_acquire) - 1;
  k->sms = cache[1].load(std::memory_order_relaxed) - 1;
  for (int s = 2; s <= kMaxClusterSplits; ++s) k->clusters[s] = cache[s].load(std::memory_order_relaxed) - 1;
}

namespace {

// Everything of a call that does not depend on x, y, bias, workspace or stream.
marlin_status validate_fixed(const Variant& v, const marlin_gemm_problem& p, const marlin_gemm_launch& l,
                             const ConfigInfo& c) {
  if (p.dtype != MARLIN_FP16 && p.dtype != MARLIN_BF16) return MARLIN_E_INVALID_ARGUMENT;
  if (p.bits != v.bits) return MARLIN_E_UNSUPPORTED;
  if (p.zeros != nullptr && !v.zero_points) return MARLIN_E_UNSUPPORTED;
  if (p.m < 1 || p.n < 16 || p.k < 16 || p.n % 16 != 0 || p.k % 16 != 0) return MARLIN_E_INVALID_ARGUMENT;
  if (p.n_padded != ceil_div(p.n, 64) * 64 || p.k_padded != ceil_div(p.k, 64) * 64) return MARLIN_E_INVALID_ARGUMENT;
  const bool per_channel = p.group_size == p.k;
  if (!per_channel && p.group_size != 32 && p.group_size != 64 && p.group_size != 128) return MARLIN_E_UNSUPPORTED;
  if (p.lda < p.k || p.ldc < p.n || p.lda % 8 != 0 || p.ldc % 8 != 0) return MARLIN_E_MISALIGNED;
  if (!p.w || !p.scales) return MARLIN_E_INVALID_ARGUMENT;
  if (!aligned16(p.w) || !aligned16(p.scales)) return MARLIN_E_MISALIGNED;
  if (p.zeros && !aligned16(p.zeros)) return MARLIN_E_MISALIGNED;
  if (l.splits < 1 || l.splits > 64) return MARLIN_E_INVALID_ARGUMENT;
  if (l.tail_splits < 0 || l.tail_splits > 64 || (l.tail_splits > 1 && l.splits != 1)) return MARLIN_E_INVALID_ARGUMENT;
  if ((l.flags & ~(MARLIN_LAUNCH_SERIAL | MARLIN_LAUNCH_WORKSPACE_SPLITK)) != 0) return MARLIN_E_INVALID_ARGUMENT;
  const long long tiles = 1LL * ceil_div(p.m, c.m_tile) * ceil_div(p.n_padded, 64 * c.n_tiles);
  const int splits = std::max(l.splits, l.tail_splits);
  if (splits > 1 && tiles > kCounterCapacity) return MARLIN_E_UNSUPPORTED;
  if (1LL * tiles * splits > 0x7fffffffLL) return MARLIN_E_UNSUPPORTED;
  return MARLIN_OK;
}

}  // namespace
}  // namespace marlin::kit

using namespace marlin::kit;

struct marlin_gemm_plan {
  // The activations' TMA descriptor of the last launch (warp-specialised configs), valid for (map_x, map_lda);
  // map_x == nullptr: none yet (launches never pass a null x).
  CUtensorMap x_map;  // CUtensorMap carries its own (64-byte or larger) alignment
  const void* map_x;
  int64_t map_lda;
  const Variant* variant;
  marlin_gemm_problem problem;  // x, y, bias unused
  marlin_gemm_launch launch;
  ConfigInfo config;
  WorkspaceLayout layout;
  ResolveFn resolve;
  KernelRef kernel;  // resolved for kernel.device
  unsigned grid;
  Params prm;        // complete but for x, lda (act-order: the gathered copy), y, bias, partials, counters
  // Balanced last wave (marlin_gemm_launch.tail_splits; tail_grid == 0: none): prm covers the column blocks of the
  // whole waves, `tail` (a second launch, split-K) the rest from output column tail_col0 on. Its weight, scale and
  // zero-point pointers start at that column; x, y and bias are offset per launch.
  unsigned tail_grid;
  int tail_col0;
  Params tail;
};

namespace marlin::kit {
namespace {

// Where a balanced last wave asked for `t` splits cuts a one-split grid of m_blocks x n_blocks tiles (blocks of
// block_cols columns, np packed columns, stages_total stages) on `slots` resident blocks: the column blocks of its whole
// waves (head_blocks) and the second launch's split count (none empty, as plan_init's split-K). head_blocks 0: the
// launch stays one (nothing to split, no partial wave, no whole column block in the whole waves, or a last block that
// is not whole: the kernels clamp a block's tiles against the packed width, Params::np, which the second launch keeps
// as the scale rows' stride).
struct TailCut {
  int head_blocks, splits, stages_per_split;
};
TailCut tail_cut(int t, int stages_total, int m_blocks, int n_blocks, int np, int block_cols, int slots) {
  const int per = ceil_div(stages_total, std::max(1, std::min(t, stages_total)));
  TailCut cut{0, ceil_div(stages_total, per), per};
  const long long tiles = 1LL * m_blocks * n_blocks;
  if (cut.splits < 2 || slots <= 0 || np % block_cols != 0 || tiles <= slots || tiles % slots == 0) return cut;
  const int head_blocks = int(tiles / slots * slots / m_blocks);  // whole waves, in column blocks
  if (head_blocks < n_blocks) cut.head_blocks = head_blocks;
  return cut;
}

// Splits a plan's grid (one split) into the column blocks of its whole waves and a second launch, split-K `t` ways,
// for the column blocks past them (docs/kernel-design.md "Balanced last wave"). A wave is the kernel's resident blocks
// on the device. The second launch's pointers start at its first column (the kernels index weights, scales and zero
// points from the block's first tile on). Leaves the plan one launch when tail_cut finds no cut.
void plan_tail(marlin_gemm_plan& pl, int t) {
  Params& prm = pl.prm;
  const int block_cols = kTileN * pl.config.n_tiles;
  const TailCut cut = tail_cut(t, prm.stages_total, prm.m_blocks, prm.n_blocks, prm.np, block_cols, pl.kernel.slots);
  const int head_blocks = cut.head_blocks;
  if (head_blocks == 0) return;
  Params& tail = pl.tail;
  tail = prm;
  const int col0 = head_blocks * block_cols;
  tail.w = prm.w + size_t(col0 / kTileN) * prm.k_tiles * (pl.variant->tile_bytes / sizeof(int4));
  tail.scales = prm.scales + col0;
  tail.zeros = prm.zeros != nullptr ? prm.zeros + col0 : nullptr;
  tail.n = prm.n - col0;
  tail.n_blocks = prm.n_blocks - head_blocks;
  tail.splits = cut.splits;
  tail.stages_per_split = cut.stages_per_split;
  prm.n_blocks = head_blocks;
  prm.n = col0;
  pl.grid = unsigned(prm.m_blocks * head_blocks);
  pl.tail_grid = unsigned(tail.m_blocks * tail.n_blocks * tail.splits);
  pl.tail_col0 = col0;
}

marlin_status plan_init(marlin_gemm_plan& pl, const Variant* v, const marlin_gemm_problem& p,
                        const marlin_gemm_launch& l) {
  ConfigInfo c;
  if (v == nullptr || !v->config(l.config_id, &c)) return MARLIN_E_UNSUPPORTED;
  if (const marlin_status s = validate_fixed(*v, p, l, c); s != MARLIN_OK) return s;
  pl.variant = v;
  pl.map_x = nullptr;
  pl.map_lda = 0;
  pl.problem = p;
  pl.problem.x = nullptr;
  pl.problem.y = nullptr;
  pl.problem.bias = nullptr;
  pl.launch = l;
  pl.config = c;
  pl.resolve = v->resolver(l.config_id, p.dtype, p.zeros != nullptr);
  if (pl.resolve == nullptr) return MARLIN_E_UNSUPPORTED;
  int dev = 0;
  if (const cudaError_t e = cudaGetDevice(&dev); e != cudaSuccess) return record_cuda(e);
  if (const marlin_status s = pl.resolve(dev, &pl.kernel); s != MARLIN_OK) return s;

  Params& prm = pl.prm;
  prm = Params{};
  prm.lda = p.lda;
  prm.w = static_cast<const int4*>(p.w);
  prm.scales = static_cast<const uint16_t*>(p.scales);
  prm.zeros = p.zeros;
  prm.ldc = p.ldc;
  prm.m = p.m;
  prm.n = p.n;
  prm.k = p.k;
  prm.np = p.n_padded;
  // Groups are 32, 64 or 128 rows (a shift) or the whole of K (per-channel: shift 31 maps every k to group 0).
  prm.group_shift = p.group_size == p.k ? 31 : p.group_size == 32 ? 5 : p.group_size == 64 ? 6 : 7;
  prm.num_groups = ceil_div(p.k, p.group_size);
  prm.m_blocks = ceil_div(p.m, c.m_tile);
  prm.n_blocks = ceil_div(p.n_padded, 64 * c.n_tiles);
  prm.k_tiles = p.k_padded / kTileK;
  prm.stages_total = ceil_div(prm.k_tiles, c.k_stage);
  prm.splits = std::min(l.splits, prm.stages_total);
  prm.stages_per_split = ceil_div(prm.stages_total, prm.splits);
  // Re-derive splits so that none is empty: 10 stages asked in 4 splits give 3 stages per split and 4 splits
  // (3,3,3,1); 9 stages in 4 splits give 3 per split and only 3 splits.
  prm.splits = ceil_div(prm.stages_total, prm.stages_per_split);
  pl.grid = unsigned(prm.m_blocks * prm.n_blocks * prm.splits);
  pl.tail_grid = 0;
  pl.tail_col0 = 0;
  if (l.tail_splits > 1) plan_tail(pl, l.tail_splits);
  const Params& tail = pl.tail;
  const size_t tail_tiles = pl.tail_grid > 0 ? size_t(tail.m_blocks) * tail.n_blocks : 0;
  pl.layout = layout_of(p, l, c, tail_tiles, pl.tail_grid > 0 ? tail.splits : 0);
  return MARLIN_OK;
}

// MARLIN_SPLITK=workspace (or its older name MARLIN_DENSE_SPLITK): every launch as with
// MARLIN_LAUNCH_WORKSPACE_SPLITK (read once).
bool workspace_splitk_forced() {
  static const bool forced = [] {
    for (const char* name : {"MARLIN_SPLITK", "MARLIN_DENSE_SPLITK"}) {
      const char* mode = std::getenv(name);
      if (mode != nullptr && std::strcmp(mode, "workspace") == 0) return true;
    }
    return false;
  }();
  return forced;
}

// Blocks per cluster of a launch: its splits when the split-K reduction runs across a cluster, else 1. Clusters when
//   - the instance can (sm_90, reduction compiled in, partial tile fits its shared memory), the launch has 2..8 splits
//     (the grid orders splits fastest, problem_list.cuh), and the flag does not turn it off;
//   - the launch is one wave both ways: its blocks fit the slots and its clusters the resident clusters (fewer than
//     slots / S: a cluster must fit one GPC). A one-wave launch that took two waves of clusters ran 1.4-1.8x slower,
//     and launches of several waves either way were up to 1.2x slower as clusters (the GPC packing repeats per wave);
//   - and, for rows with 2+ blocks per SM, the grid has more blocks than SMs: independent blocks then get an SM each,
//     clusters may share SMs (8B o_proj at M = 64, 128 blocks of config 19: +18% as clusters, with every policy).
unsigned cluster_for(const KernelRef& k, unsigned grid, const Params& prm, uint32_t flags) {
  const int s = prm.splits;
  if (!k.cluster_capable || s < 2 || s > kMaxClusterSplits || (flags & MARLIN_LAUNCH_WORKSPACE_SPLITK) != 0 ||
      workspace_splitk_forced() || k.slots <= 0 || k.clusters[s] <= 0) {
    return 1u;
  }
  const long long blocks = grid, clusters = blocks / s;
  const bool one_wave = blocks <= k.slots && clusters <= k.clusters[s];
  const bool shares_sms = k.slots > k.sms && blocks <= k.sms;
  return one_wave && !shares_sms ? unsigned(s) : 1u;
}

// Launches one kernel instance. `overlap`: with programmatic stream serialisation (sm_90+), so that its blocks may
// start during the previous kernel's tail (docs/kernel-design.md "Overlapping consecutive launches"); the kernels wait
// for that kernel's completion (griddepcontrol.wait) before touching anything but the weight operands. Otherwise
// the same launch without attributes. `cluster` > 1: launched as clusters of that many consecutive blocks.
marlin_status launch_resolved(const KernelRef& k, unsigned grid, unsigned cluster, void** args, cudaStream_t stream,
                              bool overlap) {
  const bool pdl = overlap && k.overlap_capable;
  const LaunchKernelExFn drv = driver_launch();
  if (drv != nullptr && k.fn != nullptr) {
    CUlaunchAttribute attrs[kMaxLaunchAttributes] = {};
    CUlaunchConfig cfg{};
    cfg.gridDimX = grid;
    cfg.gridDimY = cfg.gridDimZ = 1;
    cfg.blockDimX = k.block;
    cfg.blockDimY = cfg.blockDimZ = 1;
    cfg.sharedMemBytes = k.smem;
    cfg.hStream = reinterpret_cast<CUstream>(stream);
    cfg.attrs = attrs;
    cfg.numAttrs = launch_attributes(pdl, cluster, attrs);
    const CUresult r = drv(&cfg, reinterpret_cast<CUfunction>(k.fn), args, nullptr);
    if (r == CUDA_SUCCESS) return MARLIN_OK;
    // No current context on this host thread (the runtime makes the primary context current lazily): let the
    // runtime launch it. Any other driver error is reported as is (driver and runtime error numbers agree).
    if (r != CUDA_ERROR_INVALID_CONTEXT) return marlin_record_cuda_error(static_cast<int>(r));
  }
  cudaLaunchAttribute attrs[kMaxLaunchAttributes] = {};
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(k.block);
  cfg.dynamicSmemBytes = k.smem;
  cfg.stream = stream;
  cfg.attrs = attrs;
  cfg.numAttrs = launch_attributes(pdl, cluster, attrs);
  return record_cuda(cudaLaunchKernelExC(&cfg, k.symbol, args));
}

// `experts` != nullptr: a grouped launch of an "experts" variant (problem_list.cuh ExpertProblem) whose plan describes
// expert 0 over the routing's sorted buffers; the kernel takes ExpertArgs around the plan's parameters.
marlin_status launch_plan(marlin_gemm_plan& pl, const void* x, void* y, const void* bias, void* workspace,
                          size_t workspace_bytes, cudaStream_t stream, const ExpertRouting* experts = nullptr) {
  if ((experts != nullptr) != pl.variant->grouped) return MARLIN_E_INVALID_ARGUMENT;  // the kernels' Args differ
  if (!x || !y) return MARLIN_E_INVALID_ARGUMENT;
  if (!aligned16(x) || !aligned16(y)) return MARLIN_E_MISALIGNED;
  if (bias && (reinterpret_cast<uintptr_t>(bias) & 1)) return MARLIN_E_MISALIGNED;
  if (!workspace || workspace_bytes < pl.layout.total || !aligned16(workspace)) return MARLIN_E_WORKSPACE;
  int dev = 0;
  if (const cudaError_t e = cudaGetDevice(&dev); e != cudaSuccess) return record_cuda(e);
  if (dev != pl.kernel.device) {  // launched with another current device than at creation: resolve for that one
    KernelRef k;
    if (const marlin_status s = pl.resolve(dev, &k); s != MARLIN_OK) return s;
    pl.kernel = k;
  }
  const marlin_gemm_problem& p = pl.problem;
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  Params& prm = pl.prm;
  prm.x = static_cast<const int4*>(x);
  prm.lda = p.lda;
  if (p.perm) {  // act-order: gather x[:, perm] into the workspace, then run on contiguous groups
    uint16_t* xp = reinterpret_cast<uint16_t*>(ws + pl.layout.xperm_offset);
    gather_columns<<<p.m, 256, 0, stream>>>(static_cast<const uint16_t*>(x), p.lda, p.perm, xp, p.k);
    if (const marlin_status s = record_cuda(cudaGetLastError()); s != MARLIN_OK) return s;
    prm.x = reinterpret_cast<const int4*>(xp);
    prm.lda = p.k;
  }
  prm.bias = static_cast<const uint16_t*>(bias);
  prm.y = static_cast<uint16_t*>(y);
  prm.partials = reinterpret_cast<float*>(ws + pl.layout.partials_offset);
  prm.counters = reinterpret_cast<uint32_t*>(ws);
  if (pl.kernel.x_map && !(pl.map_x == prm.x && pl.map_lda == prm.lda)) {
    pl.map_x = nullptr;  // invalid until the new descriptor is encoded
    if (const marlin_status s = activation_tensor_map(prm, pl.config.m_tile, pl.config.k_stage, &pl.x_map); s != MARLIN_OK) return s;
    pl.map_x = prm.x;
    pl.map_lda = prm.lda;
  }
  // The parameters (and the descriptor) are copied at launch: later launches may rewrite pl.prm and pl.x_map.
  const bool overlap = (pl.launch.flags & MARLIN_LAUNCH_SERIAL) == 0;
  void* args[2] = {&prm, &pl.x_map};
  ExpertArgs expert_args;
  if (experts != nullptr) {
    if (p.perm != nullptr) return MARLIN_E_INVALID_ARGUMENT;  // the MoE gather applies act-order itself
    // Per-expert strides of the stacked layout (docs/format.md "Stacked experts"): one packed weight apart.
    const int64_t w_stride = int64_t(p.n_padded / kTileN) * prm.k_tiles * (pl.variant->tile_bytes / sizeof(int4));
    expert_args = {prm, experts->block_expert, experts->num_blocks, w_stride, int64_t(prm.num_groups) * prm.np,
                   int64_t(p.n), !experts->visible_before_predecessor};
    args[0] = &expert_args;
  }
  const marlin_status s =
      launch_resolved(pl.kernel, pl.grid, cluster_for(pl.kernel, pl.grid, prm, pl.launch.flags), args, stream, overlap);
  if (s != MARLIN_OK || pl.tail_grid == 0) return s;
  // The balanced last wave's second launch: same activations (and descriptor), its own columns of y and bias. With
  // overlap its blocks start as the first launch's blocks finish their main loops (they trigger the dependents there).
  Params& tail = pl.tail;
  tail.x = prm.x;
  tail.lda = prm.lda;
  tail.bias = bias != nullptr ? prm.bias + pl.tail_col0 : nullptr;
  tail.y = prm.y + pl.tail_col0;
  tail.partials = prm.partials;
  tail.counters = prm.counters;
  args[0] = &tail;
  if (experts != nullptr) {
    // The tail's blocks start only after every head block has passed its wait for the routing kernels, so the
    // routing is visible: they skip that wait and prefetch their expert's weights at once.
    expert_args.gemm = tail;
    expert_args.wait_for_routing = false;
    args[0] = &expert_args;
  }
  return launch_resolved(pl.kernel, pl.tail_grid, cluster_for(pl.kernel, pl.tail_grid, tail, pl.launch.flags), args,
                         stream, overlap);
}

}  // namespace

size_t workspace_bytes(VariantOf variant_of, const marlin_gemm_problem* p, const marlin_gemm_launch* l) {
  const Variant* v = p != nullptr ? variant_of(*p) : nullptr;
  ConfigInfo c;
  if (!v || !l || !v->config(l->config_id, &c)) return 0;
  if (l->tail_splits <= 1) return layout_of(*p, *l, c).total;
  // A balanced last wave's partials: the tiles past the whole waves of the current device, cut as plan_tail cuts
  // them; bounded by the whole grid when the kernel cannot be resolved here.
  const int m_blocks = ceil_div(p->m, c.m_tile), n_blocks = ceil_div(p->n_padded, 64 * c.n_tiles);
  const int stages_total = ceil_div(std::max(p->k_padded, 64) / kTileK, c.k_stage);
  const ResolveFn resolve = v->resolver(l->config_id, p->dtype, p->zeros != nullptr);
  KernelRef k;
  int dev = 0;
  const bool resolved = resolve != nullptr && cudaGetDevice(&dev) == cudaSuccess && resolve(dev, &k) == MARLIN_OK;
  if (!resolved) (void)cudaGetLastError();
  const TailCut cut = tail_cut(l->tail_splits, stages_total, m_blocks, n_blocks, p->n_padded, 64 * c.n_tiles, k.slots);
  const size_t tail_tiles = !resolved             ? size_t(m_blocks) * n_blocks
                            : cut.head_blocks > 0 ? size_t(n_blocks - cut.head_blocks) * m_blocks
                                                  : 0;
  return layout_of(*p, *l, c, tail_tiles, cut.splits).total;
}

marlin_status workspace_init(void* workspace, size_t bytes, void* stream) {
  if (!workspace || bytes < kCounterBytes) return MARLIN_E_WORKSPACE;
  return record_cuda(cudaMemsetAsync(workspace, 0, kCounterBytes, static_cast<cudaStream_t>(stream)));
}

marlin_status gemm(VariantOf variant_of, const marlin_gemm_problem* pp, const marlin_gemm_launch* lp, void* workspace,
                   size_t workspace_bytes, void* stream) {
  if (!pp || !lp) return MARLIN_E_INVALID_ARGUMENT;
  marlin_gemm_plan pl;
  if (const marlin_status s = plan_init(pl, variant_of(*pp), *pp, *lp); s != MARLIN_OK) return s;
  return launch_plan(pl, pp->x, pp->y, pp->bias, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
}

marlin_status plan_create(VariantOf variant_of, const marlin_gemm_problem* p, const marlin_gemm_launch* l,
                          marlin_gemm_plan** out) {
  if (!out) return MARLIN_E_INVALID_ARGUMENT;
  *out = nullptr;
  if (!p || !l) return MARLIN_E_INVALID_ARGUMENT;
  auto* pl = new (std::nothrow) marlin_gemm_plan;
  if (pl == nullptr) return MARLIN_E_INVALID_ARGUMENT;  // NOTE: host out-of-memory for ~1 KB; no better status
  if (const marlin_status s = plan_init(*pl, variant_of(*p), *p, *l); s != MARLIN_OK) {
    delete pl;
    return s;
  }
  *out = pl;
  return MARLIN_OK;
}

size_t plan_workspace_bytes(const marlin_gemm_plan* plan) { return plan != nullptr ? plan->layout.total : 0; }

marlin_status plan_launch(marlin_gemm_plan* plan, const void* x, void* y, const void* bias, void* workspace,
                          size_t workspace_bytes, void* stream) {
  if (!plan) return MARLIN_E_INVALID_ARGUMENT;
  return launch_plan(*plan, x, y, bias, workspace, workspace_bytes, static_cast<cudaStream_t>(stream));
}

int32_t plan_cluster_size(const marlin_gemm_plan* plan) {
  return plan != nullptr ? int32_t(cluster_for(plan->kernel, plan->grid, plan->prm, plan->launch.flags)) : 0;
}

int32_t plan_tail_blocks(const marlin_gemm_plan* plan) { return plan != nullptr ? int32_t(plan->tail_grid) : 0; }

marlin_status plan_launch_experts(marlin_gemm_plan* plan, const ExpertRouting& routing, const void* x, void* y,
                                  const void* bias, void* workspace, size_t workspace_bytes, void* stream) {
  if (!plan || !routing.block_expert || !routing.num_blocks) return MARLIN_E_INVALID_ARGUMENT;
  return launch_plan(*plan, x, y, bias, workspace, workspace_bytes, static_cast<cudaStream_t>(stream), &routing);
}

void plan_destroy(marlin_gemm_plan* plan) { delete plan; }

int32_t config_count(const Variant* const* variants, int n) {
  int32_t count = 0;
  ConfigInfo c;
  for (int id = 0; id < kMaxConfigId; ++id) {
    for (int i = 0; i < n; ++i) {
      if (variants[i]->config(id, &c)) {
        ++count;
        break;
      }
    }
  }
  return count;
}

marlin_status config_info(const Variant* const* variants, int n, int32_t id, int32_t out[4]) {
  ConfigInfo c;
  for (int i = 0; i < n && out != nullptr; ++i) {
    if (variants[i]->config(id, &c)) {
      out[0] = c.m_tile;
      out[1] = c.n_tiles;
      out[2] = c.k_stage;
      out[3] = c.stages;
      return MARLIN_OK;
    }
  }
  return MARLIN_E_UNSUPPORTED;
}

}  // namespace marlin::kit
