/**
 * Device layer shared by every @marlin addon: Tensor (device memory with dispose()), Stream / Graph, the runtime
 * interface each addon implements, addon registration and the probe diagnosis with coded DeviceErrors.
 */
export { callNative, fromNativeError } from './errors.js';
export type {
  HostView,
  NativeBuffer,
  NativeBufferInfo,
  NativeDeviceInfo,
  NativeGraph,
  NativeProbe,
  NativeRuntime,
  NativeStream,
} from './native.js';
export {
  cudaVersionString,
  type DeviceSummary,
  diagnose,
  MIN_COMPUTE_CAPABILITY,
  MIN_DRIVER_VERSION,
  type ProbeFacts,
  type ProbeSummary,
} from './probe.js';
export {
  deviceRuntime,
  loadedRuntimes,
  loadRuntime,
  probeFacts,
  probeRuntime,
  type RuntimeProvider,
  registeredRuntimes,
  registerRuntime,
} from './registry.js';
export {
  deviceSynchronize,
  Graph,
  memGetInfo,
  Stream,
  setStreamAttachment,
  streamAttachment,
} from './stream.js';
export {
  type DeviceDtype,
  DTYPE_BYTES,
  foreignTensorError,
  type HostArray,
  type MemoryReport,
  memory,
  Tensor,
  type TensorOptions,
} from './tensor.js';
