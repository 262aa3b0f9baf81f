// C entry points of @marlin/dense (native/include/marlin/dense.h): the shared host side (kit/host.h) on the addon's
// variants, INT4 (bits 4) and INT8 (bits 8), whose kernels the generated units kit_int4_*.cu / kit_int8_*.cu hold.
#include "kit/host.h"
#include "marlin/dense.h"
#include "marlin_dense_instances.inc"  // generated from kernel-table.json: the int4 and int8 variants

namespace {
const marlin::kit::Variant* dense_variant(const marlin_gemm_problem& p) {
  using namespace marlin::kit::generated;
  return p.bits == 4 ? &variant_int4 : p.bits == 8 ? &variant_int8 : nullptr;
}
}  // namespace

MARLIN_DEFINE_GEMM_ADDON(marlin_dense, dense_variant, &marlin::kit::generated::variant_int4,
                         &marlin::kit::generated::variant_int8)
