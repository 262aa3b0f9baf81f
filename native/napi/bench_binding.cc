// Argument conversion between JS and the Node-free benchmark harness (native/bench/, C ABI in marlin/bench.h).
// Every failure is thrown as an Error with a @marlin/core ErrorCode string in `code` and the harness's own
// description (what failed, where, the CUDA / cuBLAS error) in the message.
//
//   benchEnv({ measure = true })  -> device info, cuBLAS info, measured HBM GB/s and fp16 TFLOP/s
//   benchGemm({ M, N, K, groupSize, dtype: 'fp16'|'bf16', hasZeros?, configId, splits, tailSplits?, seed?, calls?,
//               replays?, serial? })
//   benchCublas({ M, N, K, dtype, seed?, calls?, replays? })
//     -> { us, minUs, maxUs, rotations, calls, replays, bytesPerRotation, workspaceBytes, clusterSize, tailBlocks }
//     (clusterSize: blocks per thread-block cluster of the dense launch, 1 without; 0 for cuBLAS; tailBlocks: blocks
//     of its balanced-last-wave launch, 0 without or for cuBLAS)
//
// The calls are synchronous: a benchmark owns the GPU while it runs, and blocking the event loop is the point.
#include "bench_binding.h"

#include <cmath>
#include <string>

#include "marlin/bench.h"
#include "marlin_napi.h"

namespace {

using marlin_napi::CodedError;

const char* CodeFor(marlin_status s) {
  switch (s) {
    case MARLIN_E_INVALID_ARGUMENT: return "MARLIN_E_VALUE";
    case MARLIN_E_UNSUPPORTED: return "MARLIN_E_UNSUPPORTED";
    case MARLIN_E_WORKSPACE: return "MARLIN_E_WORKSPACE";
    case MARLIN_E_MISALIGNED: return "MARLIN_E_ALIGNMENT";
    case MARLIN_E_NO_KERNEL_IMAGE: return "MARLIN_E_NO_KERNEL_IMAGE";
    default: return "MARLIN_E_CUDA";
  }
}

Napi::Error BenchError(Napi::Env env, const char* code, const std::string& what) {
  Napi::Error err = CodedError(env, code, what + ": " + marlin_bench_last_error());
  err.Set("cudaError", Napi::Number::New(env, marlin_bench_last_cuda_error()));
  return err;
}

void Check(Napi::Env env, marlin_status s, const char* what) {
  if (s != MARLIN_OK) throw BenchError(env, CodeFor(s), what);
}

Napi::Object ArgObject(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw CodedError(info.Env(), "MARLIN_E_VALUE", std::string(fn) + ": expected an options object.");
  }
  return info[0].As<Napi::Object>();
}

// Integer option; `fallback` when absent (undefined), a MARLIN_E_VALUE error when required and absent or not an
// integer in int32 range.
int32_t IntOpt(Napi::Env env, const Napi::Object& o, const char* fn, const char* key, bool required,
               int32_t fallback) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return fallback;
  if (!v.IsNumber()) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": '" + key + "' must be an integer.");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < -2147483648.0 || d > 2147483647.0) {
    throw CodedError(env, "MARLIN_E_VALUE",
                     std::string(fn) + ": '" + key + "' must be an integer in int32 range, got " + std::to_string(d));
  }
  return static_cast<int32_t>(d);
}

bool BoolOpt(const Napi::Object& o, const char* key, bool fallback) {
  const Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : v.ToBoolean().Value();
}

marlin_dtype DtypeOpt(Napi::Env env, const Napi::Object& o, const char* fn) {
  const Napi::Value v = o.Get("dtype");
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "fp16") return MARLIN_FP16;
  if (s == "bf16") return MARLIN_BF16;
  throw CodedError(env, "MARLIN_E_DTYPE", std::string(fn) + ": dtype must be 'fp16' or 'bf16'.");
}

Napi::Object TimingObject(Napi::Env env, const marlin_bench_gemm_result& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("us", r.timing.median_us);
  o.Set("minUs", r.timing.min_us);
  o.Set("maxUs", r.timing.max_us);
  o.Set("rotations", r.timing.rotations);
  o.Set("calls", r.timing.calls);
  o.Set("replays", r.timing.replays);
  o.Set("bytesPerRotation", static_cast<double>(r.bytes_per_rotation));
  o.Set("workspaceBytes", static_cast<double>(r.workspace_bytes));
  o.Set("clusterSize", r.cluster_size);
  o.Set("tailBlocks", r.tail_blocks);
  return o;
}

// A missing device is the one failure the CLI handles (it falls back to the CPU reference), so it gets the
// probe codes of @marlin/core: no driver, driver too old, no device.
Napi::Error NoDeviceError(Napi::Env env, const marlin_bench_env& e) {
  const char* code = "MARLIN_E_NO_DEVICE";
  if (e.driver_version == 0) {
    code = "MARLIN_E_NO_DRIVER";
  } else if (e.cuda_error == 35 /* cudaErrorInsufficientDriver */) {
    code = "MARLIN_E_DRIVER_TOO_OLD";
  }
  Napi::Error err = CodedError(env, code, std::string(marlin_bench_last_error()));
  err.Set("cudaError", Napi::Number::New(env, e.cuda_error));
  err.Set("cudaErrorName", Napi::String::New(env, e.cuda_error_name));
  err.Set("driverVersion", Napi::Number::New(env, e.driver_version));
  err.Set("runtimeVersion", Napi::Number::New(env, e.runtime_version));
  return err;
}

