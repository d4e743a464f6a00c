/* C tests of libedgesr: every documented error status, exact frame round trips on "nearest"
 * models (each output pixel is a copy of an input pixel) in every pixel format, no allocation
 * after the first frame of a size, static shapes refused at prepare, the log callback, ONNX
 * Runtime's out-of-memory, and one shared model with a stream per thread (run under TSan too). Usage: test_edgesr MODEL_DIR (see
 * make_test_models.py). */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgesr.h"
#include "edgesr_testing.h"

static int g_passed, g_failed;
static char g_dir[1024];

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (cond) {                                                                      \
      ++g_passed;                                                                    \
    } else {                                                                         \
      ++g_failed;                                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, __LINE__, \
              #cond, esr_last_error());                                              \
    }                                                                                \
  } while (0)

#define CHECK_STATUS(expr, want)                                                          \
  do {                                                                                    \
    esr_status got_ = (expr);                                                             \
    if (got_ == (want)) {                                                                 \
      ++g_passed;                                                                         \
    } else {                                                                              \
      ++g_failed;                                                                         \
      fprintf(stderr, "%s:%d: %s -> %d (%s), want %d (%s); last error: %s\n", __FILE__,   \
              __LINE__, #expr, (int)got_, esr_status_string(got_), (int)(want),           \
              esr_status_string(want), esr_last_error());                                 \
    }                                                                                     \
  } while (0)

static const char* model(const char* name) {
  static char path[2048];
  snprintf(path, sizeof path, "%s/%s.onnx", g_dir, name);
  return path;
}

static esr_options options(int threads) {
  esr_options o;
  esr_options_init(&o, sizeof o);
  o.num_threads = threads;
  return o;
}

/* A stream on a model of its own: the stream holds the model's only reference. */
static esr_status create_stream(const char* path, const esr_options* o, esr_stream** out) {
  esr_model* m = NULL;
  esr_status st = esr_model_create(path, o, &m);
  if (st != ESR_OK) {
    if (out) *out = NULL;
    return st;
  }
  st = esr_stream_create(m, out);
  esr_model_destroy(m);
  return st;
}

static esr_stream* open_model(const char* name, int threads) {
  esr_options o = options(threads);
  esr_stream* e = NULL;
  CHECK_STATUS(create_stream(model(name), &o, &e), ESR_OK);
  return e;
}

static esr_status stream_info(const esr_stream* s, int32_t* scale, esr_color* color) {
  esr_model_info info;
  esr_status st;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  st = esr_model_get_info(esr_stream_model(s), &info);
  if (st == ESR_OK && scale) *scale = info.scale;
  if (st == ESR_OK && color) *color = info.color;
  return st;
}

static esr_image image(esr_pixel_format f, size_t w, size_t h, uint8_t* p0, size_t s0, uint8_t* p1,
                       size_t s1, uint8_t* p2, size_t s2) {
  esr_image im;
  memset(&im, 0, sizeof im);
  im.struct_size = sizeof im;
  im.format = f;
  im.matrix = ESR_YUV_BT601;
  im.range = ESR_RANGE_LIMITED;
  im.width = w;
  im.height = h;
  im.planes[0] = p0;
  im.planes[1] = p1;
  im.planes[2] = p2;
  im.pitches[0] = s0;
  im.pitches[1] = s1;
  im.pitches[2] = s2;
  return im;
}

/* An NV12 frame through esr_upscale_image, the output sized by the model. */
static esr_status nv12(esr_stream* e, const uint8_t* y, size_t ys, const uint8_t* uv, size_t uvs,
                       size_t w, size_t h, uint8_t* dy, size_t dys, uint8_t* duv, size_t duvs) {
  size_t ow = 0, oh = 0;
  esr_image in, out;
  (void)esr_output_size(esr_stream_model(e), w, h, &ow, &oh);
  in = image(ESR_PIXEL_NV12, w, h, (uint8_t*)(uintptr_t)y, ys, (uint8_t*)(uintptr_t)uv, uvs, NULL,
             0);
  out = image(ESR_PIXEL_NV12, ow, oh, dy, dys, duv, duvs, NULL, 0);
  return esr_upscale_image(e, &in, &out);
}

static void test_basics(void) {
  esr_options o;
  char big[64];
  int s;
  CHECK(strlen(esr_version()) > 0 && strncmp(esr_version(), "0.2.0 (abi 1;", 13) == 0);
  CHECK(esr_abi_version() == ESR_ABI_VERSION && ESR_ABI_VERSION == 1);
  memset(&o, 0x7f, sizeof o);
  CHECK_STATUS(esr_options_init(&o, sizeof o), ESR_OK);
  CHECK(o.struct_size == sizeof o && o.backend == ESR_BACKEND_ONNXRUNTIME &&
        o.num_threads == 0 && o.device_id == 0 && o.intra_op_spinning == -1);
  CHECK_STATUS(esr_options_init(NULL, sizeof o), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_options_init(&o, 15), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_options_init(&o, 5000), ESR_ERR_INVALID_ARGUMENT);
  /* A newer caller's larger struct: known fields defaulted, the unknown tail zeroed. */
  memset(big, 0x7f, sizeof big);
  CHECK_STATUS(esr_options_init((esr_options*)(void*)big, sizeof big), ESR_OK);
  CHECK(((esr_options*)(void*)big)->struct_size == sizeof big && big[sizeof big - 1] == 0);
  for (s = 0; s <= ESR_ERR_OUT_OF_MEMORY; ++s) {
    CHECK(esr_status_string((esr_status)s) != NULL && strlen(esr_status_string((esr_status)s)) > 0);
  }
  CHECK(strcmp(esr_status_string((esr_status)999), "unknown status") == 0);
  esr_stream_destroy(NULL); /* NULL-safe */
  esr_model_destroy(NULL);
  CHECK(esr_testing_stream_allocations(NULL) == 0);
  CHECK(esr_stream_model(NULL) == NULL);
}

static void expect_create_fails(const char* path, const esr_options* o, esr_status want) {
  esr_stream* e = (esr_stream*)&g_passed; /* a non-NULL sentinel that must be reset */
  CHECK_STATUS(create_stream(path, o, &e), want);
  CHECK(e == NULL);
  CHECK(strlen(esr_last_error()) > 0);
  esr_stream_destroy(e);
}

