/* ONNX Runtime backend through ORT's C API (CPU execution provider).
 *
 * Session options mirror edgesr.runtime.OnnxRuntimeRunner exactly (intra-op threads, inter-op
 * 1, sequential execution, ORT_ENABLE_ALL), so outputs are bit-identical to ORT from Python. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <onnxruntime_c_api.h>

#include "internal.h"

typedef struct ort_backend {
  const OrtApi* api;
  OrtEnv* env;
  OrtSession* session; /* shared by every stream: OrtSession::Run is thread-safe */
  OrtMemoryInfo* mem;
  char* input_name;
  char* output_name;
} ort_backend;

/* One stream's state: the OrtValues wrapping its last call's buffers, rebuilt only when a
 * pointer or shape changes, so a steady stream of same-size frames makes no ORT allocation
 * of ours. */
typedef struct ort_stream {
  uint64_t* allocs;
  OrtValue* in_value;
  OrtValue* out_value;
  const float* in_ptr;
  float* out_ptr;
  int64_t in_shape[4];
  int64_t out_shape[4];
} ort_stream;

/* ORT has no error code for a failed allocation: its arena and kernels report it in the
 * message (std::bad_alloc, "Failed to allocate memory ..."). */
static int is_oom_message(const char* msg) {
  return strstr(msg, "bad_alloc") != NULL || strstr(msg, "Failed to allocate") != NULL ||
         strstr(msg, "out of memory") != NULL;
}

/* Turns an OrtStatus into our status + message; releases it. */
static esr_status ort_fail(const OrtApi* api, OrtStatus* s, esr_status code, const char* what) {
  const char* msg = api->GetErrorMessage(s);
  esr_status st;
  if (is_oom_message(msg)) {
    st = esr__fail(ESR_ERR_OUT_OF_MEMORY,
                   "%s: ONNX Runtime ran out of memory (%s); use smaller frames or free memory",
                   what, msg);
  } else {
    st = esr__fail(code, "%s: %s", what, msg);
  }
  api->ReleaseStatus(s);
  return st;
}

#define ORT_TRY(expr, code, what)                       \
  do {                                                  \
    OrtStatus* ort_status_ = (expr);                    \
    if (ort_status_ != NULL) {                          \
      st = ort_fail(b->api, ort_status_, (code), what); \
      goto fail;                                        \
    }                                                   \
  } while (0)

static void release_values(const OrtApi* api, ort_stream* c) {
  if (c->in_value) api->ReleaseValue(c->in_value);
  if (c->out_value) api->ReleaseValue(c->out_value);
  c->in_value = c->out_value = NULL;
  c->in_ptr = NULL;
  c->out_ptr = NULL;
}

static void ort_destroy(void* impl) {
  ort_backend* b = (ort_backend*)impl;
  if (b == NULL) return;
  free(b->input_name);
  free(b->output_name);
  if (b->mem) b->api->ReleaseMemoryInfo(b->mem);
  if (b->session) b->api->ReleaseSession(b->session);
  if (b->env) b->api->ReleaseEnv(b->env);
  free(b);
}

static esr_status ort_stream_create(void* impl, void** ctx, uint64_t* allocs) {
  ort_stream* c = (ort_stream*)calloc(1, sizeof *c);
  (void)impl;
  if (c == NULL) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate a stream context");
  c->allocs = allocs;
  ++*allocs;
  *ctx = c;
  return ESR_OK;
}

static void ort_stream_destroy(void* impl, void* ctx) {
  ort_backend* b = (ort_backend*)impl;
  ort_stream* c = (ort_stream*)ctx;
  if (c == NULL) return;
  release_values(b->api, c);
  free(c);
}

static size_t shape_elems(const int64_t shape[4]) {
  return (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2] * (size_t)shape[3];
}

