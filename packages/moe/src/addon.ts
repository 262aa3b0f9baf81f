import { kit } from './kit.js';

/** Probes the GPU for @marlin/moe without throwing: driver, devices, where the binary came from, the coded reason. */
export const probe = kit.probe;

/** A printable report for bug reports (`marlin doctor` prints every addon's). */
export const doctor = kit.doctor;

/** Candidate binary paths: MARLIN_MOE_BINARY, build/Release, @marlin/moe-linux-x64-gnu, the `marlin build` cache. */
export const candidatePaths = kit.candidatePaths;

/** Loads marlin_moe.node (first candidate that loads); DeviceError NO_BINARY listing every attempt otherwise. */
export const loadMoeBinary = kit.loadBinary;

/** The NO_BINARY DeviceError for failed attempts, worded after sharp's. */
export const noBinaryError = kit.noBinaryError;

/** Native MoE plans alive in the loaded marlin_moe.node (0 when not loaded). For leak tests. */
export const livePlans = kit.livePlans;
