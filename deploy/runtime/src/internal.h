/* Internal interface between the frame API (engine.c) and the backends. Not installed. */
#ifndef EDGESR_INTERNAL_H_
#define EDGESR_INTERNAL_H_

#include <stddef.h>
#include <stdint.h>

#include "edgesr.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ESR_MAX_SCALE 16 /* larger scales are not SR models; also keeps chroma weights small */

/* What the model says about itself (ONNX metadata or the TensorRT sidecar). */
typedef struct esr_model_meta {
  int32_t scale;
  esr_color color;
} esr_model_meta;

/* A loaded backend. run() maps a contiguous float32 NCHW input of in_shape to a contiguous
 * output of out_shape; both buffers belong to the caller of run(). It may cache backend
 * objects keyed on the pointers and shapes, so steady-state calls allocate nothing. */
typedef struct esr_backend_ops {
  const char* name;
  esr_status (*run)(void* impl, const float* in, const int64_t in_shape[4], float* out,
                    const int64_t out_shape[4]);
  void (*destroy)(void* impl);
} esr_backend_ops;

/* Where a backend loads from: a path, or (ONNX only) bytes in memory. */
typedef struct esr_model_source {
  const char* path;
  const void* data;
  size_t size;
} esr_model_source;

/* Backend constructors. On success set *impl, *ops and *meta; `allocs` is the engine's
 * allocation counter, to which the backend adds what it allocates per shape. */
esr_status esr__ort_create(const esr_model_source* src, const esr_options* opts, void** impl,
                           const esr_backend_ops** ops, esr_model_meta* meta, uint64_t* allocs);
#ifdef EDGESR_HAVE_TENSORRT
esr_status esr__trt_create(const esr_model_source* src, const esr_options* opts, void** impl,
                           const esr_backend_ops** ops, esr_model_meta* meta, uint64_t* allocs);
#endif

/* Records a formatted message for esr_last_error() and returns `status`. */
esr_status esr__fail(esr_status status, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Metadata parsing shared by the backends (strict: a wrong value is an error, never a guess). */
esr_status esr__parse_scale(const char* text, int32_t* scale);
esr_status esr__parse_color(const char* text, esr_color* color);
/* Parses the TensorRT sidecar JSON object {"scale": 4, "color": "y_bt601", ...}. */
esr_status esr__parse_sidecar(const char* json, size_t len, esr_model_meta* meta);

#ifdef __cplusplus
}
#endif

#endif /* EDGESR_INTERNAL_H_ */
