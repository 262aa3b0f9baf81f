// Internal runtime extension (not part of the public C ABI yet): CUDA-graph capture of work enqueued on one stream.
// Used by the GPU suite to prove graph replay equals eager execution, and by callers that replay decode steps.
#pragma once
#include <stdint.h>
#include "marlin/status.h"

#ifdef __cplusplus
extern "C" {
#endif
// Starts capturing `stream` (must be a created stream, not the legacy default stream). Thread-local capture mode:
// other threads may keep allocating while this thread captures.
marlin_status marlin_graph_begin(void* stream);
// Ends the capture and instantiates it; *graph_exec receives a cudaGraphExec_t.
marlin_status marlin_graph_end(void* stream, void** graph_exec);
marlin_status marlin_graph_launch(void* graph_exec, void* stream);
marlin_status marlin_graph_destroy(void* graph_exec);
// 1 while `stream` is being captured.
marlin_status marlin_stream_is_capturing(void* stream, int32_t* out);
#ifdef __cplusplus
}
#endif
