// The benchmark's own Node-API addon, marlin_bench.node (tools/bench/CMakeLists.txt): argument conversion between JS
// and the Node-free harness (native/bench/, C ABI in marlin/bench.h). It compiles no GEMM kernel; the addons under
// test are opened by path (benchLoadAddon) and called through their exported C ABI. Every failure is thrown as an
// Error with a @marlin/core ErrorCode string in `code` and the harness's own description (what failed, where, the
// CUDA / cuBLAS error) in the message.
//
//   benchEnv({ measure = true })  -> device info, cuBLAS and cuBLASLt info, measured HBM GB/s and fp16 TFLOP/s
//   benchLoadAddon({ prefix: 'marlin_dense'|'marlin_fp8'|'marlin_sparse', path })  -> { prefix, path, configCount }
//   benchGemm({ addon, variant: 'int4'|'int8'|'fp8'|'sparse', M, N, K, groupSize, dtype: 'fp16'|'bf16', hasZeros?, configId,
//               splits, tailSplits?, seed?, calls?, replays?, serial? })
//   benchCublas({ M, N, K, dtype, seed?, calls?, replays? })
//   benchCublasLtFp8({ M, N, K, dtype (output), seed?, calls?, replays? })
//   benchCusparseLt({ M, N, K, dtype, seed?, calls?, replays? })  (after benchCusparseLtLoad({ paths?, deps? }) ->
//     { available, version, library, error }: cuSPARSELt fp16 / bf16 2:4, M rounded up to 16)
//     -> { us, minUs, maxUs, rotations, calls, replays, bytesPerRotation, workspaceBytes, clusterSize, tailBlocks,
//          mRun }
//     (clusterSize: blocks per thread-block cluster of the Marlin launch, 1 without; 0 for cuBLAS; tailBlocks: blocks
//     of its balanced-last-wave launch, 0 without or for cuBLAS; mRun: rows computed, M rounded up to 16 for FP8)
//   MoE layers (native/bench/moe_bench.h):
//   benchLoadMoe({ path })  -> { path, configCount }
//   benchMoeWeights({ format: 'int4'|'int8'|'fp8'|'dense', dtype, experts, hidden, inter, groupSize?, copies, seed? })
//     -> { handle, bytes, format, dtype, copies }; benchMoeFree(weights) releases the device memory (idempotent)
//   benchMoe({ weights, M, topk, ids: Int32Array [rotations][M][topk], topkWeights: Float32Array [M][topk],
//              copyOf: Int32Array [rotations], activation: 'silu'|'swigluoai', config13, splits13, config2, splits2,
//              seed?, calls?, replays? })
//   benchMoeCublas({ weights, M, topk, ids, topkWeights, copyOf, activation, block,
//                    mode: 'grouped'|'per-expert'|'routing-only', seed?, calls?, replays? })
//     -> { us, minUs, maxUs, rotations, calls, replays, workspaceBytes, blockSize, capacity, gemmLaunches }
//
// The calls are synchronous: a benchmark owns the GPU while it runs, and blocking the event loop is the point.
#include <napi.h>

#include <cmath>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "marlin/bench.h"
#include "bench/moe_bench.h"

namespace {

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

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

std::string StringOpt(Napi::Env env, const Napi::Object& o, const char* fn, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsString()) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": '" + key + "' must be a string.");
  return v.As<Napi::String>().Utf8Value();
}

marlin_dtype DtypeOpt(Napi::Env env, const Napi::Object& o, const char* fn) {
  const Napi::Value v = o.Get("dtype");
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "fp16") return MARLIN_FP16;
  if (s == "bf16") return MARLIN_BF16;
  throw CodedError(env, "MARLIN_E_DTYPE", std::string(fn) + ": dtype must be 'fp16' or 'bf16'.");
}

// The value of string option `key` named in `choices`; MARLIN_E_VALUE listing the names otherwise.
template <class T>
T ChoiceOpt(Napi::Env env, const Napi::Object& o, const char* fn, const char* key,
            std::initializer_list<std::pair<const char*, T>> choices) {
  const std::string s = StringOpt(env, o, fn, key);
  std::string names;
  size_t i = 0;
  for (const auto& [name, value] : choices) {
    if (s == name) return value;
    names += std::string(i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + "'" + name + "'";
    ++i;
  }
  throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": " + key + " must be " + names + ".");
}

