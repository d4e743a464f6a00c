/* The public API: argument checks, size arithmetic, pixel conversion and chroma resampling.
 * Backends only ever see contiguous float32 NCHW tensors. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ESR_STR2(x) #x
#define ESR_STR(x) ESR_STR2(x)

#if defined(_MSC_VER)
#define ESR_THREAD_LOCAL __declspec(thread)
#else
#define ESR_THREAD_LOCAL __thread /* C99 has no _Thread_local; GCC and Clang have this */
#endif

static ESR_THREAD_LOCAL char g_last_error[1024];

esr_status esr__fail(esr_status status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
  va_end(ap);
  return status;
}

const char* esr_last_error(void) { return g_last_error; }

const char* esr_version(void) {
  return ESR_STR(ESR_VERSION_MAJOR) "." ESR_STR(ESR_VERSION_MINOR) "." ESR_STR(
      ESR_VERSION_PATCH) " (backends: onnxruntime"
#ifdef EDGESR_HAVE_TENSORRT
                         ",tensorrt"
#endif
                         ")";
}

esr_options esr_default_options(void) {
  esr_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = (uint32_t)sizeof o;
  o.backend = ESR_BACKEND_ONNXRUNTIME;
  o.num_threads = 0;
  o.device_id = 0;
  return o;
}

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

/* ---- the engine ---- */

/* A grow-only, 64-byte aligned buffer: reallocated only when a larger frame arrives. */
typedef struct esr_buffer {
  void* data;
  size_t cap;
} esr_buffer;

struct esr_engine {
  const esr_backend_ops* ops;
  void* impl;
  esr_model_meta meta;
  size_t channels;
  uint64_t allocs;
  esr_buffer in, out;                   /* model input / output floats */
  esr_buffer cb, cr, cb_up, cr_up;      /* RGB frames on a Y model: chroma planes */
  esr_buffer taps;                      /* NV12 bilinear tap tables */
  size_t taps_w, taps_h;                /* chroma input size the tables were built for */
};

static esr_status buffer_reserve(esr_engine* e, esr_buffer* b, size_t bytes) {
  void* p = NULL;
  if (b->cap >= bytes) return ESR_OK;
  if (posix_memalign(&p, 64, bytes) != 0 || p == NULL) {
    return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for a frame buffer", bytes);
  }
  free(b->data);
  b->data = p;
  b->cap = bytes;
  ++e->allocs;
  return ESR_OK;
}

static void buffer_free(esr_buffer* b) {
  free(b->data);
  b->data = NULL;
  b->cap = 0;
}

static esr_status read_options(const esr_options* in, esr_options* out) {
  *out = esr_default_options();
  if (in == NULL) return ESR_OK;
  /* Older callers pass a shorter struct: take what they have, keep defaults for the rest. */
  if (in->struct_size < offsetof(esr_options, backend) + sizeof in->backend ||
      in->struct_size > 4096) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "esr_options.struct_size is %u; initialise options with esr_default_options()",
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
  return ESR_OK;
}

static esr_status engine_create(const esr_model_source* src, const esr_options* options,
                                esr_engine** out_engine) {
  esr_options opts;
  esr_engine* e;
  esr_status st;
  if (out_engine == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "out_engine is NULL");
  *out_engine = NULL;
  st = read_options(options, &opts);
  if (st != ESR_OK) return st;
  e = (esr_engine*)calloc(1, sizeof *e);
  if (e == NULL) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate an engine");
  e->allocs = 1;
  if (opts.backend == ESR_BACKEND_ONNXRUNTIME) {
    st = esr__ort_create(src, &opts, &e->impl, &e->ops, &e->meta, &e->allocs);
  } else {
#ifdef EDGESR_HAVE_TENSORRT
    st = esr__trt_create(src, &opts, &e->impl, &e->ops, &e->meta, &e->allocs);
#else
    st = esr__fail(ESR_ERR_BACKEND_UNAVAILABLE,
                   "this libedgesr was built without TensorRT; rebuild with "
                   "-DEDGESR_WITH_TENSORRT=ON on a machine with TensorRT and CUDA");
#endif
  }
  if (st != ESR_OK) {
    free(e);
    return st;
  }
  e->channels = e->meta.color == ESR_COLOR_RGB ? 3 : 1;
  *out_engine = e;
  return ESR_OK;
}

