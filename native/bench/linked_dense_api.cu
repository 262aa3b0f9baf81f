// For programs that link the dense addon's sources statically (native/tests/dense_sweep.cu, built by
// tools/native-selftest.sh): registers marlin_dense_* as the harness's default API. Not part of marlin_bench.node,
// which resolves the addons from their binaries (tools/bench/CMakeLists.txt leaves this file out).
#include "marlin/bench.h"
#include "marlin/dense.h"

namespace {

const marlin_bench_gemm_api g_linked = {"marlin_dense", MARLIN_GEMM_API_OF(marlin_dense),
                                        marlin_last_cuda_error_string};

struct Register {
  Register() { marlin_bench_set_default_api(&g_linked); }
} g_register;

}  // namespace
