// The plan-handle glue every addon shares (plan_refs.h).
#include "plan_refs.h"

#include <string>

namespace marlin_napi {

napi_ref NewRef(napi_env env, napi_value v) {
  napi_ref ref = nullptr;
  if (napi_create_reference(env, v, 1, &ref) != napi_ok) {
    throw CodedError(env, "MARLIN_E_VALUE", "plan: could not reference an operand handle.");
  }
  return ref;
}

void DeleteRef(napi_env env, napi_ref* ref) {
  if (*ref != nullptr) napi_delete_reference(env, *ref);
  *ref = nullptr;
}

void PlanRefs::Hold(napi_env env, int i, napi_value handle, marlin_buffer_header* hdr) {
  if (hdr == nullptr) return;
  operand_refs_[i] = NewRef(env, handle);
  operands_[i] = hdr;
}

void PlanRefs::Unbind(napi_env env) {
  DeleteRef(env, &ws_ref_);
  DeleteRef(env, &stream_ref_);
  ws_ = nullptr;
  stream_ = nullptr;
}

void PlanRefs::Bind(napi_env env, napi_value workspace, napi_value stream, size_t min_bytes, const char* op) {
  marlin_buffer_header* ws = UnwrapBuffer(env, workspace, "workspace");
  if (ws->bytes < min_bytes) throw StatusError(Napi::Env(env), MARLIN_E_WORKSPACE, op);
  napi_valuetype type;
  napi_typeof(env, stream, &type);
  StreamHandle* s = nullptr;
  if (type != napi_null && type != napi_undefined) s = UnwrapStreamHandle(env, stream);
  napi_ref ws_ref = NewRef(env, workspace);
  napi_ref stream_ref = nullptr;
  if (s != nullptr) {
    try {
      stream_ref = NewRef(env, stream);
    } catch (...) {
      DeleteRef(env, &ws_ref);
      throw;
    }
  }
  Unbind(env);
  ws_ref_ = ws_ref;
  ws_ = ws;
  stream_ref_ = stream_ref;
  stream_ = s;
}

void* PlanRefs::CheckLaunch(napi_env env, const char* op) const {
  for (int i = 0; i < count_; ++i) {
    const marlin_buffer_header* o = operands_[i];
    if (o != nullptr && o->ptr == nullptr && o->bytes != 0) {
      throw CodedError(env, "MARLIN_E_DISPOSED",
                       std::string(names_[i]) +
                           " was already freed. Fix: do not use a weight after dispose() (upload it again).");
    }
  }
  if (ws_ == nullptr) {
    throw CodedError(env, "MARLIN_E_VALUE", std::string(op) + ": no workspace bound (call planBind).");
  }
  if (ws_->ptr == nullptr) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "workspace was already freed. Fix: bind the stream's current workspace.");
  }
  if (stream_ == nullptr) return nullptr;
  if (stream_->stream == nullptr) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "stream was already destroyed. Fix: do not use a Stream after dispose().");
  }
  return stream_->stream;
}

void PlanRefs::Release(napi_env env) {
  for (int i = 0; i < count_; ++i) {
    DeleteRef(env, &operand_refs_[i]);
    operands_[i] = nullptr;
  }
  Unbind(env);
}

napi_type_tag PlanTypeTag(uint64_t kind, const char* addon) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char* s = addon; *s != 0; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 0x100000001b3ULL;
  return napi_type_tag{kind, h};
}

void* TaggedExternal(napi_env env, napi_value v, const napi_type_tag& tag) {
  napi_valuetype type;
  bool ok = false;
  void* data = nullptr;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, v, &tag, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    return nullptr;
  }
  return data;
}

const int32_t* ArgInt32Params(napi_env env, napi_value v, size_t count, const char* what) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (is_ta) napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr);
  if (!is_ta || type != napi_int32_array || length < count) {
    throw CodedError(env, "MARLIN_E_VALUE",
                     std::string(what) + " must be an Int32Array of at least " + std::to_string(count) + " numbers.");
  }
  return static_cast<const int32_t*>(data);
}

Napi::Value ConfigInfoArray(const Napi::CallbackInfo& info, marlin_status (*config_info)(int32_t, int32_t[4])) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw CodedError(env, "MARLIN_E_VALUE", "configInfo: id must be a number.");
  int32_t out[4] = {0, 0, 0, 0};
  Check(env, config_info(info[0].As<Napi::Number>().Int32Value(), out), "config_info");
  Napi::Array a = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; ++i) a.Set(i, Napi::Number::New(env, out[i]));
  return a;
}

}  // namespace marlin_napi
