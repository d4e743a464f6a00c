/* The library half of the public API: errors and logging, versions, options, and the lifetime
 * of models (shared, reference-counted) and streams (one per camera). Frame calls: frames.c. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesr_testing.h"
#include "internal.h"

#define ESR_STR2(x) #x
#define ESR_STR(x) ESR_STR2(x)

#if defined(_MSC_VER)
#define ESR_THREAD_LOCAL __declspec(thread)
#else
#define ESR_THREAD_LOCAL __thread /* C99 has no _Thread_local; GCC and Clang have this */
#endif

/* The options struct of ABI 0 (struct_size, backend, num_threads, device_id): the smallest a
 * caller may pass. */
#define ESR_OPTIONS_MIN_SIZE 16u
#define ESR_STRUCT_MAX_SIZE 4096u /* anything larger is an uninitialised struct_size */

/* ---- errors and logging ---- */

static ESR_THREAD_LOCAL char g_last_error[1024];

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static esr_log_fn g_log_fn;
static void* g_log_user;
static esr_log_level g_log_min = ESR_LOG_WARNING;

static void vlog(esr_log_level level, const char* fmt, va_list ap) {
  esr_log_fn fn;
  void* user;
  char msg[1024];
  pthread_mutex_lock(&g_log_lock);
  fn = level >= g_log_min ? g_log_fn : NULL;
  user = g_log_user;
  pthread_mutex_unlock(&g_log_lock);
  if (fn == NULL) return;
  vsnprintf(msg, sizeof msg, fmt, ap);
  fn(user, level, msg); /* outside the lock: a slow callback must not serialise other threads */
}

void esr__log(esr_log_level level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

esr_status esr__fail(esr_status status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  esr__log(ESR_LOG_ERROR, "%s", g_last_error);
  return status;
}

/* Every status-returning entry point starts here, so esr_last_error() never shows a stale
 * message after a call that succeeded. */
void esr__enter(void) { g_last_error[0] = '\0'; }
#define ESR_ENTER() esr__enter()

const char* esr_last_error(void) { return g_last_error; }

void esr_set_log_callback(esr_log_fn fn, void* user_data, esr_log_level min_level) {
  pthread_mutex_lock(&g_log_lock);
  g_log_fn = fn;
  g_log_user = user_data;
  g_log_min = min_level;
  pthread_mutex_unlock(&g_log_lock);
}

/* ---- library ---- */

const char* esr_version(void) {
  return ESR_STR(ESR_VERSION_MAJOR) "." ESR_STR(ESR_VERSION_MINOR) "." ESR_STR(
      ESR_VERSION_PATCH) " (abi " ESR_STR(ESR_ABI_VERSION) "; backends: onnxruntime"
#ifdef EDGESR_HAVE_TENSORRT
                                                           ",tensorrt"
#endif
                                                           ")";
}

uint32_t esr_abi_version(void) { return ESR_ABI_VERSION; }

const char* esr_status_string(esr_status status) {
  switch (status) {
    case ESR_OK: return "ok";
    case ESR_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ESR_ERR_SIZE_OVERFLOW: return "size overflow";
    case ESR_ERR_MODEL_LOAD: return "model cannot be loaded";
    case ESR_ERR_MODEL_METADATA: return "model lacks usable edgesr metadata";
    case ESR_ERR_MODEL_MISMATCH: return "model does not fit this call";
    case ESR_ERR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case ESR_ERR_RUNTIME: return "backend runtime error";
    case ESR_ERR_OUT_OF_MEMORY: return "out of memory";
  }
  return "unknown status";
}

/* ---- options ---- */

static void default_options(esr_options* o) {
  memset(o, 0, sizeof *o);
  o->struct_size = (uint32_t)sizeof *o;
  o->backend = ESR_BACKEND_ONNXRUNTIME;
  o->num_threads = 0;
  o->device_id = 0;
  o->intra_op_spinning = -1;
}

esr_status esr_options_init(esr_options* options, size_t struct_size) {
  esr_options d;
  ESR_ENTER();
  if (options == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "options is NULL");
  if (struct_size < ESR_OPTIONS_MIN_SIZE || struct_size > ESR_STRUCT_MAX_SIZE) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "esr_options_init: struct_size %zu is outside %u..%u; pass sizeof(esr_options)",
                     struct_size, ESR_OPTIONS_MIN_SIZE, ESR_STRUCT_MAX_SIZE);
  }
  default_options(&d);
  /* A newer caller's extra fields are zeroed: this library does not know them. */
  if (struct_size > sizeof d) memset((char*)options + sizeof d, 0, struct_size - sizeof d);
  memcpy(options, &d, struct_size < sizeof d ? struct_size : sizeof d);
  options->struct_size = (uint32_t)struct_size;
  return ESR_OK;
}