esr_status esr_engine_create(const char* model_path, const esr_options* options,
                             esr_engine** out_engine) {
  esr_model_source src;
  if (out_engine != NULL) *out_engine = NULL;
  if (model_path == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model_path is NULL");
  src.path = model_path;
  src.data = NULL;
  src.size = 0;
  return engine_create(&src, options, out_engine);
}

esr_status esr_engine_create_from_memory(const void* data, size_t size,
                                         const esr_options* options, esr_engine** out_engine) {
  esr_model_source src;
  if (out_engine != NULL) *out_engine = NULL;
  if (data == NULL || size == 0) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model data is NULL or empty");
  }
  src.path = NULL;
  src.data = data;
  src.size = size;
  return engine_create(&src, options, out_engine);
}

void esr_engine_destroy(esr_engine* e) {
  if (e == NULL) return;
  if (e->ops != NULL) e->ops->destroy(e->impl);
  buffer_free(&e->in);
  buffer_free(&e->out);
  buffer_free(&e->cb);
  buffer_free(&e->cr);
  buffer_free(&e->cb_up);
  buffer_free(&e->cr_up);
  buffer_free(&e->taps);
  free(e);
}

uint64_t esr_engine_allocation_count(const esr_engine* e) { return e ? e->allocs : 0; }

esr_status esr_engine_info(const esr_engine* e, int32_t* scale, esr_color* color) {
  if (e == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "engine is NULL");
  if (scale != NULL) *scale = e->meta.scale;
  if (color != NULL) *color = e->meta.color;
  return ESR_OK;
}

/* ---- checked size arithmetic ---- */

static int mul_ok(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

/* Backends take int64 dimensions; keep every element count within int64 as well. */
#define ESR_MAX_ELEMENTS ((size_t)(INT64_MAX / 16) < SIZE_MAX ? (size_t)(INT64_MAX / 16) : SIZE_MAX)

static esr_status out_size(const esr_engine* e, size_t w, size_t h, size_t* ow, size_t* oh) {
  size_t s = (size_t)e->meta.scale;
  *ow = *oh = 0;
  if (w == 0 || h == 0) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "frame size %zux%zu has a zero dimension", w, h);
  }
  if (!mul_ok(w, s, ow) || !mul_ok(h, s, oh)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "output size of %zux%zu at x%zu overflows", w, h, s);
  }
  return ESR_OK;
}

esr_status esr_output_size(const esr_engine* e, size_t in_w, size_t in_h, size_t* out_w,
                           size_t* out_h) {
  size_t ow = 0, oh = 0;
  esr_status st;
  if (e == NULL || out_w == NULL || out_h == NULL) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "engine, out_w or out_h is NULL");
  }
  st = out_size(e, in_w, in_h, &ow, &oh);
  if (st != ESR_OK) return st;
  *out_w = ow;
  *out_h = oh;
  return ESR_OK;
}

/* Checks a tensor of n*c*h*w floats (and the ow*oh output) and returns the byte counts. */
static esr_status tensor_bytes(size_t n, size_t c, size_t w, size_t h, size_t ow, size_t oh,
                               size_t* in_bytes, size_t* out_bytes) {
  size_t in_elems = 0, out_elems = 0, t = 0;
  *in_bytes = *out_bytes = 0;
  if (!mul_ok(n, c, &t) || !mul_ok(t, w, &t) || !mul_ok(t, h, &in_elems) ||
      !mul_ok(n * c, ow, &t) || !mul_ok(t, oh, &out_elems) || in_elems > ESR_MAX_ELEMENTS ||
      out_elems > ESR_MAX_ELEMENTS) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW,
                     "a %zux%zux%zux%zu frame (output %zux%zu) is too large to address", n, c, h, w,
                     oh, ow);
  }
  *in_bytes = in_elems * sizeof(float);
  *out_bytes = out_elems * sizeof(float);
  return ESR_OK;
}