marlin_bench_variant VariantOpt(Napi::Env env, const Napi::Object& o, const char* fn) {
  return ChoiceOpt<marlin_bench_variant>(env, o, fn, "variant",
                                         {{"int4", MARLIN_BENCH_INT4},
                                          {"int8", MARLIN_BENCH_INT8},
                                          {"fp8", MARLIN_BENCH_FP8},
                                          {"sparse", MARLIN_BENCH_INT4_SPARSE}});
}

// Addon APIs loaded so far, by prefix (one binary per prefix per process: plans of it may be alive).
struct LoadedApi {
  std::string path;
  marlin_bench_gemm_api api;
};
std::mutex g_apis_mu;
std::map<std::string, std::unique_ptr<LoadedApi>> g_apis;

const marlin_bench_gemm_api* ApiFor(Napi::Env env, const std::string& prefix, const char* fn) {
  std::lock_guard<std::mutex> lock(g_apis_mu);
  const auto it = g_apis.find(prefix);
  if (it == g_apis.end()) {
    throw CodedError(env, "MARLIN_E_VALUE",
                     std::string(fn) + ": addon '" + prefix + "' is not loaded; call benchLoadAddon first.");
  }
  return &it->second->api;
}

// The protocol's timing fields (tools/bench Timing) of a measurement.
void SetTiming(Napi::Object& o, const marlin_bench_timing& t) {
  o.Set("us", t.median_us);
  o.Set("minUs", t.min_us);
  o.Set("maxUs", t.max_us);
  o.Set("rotations", t.rotations);
  o.Set("calls", t.calls);
  o.Set("replays", t.replays);
}

Napi::Object TimingObject(Napi::Env env, const marlin_bench_gemm_result& r) {
  Napi::Object o = Napi::Object::New(env);
  SetTiming(o, r.timing);
  o.Set("bytesPerRotation", static_cast<double>(r.bytes_per_rotation));
  o.Set("workspaceBytes", static_cast<double>(r.workspace_bytes));
  o.Set("clusterSize", r.cluster_size);
  o.Set("tailBlocks", r.tail_blocks);
  o.Set("mRun", r.m_run);
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

// { available, version, library, error } of a library the harness loaded (cuBLAS, cuBLASLt, cuSPARSELt).
template <class Info>
Napi::Object LibraryInfo(Napi::Env env, const Info& ci) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", ci.available != 0);
  o.Set("version", ci.version);
  o.Set("library", ci.library);
  o.Set("error", ci.error);
  return o;
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
  o.Set("cublas", LibraryInfo(env, ci));
  marlin_bench_cublas_info lt{};
  marlin_bench_cublaslt_probe(&lt);
  o.Set("cublasLt", LibraryInfo(env, lt));

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

Napi::Value BenchLoadAddon(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchLoadAddon";
  const Napi::Object o = ArgObject(info, fn);
  const std::string prefix = StringOpt(env, o, fn, "prefix");
  const std::string path = StringOpt(env, o, fn, "path");
  std::lock_guard<std::mutex> lock(g_apis_mu);
  const auto it = g_apis.find(prefix);
  if (it != g_apis.end() && it->second->path != path) {
    throw CodedError(env, "MARLIN_E_VALUE",
                     std::string(fn) + ": '" + prefix + "' is already loaded from " + it->second->path +
                         "; one binary per addon per process.");
  }
  if (it == g_apis.end()) {
    auto loaded = std::make_unique<LoadedApi>();
    loaded->path = path;
    Check(env, marlin_bench_load_api(path.c_str(), prefix.c_str(), &loaded->api), fn);
    g_apis.emplace(prefix, std::move(loaded));
  }
  const marlin_bench_gemm_api& api = g_apis.at(prefix)->api;
  Napi::Object r = Napi::Object::New(env);
  r.Set("prefix", prefix);
  r.Set("path", path);
  if (api.entry.config_count != nullptr) {
    r.Set("configCount", api.entry.config_count());
  } else {
    r.Set("configCount", env.Null());
  }
  return r;
}

// The options every benchmark takes: M, N, K (required), seed (default 1), calls and replays (0: the protocol's
// defaults). Args: marlin_bench_dense_args, _cublas_args, _cublaslt_fp8_args.
template <typename Args>
void ShapeOpts(Napi::Env env, const Napi::Object& o, const char* fn, Args* a) {
  a->m = IntOpt(env, o, fn, "M", true, 0);
  a->n = IntOpt(env, o, fn, "N", true, 0);
  a->k = IntOpt(env, o, fn, "K", true, 0);
  a->seed = static_cast<uint64_t>(IntOpt(env, o, fn, "seed", false, 1));
  a->calls = IntOpt(env, o, fn, "calls", false, 0);
  a->replays = IntOpt(env, o, fn, "replays", false, 0);
}

Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchGemm";
  const Napi::Object o = ArgObject(info, fn);
  marlin_bench_dense_args a{};
  a.api = ApiFor(env, StringOpt(env, o, fn, "addon"), fn);
  a.variant = VariantOpt(env, o, fn);
  a.dtype = DtypeOpt(env, o, fn);
  ShapeOpts(env, o, fn, &a);
  a.group_size = IntOpt(env, o, fn, "groupSize", true, 0);
  a.has_zeros = BoolOpt(o, "hasZeros", false) ? 1 : 0;
  a.config_id = IntOpt(env, o, fn, "configId", true, 0);
  a.splits = IntOpt(env, o, fn, "splits", true, 1);
  a.serial = BoolOpt(o, "serial", false) ? 1 : 0;
  a.tail_splits = IntOpt(env, o, fn, "tailSplits", false, 0);
  marlin_bench_gemm_result r{};
  Check(env, marlin_bench_dense_gemm(&a, &r), fn);
  return TimingObject(env, r);
}

