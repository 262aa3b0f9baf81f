// The timing primitive of the protocol: CUDA graph of back-to-back calls over rotated weights, median of replays.
//
// Worked example (Llama-3-8B o_proj, 4096 x 4096 INT4 g128, H100 with a 50 MiB L2): one weight copy is
// 8 MiB codes + 256 KiB scales = 8.65 MB, so rotations = ceil(4 * 52.4 MB / 8.65 MB) + 1 = 26; the graph holds
// max(20, 26) = 26 calls, so each copy is read once per replay and at least 25 other copies (216 MB, > 4x L2) are
// streamed between two reads of it: every call reads its weights from HBM.
#include <cmath>
#include <string>
#include <vector>

#include "bench_internal.cuh"

using namespace marlin::bench;

namespace {

constexpr int32_t kMinCalls = 20;
constexpr int32_t kMinReplays = 7;
constexpr int32_t kDefaultReplays = 10;

// Owns a captured graph and its executable instance.
struct Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~Graph() {
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
};

// Ends a capture that is being abandoned (a launch failed inside it) and drops the partial graph.
void abandon_capture(cudaStream_t s) {
  cudaGraph_t partial = nullptr;
  if (cudaStreamEndCapture(s, &partial) == cudaSuccess && partial != nullptr) cudaGraphDestroy(partial);
  cudaGetLastError();
}

marlin_status capture(const marlin_bench_timing_request& req, int32_t calls, cudaStream_t s, Graph* g) {
  MB_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int32_t i = 0; i < calls; ++i) {
    const marlin_status st = req.launch(req.ctx, i % req.rotations, s);
    if (st != MARLIN_OK) {
      abandon_capture(s);
      if (st == MARLIN_E_CUDA && marlin_bench_last_cuda_error() == 0) {
        return fail(st, "launch callback failed during graph capture (call " + std::to_string(i) +
                            "): a CUDA call not allowed in stream capture, or a launch error");
      }
      return st;
    }
  }
  MB_CUDA(cudaStreamEndCapture(s, &g->graph));
  MB_CUDA(cudaGraphInstantiate(&g->exec, g->graph, 0));
  return MARLIN_OK;
}

}  // namespace

extern "C" marlin_status marlin_bench_time_graph(const marlin_bench_timing_request* req, marlin_bench_timing* out) {
  clear_error();
  if (req == nullptr || out == nullptr || req->launch == nullptr) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_time_graph: null request, output or launch callback");
  }
  if (req->rotations < 1) {
    return fail(MARLIN_E_INVALID_ARGUMENT,
                "marlin_bench_time_graph: rotations must be >= 1, got " + std::to_string(req->rotations));
  }
  int32_t calls = req->calls > 0 ? req->calls : (req->rotations > kMinCalls ? req->rotations : kMinCalls);
  if (calls < kMinCalls) calls = kMinCalls;
  int32_t replays = req->replays > 0 ? req->replays : kDefaultReplays;
  if (replays < kMinReplays) replays = kMinReplays;

  Stream own;
  cudaStream_t s = static_cast<cudaStream_t>(req->stream);
  if (s == nullptr) {
    MB_TRY(own.create());
    s = own.get();
  }

  // Eager call first: argument errors surface here with their own message, outside any capture, and lazy
  // module loading / smem attribute setup happens before the graph is built.
  MB_TRY(req->launch(req->ctx, 0, s));
  MB_CUDA(cudaGetLastError());
  MB_CUDA(cudaStreamSynchronize(s));

  Graph g;
  MB_TRY(capture(*req, calls, s, &g));

  // Warm replay: touches every rotation copy once, settles clocks.
  MB_CUDA(cudaGraphLaunch(g.exec, s));
  MB_CUDA(cudaStreamSynchronize(s));

  std::vector<Event> start(static_cast<size_t>(replays));
  std::vector<Event> stop(static_cast<size_t>(replays));
  for (int32_t r = 0; r < replays; ++r) {
    MB_TRY(start[r].create());
    MB_TRY(stop[r].create());
  }
  for (int32_t r = 0; r < replays; ++r) {
    MB_CUDA(cudaEventRecord(start[r].get(), s));
    MB_CUDA(cudaGraphLaunch(g.exec, s));
    MB_CUDA(cudaEventRecord(stop[r].get(), s));
  }
  MB_CUDA(cudaStreamSynchronize(s));

  std::vector<double> per_call_us(static_cast<size_t>(replays));
  for (int32_t r = 0; r < replays; ++r) {
    float ms = 0.0f;
    MB_CUDA(cudaEventElapsedTime(&ms, start[r].get(), stop[r].get()));
    per_call_us[r] = static_cast<double>(ms) * 1000.0 / calls;
  }
  const Summary sum = summarize(per_call_us.data(), replays);
  out->median_us = sum.median;
  out->min_us = sum.min;
  out->max_us = sum.max;
  out->calls = calls;
  out->replays = replays;
  out->rotations = req->rotations;
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_rotation_count(size_t bytes_per_copy, size_t reserved_bytes, int32_t* out) {
  clear_error();
  if (out == nullptr || bytes_per_copy == 0) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_rotation_count: need an output and bytes_per_copy > 0");
  }
  int64_t l2 = 0;
  MB_TRY(l2_bytes(&l2));
  size_t free_b = 0;
  size_t total_b = 0;
  MB_CUDA(cudaMemGetInfo(&free_b, &total_b));

  const double want = std::ceil(4.0 * static_cast<double>(l2) / static_cast<double>(bytes_per_copy)) + 1.0;
  int64_t rotations = want < 2.0 ? 2 : static_cast<int64_t>(want);

  const size_t margin = total_b / 20 + (size_t{256} << 20);
  const size_t usable = free_b > reserved_bytes + margin ? free_b - reserved_bytes - margin : 0;
  const int64_t fit = static_cast<int64_t>(usable / bytes_per_copy);
  if (fit < 1) {
    return fail(MARLIN_E_CUDA, "marlin_bench_rotation_count: not even one weight copy of " +
                                   std::to_string(bytes_per_copy) + " bytes fits (free " + std::to_string(free_b) +
                                   " bytes, other buffers " + std::to_string(reserved_bytes) + " bytes)");
  }
  if (rotations > fit) rotations = fit;
  if (rotations > (1 << 20)) rotations = 1 << 20;
  *out = static_cast<int32_t>(rotations);
  return MARLIN_OK;
}

namespace marlin::bench {

marlin_status time_rotations(marlin_bench_launch_fn launch, void* ctx, int32_t rotations, int32_t calls,
                             int32_t replays, cudaStream_t stream, marlin_bench_timing* out) {
  const marlin_bench_timing_request req{launch, ctx, rotations, calls, replays, stream};
  return marlin_bench_time_graph(&req, out);
}

}  // namespace marlin::bench