/* A plane of `rows` rows of `row_bytes` bytes, `stride` apart: checks stride and addressing. */
static esr_status check_plane(const char* what, const void* p, size_t row_bytes, size_t rows,
                              size_t stride) {
  size_t last;
  if (p == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s is NULL", what);
  if (stride < row_bytes) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s stride %zu is smaller than its row (%zu bytes)",
                     what, stride, row_bytes);
  }
  if (!mul_ok(rows - 1, stride, &last) || last > SIZE_MAX - row_bytes) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "%s of %zu rows of stride %zu overflows", what, rows,
                     stride);
  }
  return ESR_OK;
}

static esr_status run_model(esr_engine* e, const float* in, float* out, size_t n, size_t c,
                            size_t w, size_t h) {
  int64_t in_shape[4], out_shape[4];
  in_shape[0] = (int64_t)n;
  in_shape[1] = (int64_t)c;
  in_shape[2] = (int64_t)h;
  in_shape[3] = (int64_t)w;
  out_shape[0] = (int64_t)n;
  out_shape[1] = (int64_t)c;
  out_shape[2] = (int64_t)h * e->meta.scale;
  out_shape[3] = (int64_t)w * e->meta.scale;
  return e->ops->run(e->impl, in, in_shape, out, out_shape);
}

/* ---- pixel conversion ---- */

/* u8 -> float as v / 255.0f: a constant table of the exactly rounded quotients (the compiler
 * evaluates each division once, with IEEE rounding, so it equals the division at run time). */
#define ESR_L1(i) (float)(i) / 255.0f
#define ESR_L4(i) ESR_L1(i), ESR_L1((i) + 1), ESR_L1((i) + 2), ESR_L1((i) + 3)
#define ESR_L16(i) ESR_L4(i), ESR_L4((i) + 4), ESR_L4((i) + 8), ESR_L4((i) + 12)
#define ESR_L64(i) ESR_L16(i), ESR_L16((i) + 16), ESR_L16((i) + 32), ESR_L16((i) + 48)
static const float g_u8_to_f32[256] = {ESR_L64(0), ESR_L64(64), ESR_L64(128), ESR_L64(192)};

static uint8_t f32_to_u8(float v) {
  /* floor(clamp(v) * 255 + 0.5) in double, as edgesr.data.color.to_uint8 (float32 * 255 is
   * exact in double, so this rounds the true value); NaN fails `> 0` and becomes 0. Written
   * with selects instead of branches so the per-pixel loops vectorise. */
  double x = (double)v;
  x = x > 0.0 ? x : 0.0;
  x = x < 1.0 ? x : 1.0;
  return (uint8_t)(int32_t)(x * 255.0 + 0.5);
}

static void plane_u8_to_f32(const uint8_t* src, size_t w, size_t h, size_t stride, float* dst) {
  size_t x, y;
  for (y = 0; y < h; ++y) {
    const uint8_t* row = src + y * stride;
    float* d = dst + y * w;
    for (x = 0; x < w; ++x) d[x] = g_u8_to_f32[row[x]];
  }
}

/* The float -> u8 pass touches every output pixel (2 M for a 1080p frame): an AVX2 clone halves
 * it (~1.9 -> ~1.0 ms on x86-64) and the loader picks the clone the CPU supports. Both clones
 * compute the same doubles, so results do not depend on the CPU. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define ESR_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ESR_SIMD_CLONES
#endif

ESR_SIMD_CLONES
static void plane_f32_to_u8(const float* src, size_t w, size_t h, uint8_t* dst, size_t stride) {
  size_t x, y;
  for (y = 0; y < h; ++y) {
    const float* s = src + y * w;
    uint8_t* row = dst + y * stride;
    for (x = 0; x < w; ++x) row[x] = f32_to_u8(s[x]);
  }
}

/* Prepares the model's input/output buffers for a single-image frame of c x h x w. */
static esr_status frame_buffers(esr_engine* e, size_t c, size_t w, size_t h, size_t ow,
                                size_t oh) {
  size_t in_bytes = 0, out_bytes = 0;
  esr_status st = tensor_bytes(1, c, w, h, ow, oh, &in_bytes, &out_bytes);
  if (st != ESR_OK) return st;
  st = buffer_reserve(e, &e->in, in_bytes);
  if (st != ESR_OK) return st;
  return buffer_reserve(e, &e->out, out_bytes);
}

