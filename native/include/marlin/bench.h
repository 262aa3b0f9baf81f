// Benchmark harness C ABI (docs/benchmark.md, shared bench-protocol.md). Node-free: the N-API binding
// (native/napi/bench_binding.cc) only converts arguments; a C or Python driver could call the same entry points.
//
// Everything here follows the protocol: problems built on the GPU from seeded random data (never zeros), weights
// rotated over enough copies to exceed 4x the L2 cache, >= 20 back-to-back calls captured in one CUDA graph, the
// graph replayed once to warm and then >= 7 times under CUDA events, the median replay divided by the calls per graph
// reported as the per-call time. cuBLAS is loaded at run time (dlopen), so the addon loads on machines without it.
//
// The harness compiles no GEMM kernel: it calls an addon's C ABI (gemm.h; marlin_dense_*, marlin_fp8_*) through a
// table of function pointers (marlin_bench_gemm_api), which marlin_bench_load_api fills with dlopen / dlsym from an
// addon binary (marlin_dense.node, marlin_fp8.node). The benchmark's own Node-API addon (marlin_bench.node, built by
// tools/bench/CMakeLists.txt) is therefore separate from the production addons; device pointers and streams are
// shared with them (one primary context per device, whichever copy of the CUDA runtime made them).
//
// Errors: every function returns a marlin_status; marlin_bench_last_error() then says what failed, where, and the
// CUDA / cuBLAS error behind it (per thread, overwritten by the next failure).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "gemm.h"
#include "status.h"

#ifndef MARLIN_API
#if defined(__GNUC__)
#define MARLIN_API __attribute__((visibility("default")))
#else
#define MARLIN_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

// ---- errors --------------------------------------------------------------------------------------------------

// Human-readable description of the last failure on this thread ("" when none).
MARLIN_API const char* marlin_bench_last_error(void);
// cudaError_t (as int) behind the last MARLIN_E_CUDA from a bench function on this thread, 0 when none.
MARLIN_API int32_t marlin_bench_last_cuda_error(void);

// ---- environment ---------------------------------------------------------------------------------------------

typedef struct marlin_bench_env {
  int32_t device_count;      // visible CUDA devices (0 with a CUDA error below when none / no driver)
  int32_t cuda_error;        // cudaError_t met while probing (0 if none)
  char cuda_error_name[64];  // e.g. "cudaErrorNoDevice"
  int32_t ordinal;           // the current device the bench runs on
  char name[256];
  int32_t cc_major, cc_minor;
  int32_t sm_count;
  int32_t clock_khz;         // peak SM clock (cudaDevAttrClockRate)
  int32_t mem_clock_khz;     // peak memory clock (cudaDevAttrMemoryClockRate)
  int32_t mem_bus_bits;
  int64_t l2_bytes;
  int32_t max_smem_per_block_optin;  // cudaDevAttrMaxSharedMemoryPerBlockOptin (dispatch needs it)
  int32_t max_smem_per_sm;           // cudaDevAttrMaxSharedMemoryPerMultiprocessor
  int64_t total_mem, free_mem;
  int32_t driver_version;    // cudaDriverGetVersion, e.g. 13000
  int32_t runtime_version;   // cudaRuntimeGetVersion of the runtime linked into this addon
} marlin_bench_env;

// Fills what it can. Returns MARLIN_OK with device_count > 0 when a device is usable; MARLIN_E_CUDA with
// device_count = 0 and cuda_error set when no driver or no device (never aborts).
MARLIN_API marlin_status marlin_bench_env_get(marlin_bench_env* out);

// Measured HBM bandwidth: a device-to-device copy of `bytes` (0 = 2 GiB, reduced to fit free memory), counting bytes
// read + bytes written, timed with events; median of `repeats` (0 = 10) after one warm-up copy. Out: GB/s (1e9 B/s).
MARLIN_API marlin_status marlin_bench_hbm_bandwidth(size_t bytes, int32_t repeats, double* out_gbps, size_t* out_bytes_used);

// ---- cuBLAS (loaded with dlopen at run time) -----------------------------------------------------------------

typedef struct marlin_bench_cublas_info {
  int32_t available;         // 1 when a libcublas with every needed symbol was loaded
  int32_t version;           // cublasGetVersion, e.g. 130100; 0 when unknown
  char library[64];          // the soname that loaded, e.g. "libcublas.so.13"
  char error[512];           // why it is unavailable (dlopen / dlsym messages), "" when available
} marlin_bench_cublas_info;

// Tries libcublas.so.13, libcublas.so.12, libcublas.so once per process. Never fails: read `available`.
MARLIN_API void marlin_bench_cublas_probe(marlin_bench_cublas_info* out);