static void test_bad_models(void) {
  esr_options o = options(0);
  esr_model* m = NULL;
  esr_stream* e = NULL;
  char dir_path[1100];
  snprintf(dir_path, sizeof dir_path, "%s", g_dir);
  expect_create_fails(NULL, NULL, ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_model_create(model("y_x2"), NULL, NULL), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_stream_create(NULL, &e), ESR_ERR_INVALID_ARGUMENT);
  CHECK(e == NULL);
  expect_create_fails(model("does_not_exist"), NULL, ESR_ERR_MODEL_LOAD);
  expect_create_fails(dir_path, NULL, ESR_ERR_MODEL_LOAD);
  expect_create_fails(model("empty"), NULL, ESR_ERR_MODEL_LOAD);
  expect_create_fails(model("text"), NULL, ESR_ERR_MODEL_LOAD);
  expect_create_fails(model("truncated"), NULL, ESR_ERR_MODEL_LOAD);
  expect_create_fails(model("nometa"), NULL, ESR_ERR_MODEL_METADATA);
  CHECK(strstr(esr_last_error(), "edgesr export") != NULL);
  expect_create_fails(model("badscale"), NULL, ESR_ERR_MODEL_METADATA);
  expect_create_fails(model("zeroscale"), NULL, ESR_ERR_MODEL_METADATA);
  expect_create_fails(model("badcolor"), NULL, ESR_ERR_MODEL_METADATA);
  expect_create_fails(model("rgb_meta_on_y"), NULL, ESR_ERR_MODEL_METADATA);

  o.struct_size = 0;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = options(0);
  o.backend = (esr_backend)7;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = options(0);
  o.num_threads = -1;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = options(0);
  o.device_id = -1;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = options(0);
  o.intra_op_spinning = 2;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = options(0);
  o.struct_size = 5000;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = options(0);
  o.backend = ESR_BACKEND_TENSORRT;
  if (strstr(esr_version(), "tensorrt") == NULL) {
    expect_create_fails(model("y_x2"), &o, ESR_ERR_BACKEND_UNAVAILABLE);
  } else {
    /* An ONNX file is not a plan (and has no sidecar). */
    e = NULL;
    CHECK(create_stream(model("y_x2"), &o, &e) != ESR_OK && e == NULL);
  }
  /* A struct_size below the first version's 16 bytes is refused (abi_client tests 16). */
  o = options(0);
  o.struct_size = 8;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);

  m = (esr_model*)&g_passed;
  CHECK_STATUS(esr_model_create_from_memory(NULL, 10, NULL, &m), ESR_ERR_INVALID_ARGUMENT);
  CHECK(m == NULL);
  CHECK_STATUS(esr_model_create_from_memory("abc", 0, NULL, &m), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_model_create_from_memory("abc", 3, NULL, &m), ESR_ERR_MODEL_LOAD);
  CHECK(m == NULL);
  CHECK_STATUS(esr_model_create_from_memory("abc", 3, NULL, NULL), ESR_ERR_INVALID_ARGUMENT);
}

static void test_from_memory(void) {
  FILE* f = fopen(model("y_x2"), "rb");
  long n;
  void* data;
  esr_stream* e = NULL;
  esr_model* m = NULL;
  int32_t scale = 0;
  CHECK(f != NULL);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = malloc((size_t)n);
  CHECK(fread(data, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  CHECK_STATUS(esr_model_create_from_memory(data, (size_t)n, NULL, &m), ESR_OK);
  free(data); /* the model keeps no pointer into it */
  CHECK_STATUS(esr_stream_create(m, &e), ESR_OK);
  esr_model_destroy(m);
  CHECK_STATUS(stream_info(e, &scale, NULL), ESR_OK);
  CHECK(scale == 2);
  esr_stream_destroy(e);
}

static void test_sizes(esr_stream* e) {
  size_t ow = 0, oh = 0;
  int32_t scale = 0;
  esr_color color = ESR_COLOR_RGB;
  CHECK_STATUS(stream_info(e, &scale, &color), ESR_OK);
  CHECK(scale == 2 && color == ESR_COLOR_Y_BT601);
  CHECK_STATUS(esr_model_get_info(NULL, NULL), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 480, 270, &ow, &oh), ESR_OK);
  CHECK(ow == 960 && oh == 540);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 0, 270, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 480, 0, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), SIZE_MAX, 2, &ow, &oh), ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 2, SIZE_MAX / 2 + 1, &ow, &oh), ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_output_size(NULL, 4, 4, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 4, 4, NULL, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 4, 4, &ow, NULL), ESR_ERR_INVALID_ARGUMENT);
}

/* Y plane on the x2 nearest model: strided in and out, exact copies, padding untouched. */
static void test_y_u8(esr_stream* e) {
  const size_t w = 37, h = 23, ss = w + 3, ow = 2 * w, oh = 2 * h, ds = ow + 5;
  uint8_t* src = (uint8_t*)malloc(ss * h);
  uint8_t* dst = (uint8_t*)malloc(ds * oh);
  size_t x, y, bad = 0, pad_bad = 0;
  uint64_t allocs;
  int i;
  for (i = 0; i < (int)(ss * h); ++i) src[i] = (uint8_t)(i * 7 + 3);
  memset(dst, 0xAB, ds * oh);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, ss, dst, ds), ESR_OK);
  for (y = 0; y < oh; ++y) {
    for (x = 0; x < ow; ++x) bad += dst[y * ds + x] != src[(y / 2) * ss + x / 2];
    for (x = ow; x < ds; ++x) pad_bad += dst[y * ds + x] != 0xAB;
  }
  CHECK(bad == 0);
  CHECK(pad_bad == 0);

  /* Steady state: same size, no allocation in libedgesr. */
  allocs = esr_testing_stream_allocations(e);
  for (i = 0; i < 5; ++i) CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, ss, dst, ds), ESR_OK);
  CHECK(esr_testing_stream_allocations(e) == allocs);
  /* A new size may allocate once; then it is steady again. */
  CHECK_STATUS(esr_upscale_y_u8(e, src, w - 1, h - 1, ss, dst, ds), ESR_OK);
  allocs = esr_testing_stream_allocations(e);
  for (i = 0; i < 3; ++i) CHECK_STATUS(esr_upscale_y_u8(e, src, w - 1, h - 1, ss, dst, ds), ESR_OK);
  CHECK(esr_testing_stream_allocations(e) == allocs);

  /* Every bad argument is a status, never a crash. */
  CHECK_STATUS(esr_upscale_y_u8(NULL, src, w, h, ss, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, NULL, w, h, ss, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, ss, NULL, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, src, 0, h, ss, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, 0, ss, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, w - 1, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, ss, dst, ow - 1), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_y_u8(e, src, SIZE_MAX, h, SIZE_MAX, dst, SIZE_MAX),
               ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, SIZE_MAX / 2 + 1, ss, dst, ds), ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_upscale_y_u8(e, src, (size_t)1 << 60, 1, (size_t)1 << 60, dst,
                                (size_t)1 << 61),
               ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_upscale_y_u8(e, src, (size_t)1 << 31, (size_t)1 << 31, (size_t)1 << 31, dst,
                                (size_t)1 << 32),
               ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, SIZE_MAX / 2, dst, ds), ESR_ERR_SIZE_OVERFLOW);
  /* The engine still works after all that. */
  CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, ss, dst, ds), ESR_OK);
  free(src);
  free(dst);
}

