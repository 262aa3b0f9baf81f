#!/usr/bin/env bash
# Builds the Node-free native self-test (native/tests/dense_selftest.cu) and tuning sweep (dense_sweep.cu) into
# build/native-selftest/dense_selftest. Run the binary on a GPU host: exit 0 = every case matches the f64 reference.
# MARLIN_CUDA_ARCHS: space-separated list, default "80 90a".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/native-selftest"
mkdir -p "$out"
node "$root/tools/gen-kernel-instances.mjs" "$out/generated" >/dev/null
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
gencode=()
for a in ${MARLIN_CUDA_ARCHS:-80 90a}; do gencode+=("-gencode=arch=compute_${a},code=sm_${a}"); done
"$nvcc" -std=c++17 -O3 -lineinfo "${gencode[@]}" -I "$root/native/include" -I "$out/generated" \
  -Xptxas=-warn-spills,-warn-lmem-usage --cudart static \
  "$root/native/tests/dense_selftest.cu" "$root/native/kernels/dense/dense.cu" "$root/native/runtime/status.cu" \
  -o "$out/dense_selftest"
echo "built $out/dense_selftest"
"$nvcc" -std=c++17 -O3 -lineinfo "${gencode[@]}" -I "$root/native/include" -I "$out/generated" --cudart static \
  "$root/native/tests/dense_sweep.cu" "$root/native/kernels/dense/dense.cu" "$root/native/runtime/status.cu" \
  "$root"/native/bench/*.cu -ldl -o "$out/dense_sweep"
echo "built $out/dense_sweep"
