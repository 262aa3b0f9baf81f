// Resolves marlin_moe.node's C ABI (moe.h) with dlopen / dlsym, as addon_api.cu does for the GEMM addons: the
// harness times the layer the production binary carries without compiling it.
#include <cstring>
#include <string>

#include "bench_internal.cuh"
#include "moe_bench.h"

using namespace marlin::bench;

extern "C" marlin_status marlin_bench_load_moe_api(const char* path, marlin_bench_moe_api* out) {
  clear_error();
  if (path == nullptr || out == nullptr) return fail(MARLIN_E_INVALID_ARGUMENT, "marlin_bench_load_moe_api: null argument");
  std::memset(out, 0, sizeof *out);
  LibSymbol syms[] = {
      {"marlin_moe_plan_create", reinterpret_cast<void**>(&out->plan_create), true},
      {"marlin_moe_plan_workspace_bytes", reinterpret_cast<void**>(&out->plan_workspace_bytes), true},
      {"marlin_moe_plan_capacity", reinterpret_cast<void**>(&out->plan_capacity), true},
      {"marlin_moe_plan_block_size", reinterpret_cast<void**>(&out->plan_block_size), true},
      {"marlin_moe_workspace_init", reinterpret_cast<void**>(&out->workspace_init), true},
      {"marlin_moe_plan_launch", reinterpret_cast<void**>(&out->plan_launch), true},
      {"marlin_moe_invalid_id_counter", reinterpret_cast<void**>(&out->invalid_id_counter), true},
      {"marlin_moe_plan_destroy", reinterpret_cast<void**>(&out->plan_destroy), true},
      {"marlin_moe_config_count", reinterpret_cast<void**>(&out->config_count), false},
      {"marlin_moe_config_info", reinterpret_cast<void**>(&out->config_info), false},
      {"marlin_last_cuda_error_string", reinterpret_cast<void**>(&out->last_cuda_error_string), false},
  };
  const marlin_status st = open_addon_library(path, syms, sizeof syms / sizeof syms[0],
                                              "not a marlin_moe.node, or built before its C ABI was exported");
  if (st != MARLIN_OK) std::memset(out, 0, sizeof *out);
  return st;
}
