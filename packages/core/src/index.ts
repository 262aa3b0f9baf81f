/**
 * @marlin/core: the packed INT4/INT8 weight format, dtype conversions, quantizers, kernel dispatch and the CPU
 * reference. Needs no GPU and imports no addon.
 */

// The addon kit every GEMM addon package is built on (loader, plan cache, workspaces, Linear, doctor registry).
export * from './addon/index.js';
export * from './checkpoint/index.js';
export * from './device/index.js';
// Kernel dispatch (kernel-table.json).
export * from './dispatch/dispatch.js';
// MoE dispatch: the M tile (alignment block) and the two grouped GEMMs' configs.
export * from './dispatch/moe.js';
// fp16 / bf16 / fp8-e4m3 bits <-> f32 (round-to-nearest-even).
export * from './dtypes.js';
// Typed errors with stable codes.
export * from './errors/index.js';
// Packed weight format v1 (docs/format.md): types, index formulas, pack / unpack, validation.
export * from './format/index.js';
// Round-to-nearest quantizers.
export * from './quantize/index.js';
// CPU reference (also importable alone as '@marlin/core/reference').
export * from './reference/index.js';
