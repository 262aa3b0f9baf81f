// The one import of every suite file: @marlin/core + @marlin/dense, and @marlin/fp8, @marlin/moe and @marlin/sparse as
// the namespaces `fp8`, `moe` and `sparse` (their gemm / Linear / uploadPacked share dense's names). tools/gpu-bundle
// replaces this file by a single self-contained bundle of them, so suite files only import node: builtins and
// ./marlin.mjs.
export * from '@marlin/core';
export * from '@marlin/dense';
export * as fp8 from '@marlin/fp8';
export * as moe from '@marlin/moe';
export * as sparse from '@marlin/sparse';
