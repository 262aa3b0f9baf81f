import { describeAddonLoading } from '@marlin/core/testing';
import { candidatePaths, doctor, loadFp8Binary, noBinaryError, probe } from '../src/index.js';

// The two binaries have the same exports: MARLIN_FP8_BINARY pointing at the dense one must not run INT kernels on FP8
// bytes (describeAddonLoading checks the refusal).
describeAddonLoading({
  name: 'fp8',
  importIndex: () => import('../src/index.js'),
  probe,
  doctor,
  candidatePaths,
  loadBinary: loadFp8Binary,
  noBinaryError,
});
