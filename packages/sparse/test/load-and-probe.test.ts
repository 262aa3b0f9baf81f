import { describeAddonLoading } from '@marlin/core/testing';
import { candidatePaths, doctor, loadSparseBinary, noBinaryError, probe } from '../src/index.js';

// The two binaries have the same exports: MARLIN_SPARSE_BINARY pointing at the dense one must not run dense kernels on
// 2:4 tiles (describeAddonLoading checks the refusal).
describeAddonLoading({
  name: 'sparse',
  importIndex: () => import('../src/index.js'),
  probe,
  doctor,
  candidatePaths,
  loadBinary: loadSparseBinary,
  noBinaryError,
});