static esr_status need_y_model(const esr_engine* e, const char* call) {
  if (e->meta.color != ESR_COLOR_Y_BT601) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH,
                     "%s needs a y_bt601 model; this model is rgb (use esr_upscale_rgb_u8 or "
                     "esr_upscale_f32)",
                     call);
  }
  return ESR_OK;
}

esr_status esr_upscale_y_u8(esr_engine* e, const uint8_t* src, size_t width, size_t height,
                            size_t src_stride, uint8_t* dst, size_t dst_stride) {
  size_t ow = 0, oh = 0;
  esr_status st;
  if (e == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "engine is NULL");
  if ((st = need_y_model(e, "esr_upscale_y_u8")) != ESR_OK) return st;
  if ((st = out_size(e, width, height, &ow, &oh)) != ESR_OK) return st;
  if ((st = check_plane("src", src, width, height, src_stride)) != ESR_OK) return st;
  if ((st = check_plane("dst", dst, ow, oh, dst_stride)) != ESR_OK) return st;
  if ((st = frame_buffers(e, 1, width, height, ow, oh)) != ESR_OK) return st;
  plane_u8_to_f32(src, width, height, src_stride, (float*)e->in.data);
  if ((st = run_model(e, (const float*)e->in.data, (float*)e->out.data, 1, 1, width, height)) !=
      ESR_OK) {
    return st;
  }
  plane_f32_to_u8((const float*)e->out.data, ow, oh, dst, dst_stride);
  return ESR_OK;
}

/* ---- chroma ---- */

/* One output coordinate's bilinear taps at integer scale s, centre-aligned:
 * source position (o + 0.5) / s - 0.5 = (2o + 1 - s) / (2s); weight of i1 is frac / (2s). */
typedef struct esr_tap {
  uint32_t i0, i1;
  uint32_t frac; /* 0 .. 2s-1 */
} esr_tap;

static void build_taps(esr_tap* taps, size_t n_out, size_t n_in, size_t s) {
  size_t o;
  const long long d = 2 * (long long)s;
  for (o = 0; o < n_out; ++o) {
    long long num = 2 * (long long)o + 1 - (long long)s;
    long long i0 = num >= 0 ? num / d : -((-num + d - 1) / d); /* floor division */
    long long frac = num - i0 * d;
    long long i1 = i0 + 1;
    if (i0 < 0) i0 = 0;
    if (i1 < 0) i1 = 0;
    if (i0 > (long long)n_in - 1) i0 = (long long)n_in - 1;
    if (i1 > (long long)n_in - 1) i1 = (long long)n_in - 1;
    taps[o].i0 = (uint32_t)i0;
    taps[o].i1 = (uint32_t)i1;
    taps[o].frac = (uint32_t)frac;
  }
}

