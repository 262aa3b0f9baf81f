// C entry points of @marlin/fp8 (native/include/marlin/fp8.h): the shared host side (kit/host.h) on the fp8 variant
// (Fp8Codec: e4m3 weights, bits 8, no zero points), whose kernels the generated units kit_fp8_*.cu hold.
#include "kit/host.h"
#include "marlin/fp8.h"
#include "marlin_fp8_instances.inc"  // generated from kernel-table.json: the fp8 variant

namespace {
const marlin::kit::Variant* fp8_variant(const marlin_gemm_problem& p) {
  return p.bits == 8 ? &marlin::kit::generated::variant_fp8 : nullptr;
}
}  // namespace

MARLIN_DEFINE_GEMM_ADDON(marlin_fp8, fp8_variant, &marlin::kit::generated::variant_fp8)
