// For programs that link the dense addon's sources statically (native/tests/dense_sweep.cu, built by
// tools/native-selftest.sh): registers marlin_dense_* as the harness's default API. Not part of marlin_bench.node,
// which resolves the addons from their binaries (tools/bench/CMakeLists.txt leaves this file out).
#include "marlin/bench.h"
#include "marlin/dense.h"

namespace {

marlin_bench_gemm_api linked_dense_api() {
  marlin_bench_gemm_api api{};
  const char prefix[] = "marlin_dense";
  for (size_t i = 0; i < sizeof prefix; ++i) api.prefix[i] = prefix[i];
  api.workspace_bytes = marlin_dense_workspace_bytes;
  api.workspace_init = marlin_dense_workspace_init;
  api.gemm = marlin_dense_gemm;
  api.plan_create = marlin_dense_plan_create;
  api.plan_launch = marlin_dense_plan_launch;
  api.plan_destroy = marlin_dense_plan_destroy;
  api.plan_cluster_size = marlin_dense_plan_cluster_size;
  api.plan_tail_blocks = marlin_dense_plan_tail_blocks;
  api.config_count = marlin_dense_config_count;
  api.last_cuda_error_string = marlin_last_cuda_error_string;
  return api;
}

const marlin_bench_gemm_api g_linked = linked_dense_api();

struct Register {
  Register() { marlin_bench_set_default_api(&g_linked); }
} g_register;

}  // namespace