/* Interleaved UV (cw x ch pairs) -> (cw*s x ch*s pairs), integer bilinear, rounded half up. */
static void upsample_uv(const esr_tap* tx, const esr_tap* ty, const uint8_t* src, size_t src_stride,
                        size_t ow, size_t oh, size_t s, uint8_t* dst, size_t dst_stride) {
  const uint32_t d = (uint32_t)(2 * s), dd = d * d;
  size_t x, y;
  int k;
  for (y = 0; y < oh; ++y) {
    const uint8_t* r0 = src + ty[y].i0 * src_stride;
    const uint8_t* r1 = src + ty[y].i1 * src_stride;
    const uint32_t fy = ty[y].frac, gy = d - fy;
    uint8_t* out = dst + y * dst_stride;
    for (x = 0; x < ow; ++x) {
      const uint32_t fx = tx[x].frac, gx = d - fx;
      const size_t a = 2 * (size_t)tx[x].i0, b = 2 * (size_t)tx[x].i1;
      for (k = 0; k < 2; ++k) {
        uint32_t top = gx * r0[a + k] + fx * r0[b + k];
        uint32_t bot = gx * r1[a + k] + fx * r1[b + k];
        out[2 * x + k] = (uint8_t)((gy * top + fy * bot + dd / 2) / dd);
      }
    }
  }
}

esr_status esr_upscale_nv12(esr_engine* e, const uint8_t* src_y, size_t src_y_stride,
                            const uint8_t* src_uv, size_t src_uv_stride, size_t width,
                            size_t height, uint8_t* dst_y, size_t dst_y_stride, uint8_t* dst_uv,
                            size_t dst_uv_stride) {
  size_t ow = 0, oh = 0, cw, ch, n_taps, taps_bytes = 0;
  size_t s;
  esr_tap *tx, *ty;
  esr_status st;
  if (e == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "engine is NULL");
  if ((st = need_y_model(e, "esr_upscale_nv12")) != ESR_OK) return st;
  if ((st = out_size(e, width, height, &ow, &oh)) != ESR_OK) return st;
  if ((width & 1u) != 0 || (height & 1u) != 0) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "NV12 needs an even width and height, got %zux%zu",
                     width, height);
  }
  if ((st = check_plane("src_y", src_y, width, height, src_y_stride)) != ESR_OK) return st;
  if ((st = check_plane("src_uv", src_uv, width, height / 2, src_uv_stride)) != ESR_OK) return st;
  if ((st = check_plane("dst_y", dst_y, ow, oh, dst_y_stride)) != ESR_OK) return st;
  if ((st = check_plane("dst_uv", dst_uv, ow, oh / 2, dst_uv_stride)) != ESR_OK) return st;
  if ((st = frame_buffers(e, 1, width, height, ow, oh)) != ESR_OK) return st;
  s = (size_t)e->meta.scale;
  cw = width / 2;
  ch = height / 2;
  if (cw > UINT32_MAX || ch > UINT32_MAX) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "NV12 chroma of %zux%zu is too large", cw, ch);
  }
  /* ow/2 + oh/2 taps; ow, oh are already known not to overflow. */
  n_taps = ow / 2 + oh / 2;
  if (!mul_ok(n_taps, sizeof(esr_tap), &taps_bytes)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "NV12 chroma tables overflow");
  }
  if ((st = buffer_reserve(e, &e->taps, taps_bytes)) != ESR_OK) return st;
  tx = (esr_tap*)e->taps.data;
  ty = tx + ow / 2;
  if (e->taps_w != cw || e->taps_h != ch) {
    build_taps(tx, ow / 2, cw, s);
    build_taps(ty, oh / 2, ch, s);
    e->taps_w = cw;
    e->taps_h = ch;
  }
  plane_u8_to_f32(src_y, width, height, src_y_stride, (float*)e->in.data);
  if ((st = run_model(e, (const float*)e->in.data, (float*)e->out.data, 1, 1, width, height)) !=
      ESR_OK) {
    return st;
  }
  plane_f32_to_u8((const float*)e->out.data, ow, oh, dst_y, dst_y_stride);
  upsample_uv(tx, ty, src_uv, src_uv_stride, ow / 2, oh / 2, s, dst_uv, dst_uv_stride);
  return ESR_OK;
}

/* ---- RGB ---- */

/* BT.601 studio range as MATLAB rgb2ycbcr for [0,1] input (rows Y, Cb, Cr), see
 * edgesr/data/color.py; the inverse is computed, not copied as rounded constants. */
static const double k_rgb2ycc[3][3] = {
    {65.481, 128.553, 24.966}, {-37.797, -74.203, 112.0}, {112.0, -93.786, -18.214}};