static esr_status read_options(const esr_options* in, esr_options* out) {
  default_options(out);
  if (in == NULL) return ESR_OK;
  /* Older callers pass a shorter struct: read only what they have, default the rest. */
  if (in->struct_size < ESR_OPTIONS_MIN_SIZE || in->struct_size > ESR_STRUCT_MAX_SIZE) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "esr_options.struct_size is %u; initialise options with "
                     "esr_options_init(&options, sizeof options)",
                     (unsigned)in->struct_size);
  }
  memcpy(out, in, in->struct_size < sizeof *out ? in->struct_size : sizeof *out);
  out->struct_size = (uint32_t)sizeof *out;
  if (out->backend != ESR_BACKEND_ONNXRUNTIME && out->backend != ESR_BACKEND_TENSORRT) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "unknown backend %d", (int)out->backend);
  }
  if (out->num_threads < 0 || out->num_threads > 1024) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "num_threads %d is outside 0..1024",
                     (int)out->num_threads);
  }
  if (out->device_id < 0) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "device_id %d is negative", (int)out->device_id);
  }
  if (out->intra_op_spinning < -1 || out->intra_op_spinning > 1) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "intra_op_spinning %d is not -1 (default), 0 (off) or 1 (on)",
                     (int)out->intra_op_spinning);
  }
  return ESR_OK;
}

/* ---- models ---- */

static esr_status model_create(const esr_model_source* src, const esr_options* options,
                               esr_model** out_model) {
  esr_options opts;
  esr_model* m;
  esr_status st;
  if (out_model == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "out_model is NULL");
  *out_model = NULL;
  st = read_options(options, &opts);
  if (st != ESR_OK) return st;
  m = (esr_model*)calloc(1, sizeof *m);
  if (m == NULL) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate a model");
  m->opts = opts;
  if (opts.backend == ESR_BACKEND_ONNXRUNTIME) {
    st = esr__ort_create(src, &opts, &m->impl, &m->ops, &m->meta);
  } else {
#ifdef EDGESR_HAVE_TENSORRT
    st = esr__trt_create(src, &opts, &m->impl, &m->ops, &m->meta);
#else
    st = esr__fail(ESR_ERR_BACKEND_UNAVAILABLE,
                   "this libedgesr was built without TensorRT; rebuild with "
                   "-DEDGESR_WITH_TENSORRT=ON on a machine with TensorRT and CUDA");
#endif
  }
  if (st != ESR_OK) {
    free(m);
    return st;
  }
  m->channels = m->meta.color == ESR_COLOR_RGB ? 3 : 1;
  m->refs = 1;
  esr__log(ESR_LOG_INFO,
           "loaded %s: %s backend, x%d, %s, precision '%s', input [%lld,%lld,%lld,%lld], "
           "%d thread(s)",
           src->path ? src->path : "a model from memory", m->ops->name, (int)m->meta.scale,
           m->meta.color == ESR_COLOR_RGB ? "rgb" : "y_bt601", m->meta.precision,
           (long long)m->meta.in_shape[0], (long long)m->meta.in_shape[1],
           (long long)m->meta.in_shape[2], (long long)m->meta.in_shape[3], (int)opts.num_threads);
  *out_model = m;
  return ESR_OK;
}

esr_status esr_model_create(const char* model_path, const esr_options* options,
                            esr_model** out_model) {
  esr_model_source src;
  ESR_ENTER();
  if (out_model != NULL) *out_model = NULL;
  if (model_path == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model_path is NULL");
  src.path = model_path;
  src.data = NULL;
  src.size = 0;
  return model_create(&src, options, out_model);
}

esr_status esr_model_create_from_memory(const void* data, size_t size, const esr_options* options,
                                        esr_model** out_model) {
  esr_model_source src;
  ESR_ENTER();
  if (out_model != NULL) *out_model = NULL;
  if (data == NULL || size == 0) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model data is NULL or empty");
  }
  src.path = NULL;
  src.data = data;
  src.size = size;
  return model_create(&src, options, out_model);
}

static void model_release(esr_model* m) {
  /* acq_rel: the thread that frees sees every other thread's last use of the model. */
  if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  m->ops->destroy(m->impl);
  free(m);
}

void esr_model_destroy(esr_model* m) {
  if (m != NULL) model_release(m);
}

uint32_t esr_testing_model_refs(const esr_model* m) {
  return m ? __atomic_load_n(&m->refs, __ATOMIC_ACQUIRE) : 0;
}

