// Internal to native/napi: constructors and unwrappers for the tagged handles (see buffer.h for the buffer layout).
#pragma once
#include "marlin_napi.h"

namespace marlin_napi {

// Fixed 128-bit type tags of the three handle kinds (cross-addon ABI).
extern const napi_type_tag kBufferTag;
extern const napi_type_tag kStreamTag;
extern const napi_type_tag kGraphTag;

struct StreamHandle {
  void* stream;  // cudaStream_t; NULL once destroyed
};
struct GraphHandle {
  void* exec;  // cudaGraphExec_t; NULL once destroyed
};

// A new buffer handle. owned = true: counted in LiveBytes() and freed by release/finalizer; false: borrowed.
Napi::Value NewBuffer(Napi::Env env, void* ptr, uint64_t bytes, int32_t device, bool owned);
Napi::Value NewStream(Napi::Env env, void* stream);
StreamHandle* UnwrapStreamHandle(napi_env env, napi_value value);
Napi::Value NewGraph(Napi::Env env, void* exec);
GraphHandle* UnwrapGraph(napi_env env, napi_value value);

// Device bytes / buffers currently allocated through this addon and not yet released.
int64_t LiveBytes();
int64_t LiveBuffers();

}  // namespace marlin_napi
