// The environment header of a benchmark run (device, clocks, driver, runtime) and the two measured ceilings of the
// roofline: HBM bandwidth (device-to-device copy) and the dense fp16 tensor-core rate (cuBLAS 8192^3).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_internal.cuh"
#include "cublas_loader.cuh"

using namespace marlin::bench;

extern "C" marlin_status marlin_bench_env_get(marlin_bench_env* out) {
  clear_error();
  if (out == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_env_get: null output");
  std::memset(out, 0, sizeof *out);
  // Versions first: both work without a device (the driver version is 0 without a driver).
  cudaDriverGetVersion(&out->driver_version);
  cudaRuntimeGetVersion(&out->runtime_version);

  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    const cudaError_t e = err != cudaSuccess ? err : cudaErrorNoDevice;
    out->device_count = 0;
    out->cuda_error = static_cast<int32_t>(e);
    std::snprintf(out->cuda_error_name, sizeof out->cuda_error_name, "%s", cudaGetErrorName(e));
    cudaGetLastError();
    return fail(MARLIN_E_CUDA, std::string("no usable CUDA device: ") + cudaGetErrorName(e) + " (" +
                                   cudaGetErrorString(e) + ")");
  }
  out->device_count = count;
  int dev = 0;
  MB_CUDA(cudaGetDevice(&dev));
  out->ordinal = dev;
  cudaDeviceProp prop{};
  MB_CUDA(cudaGetDeviceProperties(&prop, dev));
  std::snprintf(out->name, sizeof out->name, "%s", prop.name);
  out->cc_major = prop.major;
  out->cc_minor = prop.minor;
  out->sm_count = prop.multiProcessorCount;
  int v = 0;
  MB_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, dev));
  out->clock_khz = v;
  MB_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, dev));
  out->mem_clock_khz = v;
  MB_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrGlobalMemoryBusWidth, dev));
  out->mem_bus_bits = v;
  MB_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrL2CacheSize, dev));
  out->l2_bytes = v;
  MB_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  out->max_smem_per_block_optin = v;
  MB_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  out->max_smem_per_sm = v;
  size_t free_b = 0;
  size_t total_b = 0;
  MB_CUDA(cudaMemGetInfo(&free_b, &total_b));
  out->free_mem = static_cast<int64_t>(free_b);
  out->total_mem = static_cast<int64_t>(total_b);
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_hbm_bandwidth(size_t bytes, int32_t repeats, double* out_gbps,
                                                    size_t* out_bytes_used) {
  clear_error();
  if (out_gbps == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_hbm_bandwidth: null output");
  if (repeats <= 0) repeats = 10;
  if (bytes == 0) bytes = size_t{2} << 30;
  // Two buffers must fit with a margin; halve until they do (never below 256 MiB: smaller copies sit in L2-scale
  // territory and would overstate bandwidth).
  size_t free_b = 0;
  size_t total_b = 0;
  MB_CUDA(cudaMemGetInfo(&free_b, &total_b));
  while (bytes > (size_t{256} << 20) && 2 * bytes + (size_t{512} << 20) > free_b) bytes /= 2;
  bytes = bytes / 256 * 256;

  DeviceBuffer src;
  DeviceBuffer dst;
  MB_TRY(src.allocate(bytes));
  MB_TRY(dst.allocate(bytes));
  Stream stream;
  MB_TRY(stream.create());
  const cudaStream_t s = stream.get();
  MB_TRY(marlin_bench_fill_bytes(src.get(), bytes, 0x5eedb4du, s));
  MB_CUDA(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, s));  // warm-up
  MB_CUDA(cudaStreamSynchronize(s));

  std::vector<Event> start(static_cast<size_t>(repeats));
  std::vector<Event> stop(static_cast<size_t>(repeats));
  for (int32_t r = 0; r < repeats; ++r) {
    MB_TRY(start[r].create());
    MB_TRY(stop[r].create());
  }
  for (int32_t r = 0; r < repeats; ++r) {
    MB_CUDA(cudaEventRecord(start[r].get(), s));
    MB_CUDA(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, s));
    MB_CUDA(cudaEventRecord(stop[r].get(), s));
  }
  MB_CUDA(cudaStreamSynchronize(s));
  std::vector<double> gbps(static_cast<size_t>(repeats));
  for (int32_t r = 0; r < repeats; ++r) {
    float ms = 0.0f;
    MB_CUDA(cudaEventElapsedTime(&ms, start[r].get(), stop[r].get()));
    // Read + write: each copied byte crosses the HBM interface twice.
    gbps[r] = 2.0 * static_cast<double>(bytes) / (static_cast<double>(ms) * 1e-3) / 1e9;
  }
  *out_gbps = summarize(gbps.data(), repeats).median;
  if (out_bytes_used != nullptr) *out_bytes_used = bytes;
  return MARLIN_OK;
}

extern "C" marlin_status marlin_bench_fp16_tflops(int32_t n, int32_t repeats, double* out_tflops) {
  clear_error();
  if (out_tflops == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_fp16_tflops: null output");
  if (n <= 0) n = 8192;
  if (repeats <= 0) repeats = 10;
  const CublasApi* api = nullptr;
  MB_TRY(cublas_api(&api));

  const size_t elems = static_cast<size_t>(n) * static_cast<size_t>(n);
  DeviceBuffer a;
  DeviceBuffer b;
  DeviceBuffer c;
  DeviceBuffer ws;
  MB_TRY(a.allocate(elems * 2));
  MB_TRY(b.allocate(elems * 2));
  MB_TRY(c.allocate(elems * 2));
  MB_TRY(ws.allocate(kCublasWorkspaceBytes));
  Stream stream;
  MB_TRY(stream.create());
  const cudaStream_t s = stream.get();
  MB_TRY(marlin_bench_fill_halves(a.get(), elems, MARLIN_FP16, -1.0f, 1.0f, 11, s));
  MB_TRY(marlin_bench_fill_halves(b.get(), elems, MARLIN_FP16, -1.0f, 1.0f, 12, s));
  CublasHandle h;
  MB_TRY(h.create(s, ws.get(), ws.bytes()));

  // Warm-up: cuBLAS picks and loads its kernel, clocks ramp.
  for (int i = 0; i < 3; ++i) MB_TRY(cublas_row_major_gemm(h, MARLIN_FP16, n, n, n, a.get(), b.get(), c.get()));
  MB_CUDA(cudaStreamSynchronize(s));

  std::vector<Event> start(static_cast<size_t>(repeats));
  std::vector<Event> stop(static_cast<size_t>(repeats));
  for (int32_t r = 0; r < repeats; ++r) {
    MB_TRY(start[r].create());
    MB_TRY(stop[r].create());
  }
  for (int32_t r = 0; r < repeats; ++r) {
    MB_CUDA(cudaEventRecord(start[r].get(), s));
    MB_TRY(cublas_row_major_gemm(h, MARLIN_FP16, n, n, n, a.get(), b.get(), c.get()));
    MB_CUDA(cudaEventRecord(stop[r].get(), s));
  }
  MB_CUDA(cudaStreamSynchronize(s));
  std::vector<double> tflops(static_cast<size_t>(repeats));
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  for (int32_t r = 0; r < repeats; ++r) {
    float ms = 0.0f;
    MB_CUDA(cudaEventElapsedTime(&ms, start[r].get(), stop[r].get()));
    tflops[r] = flops / (static_cast<double>(ms) * 1e-3) / 1e12;
  }
  *out_tflops = summarize(tflops.data(), repeats).median;
  return MARLIN_OK;
}
