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

/* What the model says about itself (ONNX metadata or the TensorRT sidecar) and its I/O. */
typedef struct esr_model_meta {
  int32_t scale;
  esr_color color;
  char precision[32];
  int64_t in_shape[4];  /* as declared; -1 = dynamic */
  int64_t out_shape[4];
  uint64_t min_w, min_h, max_w, max_h; /* frame sizes the backend accepts */
} esr_model_meta;

/* A loaded backend: one shared `impl` (weights, session, thread pool), and one `ctx` per
 * stream. run() maps a contiguous float32 NCHW input of in_shape to a contiguous output of
 * out_shape; both buffers belong to the caller of run(). run() calls on different contexts of
 * one impl may overlap in time; one context is never used by two threads at once. A context
 * may cache backend objects keyed on the pointers and shapes, so steady-state calls allocate
 * nothing. */
typedef struct esr_backend_ops {
  const char* name;
  esr_status (*stream_create)(void* impl, void** ctx, uint64_t* allocs);
  esr_status (*run)(void* impl, void* ctx, const float* in, const int64_t in_shape[4], float* out,
                    const int64_t out_shape[4]);
  void (*stream_destroy)(void* impl, void* ctx);
  void (*destroy)(void* impl);
} esr_backend_ops;

/* Where a backend loads from: a path, or (ONNX only) bytes in memory. */
typedef struct esr_model_source {
  const char* path;
  const void* data;
  size_t size;
} esr_model_source;

/* Backend constructors. On success set *impl, *ops and *meta. `opts` is complete (defaults
 * filled in). */
esr_status esr__ort_create(const esr_model_source* src, const esr_options* opts, void** impl,
                           const esr_backend_ops** ops, esr_model_meta* meta);
#ifdef EDGESR_HAVE_TENSORRT
esr_status esr__trt_create(const esr_model_source* src, const esr_options* opts, void** impl,
                           const esr_backend_ops** ops, esr_model_meta* meta);
#endif

/* A grow-only, 64-byte aligned buffer: reallocated only when a larger frame arrives. */
typedef struct esr_buffer {
  void* data;
  size_t cap;
} esr_buffer;

/* The shared, immutable-after-create half: weights, backend session and thread pool. */
struct esr_model {
  const esr_backend_ops* ops;
  void* impl;
  esr_model_meta meta;
  size_t channels;
  esr_options opts;
  uint32_t refs; /* the creator's reference + one per stream; atomic */
};

/* One camera stream: its backend context and working buffers. */
struct esr_stream {
  esr_model* model;
  void* ctx;
  uint64_t allocs;
  esr_buffer in, out;              /* model input / output floats */
  esr_buffer cb, cr, cb_up, cr_up; /* RGB frames on a Y model: chroma planes */
  esr_buffer taps;                 /* 4:2:0 bilinear tap tables */
  esr_buffer chroma_rows;          /* 4:2:0 horizontally interpolated chroma rows */
  size_t taps_w, taps_h;           /* chroma input size the tables were built for */
};

esr_status esr__buffer_reserve(esr_stream* s, esr_buffer* b, size_t bytes);
/* Checks a frame of batch n and w x h against the model's static shape / profile. */
esr_status esr__check_frame_size(const esr_model* m, size_t n, size_t w, size_t h);

/* Clears esr_last_error(): the first thing every status-returning entry point does. */
void esr__enter(void);

/* Records a formatted message for esr_last_error(), logs it as an error, returns `status`. */
esr_status esr__fail(esr_status status, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Sends a message to the log callback, if one is set for this level. */
void esr__log(esr_log_level level, const char* fmt, ...)
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