// A baseline (cuBLAS, cuBLASLt FP8): `dtype` (its in/out or out dtype) and the shape options, then `run`.
template <typename Args>
Napi::Value Baseline(const Napi::CallbackInfo& info, const char* fn, marlin_dtype Args::*dtype,
                     marlin_status (*run)(const Args*, marlin_bench_gemm_result*)) {
  Napi::Env env = info.Env();
  const Napi::Object o = ArgObject(info, fn);
  Args a{};
  a.*dtype = DtypeOpt(env, o, fn);
  ShapeOpts(env, o, fn, &a);
  marlin_bench_gemm_result r{};
  Check(env, run(&a, &r), fn);
  return TimingObject(env, r);
}

Napi::Value BenchCublas(const Napi::CallbackInfo& info) {
  return Baseline(info, "benchCublas", &marlin_bench_cublas_args::dtype, marlin_bench_cublas_gemm);
}

Napi::Value BenchCublasLtFp8(const Napi::CallbackInfo& info) {
  return Baseline(info, "benchCublasLtFp8", &marlin_bench_cublaslt_fp8_args::out_dtype,
                  marlin_bench_cublaslt_fp8_gemm);
}

// ---- cuSPARSELt (the 2:4 series' second baseline) ----

std::vector<std::string> StringListOpt(Napi::Env env, const Napi::Object& o, const char* fn, const char* key) {
  std::vector<std::string> out;
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": '" + key + "' must be an array.");
  const Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value e = a.Get(i);
    if (!e.IsString()) {
      throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": '" + key + "' must hold strings.");
    }
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Value BenchCusparseLtLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchCusparseLtLoad";
  const Napi::Object o = ArgObject(info, fn);
  const std::vector<std::string> paths = StringListOpt(env, o, fn, "paths");
  const std::vector<std::string> deps = StringListOpt(env, o, fn, "deps");
  std::vector<const char*> p;
  std::vector<const char*> d;
  for (const std::string& s : paths) p.push_back(s.c_str());
  for (const std::string& s : deps) d.push_back(s.c_str());
  marlin_bench_cusparselt_info r{};
  marlin_bench_cusparselt_load(p.data(), static_cast<int32_t>(p.size()), d.data(), static_cast<int32_t>(d.size()),
                               &r);
  return LibraryInfo(env, r);
}

