// The runtime exports every addon carries (the NativeRuntime interface of @marlin/core/src/device/native.ts).
// Thin by design: argument unwrapping, bounds checks, one C ABI call, status -> error.
#include <cmath>
#include <string>

#include "handles.h"
#include "runtime/graph.h"

namespace marlin_napi {
namespace {

using Napi::CallbackInfo;

// A non-negative integral Number (sizes, offsets, ordinals); bigger than 2^53 is refused.
uint64_t ArgSize(const CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) throw CodedError(info.Env(), "MARLIN_E_VALUE", std::string(name) + " must be a number.");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) {
    throw CodedError(info.Env(), "MARLIN_E_VALUE",
                     std::string(name) + " must be a non-negative integer, got " + std::to_string(d) + ".");
  }
  return static_cast<uint64_t>(d);
}

void CheckRange(Napi::Env env, const marlin_buffer_header* h, uint64_t offset, uint64_t bytes, const char* what) {
  if (offset > h->bytes || bytes > h->bytes - offset) {
    throw CodedError(env, "MARLIN_E_SHAPE",
                     std::string(what) + ": range [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                         ") is outside the " + std::to_string(h->bytes) +
                         "-byte device buffer. Fix: check the tensor shape and dtype.");
  }
}

uint8_t* At(const marlin_buffer_header* h, uint64_t offset) { return static_cast<uint8_t*>(h->ptr) + offset; }

// Host memory of a TypedArray / DataView / Buffer argument.
struct HostView {
  uint8_t* data;
  size_t bytes;
};
HostView ArgHost(const CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value v = info[i];
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    auto ab = ta.ArrayBuffer();
    return {static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset(), ta.ByteLength()};
  }
  if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    return {static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset(), dv.ByteLength()};
  }
  throw CodedError(info.Env(), "MARLIN_E_VALUE", std::string(name) + " must be a TypedArray or DataView.");
}

int32_t ArgDevice(const CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsNumber() ? static_cast<int32_t>(ArgSize(info, i, "device")) : 0;
}

// ---- devices -------------------------------------------------------------------------------------------------

Napi::Value Probe(const CallbackInfo& info) {
  marlin_probe_result r;
  marlin_probe(&r);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("driverLoaded", Napi::Boolean::New(env, r.driver_loaded != 0));
  o.Set("driverVersion", Napi::Number::New(env, r.driver_version));
  o.Set("runtimeVersion", Napi::Number::New(env, r.runtime_version));
  o.Set("deviceCount", Napi::Number::New(env, r.device_count));
  o.Set("cudaError", Napi::Number::New(env, r.cuda_error));
  o.Set("cudaErrorName", Napi::String::New(env, r.cuda_error_name));
  o.Set("bufferAbi", Napi::Number::New(env, MARLIN_BUFFER_ABI));
  return o;
}

Napi::Value DeviceInfo(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  marlin_device_info d;
  Check(env, marlin_device_info_get(ArgDevice(info, 0), &d), "deviceInfo");
  Napi::Object o = Napi::Object::New(env);
  o.Set("ordinal", Napi::Number::New(env, d.ordinal));
  o.Set("name", Napi::String::New(env, d.name));
  o.Set("major", Napi::Number::New(env, d.major));
  o.Set("minor", Napi::Number::New(env, d.minor));
  o.Set("smCount", Napi::Number::New(env, d.sm_count));
  o.Set("totalMem", Napi::Number::New(env, static_cast<double>(d.total_mem)));
  o.Set("freeMem", Napi::Number::New(env, static_cast<double>(d.free_mem)));
  o.Set("maxSmemPerBlockOptin", Napi::Number::New(env, d.max_smem_per_block_optin));
  o.Set("l2Bytes", Napi::Number::New(env, d.l2_bytes));
  o.Set("clockKhz", Napi::Number::New(env, d.clock_khz));
  o.Set("memClockKhz", Napi::Number::New(env, d.mem_clock_khz));
  o.Set("memBusBits", Napi::Number::New(env, d.mem_bus_bits));
  return o;
}

Napi::Value HasKernelImage(const CallbackInfo& info) {
  int32_t has = 0;
  Check(info.Env(), marlin_has_kernel_image(ArgDevice(info, 0), &has), "hasKernelImage");
  return Napi::Boolean::New(info.Env(), has != 0);
}

Napi::Value KernelArch(const CallbackInfo& info) {
  int32_t arch = 0;
  Check(info.Env(), marlin_has_kernel_image(ArgDevice(info, 0), &arch), "kernelArch");
  return Napi::Number::New(info.Env(), arch);
}

