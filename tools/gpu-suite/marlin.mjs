// The one import of every suite file: @marlin/core + @marlin/dense. tools/gpu-bundle replaces this file by a single
// self-contained bundle of both, so suite files only import node: builtins and ./marlin.mjs.
export * from '@marlin/core';
export * from '@marlin/dense';