Napi::Value BenchCusparseLt(const Napi::CallbackInfo& info) {
  return Baseline(info, "benchCusparseLt", &marlin_bench_cusparselt_args::dtype, marlin_bench_cusparselt_gemm);
}

// ---- MoE layers ----

std::mutex g_moe_mu;
std::string g_moe_path;  // "" until loaded; one marlin_moe.node per process (its plans may be alive)
marlin_bench_moe_api g_moe_api{};

Napi::Value BenchLoadMoe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchLoadMoe";
  const std::string path = StringOpt(env, ArgObject(info, fn), fn, "path");
  std::lock_guard<std::mutex> lock(g_moe_mu);
  if (!g_moe_path.empty() && g_moe_path != path) {
    throw CodedError(env, "MARLIN_E_VALUE",
                     std::string(fn) + ": marlin_moe.node is already loaded from " + g_moe_path +
                         "; one binary per process.");
  }
  if (g_moe_path.empty()) {
    marlin_bench_moe_api api{};
    Check(env, marlin_bench_load_moe_api(path.c_str(), &api), fn);
    g_moe_api = api;
    g_moe_path = path;
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("path", path);
  if (g_moe_api.config_count != nullptr) {
    r.Set("configCount", g_moe_api.config_count());
  } else {
    r.Set("configCount", env.Null());
  }
  return r;
}

// The device weights behind a JS weights object; freed by benchMoeFree or, failing that, by the GC.
struct MoeWeightsHolder {
  marlin_bench_moe_weights* w = nullptr;
  void release() {
    marlin_bench_moe_weights_destroy(w);
    w = nullptr;
  }
};

Napi::Value BenchMoeWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchMoeWeights";
  const Napi::Object o = ArgObject(info, fn);
  marlin_bench_moe_weights_args a{};
  a.format = ChoiceOpt<marlin_bench_moe_format>(env, o, fn, "format",
                                                {{"int4", MARLIN_BENCH_MOE_INT4},
                                                 {"int8", MARLIN_BENCH_MOE_INT8},
                                                 {"fp8", MARLIN_BENCH_MOE_FP8},
                                                 {"dense", MARLIN_BENCH_MOE_DENSE}});
  a.dtype = DtypeOpt(env, o, fn);
  a.experts = IntOpt(env, o, fn, "experts", true, 0);
  a.hidden = IntOpt(env, o, fn, "hidden", true, 0);
  a.inter = IntOpt(env, o, fn, "inter", true, 0);
  a.group_size = IntOpt(env, o, fn, "groupSize", false, 128);
  a.copies = IntOpt(env, o, fn, "copies", true, 1);
  a.seed = static_cast<uint64_t>(IntOpt(env, o, fn, "seed", false, 1));
  marlin_bench_moe_weights* w = nullptr;
  Check(env, marlin_bench_moe_weights_create(&a, &w), fn);
  auto* holder = new MoeWeightsHolder{w};
  Napi::Object r = Napi::Object::New(env);
  r.Set("handle", Napi::External<MoeWeightsHolder>::New(env, holder, [](Napi::Env, MoeWeightsHolder* h) {
          h->release();
          delete h;
        }));
  r.Set("bytes", static_cast<double>(marlin_bench_moe_weights_bytes(w)));
  r.Set("format", o.Get("format"));  // the name ChoiceOpt accepted
  r.Set("dtype", a.dtype == MARLIN_BF16 ? "bf16" : "fp16");
  r.Set("copies", a.copies);
  return r;
}

MoeWeightsHolder* HolderOf(Napi::Env env, const Napi::Value& v, const char* fn) {
  if (v.IsObject()) {
    const Napi::Value h = v.As<Napi::Object>().Get("handle");
    if (h.IsExternal()) return h.As<Napi::External<MoeWeightsHolder>>().Data();
  }
  throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": 'weights' must be an object from benchMoeWeights.");
}