/* Reference chroma filter, written independently of the library (double arithmetic; exact for
 * scale 2 since all weights are multiples of 1/16). */
static uint8_t ref_uv(const uint8_t* uv, size_t stride, size_t cw, size_t ch, size_t s, size_t x,
                      size_t y, int k) {
  double sx = (x + 0.5) / s - 0.5, sy = (y + 0.5) / s - 0.5;
  double x0 = floor(sx), y0 = floor(sy), fx = sx - x0, fy = sy - y0;
  long xi[2], yi[2];
  double v;
  int i;
  xi[0] = (long)x0;
  xi[1] = (long)x0 + 1;
  yi[0] = (long)y0;
  yi[1] = (long)y0 + 1;
  for (i = 0; i < 2; ++i) {
    if (xi[i] < 0) xi[i] = 0;
    if (xi[i] > (long)cw - 1) xi[i] = (long)cw - 1;
    if (yi[i] < 0) yi[i] = 0;
    if (yi[i] > (long)ch - 1) yi[i] = (long)ch - 1;
  }
  v = (1 - fy) * ((1 - fx) * uv[yi[0] * stride + 2 * xi[0] + k] + fx * uv[yi[0] * stride + 2 * xi[1] + k]) +
      fy * ((1 - fx) * uv[yi[1] * stride + 2 * xi[0] + k] + fx * uv[yi[1] * stride + 2 * xi[1] + k]);
  return (uint8_t)floor(v + 0.5);
}

static void test_nv12(esr_stream* e) {
  const size_t w = 20, h = 14, ow = 40, oh = 28, ys = 24, uvs = 22, dys = 41, duvs = 44;
  uint8_t* y_in = (uint8_t*)calloc(ys * h, 1);
  uint8_t* uv_in = (uint8_t*)calloc(uvs * h / 2, 1);
  uint8_t* y_out = (uint8_t*)calloc(dys * oh, 1);
  uint8_t* uv_out = (uint8_t*)calloc(duvs * oh / 2, 1);
  size_t x, y, bad_y = 0, bad_uv = 0;
  uint64_t allocs;
  int k;
  for (y = 0; y < h; ++y)
    for (x = 0; x < w; ++x) y_in[y * ys + x] = (uint8_t)(x * 11 + y * 5);
  for (y = 0; y < h / 2; ++y)
    for (x = 0; x < w; ++x) uv_in[y * uvs + x] = (uint8_t)((x & 1) ? 255 - x * 9 - y * 13 : x * 13 + y * 17);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, uv_out, duvs), ESR_OK);
  for (y = 0; y < oh; ++y)
    for (x = 0; x < ow; ++x) bad_y += y_out[y * dys + x] != y_in[(y / 2) * ys + x / 2];
  for (y = 0; y < oh / 2; ++y)
    for (x = 0; x < ow / 2; ++x)
      for (k = 0; k < 2; ++k)
        bad_uv += uv_out[y * duvs + 2 * x + k] != ref_uv(uv_in, uvs, w / 2, h / 2, 2, x, y, k);
  CHECK(bad_y == 0);
  CHECK(bad_uv == 0);
  allocs = esr_testing_stream_allocations(e);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, uv_out, duvs), ESR_OK);
  CHECK(esr_testing_stream_allocations(e) == allocs);

  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, w - 1, h, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, w, h - 1, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, ys, NULL, uvs, w, h, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, NULL, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, w - 2, w, h, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, uv_out, ow - 1),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, ys, uv_in, uvs, 0, 0, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(nv12(e, y_in, SIZE_MAX, uv_in, SIZE_MAX, (size_t)1 << 62, 2, y_out,
                                SIZE_MAX, uv_out, SIZE_MAX),
               ESR_ERR_SIZE_OVERFLOW);
  free(y_in);
  free(uv_in);
  free(y_out);
  free(uv_out);
}

/* Camera buffers: Y and UV planes in separate allocations, each with a row pitch wider than
 * the frame (64-byte aligned rows) and garbage in the padding. The result must equal the call
 * on packed copies of the same planes, and padded output rows must keep their padding. */
static void test_nv12_camera_pitch(esr_stream* e) {
  const size_t w = 38, h = 22, pitch = 64, ow = 76, oh = 44, opitch = 128;
  uint8_t* y_pad = (uint8_t*)malloc(pitch * h);
  uint8_t* uv_pad = (uint8_t*)malloc(pitch * h / 2);
  uint8_t* y_packed = (uint8_t*)malloc(w * h);
  uint8_t* uv_packed = (uint8_t*)malloc(w * h / 2);
  uint8_t* y_ref = (uint8_t*)malloc(ow * oh);
  uint8_t* uv_ref = (uint8_t*)malloc(ow * oh / 2);
  uint8_t* y_out = (uint8_t*)malloc(opitch * oh);
  uint8_t* uv_out = (uint8_t*)malloc(opitch * oh / 2);
  size_t x, y, bad = 0, pad_changed = 0;
  memset(y_pad, 0xAA, pitch * h);
  memset(uv_pad, 0x55, pitch * h / 2);
  memset(y_out, 0xEE, opitch * oh);
  memset(uv_out, 0xEE, opitch * oh / 2);
  for (y = 0; y < h; ++y)
    for (x = 0; x < w; ++x) y_pad[y * pitch + x] = y_packed[y * w + x] = (uint8_t)(x * 7 + y * 3);
  for (y = 0; y < h / 2; ++y)
    for (x = 0; x < w; ++x)
      uv_pad[y * pitch + x] = uv_packed[y * w + x] = (uint8_t)((x & 1) ? 200 - x * 3 : 40 + x * 5 + y);
  CHECK_STATUS(nv12(e, y_packed, w, uv_packed, w, w, h, y_ref, ow, uv_ref, ow), ESR_OK);
  CHECK_STATUS(nv12(e, y_pad, pitch, uv_pad, pitch, w, h, y_out, opitch, uv_out, opitch),
               ESR_OK);
  for (y = 0; y < oh; ++y) {
    for (x = 0; x < ow; ++x) bad += y_out[y * opitch + x] != y_ref[y * ow + x];
    for (x = ow; x < opitch; ++x) pad_changed += y_out[y * opitch + x] != 0xEE;
  }
  for (y = 0; y < oh / 2; ++y) {
    for (x = 0; x < ow; ++x) bad += uv_out[y * opitch + x] != uv_ref[y * ow + x];
    for (x = ow; x < opitch; ++x) pad_changed += uv_out[y * opitch + x] != 0xEE;
  }
  CHECK(bad == 0);
  CHECK(pad_changed == 0);
  free(y_pad);
  free(uv_pad);
  free(y_packed);
  free(uv_packed);
  free(y_ref);
  free(uv_ref);
  free(y_out);
  free(uv_out);
}