esr_status esr_model_get_info(const esr_model* m, esr_model_info* info) {
  esr_model_info i;
  uint32_t n;
  ESR_ENTER();
  if (m == NULL || info == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model or info is NULL");
  n = info->struct_size;
  if (n < sizeof(uint32_t) + sizeof(int32_t) || n > ESR_STRUCT_MAX_SIZE) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "esr_model_info.struct_size is %u; set it to sizeof(esr_model_info)",
                     (unsigned)n);
  }
  memset(&i, 0, sizeof i);
  i.struct_size = (uint32_t)sizeof i;
  i.scale = m->meta.scale;
  i.color = m->meta.color;
  i.channels = (int32_t)m->channels;
  i.backend = m->opts.backend;
  i.num_threads = m->opts.num_threads;
  i.intra_op_spinning = m->opts.intra_op_spinning;
  memcpy(i.precision, m->meta.precision, sizeof i.precision);
  memcpy(i.input_shape, m->meta.in_shape, sizeof i.input_shape);
  memcpy(i.output_shape, m->meta.out_shape, sizeof i.output_shape);
  i.min_width = m->meta.min_w;
  i.min_height = m->meta.min_h;
  i.max_width = m->meta.max_w;
  i.max_height = m->meta.max_h;
  /* Only the caller's bytes; its struct_size stays what it set. */
  memcpy((char*)info + sizeof n, (const char*)&i + sizeof n,
         (n < sizeof i ? n : sizeof i) - sizeof n);
  return ESR_OK;
}

esr_status esr__check_frame_size(const esr_model* m, size_t n, size_t w, size_t h) {
  const esr_model_meta* d = &m->meta;
  if (d->in_shape[0] > 0 && (uint64_t)n != (uint64_t)d->in_shape[0]) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH,
                     "the model takes a batch of exactly %lld (a static shape), got %zu",
                     (long long)d->in_shape[0], n);
  }
  if ((uint64_t)w < d->min_w || (uint64_t)w > d->max_w || (uint64_t)h < d->min_h ||
      (uint64_t)h > d->max_h) {
    if (d->min_w == d->max_w && d->min_h == d->max_h) {
      return esr__fail(ESR_ERR_MODEL_MISMATCH,
                       "the model takes %llux%llu frames only (a static input shape), got "
                       "%zux%zu; resize frames to that, or export the model with dynamic H/W "
                       "(edgesr export does)",
                       (unsigned long long)d->min_w, (unsigned long long)d->min_h, w, h);
    }
    return esr__fail(ESR_ERR_MODEL_MISMATCH,
                     "a %zux%zu frame is outside the model's accepted sizes %llux%llu .. "
                     "%llux%llu; rebuild the plan with a profile that covers it",
                     w, h, (unsigned long long)d->min_w, (unsigned long long)d->min_h,
                     (unsigned long long)d->max_w, (unsigned long long)d->max_h);
  }
  return ESR_OK;
}

/* ---- streams ---- */

esr_status esr__buffer_reserve(esr_stream* s, esr_buffer* b, size_t bytes) {
  void* p = NULL;
  if (b->cap >= bytes) return ESR_OK;
  if (posix_memalign(&p, 64, bytes) != 0 || p == NULL) {
    return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for a frame buffer", bytes);
  }
  esr__log(ESR_LOG_DEBUG, "stream %p: frame buffer grows to %zu bytes", (void*)s, bytes);
  free(b->data);
  b->data = p;
  b->cap = bytes;
  ++s->allocs;
  return ESR_OK;
}

static void buffer_free(esr_buffer* b) {
  free(b->data);
  b->data = NULL;
  b->cap = 0;
}

esr_status esr_stream_create(esr_model* m, esr_stream** out_stream) {
  esr_stream* s;
  esr_status st;
  ESR_ENTER();
  if (out_stream != NULL) *out_stream = NULL;
  if (m == NULL || out_stream == NULL) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model or out_stream is NULL");
  }
  s = (esr_stream*)calloc(1, sizeof *s);
  if (s == NULL) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate a stream");
  s->allocs = 1;
  st = m->ops->stream_create(m->impl, &s->ctx, &s->allocs);
  if (st != ESR_OK) {
    free(s);
    return st;
  }
  __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
  s->model = m;
  *out_stream = s;
  return ESR_OK;
}

void esr_stream_destroy(esr_stream* s) {
  if (s == NULL) return;
  s->model->ops->stream_destroy(s->model->impl, s->ctx);
  buffer_free(&s->in);
  buffer_free(&s->out);
  buffer_free(&s->cb);
  buffer_free(&s->cr);
  buffer_free(&s->cb_up);
  buffer_free(&s->cr_up);
  buffer_free(&s->taps);
  buffer_free(&s->chroma_rows);
  model_release(s->model);
  free(s);
}

esr_model* esr_stream_model(const esr_stream* s) { return s ? s->model : NULL; }

uint64_t esr_testing_stream_allocations(const esr_stream* s) { return s ? s->allocs : 0; }
