#!/usr/bin/env bash
# Builds the Node-free native self-tests (native/tests/dense_selftest.cu, moe_selftest.cu, sparse_selftest.cu) and tuning
# sweep (dense_sweep.cu) into build/native-selftest/. Run the binary on a GPU host: exit 0 = every case matches the f64 reference.
# MARLIN_CUDA_ARCHS: space-separated list, default "80 90a".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/native-selftest"
mkdir -p "$out"
node "$root/tools/gen-kernel-instances.mjs" "$out/generated" --addon dense >/dev/null
node "$root/tools/gen-kernel-instances.mjs" "$out/generated" --addon fp8 >/dev/null
# The dense addon's kernels and host side (kit), as marlin_dense.node has them, plus the fp8 variant's.
kernels=("$root/native/kit/host.cu" "$root/native/kernels/dense/dense.cu" "$root/native/kernels/fp8/fp8.cu"
  "$out"/generated/kit_*.cu "$root/native/runtime/status.cu")
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
gencode=()
for a in ${MARLIN_CUDA_ARCHS:-80 90a}; do gencode+=("-gencode=arch=compute_${a},code=sm_${a}"); done
inc=(-I "$root/native/include" -I "$root/native/common" -I "$root/native" -I "$out/generated")
"$nvcc" -std=c++17 -O3 -lineinfo "${gencode[@]}" "${inc[@]}" --expt-relaxed-constexpr \
  -Xptxas=-warn-spills,-warn-lmem-usage --cudart static \
  "$root/native/tests/dense_selftest.cu" "${kernels[@]}" -o "$out/dense_selftest"
echo "built $out/dense_selftest"
"$nvcc" -std=c++17 -O3 -lineinfo "${gencode[@]}" "${inc[@]}" --expt-relaxed-constexpr --cudart static \
  "$root/native/tests/dense_sweep.cu" "${kernels[@]}" "$root"/native/bench/*.cu "$root/native/kernels/moe/route.cu" \
  -ldl -o "$out/dense_sweep"
echo "built $out/dense_sweep"
# The MoE layer (marlin_moe_*): its own generated *-moe instances, host side and routing kernels.
moe="$out/moe"
node "$root/tools/gen-kernel-instances.mjs" "$moe/generated" --addon moe >/dev/null
"$nvcc" -std=c++17 -O3 -lineinfo "${gencode[@]}" -I "$root/native/include" -I "$root/native/common" -I "$root/native" \
  -I "$moe/generated" --expt-relaxed-constexpr -Xptxas=-warn-spills,-warn-lmem-usage --cudart static \
  "$root/native/tests/moe_selftest.cu" "$root/native/kit/host.cu" "$root/native/kernels/moe/moe.cu" \
  "$root/native/kernels/moe/route.cu" "$moe"/generated/kit_*.cu "$root/native/runtime/status.cu" -o "$out/moe_selftest"
echo "built $out/moe_selftest"
# The 2:4 sparse addon (marlin_sparse_*): its int4-sparse instances (the experimental all-threads wgmma.sp row
# included, so that path is tested too) and host side. sparse_selftest_ptx80 is the same test with compute_80 PTX only:
# JIT-compiled on any newer GPU it runs the mma.sp rows' sm_80 code (cp.async stages) there, e.g. on the H100.
sparse="$out/sparse"
MARLIN_EXPERIMENTAL_KERNELS=1 node "$root/tools/gen-kernel-instances.mjs" "$sparse/generated" --addon sparse >/dev/null
sparse_sources=("$root/native/tests/sparse_selftest.cu" "$root/native/kit/host.cu" "$root/native/kernels/sparse/sparse.cu"
  "$sparse"/generated/kit_*.cu "$root/native/runtime/status.cu")
sparse_inc=(-I "$root/native/include" -I "$root/native/common" -I "$root/native" -I "$sparse/generated")
"$nvcc" -std=c++17 -O3 -lineinfo "${gencode[@]}" "${sparse_inc[@]}" --expt-relaxed-constexpr \
  -Xptxas=-warn-spills,-warn-lmem-usage --cudart static "${sparse_sources[@]}" -o "$out/sparse_selftest"
echo "built $out/sparse_selftest"
"$nvcc" -std=c++17 -O3 -lineinfo -gencode=arch=compute_80,code=compute_80 "${sparse_inc[@]}" --expt-relaxed-constexpr \
  --cudart static "${sparse_sources[@]}" -o "$out/sparse_selftest_ptx80"
echo "built $out/sparse_selftest_ptx80"
