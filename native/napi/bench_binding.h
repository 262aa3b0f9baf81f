// Node-API exports of the benchmark harness (native/include/marlin/bench.h), added to the @marlin/dense addon by its
// init function when the addon is built with MARLIN_WITH_BENCH. JS shapes: tools/bench/src/native.ts.
#pragma once
#include <napi.h>

// Adds benchEnv, benchGemm, benchCublas to `exports`.
void marlin_register_bench(Napi::Env env, Napi::Object exports);