Napi::Value BenchMoeFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw CodedError(env, "MARLIN_E_VALUE", "benchMoeFree: expected a weights object.");
  HolderOf(env, info[0], "benchMoeFree")->release();
  return env.Undefined();
}

const marlin_bench_moe_weights* LiveWeights(Napi::Env env, const Napi::Object& o, const char* fn) {
  const MoeWeightsHolder* h = HolderOf(env, o.Get("weights"), fn);
  if (h->w == nullptr) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": the weights were freed.");
  return h->w;
}

template <typename T, napi_typedarray_type Type>
const T* TypedArrayOpt(Napi::Env env, const Napi::Object& o, const char* fn, const char* key, size_t length,
                       const char* type_name) {
  const Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Type) {
    throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": '" + key + "' must be a " + type_name + ".");
  }
  const Napi::TypedArrayOf<T> a = v.As<Napi::TypedArrayOf<T>>();
  if (a.ElementLength() != length) {
    throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": '" + key + "' has " +
                                                std::to_string(a.ElementLength()) + " elements, expected " +
                                                std::to_string(length) + ".");
  }
  return a.Data();
}

// The routing options of benchMoe / benchMoeCublas; the arrays stay owned by the JS objects (read synchronously).
marlin_bench_moe_routing RoutingOpts(Napi::Env env, const Napi::Object& o, const char* fn) {
  marlin_bench_moe_routing r{};
  r.m = IntOpt(env, o, fn, "M", true, 0);
  r.topk = IntOpt(env, o, fn, "topk", true, 0);
  if (r.m < 1 || r.topk < 1) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": M and topk must be >= 1.");
  const Napi::Value copies = o.Get("copyOf");
  if (!copies.IsTypedArray()) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": 'copyOf' must be an Int32Array.");
  r.rotations = static_cast<int32_t>(copies.As<Napi::TypedArray>().ElementLength());
  const size_t slots = static_cast<size_t>(r.m) * static_cast<size_t>(r.topk);
  r.copy_of = TypedArrayOpt<int32_t, napi_int32_array>(env, o, fn, "copyOf", static_cast<size_t>(r.rotations),
                                                       "Int32Array");
  r.ids = TypedArrayOpt<int32_t, napi_int32_array>(env, o, fn, "ids", slots * static_cast<size_t>(r.rotations),
                                                   "Int32Array");
  r.weights = TypedArrayOpt<float, napi_float32_array>(env, o, fn, "topkWeights", slots, "Float32Array");
  return r;
}

marlin_moe_activation ActivationOpt(Napi::Env env, const Napi::Object& o, const char* fn) {
  return ChoiceOpt<marlin_moe_activation>(env, o, fn, "activation",
                                          {{"silu", MARLIN_MOE_SILU}, {"swigluoai", MARLIN_MOE_SWIGLU_OAI}});
}

// gpt-oss's clamped SwiGLU constants (moe.h MARLIN_MOE_SWIGLU_OAI).
constexpr float kSwigluAlpha = 1.702f;
constexpr float kSwigluLimit = 7.0f;

Napi::Object MoeTimingObject(Napi::Env env, const marlin_bench_moe_result& r) {
  Napi::Object o = Napi::Object::New(env);
  SetTiming(o, r.timing);
  o.Set("workspaceBytes", static_cast<double>(r.workspace_bytes));
  o.Set("blockSize", r.block_size);
  o.Set("capacity", static_cast<double>(r.capacity));
  o.Set("gemmLaunches", r.gemm_launches);
  return o;
}