Napi::Value BenchEnv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool measure = true;
  if (info.Length() >= 1 && info[0].IsObject()) measure = BoolOpt(info[0].As<Napi::Object>(), "measure", true);

  marlin_bench_env e{};
  if (marlin_bench_env_get(&e) != MARLIN_OK) {
    if (e.device_count == 0) throw NoDeviceError(env, e);
    throw BenchError(env, "MARLIN_E_CUDA", "benchEnv");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("deviceCount", e.device_count);
  o.Set("ordinal", e.ordinal);
  o.Set("name", e.name);
  o.Set("ccMajor", e.cc_major);
  o.Set("ccMinor", e.cc_minor);
  o.Set("smCount", e.sm_count);
  o.Set("clockKHz", e.clock_khz);
  o.Set("memClockKHz", e.mem_clock_khz);
  o.Set("memBusBits", e.mem_bus_bits);
  o.Set("l2Bytes", static_cast<double>(e.l2_bytes));
  o.Set("maxSmemPerBlockOptin", e.max_smem_per_block_optin);
  o.Set("maxSmemPerSm", e.max_smem_per_sm);
  o.Set("totalMem", static_cast<double>(e.total_mem));
  o.Set("freeMem", static_cast<double>(e.free_mem));
  o.Set("driverVersion", e.driver_version);
  o.Set("runtimeVersion", e.runtime_version);

  marlin_bench_cublas_info ci{};
  marlin_bench_cublas_probe(&ci);
  Napi::Object cublas = Napi::Object::New(env);
  cublas.Set("available", ci.available != 0);
  cublas.Set("version", ci.version);
  cublas.Set("library", ci.library);
  cublas.Set("error", ci.error);
  o.Set("cublas", cublas);

  o.Set("bandwidthGBs", env.Null());
  o.Set("bandwidthBytes", env.Null());
  o.Set("fp16Tflops", env.Null());
  if (measure) {
    double gbps = 0.0;
    size_t used = 0;
    Check(env, marlin_bench_hbm_bandwidth(0, 0, &gbps, &used), "benchEnv: HBM bandwidth");
    o.Set("bandwidthGBs", gbps);
    o.Set("bandwidthBytes", static_cast<double>(used));
    if (ci.available != 0) {
      double tflops = 0.0;
      Check(env, marlin_bench_fp16_tflops(0, 0, &tflops), "benchEnv: cuBLAS fp16 8192^3");
      o.Set("fp16Tflops", tflops);
    }
  }
  return o;
}

Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchGemm";
  const Napi::Object o = ArgObject(info, fn);
  marlin_bench_dense_args a{};
  a.dtype = DtypeOpt(env, o, fn);
  a.m = IntOpt(env, o, fn, "M", true, 0);
  a.n = IntOpt(env, o, fn, "N", true, 0);
  a.k = IntOpt(env, o, fn, "K", true, 0);
  a.group_size = IntOpt(env, o, fn, "groupSize", true, 0);
  a.has_zeros = BoolOpt(o, "hasZeros", false) ? 1 : 0;
  a.config_id = IntOpt(env, o, fn, "configId", true, 0);
  a.splits = IntOpt(env, o, fn, "splits", true, 1);
  a.seed = static_cast<uint64_t>(IntOpt(env, o, fn, "seed", false, 1));
  a.calls = IntOpt(env, o, fn, "calls", false, 0);
  a.replays = IntOpt(env, o, fn, "replays", false, 0);
  a.serial = BoolOpt(o, "serial", false) ? 1 : 0;
  a.tail_splits = IntOpt(env, o, fn, "tailSplits", false, 0);
  marlin_bench_gemm_result r{};
  Check(env, marlin_bench_dense_gemm(&a, &r), fn);
  return TimingObject(env, r);
}

Napi::Value BenchCublas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchCublas";
  const Napi::Object o = ArgObject(info, fn);
  marlin_bench_cublas_args a{};
  a.dtype = DtypeOpt(env, o, fn);
  a.m = IntOpt(env, o, fn, "M", true, 0);
  a.n = IntOpt(env, o, fn, "N", true, 0);
  a.k = IntOpt(env, o, fn, "K", true, 0);
  a.seed = static_cast<uint64_t>(IntOpt(env, o, fn, "seed", false, 1));
  a.calls = IntOpt(env, o, fn, "calls", false, 0);
  a.replays = IntOpt(env, o, fn, "replays", false, 0);
  marlin_bench_gemm_result r{};
  Check(env, marlin_bench_cublas_gemm(&a, &r), fn);
  return TimingObject(env, r);
}

}  // namespace

void marlin_register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("benchEnv", Napi::Function::New(env, BenchEnv, "benchEnv"));
  exports.Set("benchGemm", Napi::Function::New(env, BenchGemm, "benchGemm"));
  exports.Set("benchCublas", Napi::Function::New(env, BenchCublas, "benchCublas"));
}
