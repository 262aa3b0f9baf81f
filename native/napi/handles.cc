// Buffer / stream / graph handles: Napi::External values tagged with a fixed 128-bit type tag.
#include <atomic>
#include <string>

#include "handles.h"
#include "runtime/graph.h"

namespace marlin_napi {

// NOTE: these tags are part of the cross-addon ABI ("marlin-buffer-v1" etc. in ASCII): never change them.
const napi_type_tag kBufferTag = {0x6d61726c696e2d62ULL, 0x75666665722d7631ULL};
const napi_type_tag kStreamTag = {0x6d61726c696e2d73ULL, 0x747265616d2d7631ULL};
const napi_type_tag kGraphTag = {0x6d61726c696e2d67ULL, 0x726170682d2d7631ULL};

namespace {
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_live_buffers{0};

bool HasTag(napi_env env, napi_value value, const napi_type_tag& tag) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return false;
  bool ok = false;
  return napi_check_object_type_tag(env, value, &tag, &ok) == napi_ok && ok;
}

void* ExternalData(napi_env env, napi_value value) {
  void* data = nullptr;
  napi_get_value_external(env, value, &data);
  return data;
}

// The allocating addon's release: frees through this addon's cudart and keeps its live counters right.
void ReleaseOwned(marlin_buffer_header* h) {
  if (h->ptr == nullptr) return;
  if ((h->flags & MARLIN_BUFFER_OWNED) != 0) {
    // Errors are ignored here: at process exit the context may already be gone, and a finalizer cannot throw.
    marlin_set_device(h->device);
    marlin_free(h->ptr);
    g_live_bytes.fetch_sub(static_cast<int64_t>(h->bytes));
    g_live_buffers.fetch_sub(1);
  }
  h->ptr = nullptr;
}

void ReleaseBorrowed(marlin_buffer_header* h) { h->ptr = nullptr; }

}  // namespace

int64_t LiveBytes() { return g_live_bytes.load(); }
int64_t LiveBuffers() { return g_live_buffers.load(); }

Napi::Value NewBuffer(Napi::Env env, void* ptr, uint64_t bytes, int32_t device, bool owned) {
  auto* h = new marlin_buffer_header{};
  h->abi = MARLIN_BUFFER_ABI;
  h->flags = owned ? MARLIN_BUFFER_OWNED : 0u;
  h->ptr = ptr;
  h->bytes = bytes;
  h->device = device;
  h->release = owned ? &ReleaseOwned : &ReleaseBorrowed;
  if (owned) {
    g_live_bytes.fetch_add(static_cast<int64_t>(bytes));
    g_live_buffers.fetch_add(1);
  }
  // Safety net only: TS dispose() frees explicitly. The finalizer runs in the allocating addon.
  auto ext = Napi::External<marlin_buffer_header>::New(env, h, [](Napi::Env, marlin_buffer_header* hdr) {
    hdr->release(hdr);
    delete hdr;
  });
  ext.TypeTag(&kBufferTag);
  return ext;
}

static marlin_buffer_header* Unwrap(napi_env env, napi_value value, const char* arg_name, bool optional) {
  if (optional) {
    napi_valuetype type;
    napi_typeof(env, value, &type);
    if (type == napi_null || type == napi_undefined) return nullptr;
  }
  if (!HasTag(env, value, kBufferTag)) {
    throw CodedError(env, "MARLIN_E_DISPOSED",
                     std::string(arg_name) + " is not a @marlin device buffer handle (foreign object). "
                     "Fix: pass a Tensor created by @marlin (Tensor.empty / Tensor.from).");
  }
  auto* h = static_cast<marlin_buffer_header*>(ExternalData(env, value));
  if (h->abi != MARLIN_BUFFER_ABI) {
    throw CodedError(env, "MARLIN_E_DISPOSED",
                     std::string(arg_name) + " comes from an addon with buffer ABI " + std::to_string(h->abi) +
                     ", this one uses " + std::to_string(MARLIN_BUFFER_ABI) +
                     ". Fix: install the same version of every @marlin package.");
  }
  if (h->ptr == nullptr && h->bytes != 0) {
    throw CodedError(env, "MARLIN_E_DISPOSED",
                     std::string(arg_name) + " was already freed. Fix: do not use a tensor after dispose().");
  }
  return h;
}

marlin_buffer_header* UnwrapBuffer(napi_env env, napi_value value, const char* arg_name) {
  return Unwrap(env, value, arg_name, false);
}

marlin_buffer_header* UnwrapOptionalBuffer(napi_env env, napi_value value, const char* arg_name) {
  return Unwrap(env, value, arg_name, true);
}

Napi::Value NewStream(Napi::Env env, void* stream) {
  auto* h = new StreamHandle{stream};
  auto ext = Napi::External<StreamHandle>::New(env, h, [](Napi::Env, StreamHandle* s) {
    if (s->stream != nullptr) marlin_stream_destroy(s->stream);
    delete s;
  });
  ext.TypeTag(&kStreamTag);
  return ext;
}

StreamHandle* UnwrapStreamHandle(napi_env env, napi_value value) {
  if (!HasTag(env, value, kStreamTag)) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "stream is not a @marlin stream handle. Fix: pass a Stream from Stream.create().");
  }
  auto* s = static_cast<StreamHandle*>(ExternalData(env, value));
  if (s->stream == nullptr) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "stream was already destroyed. Fix: do not use a Stream after dispose().");
  }
  return s;
}

void* UnwrapStream(napi_env env, napi_value value) {
  napi_valuetype type;
  napi_typeof(env, value, &type);
  if (type == napi_null || type == napi_undefined) return nullptr;
  return UnwrapStreamHandle(env, value)->stream;
}

Napi::Value NewGraph(Napi::Env env, void* exec) {
  auto* g = new GraphHandle{exec};
  auto ext = Napi::External<GraphHandle>::New(env, g, [](Napi::Env, GraphHandle* h) {
    if (h->exec != nullptr) marlin_graph_destroy(h->exec);
    delete h;
  });
  ext.TypeTag(&kGraphTag);
  return ext;
}

GraphHandle* UnwrapGraph(napi_env env, napi_value value) {
  if (!HasTag(env, value, kGraphTag)) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "graph is not a @marlin graph handle. Fix: pass a Graph from stream.capture().");
  }
  auto* g = static_cast<GraphHandle*>(ExternalData(env, value));
  if (g->exec == nullptr) {
    throw CodedError(env, "MARLIN_E_DISPOSED", "graph was already destroyed. Fix: do not use a Graph after dispose().");
  }
  return g;
}

}  // namespace marlin_napi