static const double k_ycc_offset[3] = {16.0, 128.0, 128.0};

static void invert3(const double m[3][3], double inv[3][3]) {
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  int i, j;
  for (i = 0; i < 3; ++i) {
    for (j = 0; j < 3; ++j) {
      /* cofactor of m[j][i] (transposed) */
      const int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
      inv[i][j] = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) / det;
    }
  }
}

/* Float bilinear upsampling of one plane by integer s (centre-aligned, clamped edges). */
static void upsample_plane_f32(const float* src, size_t w, size_t h, size_t s, float* dst) {
  const size_t ow = w * s, oh = h * s;
  size_t x, y;
  for (y = 0; y < oh; ++y) {
    double sy = ((double)y + 0.5) / (double)s - 0.5;
    double fy0 = floor(sy), fy = sy - fy0;
    long long y0 = (long long)fy0, y1 = y0 + 1;
    if (y0 < 0) y0 = 0;
    if (y1 > (long long)h - 1) y1 = (long long)h - 1;
    if (y0 > (long long)h - 1) y0 = (long long)h - 1;
    for (x = 0; x < ow; ++x) {
      double sx = ((double)x + 0.5) / (double)s - 0.5;
      double fx0 = floor(sx), fx = sx - fx0;
      long long x0 = (long long)fx0, x1 = x0 + 1;
      const float* r0 = src + (size_t)y0 * w;
      const float* r1 = src + (size_t)y1 * w;
      if (x0 < 0) x0 = 0;
      if (x1 > (long long)w - 1) x1 = (long long)w - 1;
      if (x0 > (long long)w - 1) x0 = (long long)w - 1;
      dst[y * ow + x] = (float)((1 - fy) * ((1 - fx) * r0[x0] + fx * r0[x1]) +
                                fy * ((1 - fx) * r1[x0] + fx * r1[x1]));
    }
  }
}

