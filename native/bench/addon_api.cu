// Resolves an addon's GEMM entry points (gemm.h) from its binary with dlopen / dlsym, so the harness times the very
// kernels a production .node carries without compiling them itself; and the default API for programs that link an
// addon's sources statically.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "bench_internal.cuh"

namespace marlin::bench {
namespace {

// Plain pointer: zero-initialised before any static constructor runs, so registration order does not matter.
const marlin_bench_gemm_api* g_default_api = nullptr;

}  // namespace

marlin_status resolve_api(const marlin_bench_gemm_api* given, const marlin_bench_gemm_api** out) {
  const marlin_bench_gemm_api* api = given != nullptr ? given : g_default_api;
  if (api == nullptr) {
    return fail(MARLIN_E_UNSUPPORTED,
                "no addon API: pass marlin_bench_dense_args.api (marlin_bench_load_api) or link an addon and register "
                "it with marlin_bench_set_default_api");
  }
  const marlin_gemm_api& e = api->entry;
  if (e.workspace_bytes == nullptr || e.workspace_init == nullptr || e.plan_create == nullptr ||
      e.plan_launch == nullptr || e.plan_destroy == nullptr || e.plan_cluster_size == nullptr ||
      e.plan_tail_blocks == nullptr) {
    return fail(MARLIN_E_INVALID_ARGUMENT, std::string("addon API '") + api->prefix + "' lacks a required entry point");
  }
  *out = api;
  return MARLIN_OK;
}

marlin_status open_addon_library(const char* path, LibSymbol* syms, size_t count, const char* missing_hint) {
  // dlerror() is process-wide state: keep dlopen / dlerror pairs from interleaving between threads.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  dlerror();
  // RTLD_LOCAL: the addon's symbols stay out of the global scope (two addons export the same runtime names).
  // Never closed: plans and kernels of the library may outlive any one call.
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = dlerror();
    return fail(MARLIN_E_UNSUPPORTED, std::string("cannot load ") + path + ": " + (e != nullptr ? e : "dlopen failed"));
  }
  std::string missing;
  for (size_t i = 0; i < count; ++i) {
    *syms[i].slot = dlsym(lib, syms[i].name.c_str());
    if (*syms[i].slot == nullptr && syms[i].required) missing += (missing.empty() ? "" : ", ") + syms[i].name;
  }
  if (!missing.empty()) {
    return fail(MARLIN_E_UNSUPPORTED, std::string(path) + " does not export " + missing + " (" + missing_hint + ")");
  }
  return MARLIN_OK;
}

}  // namespace marlin::bench

using namespace marlin::bench;

extern "C" void marlin_bench_set_default_api(const marlin_bench_gemm_api* api) { g_default_api = api; }

extern "C" marlin_status marlin_bench_load_api(const char* path, const char* prefix, marlin_bench_gemm_api* out) {
  clear_error();
  if (path == nullptr || prefix == nullptr || out == nullptr) {
    return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_load_api: null argument");
  }
  const size_t prefix_len = std::strlen(prefix);
  if (prefix_len == 0 || prefix_len >= sizeof out->prefix) {
    return fail(MARLIN_E_INVALID_ARGUMENT, std::string("marlin_bench_load_api: bad prefix '") + prefix + "'");
  }
  std::memset(out, 0, sizeof *out);
  marlin_gemm_api& e = out->entry;
  const std::string p(prefix);
  LibSymbol syms[] = {
      {p + "_workspace_bytes", reinterpret_cast<void**>(&e.workspace_bytes), true},
      {p + "_workspace_init", reinterpret_cast<void**>(&e.workspace_init), true},
      {p + "_gemm", reinterpret_cast<void**>(&e.gemm), false},
      {p + "_plan_create", reinterpret_cast<void**>(&e.plan_create), true},
      {p + "_plan_workspace_bytes", reinterpret_cast<void**>(&e.plan_workspace_bytes), false},
      {p + "_plan_cluster_size", reinterpret_cast<void**>(&e.plan_cluster_size), true},
      {p + "_plan_tail_blocks", reinterpret_cast<void**>(&e.plan_tail_blocks), true},
      {p + "_plan_launch", reinterpret_cast<void**>(&e.plan_launch), true},
      {p + "_plan_destroy", reinterpret_cast<void**>(&e.plan_destroy), true},
      {p + "_config_count", reinterpret_cast<void**>(&e.config_count), false},
      {p + "_config_info", reinterpret_cast<void**>(&e.config_info), false},
      {"marlin_last_cuda_error_string", reinterpret_cast<void**>(&out->last_cuda_error_string), false},
  };
  const marlin_status st = open_addon_library(path, syms, sizeof syms / sizeof syms[0],
                                              "a binary built before its C ABI was exported with MARLIN_API: rebuild it");
  if (st != MARLIN_OK) {
    std::memset(out, 0, sizeof *out);
    return st;
  }
  std::snprintf(out->prefix, sizeof out->prefix, "%s", prefix);
  return MARLIN_OK;
}