static void test_f32(esr_stream* e) {
  const size_t n = 2, w = 9, h = 5;
  float* in = (float*)malloc(n * w * h * sizeof(float));
  float* out = (float*)malloc(n * 4 * w * h * sizeof(float));
  size_t i, b, x, y, bad = 0;
  for (i = 0; i < n * w * h; ++i) in[i] = (float)i * 0.37f - 3.0f; /* outside [0,1] on purpose */
  CHECK_STATUS(esr_upscale_f32(e, in, n, 1, w, h, out), ESR_OK);
  for (b = 0; b < n; ++b)
    for (y = 0; y < 2 * h; ++y)
      for (x = 0; x < 2 * w; ++x)
        bad += out[b * 4 * w * h + y * 2 * w + x] != in[b * w * h + (y / 2) * w + x / 2];
  CHECK(bad == 0); /* no clamping or rounding on the float path */
  CHECK_STATUS(esr_upscale_f32(e, in, n, 3, w, h, out), ESR_ERR_MODEL_MISMATCH);
  CHECK_STATUS(esr_upscale_f32(e, in, 0, 1, w, h, out), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_f32(e, NULL, n, 1, w, h, out), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_f32(e, in, n, 1, w, h, NULL), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_f32(e, in, n, 1, 0, h, out), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_f32(e, in, SIZE_MAX / 4, 1, w, h, out), ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_upscale_f32(e, in, 1, 1, (size_t)1 << 40, (size_t)1 << 20, out),
               ESR_ERR_SIZE_OVERFLOW);
  free(in);
  free(out);
}

static void test_rgb(void) {
  esr_stream* e = open_model("rgb_x3", 1);
  const size_t w = 11, h = 7, ss = 3 * w + 2, ow = 33, oh = 21, ds = 3 * ow + 1;
  uint8_t* src = (uint8_t*)malloc(ss * h);
  uint8_t* dst = (uint8_t*)malloc(ds * oh);
  uint8_t plane[64] = {0};
  size_t i, x, y, bad = 0;
  int32_t scale = 0;
  esr_color color = ESR_COLOR_Y_BT601;
  if (!e) return;
  CHECK_STATUS(stream_info(e, &scale, &color), ESR_OK);
  CHECK(scale == 3 && color == ESR_COLOR_RGB);
  for (i = 0; i < ss * h; ++i) src[i] = (uint8_t)(i * 31 + 1);
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, w, h, ss, dst, ds), ESR_OK);
  for (y = 0; y < oh; ++y)
    for (x = 0; x < 3 * ow; ++x) bad += dst[y * ds + x] != src[(y / 3) * ss + 3 * (x / 9) + x % 3];
  CHECK(bad == 0);
  /* Y-only calls on an RGB model are a mismatch, not a crash. */
  CHECK_STATUS(esr_upscale_y_u8(e, plane, 4, 4, 4, dst, ds), ESR_ERR_MODEL_MISMATCH);
  CHECK_STATUS(esr_upscale_y_u8(e, plane, 4, 4, 4, dst, 12), ESR_ERR_MODEL_MISMATCH);
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, w, h, 3 * w - 1, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, SIZE_MAX / 3 + 1, 1, SIZE_MAX, dst, SIZE_MAX),
               ESR_ERR_SIZE_OVERFLOW);
  esr_stream_destroy(e);
  free(src);
  free(dst);
}

/* An RGB frame on a Y model: a flat colour must come back as that colour (within rounding). */
static void test_rgb_on_y_model(esr_stream* e) {
  const size_t w = 8, h = 6, ow = 16, oh = 12;
  uint8_t src[8 * 6 * 3], dst[16 * 12 * 3];
  size_t i, bad = 0;
  for (i = 0; i < w * h; ++i) {
    src[3 * i] = 200;
    src[3 * i + 1] = 90;
    src[3 * i + 2] = 30;
  }
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, w, h, 3 * w, dst, 3 * ow), ESR_OK);
  for (i = 0; i < ow * oh * 3; ++i) bad += abs((int)dst[i] - (int)src[i % 3]) > 1;
  CHECK(bad == 0);
}

static void test_runtime_errors(void) {
  uint8_t src[16 * 16] = {0}, dst[32 * 32];
  esr_stream* e = open_model("wrongscale", 1); /* metadata x4, graph x2 */
  if (e) {
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 32), ESR_ERR_RUNTIME);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 32), ESR_ERR_RUNTIME);
    esr_stream_destroy(e);
  }
}