void SetDevice(const CallbackInfo& info) { Check(info.Env(), marlin_set_device(ArgDevice(info, 0)), "setDevice"); }

void DeviceSync(const CallbackInfo& info) { Check(info.Env(), marlin_device_synchronize(), "deviceSync"); }

Napi::Value MemGetInfo(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t free_bytes = 0, total_bytes = 0;
  Check(env, marlin_mem_get_info(&free_bytes, &total_bytes), "memGetInfo");
  Napi::Object o = Napi::Object::New(env);
  o.Set("free", Napi::Number::New(env, static_cast<double>(free_bytes)));
  o.Set("total", Napi::Number::New(env, static_cast<double>(total_bytes)));
  return o;
}

// ---- buffers -------------------------------------------------------------------------------------------------

Napi::Value Alloc(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t bytes = ArgSize(info, 0, "bytes");
  const int32_t device = ArgDevice(info, 1);
  Check(env, marlin_set_device(device), "alloc (cudaSetDevice)");
  void* ptr = nullptr;
  Check(env, marlin_malloc(&ptr, bytes), "alloc (cudaMalloc)");
  return NewBuffer(env, ptr, bytes, device, true);
}

// free(buffer): releases through the allocating addon (idempotent; borrowed buffers are only forgotten).
void Release(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_valuetype type;
  napi_typeof(env, info[0], &type);
  if (type != napi_external) throw CodedError(env, "MARLIN_E_DISPOSED", "free: argument is not a @marlin buffer handle.");
  bool tagged = false;
  napi_check_object_type_tag(env, info[0], &kBufferTag, &tagged);
  if (!tagged) throw CodedError(env, "MARLIN_E_DISPOSED", "free: argument is not a @marlin buffer handle.");
  void* data = nullptr;
  napi_get_value_external(env, info[0], &data);
  auto* h = static_cast<marlin_buffer_header*>(data);
  if (h->abi != MARLIN_BUFFER_ABI) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "free: buffer from an addon with another buffer ABI version.");
  }
  h->release(h);
}

Napi::Value BufferInfo(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const marlin_buffer_header* h = UnwrapBuffer(env, info[0], "buffer");
  Napi::Object o = Napi::Object::New(env);
  o.Set("ptr", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(h->ptr))));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(h->bytes)));
  o.Set("device", Napi::Number::New(env, h->device));
  o.Set("owned", Napi::Boolean::New(env, (h->flags & MARLIN_BUFFER_OWNED) != 0));
  o.Set("abi", Napi::Number::New(env, h->abi));
  return o;
}

// Borrowed view of device memory owned elsewhere (another library, or a pointer handed over as a BigInt).
Napi::Value WrapForeign(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBigInt()) throw CodedError(env, "MARLIN_E_VALUE", "wrapForeign: ptr must be a BigInt device address.");
  bool lossless = false;
  const uint64_t addr = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || addr == 0) throw CodedError(env, "MARLIN_E_VALUE", "wrapForeign: ptr must be a non-zero 64-bit address.");
  const uint64_t bytes = ArgSize(info, 1, "bytes");
  return NewBuffer(env, reinterpret_cast<void*>(static_cast<uintptr_t>(addr)), bytes, ArgDevice(info, 2), false);
}

// memcpyH2D(dst, dstOffset, src: ArrayBufferView, stream?)
void MemcpyH2D(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const marlin_buffer_header* dst = UnwrapBuffer(env, info[0], "dst");
  const uint64_t offset = ArgSize(info, 1, "dstOffset");
  const HostView src = ArgHost(info, 2, "src");
  CheckRange(env, dst, offset, src.bytes, "memcpyH2D");
  Check(env, marlin_memcpy_h2d(At(dst, offset), src.data, src.bytes, UnwrapStream(env, info[3])), "memcpyH2D");
}

// memcpyD2H(dst: ArrayBufferView, src, srcOffset, stream?) -- blocks until the bytes are on the host.
void MemcpyD2H(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const HostView dst = ArgHost(info, 0, "dst");
  const marlin_buffer_header* src = UnwrapBuffer(env, info[1], "src");
  const uint64_t offset = ArgSize(info, 2, "srcOffset");
  CheckRange(env, src, offset, dst.bytes, "memcpyD2H");
  void* stream = UnwrapStream(env, info[3]);
  Check(env, marlin_memcpy_d2h(dst.data, At(src, offset), dst.bytes, stream), "memcpyD2H");
  if (stream != nullptr) Check(env, marlin_stream_synchronize(stream), "memcpyD2H (stream sync)");
}