static esr_status ort_run(void* impl, void* ctx, const float* in, const int64_t in_shape[4],
                          float* out, const int64_t out_shape[4]) {
  ort_backend* b = (ort_backend*)impl;
  ort_stream* c = (ort_stream*)ctx;
  esr_status st = ESR_OK;
  const char* in_names[1];
  const char* out_names[1];
  const OrtValue* inputs[1];
  if (c->in_value == NULL || c->in_ptr != in || c->out_ptr != out ||
      memcmp(c->in_shape, in_shape, sizeof c->in_shape) != 0 ||
      memcmp(c->out_shape, out_shape, sizeof c->out_shape) != 0) {
    release_values(b->api, c);
    /* ORT only reads the input; the C API takes a non-const pointer for both directions. */
    ORT_TRY(b->api->CreateTensorWithDataAsOrtValue(
                b->mem, (void*)(uintptr_t)in, shape_elems(in_shape) * sizeof(float), in_shape, 4,
                ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &c->in_value),
            ESR_ERR_RUNTIME, "wrapping the input tensor");
    ORT_TRY(b->api->CreateTensorWithDataAsOrtValue(
                b->mem, out, shape_elems(out_shape) * sizeof(float), out_shape, 4,
                ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &c->out_value),
            ESR_ERR_RUNTIME, "wrapping the output tensor");
    *c->allocs += 2;
    c->in_ptr = in;
    c->out_ptr = out;
    memcpy(c->in_shape, in_shape, sizeof c->in_shape);
    memcpy(c->out_shape, out_shape, sizeof c->out_shape);
  }
  in_names[0] = b->input_name;
  out_names[0] = b->output_name;
  inputs[0] = c->in_value;
  /* A pre-allocated output makes ORT write straight into the caller's buffer; if the model's
   * real output shape differs (metadata scale wrong for the graph) ORT reports an error. */
  ORT_TRY(b->api->Run(b->session, NULL, in_names, inputs, 1, out_names, 1, &c->out_value),
          ESR_ERR_RUNTIME, "ONNX Runtime failed to run the model");
  return ESR_OK;
fail:
  release_values(b->api, c);
  return st;
}

static const esr_backend_ops k_ort_ops = {"onnxruntime", ort_stream_create, ort_run,
                                           ort_stream_destroy, ort_destroy};

static char* dup_and_free(const OrtApi* api, OrtAllocator* alloc, char* s) {
  size_t n = strlen(s) + 1;
  char* copy = (char*)malloc(n);
  OrtStatus* status;
  if (copy) memcpy(copy, s, n);
  status = api->AllocatorFree(alloc, s);
  if (status != NULL) api->ReleaseStatus(status);
  return copy;
}

/* Reads one metadata_props value ("" → NULL) into a malloc'ed string. */
static esr_status lookup_meta(ort_backend* b, OrtModelMetadata* md, OrtAllocator* alloc,
                              const char* key, char** value) {
  char* v = NULL;
  OrtStatus* s = b->api->ModelMetadataLookupCustomMetadataMap(md, alloc, key, &v);
  *value = NULL;
  if (s != NULL) return ort_fail(b->api, s, ESR_ERR_MODEL_METADATA, "reading model metadata");
  if (v == NULL) return ESR_OK;
  *value = dup_and_free(b->api, alloc, v);
  return *value ? ESR_OK : esr__fail(ESR_ERR_OUT_OF_MEMORY, "copying metadata");
}

/* Do ORT's u8 x s8 kernels accumulate in int32 here? ARM: yes; x86: only with VNNI (without
 * it VPMADDUBSW saturates pairs in int16); anything else: assume not. */
static int cpu_int8_is_exact(void) {
#if defined(__aarch64__)
  return 1;
#elif (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_cpu_init();
#if defined(__clang__) && __clang_major__ < 15
  /* clang < 15 has no "avxvnni" feature name: such CPUs (AVX-VNNI without AVX512-VNNI) then
   * get ORT's exact kernels, which is slower but gives the same numbers. */
  return __builtin_cpu_supports("avx512vnni");
#else
  return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
#endif
#else
  return 0;
#endif
}