Napi::Value BenchMoe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchMoe";
  const Napi::Object o = ArgObject(info, fn);
  marlin_bench_moe_args a{};
  {
    std::lock_guard<std::mutex> lock(g_moe_mu);
    if (g_moe_path.empty()) throw CodedError(env, "MARLIN_E_VALUE", std::string(fn) + ": call benchLoadMoe first.");
    a.api = &g_moe_api;
  }
  a.weights = LiveWeights(env, o, fn);
  a.routing = RoutingOpts(env, o, fn);
  a.activation = ActivationOpt(env, o, fn);
  a.swiglu_alpha = kSwigluAlpha;
  a.swiglu_limit = kSwigluLimit;
  a.launch.config13 = IntOpt(env, o, fn, "config13", true, 0);
  a.launch.splits13 = IntOpt(env, o, fn, "splits13", true, 1);
  a.launch.config2 = IntOpt(env, o, fn, "config2", true, 0);
  a.launch.splits2 = IntOpt(env, o, fn, "splits2", true, 1);
  a.launch.tail13 = IntOpt(env, o, fn, "tail13", false, 0);
  a.launch.tail2 = IntOpt(env, o, fn, "tail2", false, 0);
  a.launch.flags = BoolOpt(o, "serial", false) ? MARLIN_LAUNCH_SERIAL : 0u;
  a.seed = static_cast<uint64_t>(IntOpt(env, o, fn, "seed", false, 1));
  a.calls = IntOpt(env, o, fn, "calls", false, 0);
  a.replays = IntOpt(env, o, fn, "replays", false, 0);
  marlin_bench_moe_result r{};
  Check(env, marlin_bench_moe(&a, &r), fn);
  return MoeTimingObject(env, r);
}

Napi::Value BenchMoeCublas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "benchMoeCublas";
  const Napi::Object o = ArgObject(info, fn);
  marlin_bench_moe_cublas_args a{};
  a.weights = LiveWeights(env, o, fn);
  a.routing = RoutingOpts(env, o, fn);
  a.activation = ActivationOpt(env, o, fn);
  a.swiglu_alpha = kSwigluAlpha;
  a.swiglu_limit = kSwigluLimit;
  a.block = IntOpt(env, o, fn, "block", true, 0);
  a.mode = ChoiceOpt<marlin_bench_moe_baseline>(env, o, fn, "mode",
                                                {{"grouped", MARLIN_BENCH_MOE_GROUPED},
                                                 {"per-expert", MARLIN_BENCH_MOE_PER_EXPERT},
                                                 {"routing-only", MARLIN_BENCH_MOE_ROUTING_ONLY}});
  a.seed = static_cast<uint64_t>(IntOpt(env, o, fn, "seed", false, 1));
  a.calls = IntOpt(env, o, fn, "calls", false, 0);
  a.replays = IntOpt(env, o, fn, "replays", false, 0);
  marlin_bench_moe_result r{};
  Check(env, marlin_bench_moe_cublas(&a, &r), fn);
  return MoeTimingObject(env, r);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("benchEnv", Napi::Function::New(env, BenchEnv, "benchEnv"));
  exports.Set("benchLoadAddon", Napi::Function::New(env, BenchLoadAddon, "benchLoadAddon"));
  exports.Set("benchGemm", Napi::Function::New(env, BenchGemm, "benchGemm"));
  exports.Set("benchCublas", Napi::Function::New(env, BenchCublas, "benchCublas"));
  exports.Set("benchCublasLtFp8", Napi::Function::New(env, BenchCublasLtFp8, "benchCublasLtFp8"));
  exports.Set("benchCusparseLtLoad", Napi::Function::New(env, BenchCusparseLtLoad, "benchCusparseLtLoad"));
  exports.Set("benchCusparseLt", Napi::Function::New(env, BenchCusparseLt, "benchCusparseLt"));
  exports.Set("benchLoadMoe", Napi::Function::New(env, BenchLoadMoe, "benchLoadMoe"));
  exports.Set("benchMoeWeights", Napi::Function::New(env, BenchMoeWeights, "benchMoeWeights"));
  exports.Set("benchMoeFree", Napi::Function::New(env, BenchMoeFree, "benchMoeFree"));
  exports.Set("benchMoe", Napi::Function::New(env, BenchMoe, "benchMoe"));
  exports.Set("benchMoeCublas", Napi::Function::New(env, BenchMoeCublas, "benchMoeCublas"));
  exports.Set("addon", Napi::String::New(env, "marlin_bench"));
  return exports;
}

}  // namespace

NODE_API_MODULE(marlin_bench, Init)
