// The one import of every suite file: @marlin/core + @marlin/dense, and @marlin/fp8 as the namespace `fp8` (its
// gemm / Linear / uploadPacked share dense's names). tools/gpu-bundle replaces this file by a single self-contained
// bundle of the three, so suite files only import node: builtins and ./marlin.mjs.
export * from '@marlin/core';
export * from '@marlin/dense';
export * as fp8 from '@marlin/fp8';
