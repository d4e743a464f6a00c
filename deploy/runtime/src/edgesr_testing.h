/* Test-only entry points of libedgesr: exported, but not part of the public header or its ABI
 * promise (they may change with any release). Used by the C tests and the Python tests. */
#ifndef EDGESR_TESTING_H_
#define EDGESR_TESTING_H_

#include "edgesr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Heap allocations libedgesr (and the backend calls it makes to wrap buffers) has made for
 * this stream so far: constant across frame calls of an unchanged size. 0 for NULL. */
ESR_API uint64_t esr_testing_stream_allocations(const esr_stream* stream);

/* Streams plus the caller's reference currently keeping `model` alive. 0 for NULL. */
ESR_API uint32_t esr_testing_model_refs(const esr_model* model);

#ifdef __cplusplus
}
#endif

#endif /* EDGESR_TESTING_H_ */
