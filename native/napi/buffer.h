// The device-buffer handle every @marlin addon hands to JS: a Napi::External carrying a marlin_buffer_header,
// tagged with MARLIN_BUFFER_TYPE_TAG so any addon (same process) can recognise, use and release it.
// Node-API is not needed to read this header: it is plain C layout, versioned by MARLIN_BUFFER_ABI.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "marlin/runtime.h"

enum marlin_buffer_flags : uint32_t {
  MARLIN_BUFFER_OWNED = 1u,  // allocated by an addon: released through `release`. Otherwise borrowed: never freed.
};

struct marlin_buffer_header {
  uint32_t abi;    // MARLIN_BUFFER_ABI of the addon that made it; other versions are refused
  uint32_t flags;  // marlin_buffer_flags
  void* ptr;       // device pointer; NULL once released
  uint64_t bytes;  // size of the allocation
  int32_t device;  // CUDA ordinal
  int32_t reserved;
  // Frees `ptr` through the allocating addon's own cudart (and updates its live-byte count); sets ptr = NULL.
  // Idempotent. Called by explicit free() from any addon and by the allocating addon's finalizer.
  void (*release)(marlin_buffer_header* self);
};
