import type { GemmFunction } from '@marlin/core';
import { kit } from './kit.js';

/**
 * y = x · W (+ bias): FP8 e4m3 weights (uploaded with `uploadPacked`) times fp16 / bf16 activations, fp32
 * accumulation, output in the activation dtype. Same options and errors as @marlin/dense's gemm; with
 * `{ device: 'cpu' }` the CPU reference of @marlin/core runs instead (explicitly, never as a fallback).
 *
 * @example
 * using w = uploadPacked(pack(quantizeFp8(weights, { K, N, blockSize: 128, layout: 'NxK' }).weight));
 * using y = gemm(Tensor.from(xBits, [M, K], 'fp16'), w);
 */
export const gemm: GemmFunction = kit.gemm;

/** The launch gemm uses for M rows on this weight: config, split-K, workspace, cluster size, balanced last wave. */
export const gemmPlan = kit.gemmPlan;

/** Checks a gemm call without touching the GPU; throws the typed error gemm() would (INT weights: use @marlin/dense). */
export const validateGemm = kit.validateGemm;

/** @internal the hot path's check, exported for tests */
export const quickAccept = kit.quickAccept;

/** Native plans alive in the loaded marlin_fp8.node (0 when not loaded). For leak tests. */
export const livePlans = kit.livePlans;

/** Uploads a packed FP8 weight to the GPU (validated first; an INT4 / INT8 weight is refused, naming @marlin/dense). */
export const uploadPacked = kit.uploadPacked;

/** Probes the GPU for @marlin/fp8 without throwing: driver, devices, where the binary came from, the coded reason. */
export const probe = kit.probe;

/** A printable report for bug reports (`marlin doctor` prints every addon's). */
export const doctor = kit.doctor;

/** Candidate binary paths: MARLIN_FP8_BINARY, then build/Release/marlin_fp8.node. */
export const candidatePaths = kit.candidatePaths;

/** Loads marlin_fp8.node (first candidate that loads); DeviceError NO_BINARY listing every attempt otherwise. */
export const loadFp8Binary = kit.loadBinary;

/** The NO_BINARY DeviceError for failed attempts, worded after sharp's. */
export const noBinaryError = kit.noBinaryError;
