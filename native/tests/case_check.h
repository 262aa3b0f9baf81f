// The checks the Node-free native self-tests (dense_selftest.cu, sparse_selftest.cu, moe_selftest.cu) share: a
// GEMM output against its f64 CPU reference, and the ping-pong chain run serially, overlapped and as a graph.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "host_pack.h"

namespace marlin_test {

// Compute capability major of the current device (the hopper family, and so MARLIN_E_UNSUPPORTED, below 9).
inline int device_major() {
  int dev = 0, major = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major;
}

// A device copy of `v` (cudaMalloc + cudaMemcpy); the caller frees it.
template <class T>
void* device_copy(const std::vector<T>& v) {
  void* d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, v.size() * sizeof(T)));
  CHECK_CUDA(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// How far a 16-bit output is from the f64 reference: relative Frobenius error, largest absolute error, any NaN / inf.
struct RefError {
  double rel, max_err;
  bool nan;
};
inline RefError ref_error(const std::vector<uint16_t>& y, const std::vector<double>& ref, marlin_dtype dt) {
  double num = 0, den = 0, max_err = 0;
  bool nan = false;
  for (size_t i = 0; i < y.size(); ++i) {
    const double got = bits_to_float(y[i], dt);
    if (!std::isfinite(got)) nan = true;
    const double e = std::fabs(got - ref[i]);
    num += e * e;
    den += ref[i] * ref[i];
    max_err = std::max(max_err, e);
  }
  return {std::sqrt(num / std::max(den, 1e-30)), max_err, nan};
}

// A chain's input x (m x k values uniform in [-1, 1) from `rng`) and its two ping-pong buffers (m x n 16-bit values
// each, on the device; the caller frees them).
struct ChainIo {
  std::vector<uint16_t> x;
  void* buf[2];
};
inline ChainIo chain_io(int m, int k, int n, marlin_dtype dt, std::mt19937& rng) {
  ChainIo io;
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  io.x.resize(size_t(m) * k);
  for (auto& v : io.x) v = float_to_bits(uni(rng), dt);
  for (void*& b : io.buf) CHECK_CUDA(cudaMalloc(&b, size_t(m) * n * 2));
  return io;
}

// Both activation buffers of a chain after each way of launching it: serial, overlapped, the graph replayed twice.
struct ChainRuns {
  marlin_status st;
  std::vector<uint16_t> serial, overlapped, replayed[2];
};

// Runs a chain of dependent GEMMs that ping-pongs buf[0] (starts as x) and buf[1] (starts NaN-poisoned), each m x n
// 16-bit values: `enqueue(flags)` launches every link on `stream` and returns the first failing status. Launched
// with MARLIN_LAUNCH_SERIAL, then overlapped, then captured once and replayed twice (only if nothing failed).
template <class Enqueue>
ChainRuns run_chain(marlin_status st, const std::vector<uint16_t>& x, void* const (&buf)[2], int m, int n,
                    cudaStream_t stream, Enqueue enqueue) {
  const size_t bytes = size_t(m) * n * 2;
  auto reset = [&] {
    CHECK_CUDA(cudaMemcpyAsync(buf[0], x.data(), bytes, cudaMemcpyHostToDevice, stream));
    CHECK_CUDA(cudaMemsetAsync(buf[1], 0xff, bytes, stream));  // NaN poison
  };
  auto result = [&] {
    CHECK_CUDA(cudaStreamSynchronize(stream));
    std::vector<uint16_t> out(2 * size_t(m) * n);
    CHECK_CUDA(cudaMemcpy(out.data(), buf[0], bytes, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(out.data() + size_t(m) * n, buf[1], bytes, cudaMemcpyDeviceToHost));
    return out;
  };
  ChainRuns r;
  reset();
  if (st == MARLIN_OK) st = enqueue(MARLIN_LAUNCH_SERIAL);
  r.serial = result();
  reset();
  if (st == MARLIN_OK) st = enqueue(0u);
  r.overlapped = result();
  if (st == MARLIN_OK) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    st = enqueue(0u);
    CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
    CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    for (auto& out : r.replayed) {
      reset();
      CHECK_CUDA(cudaGraphLaunch(exec, stream));
      out = result();
    }
    CHECK_CUDA(cudaGraphExecDestroy(exec));
    CHECK_CUDA(cudaGraphDestroy(graph));
  }
  r.st = st;
  return r;
}

// A chain passes when it ran, its final output (buffer calls & 1; the other holds the previous link's) is finite and
// the overlapped and replayed bits equal the serial ones. `desc` names the links (config/splits[/cluster]).
inline bool check_chain(const ChainRuns& r, marlin_dtype dt, int m, int n, int calls, const std::string& desc,
                        bool verbose) {
  bool finite = true;
  const size_t last = size_t(calls & 1) * m * n;
  for (size_t i = 0; i < size_t(m) * n; ++i) finite = finite && std::isfinite(bits_to_float(r.serial[last + i], dt));
  const bool same_overlap = r.serial == r.overlapped;
  const bool same_graph = r.serial == r.replayed[0] && r.serial == r.replayed[1];
  const bool ok = r.st == MARLIN_OK && finite && same_overlap && same_graph;
  if (!ok || verbose)
    std::printf("%s chain m=%d n=k=%d calls=%d (config/splits:%s): status=%d finite=%d overlapped==serial %d "
                "graph==serial %d\n",
                ok ? "ok  " : "FAIL", m, n, calls, desc.c_str(), int(r.st), int(finite), int(same_overlap),
                int(same_graph));
  return ok;
}

}  // namespace marlin_test