/* Creates b->session from the path or the bytes of `src`. */
static esr_status open_session(ort_backend* b, const esr_model_source* src,
                               const OrtSessionOptions* so) {
  esr_status st = ESR_OK;
  if (src->path != NULL) {
    ORT_TRY(b->api->CreateSession(b->env, src->path, so, &b->session), ESR_ERR_MODEL_LOAD,
            "ONNX Runtime cannot load the model (corrupt, not ONNX, or unsupported)");
  } else {
    ORT_TRY(b->api->CreateSessionFromArray(b->env, src->data, src->size, so, &b->session),
            ESR_ERR_MODEL_LOAD,
            "ONNX Runtime cannot load the model (corrupt, not ONNX, or unsupported)");
  }
fail:
  return st;
}

/* Checks one model input or output: a float32 tensor of rank 4 whose channel dimension, if
 * fixed, is `channels`. */
static esr_status check_io(ort_backend* b, int is_input, size_t channels, int64_t dims[4]) {
  OrtTypeInfo* ti = NULL;
  const OrtTensorTypeAndShapeInfo* tsi = NULL;
  enum ONNXType type;
  ONNXTensorElementDataType elem;
  size_t rank = 0;
  esr_status st = ESR_OK;
  const char* what = is_input ? "input" : "output";
  ORT_TRY(is_input ? b->api->SessionGetInputTypeInfo(b->session, 0, &ti)
                   : b->api->SessionGetOutputTypeInfo(b->session, 0, &ti),
          ESR_ERR_MODEL_LOAD, "reading the model's signature");
  ORT_TRY(b->api->GetOnnxTypeFromTypeInfo(ti, &type), ESR_ERR_MODEL_LOAD, "reading a type");
  if (type != ONNX_TYPE_TENSOR) {
    st = esr__fail(ESR_ERR_MODEL_MISMATCH, "the model's %s is not a tensor", what);
    goto fail;
  }
  ORT_TRY(b->api->CastTypeInfoToTensorInfo(ti, &tsi), ESR_ERR_MODEL_LOAD, "reading a type");
  ORT_TRY(b->api->GetTensorElementType(tsi, &elem), ESR_ERR_MODEL_LOAD, "reading a type");
  ORT_TRY(b->api->GetDimensionsCount(tsi, &rank), ESR_ERR_MODEL_LOAD, "reading a shape");
  if (elem != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || rank != 4) {
    st = esr__fail(ESR_ERR_MODEL_MISMATCH,
                   "the model's %s must be float32 [N,C,H,W] (edgesr export writes that); got "
                   "element type %d, rank %zu",
                   what, (int)elem, rank);
    goto fail;
  }
  ORT_TRY(b->api->GetDimensions(tsi, dims, 4), ESR_ERR_MODEL_LOAD, "reading a shape");
  if (dims[1] > 0 && (size_t)dims[1] != channels) {
    st = esr__fail(ESR_ERR_MODEL_METADATA,
                   "the model's %s has %lld channels but edgesr.color says %zu", what,
                   (long long)dims[1], channels);
    goto fail;
  }
fail:
  if (ti) b->api->ReleaseTypeInfo(ti);
  return st;
}

/* ONNX Runtime's own log, into libedgesr's log callback. */
static void ort_log(void* param, OrtLoggingLevel severity, const char* category, const char* logid,
                    const char* code_location, const char* message) {
  esr_log_level level = severity >= ORT_LOGGING_LEVEL_ERROR     ? ESR_LOG_ERROR
                        : severity == ORT_LOGGING_LEVEL_WARNING ? ESR_LOG_WARNING
                        : severity == ORT_LOGGING_LEVEL_INFO    ? ESR_LOG_INFO
                                                                : ESR_LOG_DEBUG;
  (void)param;
  (void)category;
  (void)logid;
  (void)code_location;
  esr__log(level, "onnxruntime: %s", message);
}

/* A static dimension of an I/O shape, or the range a dynamic one may take. */
static void dim_limits(int64_t d, uint64_t* lo, uint64_t* hi) {
  *lo = d > 0 ? (uint64_t)d : 1;
  *hi = d > 0 ? (uint64_t)d : UINT64_MAX;
}

