// What every addon's plan handle shares (gemm_binding.cc, @marlin/moe's binding): the JS buffer handles a native plan
// points into, held by strong references while the plan lives; the workspace and stream bound for its launches; the
// checks a launch makes first (a buffer released after plan creation throws MARLIN_E_DISPOSED, never reaches a
// kernel); the tagged External of the handle; and small argument helpers.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "handles.h"
#include "marlin/status.h"

namespace marlin_napi {

// The references of one native plan. Operands are fixed at creation; the workspace and stream change only when the
// caller moves the plan to another stream or the stream's workspace is reallocated.
class PlanRefs {
 public:
  static constexpr int kMaxOperands = 12;

  // `names` (count entries, static storage) name the operands in errors.
  PlanRefs(const char* const* names, int count) : names_(names), count_(count) {}

  // Holds operand i: `handle` is the JS value `hdr` was unwrapped from; hdr == nullptr (optional, absent) holds nothing.
  void Hold(napi_env env, int i, napi_value handle, marlin_buffer_header* hdr);
  marlin_buffer_header* operand(int i) const { return operands_[i]; }

  // Binds the workspace (at least min_bytes, else MARLIN_E_WORKSPACE from `op`) and the stream (null / undefined: the
  // legacy default stream) of the next launches, replacing the previous binding.
  void Bind(napi_env env, napi_value workspace, napi_value stream, size_t min_bytes, const char* op);
  // The bound workspace, or nullptr.
  marlin_buffer_header* workspace() const { return ws_; }

  // Before a launch: no held operand freed since, a live workspace bound, the bound stream not destroyed. Returns the
  // stream (nullptr: the legacy default stream). Throws the coded errors otherwise.
  void* CheckLaunch(napi_env env, const char* op) const;

  // Drops every reference (idempotent).
  void Release(napi_env env);

 private:
  void Unbind(napi_env env);

  const char* const* names_;
  int count_;
  napi_ref operand_refs_[kMaxOperands] = {};
  marlin_buffer_header* operands_[kMaxOperands] = {};
  napi_ref ws_ref_ = nullptr;
  marlin_buffer_header* ws_ = nullptr;
  napi_ref stream_ref_ = nullptr;
  StreamHandle* stream_ = nullptr;
};

// A strong reference to `v` (MARLIN_E_VALUE if it cannot be made); DeleteRef drops one and clears it.
napi_ref NewRef(napi_env env, napi_value v);
void DeleteRef(napi_env env, napi_ref* ref);

// The type tag of an addon's plan handles: `kind` (8 ASCII bytes, e.g. "marlin-d") in the lower half, the addon's
// name hashed (FNV-1a) in the upper, so a plan of one addon or kind is refused by another.
napi_type_tag PlanTypeTag(uint64_t kind, const char* addon);

// The data of an External tagged `tag`, or nullptr for any other value.
void* TaggedExternal(napi_env env, napi_value v, const napi_type_tag& tag);

// An Int32Array of at least `count` numbers (a plan's parameter block), else MARLIN_E_VALUE naming `what`.
const int32_t* ArgInt32Params(napi_env env, napi_value v, size_t count, const char* what);

// The holder behind a plan handle tagged `tag`, destroyed or not; for anything else MARLIN_E_DISPOSED "<what> is not a
// <kind> handle." (`what` names the caller's argument).
template <class Holder>
Holder* PlanHolderOf(napi_env env, napi_value v, const napi_type_tag& tag, const char* what, const std::string& kind) {
  void* data = TaggedExternal(env, v, tag);
  if (data == nullptr) throw CodedError(env, "MARLIN_E_DISPOSED", std::string(what) + " is not a " + kind + " handle.");
  return static_cast<Holder*>(data);
}

// The same, live: MARLIN_E_DISPOSED with `destroyed` (what happened, and the fix) once its plan was destroyed.
template <class Holder>
Holder* LivePlanHolder(napi_env env, napi_value v, const napi_type_tag& tag, const std::string& kind,
                       const char* destroyed) {
  Holder* h = PlanHolderOf<Holder>(env, v, tag, "plan", kind);
  if (h->plan == nullptr) throw CodedError(env, "MARLIN_E_DISPOSED", destroyed);
  return h;
}

// Hands a new native plan to JS: holds its operands (handles[i], unwrapped to hdr[i]; on a failure the plan is
// destroyed and the error rethrown) in h->refs and wraps h in an External tagged `tag`. `destroy` frees the plan and
// drops the references (idempotent); the finalizer calls it as a safety net only: the TS plan caches destroy plans
// explicitly.
template <class Holder, class Handles>
Napi::External<Holder> PlanExternal(napi_env env, Holder* h, const Handles& handles, marlin_buffer_header* const* hdr,
                                    int count, const napi_type_tag& tag, void (*destroy)(napi_env, Holder*)) {
  try {
    for (int i = 0; i < count; ++i) h->refs.Hold(env, i, handles[i], hdr[i]);
  } catch (...) {
    destroy(env, h);
    delete h;
    throw;
  }
  auto ext = Napi::External<Holder>::New(env, h, [destroy](Napi::Env e, Holder* ph) {
    destroy(e, ph);
    delete ph;
  });
  ext.TypeTag(&tag);
  return ext;
}

// configInfo(id) of an addon: [mTile, nTiles, kTilesPerStage, stages] of a compiled kernel-table row.
Napi::Value ConfigInfoArray(const Napi::CallbackInfo& info, marlin_status (*config_info)(int32_t, int32_t[4]));

}  // namespace marlin_napi