/* A static input shape is refused at prepare (and by frame calls) before the backend runs. */
static void test_static_shape_and_info(void) {
  uint8_t src[16 * 16] = {0}, dst[32 * 32];
  esr_model_info info;
  esr_stream* e = open_model("static8", 1); /* input fixed at [N,1,8,8] */
  if (e) {
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_STATUS(esr_model_get_info(esr_stream_model(e), &info), ESR_OK);
    CHECK(info.min_width == 8 && info.max_width == 8 && info.min_height == 8 &&
          info.max_height == 8 && info.input_shape[2] == 8 && info.input_shape[3] == 8 &&
          info.output_shape[2] == 16 && info.input_shape[0] == -1);
    CHECK_STATUS(esr_stream_prepare(e, 16, 16), ESR_ERR_MODEL_MISMATCH);
    CHECK(strstr(esr_last_error(), "8x8 frames only") != NULL);
    CHECK_STATUS(esr_stream_prepare(e, 8, 8), ESR_OK);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 16), ESR_OK);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 16, 16, 16, dst, 32), ESR_ERR_MODEL_MISMATCH);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 16), ESR_OK);
    esr_stream_destroy(e);
  }
  e = open_model("y_x2", 2);
  if (e) {
    esr_model* m = esr_stream_model(e);
    uint64_t before, after;
    memset(&info, 0xEE, sizeof info);
    info.struct_size = sizeof info;
    CHECK_STATUS(esr_model_get_info(m, &info), ESR_OK);
    CHECK(info.scale == 2 && info.color == ESR_COLOR_Y_BT601 && info.channels == 1 &&
          info.backend == ESR_BACKEND_ONNXRUNTIME && info.num_threads == 2 &&
          info.intra_op_spinning == -1 && strcmp(info.precision, "fp32") == 0);
    CHECK(info.input_shape[0] == -1 && info.input_shape[1] == 1 && info.input_shape[2] == -1 &&
          info.input_shape[3] == -1 && info.output_shape[1] == 1);
    CHECK(info.min_width == 1 && info.max_width == UINT64_MAX && info.max_height == UINT64_MAX);
    info.struct_size = 2;
    CHECK_STATUS(esr_model_get_info(m, &info), ESR_ERR_INVALID_ARGUMENT);
    info.struct_size = 5000;
    CHECK_STATUS(esr_model_get_info(m, &info), ESR_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(esr_model_get_info(m, NULL), ESR_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(esr_stream_create(m, NULL), ESR_ERR_INVALID_ARGUMENT);
    /* prepare allocates the stream's buffers: the first frame adds only the backend's two
     * tensor wrappers, later frames nothing. */
    CHECK_STATUS(esr_stream_prepare(e, 12, 10), ESR_OK);
    before = esr_testing_stream_allocations(e);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 12, 10, 12, dst, 24), ESR_OK);
    after = esr_testing_stream_allocations(e);
    CHECK(after - before <= 2);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 12, 10, 12, dst, 24), ESR_OK);
    CHECK(esr_testing_stream_allocations(e) == after);
    CHECK_STATUS(esr_stream_prepare(NULL, 8, 8), ESR_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(esr_stream_prepare(e, 0, 8), ESR_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(esr_stream_prepare(e, SIZE_MAX, 8), ESR_ERR_SIZE_OVERFLOW);
    CHECK_STATUS(esr_stream_prepare(e, (size_t)1 << 40, (size_t)1 << 40), ESR_ERR_SIZE_OVERFLOW);
    esr_stream_destroy(e);
  }
}

/* esr_last_error() is cleared by every status call, so a stale message is never mistaken for a
 * new one. */
static void test_last_error_cleared(void) {
  esr_stream* e = open_model("y_x2", 1);
  size_t ow, oh;
  if (!e) return;
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 0, 1, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK(strlen(esr_last_error()) > 0);
  CHECK_STATUS(esr_output_size(esr_stream_model(e), 2, 1, &ow, &oh), ESR_OK);
  CHECK(esr_last_error()[0] == '\0');
  CHECK_STATUS(esr_stream_prepare(e, 0, 1), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_stream_prepare(e, 4, 4), ESR_OK);
  CHECK(esr_last_error()[0] == '\0');
  esr_stream_destroy(e);
}

/* ---- log callback ---- */

static pthread_mutex_t g_log_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_log_count[4];
static char g_log_last[4][512];

static void record_log(void* user, esr_log_level level, const char* msg) {
  pthread_mutex_lock(&g_log_mutex);
  if ((int)level >= 0 && (int)level < 4) {
    ++g_log_count[level];
    snprintf(g_log_last[level], sizeof g_log_last[level], "%s", msg);
  }
  ++*(int*)user;
  pthread_mutex_unlock(&g_log_mutex);
}