// Measured dense tensor rate: an n x n x n cuBLAS GEMM (n = 0: 8192), fp16 in/out, fp32 compute, median of
// `repeats` (0 = 10) after warm-up. Out: TFLOP/s (2 n^3 / time). MARLIN_E_UNSUPPORTED when cuBLAS is missing.
MARLIN_API marlin_status marlin_bench_fp16_tflops(int32_t n, int32_t repeats, double* out_tflops);

// ---- timing primitive ----------------------------------------------------------------------------------------

// One call of the operation under test on `stream` (a cudaStream_t), reading rotation copy `rotation_index`.
// Must only enqueue work (no synchronisation, no allocation): it is captured into a CUDA graph.
typedef marlin_status (*marlin_bench_launch_fn)(void* ctx, int32_t rotation_index, void* stream);

typedef struct marlin_bench_timing_request {
  marlin_bench_launch_fn launch;
  void* ctx;
  int32_t rotations;         // >= 1; call i of the graph uses rotation i % rotations
  int32_t calls;             // calls captured per graph; 0 = max(20, rotations); values below 20 are raised to 20
  int32_t replays;           // timed replays; 0 = 10; values below 7 are raised to 7
  void* stream;              // cudaStream_t to capture on; NULL = a private non-blocking stream
} marlin_bench_timing_request;

typedef struct marlin_bench_timing {
  double median_us, min_us, max_us;  // per call: replay time / calls
  int32_t calls, replays, rotations;
} marlin_bench_timing;

// One eager call (validates arguments outside capture), then capture `calls` calls into a graph, replay once to
// warm, time `replays` replays each between two events. A failing launch aborts the capture and returns its status.
MARLIN_API marlin_status marlin_bench_time_graph(const marlin_bench_timing_request* req, marlin_bench_timing* out);

// Rotation count for copies of `bytes_per_copy` bytes: ceil(4 * L2 / bytes_per_copy) + 1, at least 2, capped by
// what fits in free memory after `reserved_bytes` (other buffers of the problem) and a 5% + 256 MiB margin.
// MARLIN_E_CUDA / MARLIN_E_INVALID_ARGUMENT when not even one copy fits.
MARLIN_API marlin_status marlin_bench_rotation_count(size_t bytes_per_copy, size_t reserved_bytes, int32_t* out);

// ---- random fills (seeded, deterministic, never all zeros) ---------------------------------------------------

// Uniform random bytes.
MARLIN_API marlin_status marlin_bench_fill_bytes(void* ptr, size_t bytes, uint64_t seed, void* stream);
// Uniform integers in [0, bound) as uint8 (bound 1..256), e.g. zero points.
MARLIN_API marlin_status marlin_bench_fill_u8_below(uint8_t* ptr, size_t count, int32_t bound, uint64_t seed,
                                                    void* stream);
// Uniform random OCP e4m3fn bytes other than the two NaN codes 0x7F and 0xFF (254 values, +0 and -0 included).
MARLIN_API marlin_status marlin_bench_fill_e4m3(void* ptr, size_t bytes, uint64_t seed, void* stream);
// `count` 16-bit floats of `dtype`, uniform in [lo, hi); a value that rounds to 0 is replaced by hi (or lo when
// hi == 0), so no element is zero. Requires lo < hi and not both zero.
MARLIN_API marlin_status marlin_bench_fill_halves(void* ptr, size_t count, marlin_dtype dtype, float lo, float hi,
                                                  uint64_t seed, void* stream);

// Random packed 2:4 tiles (docs/format.md "2:4 sparse (packed)"): per 1536-byte tile, 1024 bytes of uniform random
// kept codes and 512 bytes of metadata whose every nibble is one of the six position pairs 0x4, 0x8, 0x9, 0xC, 0xD,
// 0xE (the sparse tensor cores leave other nibbles undefined).
MARLIN_API marlin_status marlin_bench_fill_sparse24(void* tiles, size_t tile_count, uint64_t seed, void* stream);
// `count` 16-bit floats of `dtype` (count a multiple of 4) in 2:4 structure: in each aligned group of 4 elements two
// positions (a random one of the six pairs) hold non-zero values uniform in [lo, hi), the other two hold 0.
MARLIN_API marlin_status marlin_bench_fill_halves_24(void* ptr, size_t count, marlin_dtype dtype, float lo, float hi,
                                                     uint64_t seed, void* stream);

// ---- an addon's GEMM entry points ----------------------------------------------------------------------------