esr_status esr__ort_create(const esr_model_source* src, const esr_options* opts, void** impl,
                           const esr_backend_ops** ops, esr_model_meta* meta) {
  const OrtApiBase* base = OrtGetApiBase();
  OrtSessionOptions* so = NULL;
  OrtModelMetadata* md = NULL;
  OrtAllocator* alloc = NULL;
  char* scale_text = NULL;
  char* color_text = NULL;
  char* portable_text = NULL;
  char* precision_text = NULL;
  char* name = NULL;
  size_t n_in = 0, n_out = 0;
  esr_status st = ESR_OK;
  ort_backend* b;

  if (src->path != NULL) {
    struct stat sb;
    if (stat(src->path, &sb) != 0) {
      return esr__fail(ESR_ERR_MODEL_LOAD, "model file '%s' does not exist", src->path);
    }
    if (!S_ISREG(sb.st_mode)) {
      return esr__fail(ESR_ERR_MODEL_LOAD, "model path '%s' is not a regular file", src->path);
    }
  }
  b = (ort_backend*)calloc(1, sizeof *b);
  if (b == NULL) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate the ORT backend");
  /* Ask for the API version of the headers we compiled against; a newer runtime serves it. */
  b->api = base->GetApi(ORT_API_VERSION);
  if (b->api == NULL) {
    free(b);
    return esr__fail(ESR_ERR_BACKEND_UNAVAILABLE,
                     "the ONNX Runtime library loaded (%s) does not serve C API version %d; use "
                     "a runtime at least as new as the headers libedgesr was built with",
                     base->GetVersionString(), ORT_API_VERSION);
  }
  /* ORT keeps one environment per process and reference-counts it, so one per model is fine;
   * the logger only takes effect if this call creates it (nothing else in the process has). */
  ORT_TRY(b->api->CreateEnvWithCustomLogger(ort_log, NULL, ORT_LOGGING_LEVEL_WARNING, "edgesr",
                                            &b->env),
          ESR_ERR_BACKEND_UNAVAILABLE, "creating the ONNX Runtime environment");
  ORT_TRY(b->api->CreateSessionOptions(&so), ESR_ERR_OUT_OF_MEMORY, "creating session options");
  ORT_TRY(b->api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), ESR_ERR_RUNTIME,
          "setting the optimisation level");
  ORT_TRY(b->api->SetSessionExecutionMode(so, ORT_SEQUENTIAL), ESR_ERR_RUNTIME,
          "setting sequential execution");
  if (opts->num_threads > 0) {
    ORT_TRY(b->api->SetIntraOpNumThreads(so, opts->num_threads), ESR_ERR_INVALID_ARGUMENT,
            "setting intra-op threads");
    ORT_TRY(b->api->SetInterOpNumThreads(so, 1), ESR_ERR_INVALID_ARGUMENT,
            "setting inter-op threads");
  }
  if (opts->intra_op_spinning >= 0) {
    ORT_TRY(b->api->AddSessionConfigEntry(so, "session.intra_op.allow_spinning",
                                          opts->intra_op_spinning ? "1" : "0"),
            ESR_ERR_RUNTIME, "setting intra-op spinning");
  }
  /* Keep the convs a mixed-precision INT8 model leaves in float in float: ORT >= 1.21 would
   * otherwise re-quantize their weights per tensor (same setting as the Python runners). */
  ORT_TRY(b->api->AddSessionConfigEntry(so, "optimization.disable_specified_optimizers",
                                        "WeightBiasQuantization"),
          ESR_ERR_RUNTIME, "setting the session configuration");
  if ((st = open_session(b, src, so)) != ESR_OK) goto fail;

  ORT_TRY(b->api->GetAllocatorWithDefaultOptions(&alloc), ESR_ERR_RUNTIME, "getting allocator");
  ORT_TRY(b->api->SessionGetModelMetadata(b->session, &md), ESR_ERR_MODEL_METADATA,
          "reading model metadata");
  if ((st = lookup_meta(b, md, alloc, "edgesr.scale", &scale_text)) != ESR_OK) goto fail;
  if ((st = lookup_meta(b, md, alloc, "edgesr.color", &color_text)) != ESR_OK) goto fail;
  if (scale_text == NULL || color_text == NULL) {
    st = esr__fail(ESR_ERR_MODEL_METADATA,
                   "the model has no edgesr metadata (%s missing); export it with `edgesr "
                   "export` so its scale and colour convention are recorded",
                   scale_text == NULL ? "edgesr.scale" : "edgesr.color");
    goto fail;
  }
  if ((st = esr__parse_scale(scale_text, &meta->scale)) != ESR_OK) goto fail;
  if ((st = esr__parse_color(color_text, &meta->color)) != ESR_OK) goto fail;
  if ((st = lookup_meta(b, md, alloc, "edgesr.precision", &precision_text)) != ESR_OK) goto fail;
  snprintf(meta->precision, sizeof meta->precision, "%s", precision_text ? precision_text : "");
  /* An INT8 model whose weights can saturate the u8 x s8 kernels of x86 CPUs without VNNI
   * (edgesr writes edgesr.int8_portable = false for those; its ORT-CPU models are 7-bit and
   * "true") gets ORT's exact kernels on such a CPU, as the Python runner does: the same result
   * on every CPU. They are slow (5x on ESPCN x4), so CPUs that need none keep the default.
   * The option only exists at session creation, so the session is made again. */
  if ((st = lookup_meta(b, md, alloc, "edgesr.int8_portable", &portable_text)) != ESR_OK)
    goto fail;
  if (portable_text != NULL && strcmp(portable_text, "false") == 0 && !cpu_int8_is_exact()) {
    esr__log(ESR_LOG_WARNING,
             "this CPU has no VNNI: the INT8 model runs ONNX Runtime's exact (slower) kernels");
    b->api->ReleaseModelMetadata(md);
    md = NULL;
    b->api->ReleaseSession(b->session);
    b->session = NULL;
    ORT_TRY(b->api->AddSessionConfigEntry(so, "session.x64quantprecision", "1"), ESR_ERR_RUNTIME,
            "setting the session configuration");
    if ((st = open_session(b, src, so)) != ESR_OK) goto fail;
  }

  ORT_TRY(b->api->SessionGetInputCount(b->session, &n_in), ESR_ERR_MODEL_LOAD, "counting inputs");
  ORT_TRY(b->api->SessionGetOutputCount(b->session, &n_out), ESR_ERR_MODEL_LOAD,
          "counting outputs");
  if (n_in != 1 || n_out != 1) {
    st = esr__fail(ESR_ERR_MODEL_MISMATCH,
                   "an edgesr model has one input and one output; this one has %zu and %zu", n_in,
                   n_out);
    goto fail;
  }
  if ((st = check_io(b, 1, meta->color == ESR_COLOR_RGB ? 3 : 1, meta->in_shape)) != ESR_OK)
    goto fail;
  if ((st = check_io(b, 0, meta->color == ESR_COLOR_RGB ? 3 : 1, meta->out_shape)) != ESR_OK)
    goto fail;
  dim_limits(meta->in_shape[3], &meta->min_w, &meta->max_w);
  dim_limits(meta->in_shape[2], &meta->min_h, &meta->max_h);
  ORT_TRY(b->api->SessionGetInputName(b->session, 0, alloc, &name), ESR_ERR_MODEL_LOAD,
          "reading the input name");
  b->input_name = dup_and_free(b->api, alloc, name);
  ORT_TRY(b->api->SessionGetOutputName(b->session, 0, alloc, &name), ESR_ERR_MODEL_LOAD,
          "reading the output name");
  b->output_name = dup_and_free(b->api, alloc, name);
  if (b->input_name == NULL || b->output_name == NULL) {
    st = esr__fail(ESR_ERR_OUT_OF_MEMORY, "copying tensor names");
    goto fail;
  }
  ORT_TRY(b->api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &b->mem),
          ESR_ERR_RUNTIME, "creating CPU memory info");

  free(scale_text);
  free(color_text);
  free(portable_text);
  free(precision_text);
  if (md) b->api->ReleaseModelMetadata(md);
  b->api->ReleaseSessionOptions(so);
  *impl = b;
  *ops = &k_ort_ops;
  return ESR_OK;

fail:
  free(scale_text);
  free(color_text);
  free(portable_text);
  free(precision_text);
  if (md) b->api->ReleaseModelMetadata(md);
  if (so) b->api->ReleaseSessionOptions(so);
  ort_destroy(b);
  return st;
}
