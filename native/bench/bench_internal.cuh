// Internal helpers of the benchmark harness: error recording and RAII owners for device memory, events, streams
// and graphs. Not part of the C ABI (native/include/marlin/bench.h is).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "marlin/bench.h"

namespace marlin::bench {

// Records a failure for marlin_bench_last_error() and returns `status` so call sites can `return fail(...)`.
marlin_status fail(marlin_status status, const std::string& what);
// Records a CUDA failure (name, message, the call and where) and returns MARLIN_E_CUDA.
marlin_status fail_cuda(cudaError_t err, const char* call, const char* file, int line);
void clear_error();

// The status name without an addon's runtime (marlin_status_string lives there).
const char* status_name(marlin_status s);
// Records "<prefix><call> failed: <status>" with the addon's own CUDA error when it is MARLIN_E_CUDA (`cuda_error`: the
// addon's last_cuda_error_string, its copy of the runtime holds the error; may be nullptr). Returns `st`.
marlin_status fail_addon_call(const std::string& prefix, const std::string& call, marlin_status st,
                              const char* (*cuda_error)(void));

// An entry point of a dlopen-ed addon binary: its name and where its address goes (nullptr when absent).
struct LibSymbol {
  std::string name;
  void** slot;
  bool required;
};
// dlopens `path` (RTLD_LOCAL; never closed) and resolves `syms`. MARLIN_E_UNSUPPORTED (recorded) when it does not load
// or lacks a required symbol, naming them and `missing_hint` (why a binary would lack them).
marlin_status open_addon_library(const char* path, LibSymbol* syms, size_t count, const char* missing_hint);

// NOTE: every CUDA call in the harness goes through MB_CUDA, which returns MARLIN_E_CUDA from the enclosing
// function with the failing call recorded. Functions using it return marlin_status.
#define MB_CUDA(call)                                                          \
  do {                                                                         \
    cudaError_t mb_err_ = (call);                                              \
    if (mb_err_ != cudaSuccess) {                                              \
      return ::marlin::bench::fail_cuda(mb_err_, #call, __FILE__, __LINE__);   \
    }                                                                          \
  } while (0)

#define MB_TRY(expr)                      \
  do {                                    \
    marlin_status mb_st_ = (expr);        \
    if (mb_st_ != MARLIN_OK) {            \
      return mb_st_;                      \
    }                                     \
  } while (0)

// Device allocation freed on scope exit (errors in cudaFree at teardown are ignored: nothing useful to do there).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = o.bytes_;
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }

  marlin_status allocate(size_t bytes) {
    reset();
    MB_CUDA(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes));
    bytes_ = bytes;
    return MARLIN_OK;
  }
  void reset() {
    if (ptr_ != nullptr) {
      cudaFree(ptr_);
      ptr_ = nullptr;
    }
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (ev_ != nullptr) cudaEventDestroy(ev_);
  }
  marlin_status create() {
    MB_CUDA(cudaEventCreate(&ev_));
    return MARLIN_OK;
  }
  cudaEvent_t get() const { return ev_; }

 private:
  cudaEvent_t ev_ = nullptr;
};

class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (s_ != nullptr) cudaStreamDestroy(s_);
  }
  marlin_status create() {
    MB_CUDA(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
    return MARLIN_OK;
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// What every GEMM benchmark allocates besides its weight copies: a private stream, the activations x, the output y
// and a workspace, freed on scope exit.
struct GemmBuffers {
  Stream stream;
  DeviceBuffer x, y, ws;
  marlin_status allocate(size_t x_bytes, size_t y_bytes, size_t ws_bytes) {
    MB_TRY(stream.create());
    MB_TRY(x.allocate(x_bytes));
    MB_TRY(y.allocate(y_bytes));
    MB_TRY(ws.allocate(ws_bytes));
    return MARLIN_OK;
  }
};

// Median / min / max of a small sample (sorted in place).
struct Summary {
  double median, min, max;
};
Summary summarize(double* values, int count);

// Bytes rounded up to 256 so sub-buffers carved out of one allocation stay 16-byte (and L2-sector) aligned.
inline size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Current device's L2 size in bytes.
marlin_status l2_bytes(int64_t* out);

// marlin_bench_time_graph of `launch` over `rotations` weight copies on `stream`, with the caller's calls / replays
// (0 = the defaults).
marlin_status time_rotations(marlin_bench_launch_fn launch, void* ctx, int32_t rotations, int32_t calls,
                             int32_t replays, cudaStream_t stream, marlin_bench_timing* out);

// The addon API a benchmark calls: `given`, else the registered default; MARLIN_E_UNSUPPORTED when neither exists,
// MARLIN_E_INVALID_ARGUMENT when a required entry point is NULL.
marlin_status resolve_api(const marlin_bench_gemm_api* given, const marlin_bench_gemm_api** out);

}  // namespace marlin::bench
