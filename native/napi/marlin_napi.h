// Shared Node-API glue compiled into every @marlin addon: status -> JS error, buffer and stream handles, and the
// runtime exports (probe, alloc/free, copies, streams, graphs). Only this folder and each addon's binding file
// include Node-API headers; everything below native/ stays Node-free.
#pragma once
#include <napi.h>

#include "buffer.h"
#include "marlin/status.h"

namespace marlin_napi {

// Builds the JS error for a non-OK status: an Error whose `code` is the @marlin/core ErrorCode string
// (MARLIN_E_CUDA, MARLIN_E_VALUE, ...) plus `status` (C enum name), `cudaError` and `cudaErrorName`.
// When the failing call ran on another thread (an AsyncWorker), pass the CUDA error and name captured there;
// the default (-1) reads this thread's marlin_last_cuda_error().
Napi::Error StatusError(Napi::Env env, marlin_status status, const char* what, int cuda_error = -1,
                        const char* cuda_error_name = nullptr);
// An Error with an explicit core ErrorCode string (e.g. "MARLIN_E_DISPOSED", "MARLIN_E_SHAPE").
Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message);

// Throws (C++ exception -> JS exception) unless status is MARLIN_OK.
inline void Check(Napi::Env env, marlin_status status, const char* what) {
  if (status != MARLIN_OK) throw StatusError(env, status, what);
}

// Buffer handle -> header. Throws MARLIN_E_DISPOSED for released buffers, foreign objects or another ABI version.
marlin_buffer_header* UnwrapBuffer(napi_env env, napi_value value, const char* arg_name);
// Same, but returns NULL for null/undefined (optional operands such as zeros, perm, bias).
marlin_buffer_header* UnwrapOptionalBuffer(napi_env env, napi_value value, const char* arg_name);
// Stream handle -> cudaStream_t as void*; null/undefined -> NULL (legacy default stream).
void* UnwrapStream(napi_env env, napi_value value);

// Adds the runtime exports to `exports`. Every addon's init calls this first.
void RegisterRuntime(Napi::Env env, Napi::Object exports);

}  // namespace marlin_napi
