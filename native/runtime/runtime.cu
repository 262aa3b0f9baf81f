// Buffers, copies and streams (native/include/marlin/runtime.h): thin, status-returning wrappers over cudart.
// Every addon links its own static cudart; all of them bind to the per-process primary context, so pointers and
// streams are valid across addons.
#include <cuda_runtime_api.h>

#include "cuda_status.h"
#include "graph.h"
#include "marlin/runtime.h"

namespace {
inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
}  // namespace

extern "C" marlin_status marlin_set_device(int32_t ordinal) {
  MARLIN_CUDA_TRY(cudaSetDevice(ordinal));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_malloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  if (bytes == 0) return MARLIN_OK;  // a zero-byte buffer is a null pointer; marlin_free(NULL) is a no-op
  MARLIN_CUDA_TRY(cudaMalloc(ptr, bytes));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_free(void* ptr) {
  if (ptr == nullptr) return MARLIN_OK;
  MARLIN_CUDA_TRY(cudaFree(ptr));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_memset_async(void* ptr, int value, size_t bytes, void* stream) {
  if (bytes == 0) return MARLIN_OK;
  MARLIN_CUDA_TRY(cudaMemsetAsync(ptr, value, bytes, as_stream(stream)));
  return MARLIN_OK;
}

namespace {
marlin_status copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, void* stream) {
  if (bytes == 0) return MARLIN_OK;
  if (stream == nullptr) {
    MARLIN_CUDA_TRY(cudaMemcpy(dst, src, bytes, kind));
  } else {
    MARLIN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, as_stream(stream)));
  }
  return MARLIN_OK;
}
}  // namespace

extern "C" marlin_status marlin_memcpy_h2d(void* dst, const void* src, size_t bytes, void* stream) {
  return copy(dst, src, bytes, cudaMemcpyHostToDevice, stream);
}
extern "C" marlin_status marlin_memcpy_d2h(void* dst, const void* src, size_t bytes, void* stream) {
  return copy(dst, src, bytes, cudaMemcpyDeviceToHost, stream);
}
extern "C" marlin_status marlin_memcpy_d2d(void* dst, const void* src, size_t bytes, void* stream) {
  return copy(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
}

extern "C" marlin_status marlin_mem_get_info(size_t* free_bytes, size_t* total_bytes) {
  MARLIN_CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_stream_create(void** stream) {
  cudaStream_t s = nullptr;
  // Non-blocking: work on our streams never serialises against the legacy default stream of other libraries.
  MARLIN_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *stream = s;
  return MARLIN_OK;
}

extern "C" marlin_status marlin_stream_destroy(void* stream) {
  if (stream == nullptr) return MARLIN_OK;
  MARLIN_CUDA_TRY(cudaStreamDestroy(as_stream(stream)));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_stream_synchronize(void* stream) {
  MARLIN_CUDA_TRY(cudaStreamSynchronize(as_stream(stream)));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_device_synchronize(void) {
  MARLIN_CUDA_TRY(cudaDeviceSynchronize());
  return MARLIN_OK;
}

extern "C" marlin_status marlin_graph_begin(void* stream) {
  if (stream == nullptr) return MARLIN_E_INVALID_ARGUMENT;  // the legacy default stream cannot be captured
  MARLIN_CUDA_TRY(cudaStreamBeginCapture(as_stream(stream), cudaStreamCaptureModeThreadLocal));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_graph_end(void* stream, void** graph_exec) {
  *graph_exec = nullptr;
  cudaGraph_t graph = nullptr;
  MARLIN_CUDA_TRY(cudaStreamEndCapture(as_stream(stream), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);  // the executable graph keeps its own copy
  MARLIN_CUDA_TRY(err);
  *graph_exec = exec;
  return MARLIN_OK;
}

extern "C" marlin_status marlin_graph_launch(void* graph_exec, void* stream) {
  MARLIN_CUDA_TRY(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), as_stream(stream)));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_graph_destroy(void* graph_exec) {
  if (graph_exec == nullptr) return MARLIN_OK;
  MARLIN_CUDA_TRY(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec)));
  return MARLIN_OK;
}

extern "C" marlin_status marlin_stream_is_capturing(void* stream, int32_t* out) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  MARLIN_CUDA_TRY(cudaStreamIsCapturing(as_stream(stream), &st));
  *out = st == cudaStreamCaptureStatusActive ? 1 : 0;
  return MARLIN_OK;
}