// One GEMM addon as the harness calls it: its entry points (gemm.h's marlin_gemm_api, the set every addon exports
// under its prefix) plus the prefix and the addon's own CUDA error name. `entry.gemm`, `entry.plan_workspace_bytes`,
// `entry.config_count`, `entry.config_info` and `last_cuda_error_string` may be NULL; the others are required.
typedef struct marlin_bench_gemm_api {
  char prefix[32];                              // "marlin_dense", "marlin_fp8"
  marlin_gemm_api entry;                        // e.g. MARLIN_GEMM_API_OF(marlin_dense)
  const char* (*last_cuda_error_string)(void);  // optional: the addon's own CUDA error name (its own runtime copy)
} marlin_bench_gemm_api;

// Opens the addon binary at `path` (dlopen, RTLD_NOW | RTLD_LOCAL: the same handle when Node already loaded it; the
// library stays loaded for the process) and resolves `<prefix>_workspace_bytes`, ... with dlsym. MARLIN_E_UNSUPPORTED
// (last error: the dlopen message or every missing symbol) when the file does not load or lacks an entry point.
MARLIN_API marlin_status marlin_bench_load_api(const char* path, const char* prefix, marlin_bench_gemm_api* out);

// The API marlin_bench_dense_gemm uses when its args carry none: a program that links an addon's sources statically
// (native/tests/dense_sweep.cu) registers it here (native/bench/linked_dense_api.cu does so for marlin_dense_*).
MARLIN_API void marlin_bench_set_default_api(const marlin_bench_gemm_api* api);

// ---- GEMM benchmarks -----------------------------------------------------------------------------------------

typedef struct marlin_bench_gemm_result {
  marlin_bench_timing timing;
  size_t bytes_per_rotation;  // weight (+ scales, zeros) bytes of one copy
  size_t workspace_bytes;     // Marlin: <prefix>_workspace_bytes; cuBLAS / cuBLASLt: the workspace handed to it
  int32_t cluster_size;       // Marlin: blocks per thread-block cluster of the launch (<prefix>_plan_cluster_size:
                              // the split count when split-K is reduced across a cluster, else 1); cuBLAS: 0
  int32_t tail_blocks;        // Marlin: blocks of the balanced last wave's second launch (<prefix>_plan_tail_blocks;
                              // 0: one launch); cuBLAS: 0
  int32_t m_run;              // rows actually computed: m, or m rounded up to 16 for cuBLASLt FP8
} marlin_bench_gemm_result;

// Weight formats of docs/format.md the harness can build (marlin_bench_dense_args.variant).
typedef enum marlin_bench_variant {
  MARLIN_BENCH_INT4 = 0,  // bits 4, Kp = ceil(K / 64) * 64, 2048-byte tiles; zero point 8 (or random in [0, 16))
  MARLIN_BENCH_INT8 = 1,  // bits 8, Kp = ceil(K / 64) * 64, 4096-byte kernel tiles; zero point 128 (or random bytes)
  MARLIN_BENCH_FP8 = 2,   // bits 8, e4m3 codes (no NaN codes), scales with the exponent-bias correction folded in
  MARLIN_BENCH_INT4_SPARSE = 3  // 2:4 sparse INT4 (docs/format.md "2:4 sparse (packed)"): 1536-byte tiles of random
                                // kept codes and valid metadata (marlin_bench_fill_sparse24), @marlin/sparse
} marlin_bench_variant;

typedef struct marlin_bench_dense_args {
  marlin_dtype dtype;
  int32_t m, n, k;
  int32_t group_size;         // <= 0: per-channel (group_size = k)
  int32_t has_zeros;          // 1: random uint8 zero points (INT4 [0, 16), INT8 [0, 256)); FP8 takes none
  int32_t config_id, splits;  // from @marlin/core dispatch
  uint64_t seed;
  int32_t calls, replays;     // 0 = defaults of marlin_bench_time_graph
  int32_t serial;             // 1: MARLIN_LAUNCH_SERIAL (each call waits for the previous one to complete before any
                              // block starts); 0: the default launch (overlaps the previous call on sm_90+)
  int32_t tail_splits;        // marlin_gemm_launch.tail_splits (0: off)
  marlin_bench_variant variant;      // 0: INT4
  const marlin_bench_gemm_api* api;  // the addon to call; NULL: the one given to marlin_bench_set_default_api
} marlin_bench_dense_args;

// Builds `rotations` random packed weights of `variant` (docs/format.md: Np/64 * Kp/64 kernel tiles, scales [G][Np]
// in dtype, optional zeros), random activations, an output and an initialised workspace, makes one plan per weight
// copy and times <prefix>_plan_launch with marlin_bench_time_graph, frees everything. Data: INT4 / INT8 codes are
// uniform random bytes, FP8 codes uniform random e4m3 bytes without the NaN codes; scales uniform in [0.001, 0.01)
// (INT4) and [0.0001, 0.001) (INT8; FP8 logical scales, stored times 2^8 for fp16 and 2^120 for bf16).
MARLIN_API marlin_status marlin_bench_dense_gemm(const marlin_bench_dense_args* args, marlin_bench_gemm_result* out);