// Runs a blocking CUDA wait on a libuv worker thread and settles a Promise: the event loop stays free.
class CudaWaitWorker : public Napi::AsyncWorker {
 public:
  CudaWaitWorker(Napi::Env env, const char* op) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), op_(op) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Finish(marlin_status s) {
    status_ = s;
    if (s != MARLIN_OK) {
      // Capture the thread-local CUDA error here, on the worker thread, before OnError runs on the JS thread.
      cuda_error_ = marlin_last_cuda_error();
      cuda_error_name_ = marlin_last_cuda_error_string();
      SetError(op_);
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error&) override {
    deferred_.Reject(StatusError(Env(), status_, op_, cuda_error_, cuda_error_name_).Value());
  }

  Napi::Promise::Deferred deferred_;
  const char* op_;
  marlin_status status_ = MARLIN_OK;
  int cuda_error_ = 0;
  const char* cuda_error_name_ = nullptr;
};

class D2HWorker : public CudaWaitWorker {
 public:
  D2HWorker(Napi::Env env, Napi::Object dst_view, HostView dst, const marlin_buffer_header* src, uint64_t offset,
            void* stream)
      : CudaWaitWorker(env, "memcpyD2HAsync"), dst_(dst), src_ptr_(At(src, offset)), device_(src->device), stream_(stream) {
    // Keep the destination's ArrayBuffer alive while the worker writes into it.
    dst_ref_ = Napi::Persistent(dst_view);
  }
  void Execute() override {
    marlin_status s = marlin_set_device(device_);  // the current device is per thread
    if (s == MARLIN_OK) s = marlin_memcpy_d2h(dst_.data, src_ptr_, dst_.bytes, stream_);
    if (s == MARLIN_OK && stream_ != nullptr) s = marlin_stream_synchronize(stream_);
    Finish(s);
  }

 private:
  HostView dst_;
  const void* src_ptr_;
  int32_t device_;
  void* stream_;
  Napi::ObjectReference dst_ref_;
};

// memcpyD2HAsync(dst, src, srcOffset, stream?) -> Promise<void>. The caller keeps `src` alive until it settles.
Napi::Value MemcpyD2HAsync(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const HostView dst = ArgHost(info, 0, "dst");
  const marlin_buffer_header* src = UnwrapBuffer(env, info[1], "src");
  const uint64_t offset = ArgSize(info, 2, "srcOffset");
  CheckRange(env, src, offset, dst.bytes, "memcpyD2HAsync");
  auto* w = new D2HWorker(env, info[0].As<Napi::Object>(), dst, src, offset, UnwrapStream(env, info[3]));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// memcpyD2D(dst, dstOffset, src, srcOffset, bytes, stream?)
void MemcpyD2D(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const marlin_buffer_header* dst = UnwrapBuffer(env, info[0], "dst");
  const uint64_t dst_offset = ArgSize(info, 1, "dstOffset");
  const marlin_buffer_header* src = UnwrapBuffer(env, info[2], "src");
  const uint64_t src_offset = ArgSize(info, 3, "srcOffset");
  const uint64_t bytes = ArgSize(info, 4, "bytes");
  CheckRange(env, dst, dst_offset, bytes, "memcpyD2D (dst)");
  CheckRange(env, src, src_offset, bytes, "memcpyD2D (src)");
  Check(env, marlin_memcpy_d2d(At(dst, dst_offset), At(src, src_offset), bytes, UnwrapStream(env, info[5])), "memcpyD2D");
}

// memset(dst, dstOffset, byteValue, bytes, stream?)
void Memset(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  const marlin_buffer_header* dst = UnwrapBuffer(env, info[0], "dst");
  const uint64_t offset = ArgSize(info, 1, "dstOffset");
  const uint64_t value = ArgSize(info, 2, "value");
  const uint64_t bytes = ArgSize(info, 3, "bytes");
  CheckRange(env, dst, offset, bytes, "memset");
  Check(env, marlin_memset_async(At(dst, offset), static_cast<int>(value & 0xff), bytes, UnwrapStream(env, info[4])),
        "memset");
}

Napi::Value LiveDeviceBytes(const CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(LiveBytes()));
}
Napi::Value LiveBufferCount(const CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(LiveBuffers()));
}

// ---- streams and graphs --------------------------------------------------------------------------------------

Napi::Value StreamCreate(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, marlin_set_device(ArgDevice(info, 0)), "streamCreate (cudaSetDevice)");
  void* s = nullptr;
  Check(env, marlin_stream_create(&s), "streamCreate");
  return NewStream(env, s);
}

