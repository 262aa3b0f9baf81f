// marlin_status -> JS Error with a stable `code` that @marlin/core turns into its typed errors.
#include <string>

#include "marlin_napi.h"

namespace marlin_napi {
namespace {

// The C enum name (for bug reports) and the @marlin/core ErrorCode string (for programmatic handling).
struct StatusNames {
  const char* status;
  const char* code;
};

StatusNames Names(marlin_status s) {
  switch (s) {
    case MARLIN_OK: return {"MARLIN_OK", "MARLIN_E_CUDA"};
    case MARLIN_E_INVALID_ARGUMENT: return {"MARLIN_E_INVALID_ARGUMENT", "MARLIN_E_VALUE"};
    case MARLIN_E_UNSUPPORTED: return {"MARLIN_E_UNSUPPORTED", "MARLIN_E_UNSUPPORTED"};
    case MARLIN_E_WORKSPACE: return {"MARLIN_E_WORKSPACE", "MARLIN_E_WORKSPACE"};
    case MARLIN_E_MISALIGNED: return {"MARLIN_E_MISALIGNED", "MARLIN_E_ALIGNMENT"};
    case MARLIN_E_CUDA: return {"MARLIN_E_CUDA", "MARLIN_E_CUDA"};
    case MARLIN_E_NO_KERNEL_IMAGE: return {"MARLIN_E_NO_KERNEL_IMAGE", "MARLIN_E_NO_KERNEL_IMAGE"};
  }
  return {"MARLIN_E_UNKNOWN", "MARLIN_E_CUDA"};
}

}  // namespace

Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Error StatusError(Napi::Env env, marlin_status status, const char* what, int cuda_error,
                        const char* cuda_error_name) {
  const StatusNames names = Names(status);
  const bool cuda_status = status == MARLIN_E_CUDA || status == MARLIN_E_NO_KERNEL_IMAGE;
  if (cuda_error < 0) {
    // The failing call ran on this thread: its error sits in this thread's slot.
    cuda_error = cuda_status ? marlin_last_cuda_error() : 0;
    cuda_error_name = cuda_status ? marlin_last_cuda_error_string() : nullptr;
  }
  std::string message = std::string(what) + " failed: " + marlin_status_string(status);
  const std::string cuda_name = cuda_error_name != nullptr ? cuda_error_name : "";
  if (cuda_error != 0) {
    message += " (cudaError " + std::to_string(cuda_error) + (cuda_name.empty() ? "" : " " + cuda_name) + ")";
  }
  Napi::Error err = CodedError(env, names.code, message);
  err.Set("status", Napi::String::New(env, names.status));
  err.Set("statusCode", Napi::Number::New(env, static_cast<double>(status)));
  err.Set("op", Napi::String::New(env, what));
  err.Set("cudaError", Napi::Number::New(env, cuda_error));
  err.Set("cudaErrorName", Napi::String::New(env, cuda_name));
  return err;
}

}  // namespace marlin_napi
