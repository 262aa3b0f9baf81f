// Internal pieces of the MoE benchmarks (moe_weights.cu, moe_bench.cu, moe_baseline.cu): the weights object and the
// routed problem's host-side view, shared by the Marlin layer and its cuBLAS baseline.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "bench_internal.cuh"
#include "moe_bench.h"

// One weight copy's operands (device pointers into the copy's single allocation).
struct MoeWeightCopy {
  marlin::bench::DeviceBuffer buf;
  void* w13 = nullptr;  // quantized: codes [E][Np13/64 * Kp13/64 tiles]; dense: [E][H][2I]
  void* s13 = nullptr;  // quantized: scales [E][G13][Np13]; dense: nullptr
  void* w2 = nullptr;   // quantized: codes [E][Np2/64 * Kp2/64 tiles]; dense: [E][I][H]
  void* s2 = nullptr;
};

struct marlin_bench_moe_weights {
  marlin_bench_moe_weights_args args{};
  int32_t group13 = 0, group2 = 0;     // quantized: group sizes along H (w13) and I (w2): per-channel means k
  int32_t np13 = 0, kp13 = 0, np2 = 0, kp2 = 0;
  size_t w13_stride = 0, s13_stride = 0, w2_stride = 0, s2_stride = 0;  // bytes per expert
  std::vector<MoeWeightCopy> copies;
  size_t bytes = 0;  // all copies
};

namespace marlin::bench::moe {

// The host's view of one rotation's routing: each local expert's routed rows and where its run starts in the sorted,
// B-padded buffers (experts ascending, each run padded to a multiple of B: route.h launch_align).
struct ExpertRun {
  int32_t expert;
  int32_t rows;    // routed slots
  int64_t offset;  // first sorted row
};
struct RotationRuns {
  std::vector<ExpertRun> runs;  // touched experts, ascending
  int64_t used_rows = 0;        // rows of the padded runs
};

// Checks the routing arrays (ids in -1..experts-1, copies in range) and returns each rotation's runs.
marlin_status routing_runs(const marlin_bench_moe_routing& r, int32_t experts, int32_t copies, int32_t block,
                           std::vector<RotationRuns>* out);

// Uploads every rotation's ids ([rotations][m][topk]) and the routing weights; fills x [m][H] and out with random
// values (never zeros).
struct RoutedBuffers {
  Stream stream;
  DeviceBuffer ids, weights, x, out;
};
marlin_status upload_routing(const marlin_bench_moe_routing& r, marlin_dtype dtype, int32_t hidden, uint64_t seed,
                             RoutedBuffers* b);

// Validates the weights object: dense (the baseline's) or quantized (the Marlin layer's); `what` names the caller.
marlin_status check_weights(const marlin_bench_moe_weights* w, bool dense, const char* what);

// marlin_bench_time_graph's call count for `rotations`: a multiple of it, so the cycle of rotations never breaks at
// the graph's end (a break would read one copy again after fewer other calls), and at least 20.
int32_t cyclic_calls(int32_t rotations, int32_t requested);

}  // namespace marlin::bench::moe