void StreamDestroy(const CallbackInfo& info) {
  StreamHandle* s = UnwrapStreamHandle(info.Env(), info[0]);
  void* stream = s->stream;
  s->stream = nullptr;
  Check(info.Env(), marlin_stream_destroy(stream), "streamDestroy");
}

void StreamSync(const CallbackInfo& info) {
  Check(info.Env(), marlin_stream_synchronize(UnwrapStream(info.Env(), info[0])), "streamSync");
}

class StreamSyncWorker : public CudaWaitWorker {
 public:
  StreamSyncWorker(Napi::Env env, void* stream, int32_t device)
      : CudaWaitWorker(env, "streamSyncAsync"), stream_(stream), device_(device) {}
  void Execute() override {
    marlin_status s = marlin_set_device(device_);
    if (s == MARLIN_OK) s = stream_ != nullptr ? marlin_stream_synchronize(stream_) : marlin_device_synchronize();
    Finish(s);
  }

 private:
  void* stream_;
  int32_t device_;
};

// streamSyncAsync(stream?, device?) -> Promise<void>. A null stream waits for the whole device.
Napi::Value StreamSyncAsync(const CallbackInfo& info) {
  auto* w = new StreamSyncWorker(info.Env(), UnwrapStream(info.Env(), info[0]), ArgDevice(info, 1));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

void GraphBegin(const CallbackInfo& info) {
  Check(info.Env(), marlin_graph_begin(UnwrapStreamHandle(info.Env(), info[0])->stream), "graphBegin");
}

Napi::Value GraphEnd(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* exec = nullptr;
  Check(env, marlin_graph_end(UnwrapStreamHandle(env, info[0])->stream, &exec), "graphEnd");
  return NewGraph(env, exec);
}

void GraphLaunch(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  GraphHandle* g = UnwrapGraph(env, info[0]);
  Check(env, marlin_graph_launch(g->exec, UnwrapStream(env, info[1])), "graphLaunch");
}

void GraphDestroy(const CallbackInfo& info) {
  GraphHandle* g = UnwrapGraph(info.Env(), info[0]);
  void* exec = g->exec;
  g->exec = nullptr;
  Check(info.Env(), marlin_graph_destroy(exec), "graphDestroy");
}

Napi::Value StreamIsCapturing(const CallbackInfo& info) {
  int32_t capturing = 0;
  Check(info.Env(), marlin_stream_is_capturing(UnwrapStreamHandle(info.Env(), info[0])->stream, &capturing),
        "streamIsCapturing");
  return Napi::Boolean::New(info.Env(), capturing != 0);
}

Napi::Value StatusString(const CallbackInfo& info) {
  const uint64_t s = ArgSize(info, 0, "status");
  return Napi::String::New(info.Env(), marlin_status_string(static_cast<marlin_status>(s)));
}

}  // namespace

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  struct Entry {
    const char* name;
    Napi::Function::Callback fn;
  };
  const Entry entries[] = {
      {"probe", Probe},
      {"deviceInfo", DeviceInfo},
      {"hasKernelImage", HasKernelImage},
      {"kernelArch", KernelArch},
      {"memGetInfo", MemGetInfo},
      {"alloc", Alloc},
      {"bufferInfo", BufferInfo},
      {"wrapForeign", WrapForeign},
      {"memcpyD2HAsync", MemcpyD2HAsync},
      {"liveDeviceBytes", LiveDeviceBytes},
      {"liveBufferCount", LiveBufferCount},
      {"streamCreate", StreamCreate},
      {"streamSyncAsync", StreamSyncAsync},
      {"graphEnd", GraphEnd},
      {"streamIsCapturing", StreamIsCapturing},
      {"statusString", StatusString},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  struct VoidEntry {
    const char* name;
    Napi::Function::VoidCallback fn;
  };
  const VoidEntry void_entries[] = {
      {"setDevice", SetDevice},     {"deviceSync", DeviceSync},       {"free", Release},
      {"memcpyH2D", MemcpyH2D},     {"memcpyD2H", MemcpyD2H},         {"memcpyD2D", MemcpyD2D},
      {"memset", Memset},           {"streamDestroy", StreamDestroy}, {"streamSync", StreamSync},
      {"graphBegin", GraphBegin},   {"graphLaunch", GraphLaunch},     {"graphDestroy", GraphDestroy},
  };
  for (const VoidEntry& e : void_entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  exports.Set("bufferAbi", Napi::Number::New(env, MARLIN_BUFFER_ABI));
}

}  // namespace marlin_napi