typedef struct marlin_bench_cublas_args {
  marlin_dtype dtype;         // fp16 (CUDA_R_16F) or bf16 (CUDA_R_16BF) in/out, fp32 compute
  int32_t m, n, k;
  uint64_t seed;
  int32_t calls, replays;
} marlin_bench_cublas_args;

// cuBLAS baseline on the dequantized shape: y[M x N] = x[M x K] * W[K x N], W rotated like the dense weights.
// MARLIN_E_UNSUPPORTED when cuBLAS is missing.
MARLIN_API marlin_status marlin_bench_cublas_gemm(const marlin_bench_cublas_args* args, marlin_bench_gemm_result* out);

// ---- cuBLASLt FP8 W8A8 (loaded with dlopen at run time) -------------------------------------------------------

// Tries libcublasLt.so.13, libcublasLt.so.12, libcublasLt.so once per process. Never fails: read `available`.
MARLIN_API void marlin_bench_cublaslt_probe(marlin_bench_cublas_info* out);

typedef struct marlin_bench_cublaslt_fp8_args {
  marlin_dtype out_dtype;     // output (and C) dtype: fp16 or bf16
  int32_t m, n, k;            // n and k multiples of 16; m is run rounded up to 16 (cuBLASLt's FP8 requirement)
  uint64_t seed;
  int32_t calls, replays;
} marlin_bench_cublaslt_fp8_args;

// The W8A8 GEMM a Hopper user would otherwise reach for (torch._scaled_mm's): y = (sa * sb) * x W with x [M16 x K]
// and W [N x K] (K-major, "TN") both e4m3, per-tensor fp32 scales sa, sb, fp32 accumulation (no fast accumulation),
// output in out_dtype; cuBLASLt's first heuristic algorithm with a 32 MiB workspace. W rotated as everywhere; the
// activations are given already quantized (their quantization is not timed). MARLIN_E_UNSUPPORTED when cuBLASLt is
// missing or has no FP8 algorithm for the device (before sm_89).
MARLIN_API marlin_status marlin_bench_cublaslt_fp8_gemm(const marlin_bench_cublaslt_fp8_args* args,
                                                        marlin_bench_gemm_result* out);

// ---- cuSPARSELt fp16 2:4 (loaded with dlopen at run time) -----------------------------------------------------

typedef struct marlin_bench_cusparselt_info {
  int32_t available;  // 1 when a cuSPARSELt of a supported version with every needed symbol was loaded
  int32_t version;    // major * 1000 + minor * 100 + patch (cusparseLtGetProperty), e.g. 701; 0 when unknown
  char library[512];  // the path or soname that loaded
  char error[1024];   // why it is unavailable, "" when available
} marlin_bench_cusparselt_info;

// Loads cuSPARSELt once per process: each of `paths` in order (e.g. PyTorch's bundled copy in site-packages), then
// the soname libcusparseLt.so.0 (LD_LIBRARY_PATH, the loader cache). A candidate that fails to load is retried after
// loading `deps` (libraries it may need, e.g. the CUDA runtime of the same wheel set). Only the releases whose ABI the
// harness declares (0.7.1 to 0.8.x) are accepted. Never fails: read `available`. Once one loaded, later calls report it.
MARLIN_API void marlin_bench_cusparselt_load(const char* const* paths, int32_t path_count, const char* const* deps,
                                             int32_t dep_count, marlin_bench_cusparselt_info* out);

typedef struct marlin_bench_cusparselt_args {
  marlin_dtype dtype;         // in/out dtype (fp16 or bf16), fp32 compute (CUSPARSE_COMPUTE_32F)
  int32_t m, n, k;            // n and k multiples of 16; m is run rounded up to 16
  uint64_t seed;
  int32_t calls, replays;
} marlin_bench_cusparselt_args;

// The 2:4 sparse GEMM torch._cslt_sparse_mm runs: y[M16 x N] = x[M16 x K] W^T with W [N][K] 2:4 along K (random
// values, two zeros in each group of 4), compressed by cusparseLtSpMMACompress, cuSPARSELt's default algorithm, fp32
// accumulation; W rotated as everywhere. MARLIN_E_UNSUPPORTED when cuSPARSELt is not loaded
// (marlin_bench_cusparselt_load) or rejects the problem.
MARLIN_API marlin_status marlin_bench_cusparselt_gemm(const marlin_bench_cusparselt_args* args,
                                                      marlin_bench_gemm_result* out);

#ifdef __cplusplus
}
#endif