static void test_log_callback(void) {
  int calls = 0, before;
  esr_stream* e;
  size_t ow, oh;
  esr_set_log_callback(record_log, &calls, ESR_LOG_DEBUG);
  e = open_model("y_x2", 1);
  CHECK(g_log_count[ESR_LOG_INFO] >= 1 && strstr(g_log_last[ESR_LOG_INFO], "loaded") != NULL &&
        strstr(g_log_last[ESR_LOG_INFO], "x2") != NULL);
  if (e) {
    CHECK_STATUS(esr_output_size(esr_stream_model(e), 0, 1, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
    CHECK(g_log_count[ESR_LOG_ERROR] >= 1 && strcmp(g_log_last[ESR_LOG_ERROR], esr_last_error()) == 0);
    CHECK_STATUS(esr_stream_prepare(e, 6, 4), ESR_OK);
    CHECK(g_log_count[ESR_LOG_DEBUG] >= 1 && strstr(g_log_last[ESR_LOG_DEBUG], "grows") != NULL);
    /* A level above every message: nothing. */
    esr_set_log_callback(record_log, &calls, (esr_log_level)99);
    before = calls;
    CHECK_STATUS(esr_output_size(esr_stream_model(e), 0, 1, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
    CHECK(calls == before);
    /* Above the level: nothing. */
    esr_set_log_callback(record_log, &calls, ESR_LOG_ERROR);
    before = calls;
    CHECK_STATUS(esr_stream_prepare(e, 60, 40), ESR_OK);
    CHECK(calls == before);
    esr_set_log_callback(NULL, NULL, ESR_LOG_DEBUG);
    CHECK_STATUS(esr_output_size(esr_stream_model(e), 0, 1, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
    CHECK(calls == before);
    esr_stream_destroy(e);
  }
  CHECK(calls > 0);
}

/* ---- camera formats ---- */

/* NV12, NV21 and I420 of the same frame, each plane in its own allocation with its own padded
 * pitch: luma exact through the nearest model, chroma equal to the NV12 filter (component by
 * component), output padding untouched. */
static void test_yuv_formats(esr_stream* e) {
  const size_t w = 22, h = 14, ow = 44, oh = 28, cw = 11, ch = 7;
  uint8_t *y = (uint8_t*)malloc(32 * h), *uv = (uint8_t*)malloc(30 * ch);
  uint8_t *vu = (uint8_t*)malloc(26 * ch), *u = (uint8_t*)malloc(16 * ch),
          *v = (uint8_t*)malloc(13 * ch);
  uint8_t *oy = (uint8_t*)malloc(50 * oh), *ouv = (uint8_t*)malloc(48 * oh / 2);
  uint8_t *ry = (uint8_t*)malloc(ow * oh), *ruv = (uint8_t*)malloc(ow * oh / 2);
  uint8_t *ou = (uint8_t*)malloc(24 * oh / 2), *ov = (uint8_t*)malloc(23 * oh / 2);
  size_t x, yy, bad = 0, pad = 0;
  esr_image in, out;
  memset(oy, 0xEE, 50 * oh);
  memset(ouv, 0xEE, 48 * oh / 2);
  memset(ou, 0xEE, 24 * oh / 2);
  memset(ov, 0xEE, 23 * oh / 2);
  for (yy = 0; yy < h; ++yy)
    for (x = 0; x < w; ++x) y[yy * 32 + x] = (uint8_t)(x * 9 + yy * 17 + 3);
  for (yy = 0; yy < ch; ++yy) {
    for (x = 0; x < cw; ++x) {
      const uint8_t cu = (uint8_t)(x * 23 + yy * 5), cv = (uint8_t)(250 - x * 7 - yy * 29);
      uv[yy * 30 + 2 * x] = vu[yy * 26 + 2 * x + 1] = u[yy * 16 + x] = cu;
      uv[yy * 30 + 2 * x + 1] = vu[yy * 26 + 2 * x] = v[yy * 13 + x] = cv;
    }
  }
  /* Reference: packed NV12 output. */
  CHECK_STATUS(nv12(e, y, 32, uv, 30, w, h, ry, ow, ruv, ow), ESR_OK);
  for (yy = 0; yy < oh; ++yy)
    for (x = 0; x < ow; ++x) bad += ry[yy * ow + x] != y[(yy / 2) * 32 + x / 2];
  CHECK(bad == 0);

  in = image(ESR_PIXEL_NV21, w, h, y, 32, vu, 26, NULL, 0);
  out = image(ESR_PIXEL_NV21, ow, oh, oy, 50, ouv, 48, NULL, 0);
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_OK);
  bad = 0;
  for (yy = 0; yy < oh; ++yy) {
    for (x = 0; x < ow; ++x) bad += oy[yy * 50 + x] != ry[yy * ow + x];
    for (x = ow; x < 50; ++x) pad += oy[yy * 50 + x] != 0xEE;
  }
  for (yy = 0; yy < oh / 2; ++yy) {
    for (x = 0; x < ow / 2; ++x) {
      bad += ouv[yy * 48 + 2 * x] != ruv[yy * ow + 2 * x + 1];
      bad += ouv[yy * 48 + 2 * x + 1] != ruv[yy * ow + 2 * x];
    }
    for (x = ow; x < 48; ++x) pad += ouv[yy * 48 + x] != 0xEE;
  }
  CHECK(bad == 0 && pad == 0);

  in = image(ESR_PIXEL_I420, w, h, y, 32, u, 16, v, 13);
  out = image(ESR_PIXEL_I420, ow, oh, oy, 50, ou, 24, ov, 23);
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_OK);
  bad = 0;
  for (yy = 0; yy < oh; ++yy)
    for (x = 0; x < ow; ++x) bad += oy[yy * 50 + x] != ry[yy * ow + x];
  for (yy = 0; yy < oh / 2; ++yy) {
    for (x = 0; x < ow / 2; ++x) {
      bad += ou[yy * 24 + x] != ruv[yy * ow + 2 * x];
      bad += ov[yy * 23 + x] != ruv[yy * ow + 2 * x + 1];
    }
    pad += (ou[yy * 24 + 22] != 0xEE) + (ou[yy * 24 + 23] != 0xEE);
  }
  CHECK(bad == 0 && pad == 0);

  /* Hostile images: every one an error status, the buffers untouched. */
  in = image(ESR_PIXEL_I420, w, h, y, 32, u, 16, v, 13);
  out = image(ESR_PIXEL_I420, ow, oh, oy, 50, ou, 24, ov, 23);
  in.planes[2] = NULL;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.planes[2] = v;
  in.pitches[1] = cw - 1;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.pitches[1] = 16;
  out.pitches[2] = ow / 2 - 1;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  out.pitches[2] = 23;
  out.width = ow + 2;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  out.width = ow;
  out.format = ESR_PIXEL_NV12;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  out.format = ESR_PIXEL_I420;
  out.range = ESR_RANGE_FULL;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  out.range = ESR_RANGE_LIMITED;
  out.matrix = ESR_YUV_BT709;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  out.matrix = ESR_YUV_BT601;
  in.matrix = (esr_yuv_matrix)5;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.matrix = ESR_YUV_BT601;
  in.format = out.format = (esr_pixel_format)9;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.format = out.format = ESR_PIXEL_I420;
  in.struct_size = 8;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.struct_size = sizeof in;
  in.width = w - 1;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.width = w;
  CHECK_STATUS(esr_upscale_image(e, NULL, &out), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_image(e, &in, NULL), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_image(NULL, &in, &out), ESR_ERR_INVALID_ARGUMENT);
  in.height = SIZE_MAX / 2 + 1;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_ERR_SIZE_OVERFLOW);
  in.height = h;
  /* BT.709 and full range are accepted when src and dst agree. */
  in.matrix = out.matrix = ESR_YUV_BT709;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_OK);
  free(y);
  free(uv);
  free(vu);
  free(u);
  free(v);
  free(oy);
  free(ouv);
  free(ry);
  free(ruv);
  free(ou);
  free(ov);
}

/* Full-range luma is mapped into the model's studio range and back: on the x0.5-gain model the
 * result is the documented formula (exactly), and differs from the limited-range result. */
static void test_full_range(void) {
  esr_stream* e = open_model("half_x2", 1);
  uint8_t src[16 * 4], uv[16 * 2], dst[32 * 8], duv[32 * 4], lim[32 * 8];
  size_t i, x, yy, bad = 0, differ = 0;
  esr_image in, out;
  if (!e) return;
  for (i = 0; i < sizeof src; ++i) src[i] = (uint8_t)(i * 4);
  memset(uv, 128, sizeof uv);
  in = image(ESR_PIXEL_NV12, 16, 4, src, 16, uv, 16, NULL, 0);
  out = image(ESR_PIXEL_NV12, 32, 8, dst, 32, duv, 32, NULL, 0);
  in.range = out.range = ESR_RANGE_FULL;
  CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_OK);
  CHECK_STATUS(esr_upscale_y_u8(e, src, 16, 4, 16, lim, 32), ESR_OK);
  for (yy = 0; yy < 8; ++yy) {
    for (x = 0; x < 32; ++x) {
      const uint8_t v = src[(yy / 2) * 16 + x / 2];
      const float t = (float)((16.0 + v * 219.0 / 255.0) / 255.0) * 0.5f;
      double f = ((double)t * 255.0 - 16.0) / 219.0;
      f = f < 0 ? 0 : f > 1 ? 1 : f;
      bad += dst[yy * 32 + x] != (uint8_t)floor(f * 255.0 + 0.5);
      bad += lim[yy * 32 + x] != (uint8_t)floor((double)((float)v / 255.0f * 0.5f) * 255.0 + 0.5);
      differ += dst[yy * 32 + x] != lim[yy * 32 + x];
    }
  }
  CHECK(bad == 0);
  CHECK(differ > 0);
  /* Chroma is not touched by the model: a flat 128 stays 128. */
  for (i = 0; i < sizeof duv; ++i) bad += duv[i] != 128;
  CHECK(bad == 0);
  esr_stream_destroy(e);
}

/* YUV frames on an RGB model: an independent double-precision reference of the documented
 * conversion (matrix weights, limited / full range, clamped RGB) for a flat frame. */
static void ref_yuv_through_rgb(esr_yuv_matrix mtx, esr_yuv_range rng, const int perm[3],
                                const uint8_t in[3], int out[3]) {
  const double kr = mtx == ESR_YUV_BT709 ? 0.2126 : 0.299, kb = mtx == ESR_YUV_BT709 ? 0.0722 : 0.114;
  const double kg = 1 - kr - kb, yo = rng == ESR_RANGE_FULL ? 0 : 16;
  const double ys = rng == ESR_RANGE_FULL ? 255 : 219, cs = rng == ESR_RANGE_FULL ? 255 : 224;
  double y = (in[0] - yo) / ys, cb = (in[1] - 128) / cs, cr = (in[2] - 128) / cs, rgb[3], o[3];
  int c;
  rgb[0] = y + 2 * (1 - kr) * cr;
  rgb[2] = y + 2 * (1 - kb) * cb;
  rgb[1] = (y - kr * rgb[0] - kb * rgb[2]) / kg;
  for (c = 0; c < 3; ++c) rgb[c] = rgb[c] < 0 ? 0 : rgb[c] > 1 ? 1 : rgb[c];
  for (c = 0; c < 3; ++c) o[c] = rgb[perm[c]];
  y = kr * o[0] + kg * o[1] + kb * o[2];
  out[0] = (int)floor(yo + ys * y + 0.5);
  out[1] = (int)floor(128 + cs * (o[2] - y) / (2 * (1 - kb)) + 0.5);
  out[2] = (int)floor(128 + cs * (o[0] - y) / (2 * (1 - kr)) + 0.5);
}

static void test_yuv_on_rgb_model(void) {
  static const uint8_t colours[3][3] = {{81, 90, 240}, {145, 54, 34}, {200, 128, 128}};
  static const int identity[3] = {0, 1, 2}, rot[3] = {1, 2, 0};
  const char* names[2] = {"rgb_x3", "rot_x2"};
  int mi, k, c, r, differ = 0;
  for (mi = 0; mi < 2; ++mi) {
    esr_stream* e = open_model(names[mi], 1);
    const size_t s = mi == 0 ? 3 : 2, w = 6, h = 4, ow = w * s, oh = h * s;
    uint8_t y[6 * 4], u[3 * 2], v[3 * 2], oy[18 * 12], ou[9 * 6], ov[9 * 6];
    int first[3] = {0, 0, 0};
    if (!e) continue;
    for (k = 0; k < 3; ++k) {
      for (c = 0; c < 4; ++c) {
        const esr_yuv_matrix mtx = (esr_yuv_matrix)(c & 1);
        const esr_yuv_range rng = (esr_yuv_range)(c >> 1);
        esr_image in = image(ESR_PIXEL_I420, w, h, y, w, u, w / 2, v, w / 2);
        esr_image out = image(ESR_PIXEL_I420, ow, oh, oy, ow, ou, ow / 2, ov, ow / 2);
        int want[3];
        size_t i, bad = 0;
        in.matrix = out.matrix = mtx;
        in.range = out.range = rng;
        memset(y, colours[k][0], sizeof y);
        memset(u, colours[k][1], sizeof u);
        memset(v, colours[k][2], sizeof v);
        CHECK_STATUS(esr_upscale_image(e, &in, &out), ESR_OK);
        ref_yuv_through_rgb(mtx, rng, mi == 0 ? identity : rot, colours[k], want);
        for (i = 0; i < ow * oh; ++i) bad += abs(oy[i] - want[0]) > 1;
        for (i = 0; i < ow * oh / 4; ++i) bad += abs(ou[i] - want[1]) > 1 || abs(ov[i] - want[2]) > 1;
        CHECK(bad == 0);
        if (bad) {
          fprintf(stderr, "%s colour %d matrix %d range %d: got %d %d %d, want %d %d %d\n",
                  names[mi], k, (int)mtx, (int)rng, oy[0], ou[0], ov[0], want[0], want[1], want[2]);
        }
        /* The matrix matters once the model mixes channels: BT.601 vs BT.709 differ. */
        if (mi == 1 && k == 1 && rng == ESR_RANGE_LIMITED) {
          if (mtx == ESR_YUV_BT601) {
            first[0] = oy[0], first[1] = ou[0], first[2] = ov[0];
          } else {
            for (r = 0; r < 3; ++r) differ += abs(first[r] - (r == 0 ? oy[0] : r == 1 ? ou[0] : ov[0])) > 2;
          }
        }
      }
    }
    esr_stream_destroy(e);
  }
  CHECK(differ > 0);
}

/* ---- out of memory ---- */

/* ONNX Runtime's allocation failure surfaces as ESR_ERR_OUT_OF_MEMORY: a child process whose
 * address space is capped just above what it holds asks for a frame whose intermediate tensor
 * cannot fit. Not under sanitizers or valgrind (they reserve address space of their own). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ESR_TEST_CAN_CAP_MEMORY 0
#else
#define ESR_TEST_CAN_CAP_MEMORY 1
#endif

static long vm_bytes(void) {
  long pages = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == NULL) return 0;
  if (fscanf(f, "%ld", &pages) != 1) pages = 0;
  fclose(f);
  return pages * sysconf(_SC_PAGESIZE);
}

static void test_backend_out_of_memory(void) {
  const char* preload = getenv("LD_PRELOAD");
  pid_t pid;
  int status = 0;
  if (!ESR_TEST_CAN_CAP_MEMORY || (preload && strstr(preload, "vgpreload"))) {
    printf("test_backend_out_of_memory: skipped (sanitizer or valgrind build)\n");
    return;
  }
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    const size_t w = 2048, h = 2048;
    esr_stream* e = NULL;
    esr_options o = options(1);
    float *in, *out;
    struct rlimit lim;
    esr_status st;
    if (create_stream(model("y_x2"), &o, &e) != ESR_OK) _exit(100);
    in = (float*)calloc(w * h, sizeof(float));
    out = (float*)calloc(4 * w * h, sizeof(float));
    if (!in || !out) _exit(101);
    memset(out, 0, 4 * w * h * sizeof(float)); /* touch it: the cap counts mapped space anyway */
    /* 16 MB of headroom: less than the model's 64 MB intermediate tensor. */
    lim.rlim_cur = lim.rlim_max = (rlim_t)(vm_bytes() + (16L << 20));
    if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(102);
    st = esr_upscale_f32(e, in, 1, 1, w, h, out);
    fprintf(stderr, "capped child: %s: %s\n", esr_status_string(st), esr_last_error());
    _exit((int)st);
  }
  CHECK(pid > 0);
  if (pid <= 0) return;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == ESR_ERR_OUT_OF_MEMORY);
}

