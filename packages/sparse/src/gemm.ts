import type { GemmFunction } from '@marlin/core';
import { kit } from './kit.js';

/**
 * y = x · W (+ bias): 2:4 sparse INT4 weights (a PackedSparseWeight uploaded with `uploadPacked`) times fp16 / bf16
 * activations, fp32 accumulation, output in the activation dtype. Same options and errors as @marlin/dense's gemm; with
 * `{ device: 'cpu' }` the packed 2:4 CPU reference of @marlin/core runs instead (explicitly, never as a fallback).
 *
 * @example
 * using w = uploadPacked(packSparse(pruneAndQuantize24(weights, { K, N, layout: 'NxK' }).weight));
 * using y = gemm(Tensor.from(xBits, [M, K], 'fp16'), w);
 */
export const gemm: GemmFunction = kit.gemm;

/** The launch gemm uses for M rows on this weight: config, split-K, workspace, cluster size, balanced last wave. */
export const gemmPlan = kit.gemmPlan;

/** Checks a gemm call without touching the GPU; throws the typed error gemm() would (dense weights: @marlin/dense). */
export const validateGemm = kit.validateGemm;

/** @internal the hot path's check, exported for tests */
export const quickAccept = kit.quickAccept;

/** Native plans alive in the loaded marlin_sparse.node (0 when not loaded). For leak tests. */
export const livePlans = kit.livePlans;

/**
 * Uploads a packed 2:4 weight (packSparse, loadPackedSparse) to the GPU: validated first, every metadata nibble
 * included; a dense weight is refused, naming the package that runs it.
 */
export const uploadPacked = kit.uploadPacked;

/** Probes the GPU for @marlin/sparse without throwing: driver, devices, where the binary came from, the coded reason. */
export const probe = kit.probe;

/** A printable report for bug reports (`marlin doctor` prints every addon's). */
export const doctor = kit.doctor;

/** Candidate binary paths: MARLIN_SPARSE_BINARY, then build/Release/marlin_sparse.node, the platform package, cache. */
export const candidatePaths = kit.candidatePaths;

/** Loads marlin_sparse.node (first candidate that loads); DeviceError NO_BINARY listing every attempt otherwise. */
export const loadSparseBinary = kit.loadBinary;

/** The NO_BINARY DeviceError for failed attempts, worded after sharp's. */
export const noBinaryError = kit.noBinaryError;
