// C entry points of @marlin/sparse (native/include/marlin/sparse.h): the shared host side (kit/host.h) on the
// int4-sparse variant (SparseInt4Codec: 2:4 INT4 tiles of 1536 bytes, bits 4, zero points), whose kernels the generated
// units kit_int4_sparse_*.cu hold.
#include "kit/host.h"
#include "marlin/sparse.h"
#include "marlin_sparse_instances.inc"  // generated from kernel-table.json: the int4-sparse variant

namespace {
// 2:4 weights are INT4 without act-order (docs/format.md "2:4 sparse (packed)"): anything else has no variant here.
const marlin::kit::Variant* sparse_variant(const marlin_gemm_problem& p) {
  return p.bits == 4 && p.perm == nullptr ? &marlin::kit::generated::variant_int4_sparse : nullptr;
}
}  // namespace

MARLIN_DEFINE_GEMM_ADDON(marlin_sparse, sparse_variant, &marlin::kit::generated::variant_int4_sparse)