/* ---- one model, many streams, many threads ---- */

#define N_WORKERS 4

typedef struct worker {
  esr_model* model;
  pthread_barrier_t* ready;
  size_t w, h; /* each stream its own (even) frame size */
  size_t bad;
} worker;

/* A camera thread: its own stream of the shared model, NV12 frames of its own size, exact
 * luma; a few hostile calls in between (their messages go to the log callback concurrently). */
static void* worker_body(void* arg) {
  worker* wk = (worker*)arg;
  esr_stream* e = NULL;
  const size_t w = wk->w, h = wk->h, ow = 2 * w, oh = 2 * h;
  uint8_t *y = (uint8_t*)malloc(w * h), *uv = (uint8_t*)malloc(w * h / 2);
  uint8_t *oy = (uint8_t*)malloc(ow * oh), *ouv = (uint8_t*)malloc(ow * oh / 2);
  size_t i, x, yy;
  int frame;
  esr_status st = esr_stream_create(wk->model, &e);
  pthread_barrier_wait(wk->ready); /* every stream exists: main counts the references */
  pthread_barrier_wait(wk->ready); /* main has dropped its model reference */
  if (st != ESR_OK || !y || !uv || !oy || !ouv) {
    wk->bad = 1000000;
  } else {
    for (i = 0; i < w * h; ++i) y[i] = (uint8_t)(i * 7 + w);
    memset(uv, 100, w * h / 2);
    for (frame = 0; frame < 15; ++frame) {
      if (nv12(e, y, w, uv, w, w, h, oy, ow, ouv, ow) != ESR_OK) ++wk->bad;
      if (esr_last_error()[0] != '\0') ++wk->bad;
      for (yy = 0; yy < oh; ++yy)
        for (x = 0; x < ow; ++x) wk->bad += oy[yy * ow + x] != y[(yy / 2) * w + x / 2];
      for (i = 0; i < ow * oh / 2; ++i) wk->bad += ouv[i] != 100;
      if (esr_upscale_y_u8(e, y, w, h, w - 1, oy, ow) != ESR_ERR_INVALID_ARGUMENT) ++wk->bad;
      if (strstr(esr_last_error(), "pitch") == NULL) ++wk->bad; /* this thread's own message */
    }
  }
  esr_stream_destroy(e);
  free(y);
  free(uv);
  free(oy);
  free(ouv);
  return NULL;
}