esr_status esr_upscale_rgb_u8(esr_engine* e, const uint8_t* src, size_t width, size_t height,
                              size_t src_stride, uint8_t* dst, size_t dst_stride) {
  size_t ow = 0, oh = 0, row_in = 0, row_out = 0, plane, oplane, x, y, in_bytes = 0, out_bytes = 0;
  float *in, *out;
  esr_status st;
  if (e == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "engine is NULL");
  if ((st = out_size(e, width, height, &ow, &oh)) != ESR_OK) return st;
  if (!mul_ok(width, 3, &row_in) || !mul_ok(ow, 3, &row_out)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "RGB row of %zu pixels overflows", ow);
  }
  if ((st = check_plane("src", src, row_in, height, src_stride)) != ESR_OK) return st;
  if ((st = check_plane("dst", dst, row_out, oh, dst_stride)) != ESR_OK) return st;
  if ((st = tensor_bytes(1, 3, width, height, ow, oh, &in_bytes, &out_bytes)) != ESR_OK) return st;
  if ((st = frame_buffers(e, e->channels, width, height, ow, oh)) != ESR_OK) return st;
  plane = width * height;
  oplane = ow * oh;
  in = (float*)e->in.data;
  out = (float*)e->out.data;
  if (e->meta.color == ESR_COLOR_RGB) {
    for (y = 0; y < height; ++y) {
      const uint8_t* row = src + y * src_stride;
      for (x = 0; x < width; ++x) {
        in[y * width + x] = g_u8_to_f32[row[3 * x]];
        in[plane + y * width + x] = g_u8_to_f32[row[3 * x + 1]];
        in[2 * plane + y * width + x] = g_u8_to_f32[row[3 * x + 2]];
      }
    }
    if ((st = run_model(e, in, out, 1, 3, width, height)) != ESR_OK) return st;
    for (y = 0; y < oh; ++y) {
      uint8_t* row = dst + y * dst_stride;
      for (x = 0; x < ow; ++x) {
        row[3 * x] = f32_to_u8(out[y * ow + x]);
        row[3 * x + 1] = f32_to_u8(out[oplane + y * ow + x]);
        row[3 * x + 2] = f32_to_u8(out[2 * oplane + y * ow + x]);
      }
    }
    return ESR_OK;
  } else {
    double inv[3][3];
    float *cb, *cr, *cbu, *cru;
    if ((st = buffer_reserve(e, &e->cb, in_bytes / 3)) != ESR_OK) return st;
    if ((st = buffer_reserve(e, &e->cr, in_bytes / 3)) != ESR_OK) return st;
    if ((st = buffer_reserve(e, &e->cb_up, out_bytes / 3)) != ESR_OK) return st;
    if ((st = buffer_reserve(e, &e->cr_up, out_bytes / 3)) != ESR_OK) return st;
    cb = (float*)e->cb.data;
    cr = (float*)e->cr.data;
    cbu = (float*)e->cb_up.data;
    cru = (float*)e->cr_up.data;
    for (y = 0; y < height; ++y) {
      const uint8_t* row = src + y * src_stride;
      for (x = 0; x < width; ++x) {
        const double r = g_u8_to_f32[row[3 * x]], g = g_u8_to_f32[row[3 * x + 1]],
                     b = g_u8_to_f32[row[3 * x + 2]];
        const size_t i = y * width + x;
        in[i] = (float)((k_rgb2ycc[0][0] * r + k_rgb2ycc[0][1] * g + k_rgb2ycc[0][2] * b +
                         k_ycc_offset[0]) / 255.0);
        cb[i] = (float)((k_rgb2ycc[1][0] * r + k_rgb2ycc[1][1] * g + k_rgb2ycc[1][2] * b +
                         k_ycc_offset[1]) / 255.0);
        cr[i] = (float)((k_rgb2ycc[2][0] * r + k_rgb2ycc[2][1] * g + k_rgb2ycc[2][2] * b +
                         k_ycc_offset[2]) / 255.0);
      }
    }
    if ((st = run_model(e, in, out, 1, 1, width, height)) != ESR_OK) return st;
    upsample_plane_f32(cb, width, height, (size_t)e->meta.scale, cbu);
    upsample_plane_f32(cr, width, height, (size_t)e->meta.scale, cru);
    invert3(k_rgb2ycc, inv);
    for (y = 0; y < oh; ++y) {
      uint8_t* row = dst + y * dst_stride;
      for (x = 0; x < ow; ++x) {
        const size_t i = y * ow + x;
        const double yy = (double)out[i] * 255.0 - k_ycc_offset[0];
        const double u = (double)cbu[i] * 255.0 - k_ycc_offset[1];
        const double v = (double)cru[i] * 255.0 - k_ycc_offset[2];
        int k;
        for (k = 0; k < 3; ++k) {
          row[3 * x + k] = f32_to_u8((float)(inv[k][0] * yy + inv[k][1] * u + inv[k][2] * v));
        }
      }
    }
    return ESR_OK;
  }
}

esr_status esr_upscale_f32(esr_engine* e, const float* src, size_t batch, size_t channels,
                           size_t width, size_t height, float* dst) {
  size_t ow = 0, oh = 0, in_bytes = 0, out_bytes = 0;
  esr_status st;
  if (e == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "engine is NULL");
  if (src == NULL || dst == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "src or dst is NULL");
  if (batch == 0) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "batch is 0");
  if (channels != e->channels) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH, "the model takes %zu channel(s) (%s), got %zu",
                     e->channels, e->meta.color == ESR_COLOR_RGB ? "rgb" : "y_bt601", channels);
  }
  if ((st = out_size(e, width, height, &ow, &oh)) != ESR_OK) return st;
  if ((st = tensor_bytes(batch, channels, width, height, ow, oh, &in_bytes, &out_bytes)) !=
      ESR_OK) {
    return st;
  }
  /* The caller's buffers go to the backend as they are: no copy, so the result is exactly the
   * model's and the only per-frame work is the backend's. */
  return run_model(e, src, dst, batch, channels, width, height);
}