static void test_streams_share_model_across_threads(void) {
  pthread_t t[N_WORKERS];
  worker wk[N_WORKERS];
  pthread_barrier_t ready;
  esr_model* m = NULL;
  esr_options o = options(1);
  int calls = 0, i;
  size_t bad = 0;
  CHECK_STATUS(esr_model_create(model("y_x2"), &o, &m), ESR_OK);
  if (!m) return;
  esr_set_log_callback(record_log, &calls, ESR_LOG_DEBUG);
  pthread_barrier_init(&ready, NULL, N_WORKERS + 1);
  for (i = 0; i < N_WORKERS; ++i) {
    wk[i].model = m;
    wk[i].ready = &ready;
    wk[i].w = 18 + 4 * (size_t)i;
    wk[i].h = 10 + 2 * (size_t)i;
    wk[i].bad = 0;
    CHECK(pthread_create(&t[i], NULL, worker_body, &wk[i]) == 0);
  }
  pthread_barrier_wait(&ready);
  CHECK(esr_testing_model_refs(m) == N_WORKERS + 1);
  esr_model_destroy(m); /* the streams keep the model alive */
  pthread_barrier_wait(&ready);
  for (i = 0; i < N_WORKERS; ++i) {
    pthread_join(t[i], NULL);
    bad += wk[i].bad;
  }
  pthread_barrier_destroy(&ready);
  esr_set_log_callback(NULL, NULL, ESR_LOG_DEBUG);
  CHECK(bad == 0);
  CHECK(calls >= N_WORKERS * 15); /* every hostile call was logged */
}

int main(int argc, char** argv) {
  esr_stream* e;
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
  test_basics();
  test_bad_models();
  test_from_memory();
  e = open_model("y_x2", 1);
  if (e) {
    test_sizes(e);
    test_y_u8(e);
    test_nv12(e);
    test_nv12_camera_pitch(e);
    test_yuv_formats(e);
    test_f32(e);
    test_rgb_on_y_model(e);
    esr_stream_destroy(e);
  }
  test_rgb();
  test_runtime_errors();
  test_static_shape_and_info();
  test_last_error_cleared();
  test_full_range();
  test_yuv_on_rgb_model();
  test_log_callback();
  test_streams_share_model_across_threads();
  test_backend_out_of_memory();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
