/* C tests of libedgesr: every documented error status, exact frame round trips on "nearest"
 * models (each output pixel is a copy of an input pixel), no allocation after the first frame
 * of a size, and two engines on two threads. Usage: test_edgesr MODEL_DIR (see
 * make_test_models.py). */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edgesr.h"

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

static esr_engine* open_model(const char* name, int threads) {
  esr_options o = esr_default_options();
  esr_engine* e = NULL;
  o.num_threads = threads;
  CHECK_STATUS(esr_engine_create(model(name), &o, &e), ESR_OK);
  return e;
}

static void test_basics(void) {
  esr_options o = esr_default_options();
  int s;
  CHECK(strlen(esr_version()) > 0 && strncmp(esr_version(), "0.1.0", 5) == 0);
  CHECK(o.struct_size == sizeof o && o.backend == ESR_BACKEND_ONNXRUNTIME &&
        o.num_threads == 0 && o.device_id == 0);
  for (s = 0; s <= ESR_ERR_OUT_OF_MEMORY; ++s) {
    CHECK(esr_status_string((esr_status)s) != NULL && strlen(esr_status_string((esr_status)s)) > 0);
  }
  CHECK(strcmp(esr_status_string((esr_status)999), "unknown status") == 0);
  esr_engine_destroy(NULL); /* NULL-safe */
  CHECK(esr_engine_allocation_count(NULL) == 0);
}

static void expect_create_fails(const char* path, const esr_options* o, esr_status want) {
  esr_engine* e = (esr_engine*)&g_passed; /* a non-NULL sentinel that must be reset */
  CHECK_STATUS(esr_engine_create(path, o, &e), want);
  CHECK(e == NULL);
  CHECK(strlen(esr_last_error()) > 0);
  esr_engine_destroy(e);
}

static void test_bad_models(void) {
  esr_options o = esr_default_options();
  esr_engine* e = NULL;
  char dir_path[1100];
  snprintf(dir_path, sizeof dir_path, "%s", g_dir);
  expect_create_fails(NULL, NULL, ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_engine_create(model("y_x2"), NULL, NULL), ESR_ERR_INVALID_ARGUMENT);
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
  o = esr_default_options();
  o.backend = (esr_backend)7;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = esr_default_options();
  o.num_threads = -1;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = esr_default_options();
  o.device_id = -1;
  expect_create_fails(model("y_x2"), &o, ESR_ERR_INVALID_ARGUMENT);
  o = esr_default_options();
  o.backend = ESR_BACKEND_TENSORRT;
  if (strstr(esr_version(), "tensorrt") == NULL) {
    expect_create_fails(model("y_x2"), &o, ESR_ERR_BACKEND_UNAVAILABLE);
  } else {
    /* An ONNX file is not a plan (and has no sidecar). */
    e = NULL;
    CHECK(esr_engine_create(model("y_x2"), &o, &e) != ESR_OK && e == NULL);
  }
  /* A caller built against a shorter (older) options struct still works. */
  o = esr_default_options();
  o.struct_size = (uint32_t)(offsetof(esr_options, backend) + sizeof o.backend);
  CHECK_STATUS(esr_engine_create(model("y_x2"), &o, &e), ESR_OK);
  esr_engine_destroy(e);

  e = (esr_engine*)&g_passed;
  CHECK_STATUS(esr_engine_create_from_memory(NULL, 10, NULL, &e), ESR_ERR_INVALID_ARGUMENT);
  CHECK(e == NULL);
  CHECK_STATUS(esr_engine_create_from_memory("abc", 0, NULL, &e), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_engine_create_from_memory("abc", 3, NULL, &e), ESR_ERR_MODEL_LOAD);
  CHECK(e == NULL);
}

static void test_from_memory(void) {
  FILE* f = fopen(model("y_x2"), "rb");
  long n;
  void* data;
  esr_engine* e = NULL;
  int32_t scale = 0;
  CHECK(f != NULL);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = malloc((size_t)n);
  CHECK(fread(data, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  CHECK_STATUS(esr_engine_create_from_memory(data, (size_t)n, NULL, &e), ESR_OK);
  free(data); /* the engine keeps no pointer into it */
  CHECK_STATUS(esr_engine_info(e, &scale, NULL), ESR_OK);
  CHECK(scale == 2);
  esr_engine_destroy(e);
}

static void test_sizes(esr_engine* e) {
  size_t ow = 0, oh = 0;
  int32_t scale = 0;
  esr_color color = ESR_COLOR_RGB;
  CHECK_STATUS(esr_engine_info(e, &scale, &color), ESR_OK);
  CHECK(scale == 2 && color == ESR_COLOR_Y_BT601);
  CHECK_STATUS(esr_engine_info(NULL, &scale, &color), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(e, 480, 270, &ow, &oh), ESR_OK);
  CHECK(ow == 960 && oh == 540);
  CHECK_STATUS(esr_output_size(e, 0, 270, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(e, 480, 0, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(e, SIZE_MAX, 2, &ow, &oh), ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_output_size(e, 2, SIZE_MAX / 2 + 1, &ow, &oh), ESR_ERR_SIZE_OVERFLOW);
  CHECK_STATUS(esr_output_size(NULL, 4, 4, &ow, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(e, 4, 4, NULL, &oh), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_output_size(e, 4, 4, &ow, NULL), ESR_ERR_INVALID_ARGUMENT);
}

/* Y plane on the x2 nearest model: strided in and out, exact copies, padding untouched. */
static void test_y_u8(esr_engine* e) {
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
  allocs = esr_engine_allocation_count(e);
  for (i = 0; i < 5; ++i) CHECK_STATUS(esr_upscale_y_u8(e, src, w, h, ss, dst, ds), ESR_OK);
  CHECK(esr_engine_allocation_count(e) == allocs);
  /* A new size may allocate once; then it is steady again. */
  CHECK_STATUS(esr_upscale_y_u8(e, src, w - 1, h - 1, ss, dst, ds), ESR_OK);
  allocs = esr_engine_allocation_count(e);
  for (i = 0; i < 3; ++i) CHECK_STATUS(esr_upscale_y_u8(e, src, w - 1, h - 1, ss, dst, ds), ESR_OK);
  CHECK(esr_engine_allocation_count(e) == allocs);

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

static void test_nv12(esr_engine* e) {
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
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, uv_out, duvs), ESR_OK);
  for (y = 0; y < oh; ++y)
    for (x = 0; x < ow; ++x) bad_y += y_out[y * dys + x] != y_in[(y / 2) * ys + x / 2];
  for (y = 0; y < oh / 2; ++y)
    for (x = 0; x < ow / 2; ++x)
      for (k = 0; k < 2; ++k)
        bad_uv += uv_out[y * duvs + 2 * x + k] != ref_uv(uv_in, uvs, w / 2, h / 2, 2, x, y, k);
  CHECK(bad_y == 0);
  CHECK(bad_uv == 0);
  allocs = esr_engine_allocation_count(e);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, uv_out, duvs), ESR_OK);
  CHECK(esr_engine_allocation_count(e) == allocs);

  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, w - 1, h, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, w, h - 1, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, NULL, uvs, w, h, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, NULL, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, w - 2, w, h, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, w, h, y_out, dys, uv_out, ow - 1),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, ys, uv_in, uvs, 0, 0, y_out, dys, uv_out, duvs),
               ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_nv12(e, y_in, SIZE_MAX, uv_in, SIZE_MAX, (size_t)1 << 62, 2, y_out,
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
static void test_nv12_camera_pitch(esr_engine* e) {
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
  CHECK_STATUS(esr_upscale_nv12(e, y_packed, w, uv_packed, w, w, h, y_ref, ow, uv_ref, ow), ESR_OK);
  CHECK_STATUS(esr_upscale_nv12(e, y_pad, pitch, uv_pad, pitch, w, h, y_out, opitch, uv_out, opitch),
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

static void test_f32(esr_engine* e) {
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
  esr_engine* e = open_model("rgb_x3", 1);
  const size_t w = 11, h = 7, ss = 3 * w + 2, ow = 33, oh = 21, ds = 3 * ow + 1;
  uint8_t* src = (uint8_t*)malloc(ss * h);
  uint8_t* dst = (uint8_t*)malloc(ds * oh);
  uint8_t plane[64] = {0};
  size_t i, x, y, bad = 0;
  int32_t scale = 0;
  esr_color color = ESR_COLOR_Y_BT601;
  if (!e) return;
  CHECK_STATUS(esr_engine_info(e, &scale, &color), ESR_OK);
  CHECK(scale == 3 && color == ESR_COLOR_RGB);
  for (i = 0; i < ss * h; ++i) src[i] = (uint8_t)(i * 31 + 1);
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, w, h, ss, dst, ds), ESR_OK);
  for (y = 0; y < oh; ++y)
    for (x = 0; x < 3 * ow; ++x) bad += dst[y * ds + x] != src[(y / 3) * ss + 3 * (x / 9) + x % 3];
  CHECK(bad == 0);
  /* Y-only calls on an RGB model are a mismatch, not a crash. */
  CHECK_STATUS(esr_upscale_y_u8(e, plane, 4, 4, 4, dst, ds), ESR_ERR_MODEL_MISMATCH);
  CHECK_STATUS(esr_upscale_nv12(e, plane, 4, plane, 4, 4, 4, dst, 12, dst, 12),
               ESR_ERR_MODEL_MISMATCH);
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, w, h, 3 * w - 1, dst, ds), ESR_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(esr_upscale_rgb_u8(e, src, SIZE_MAX / 3 + 1, 1, SIZE_MAX, dst, SIZE_MAX),
               ESR_ERR_SIZE_OVERFLOW);
  esr_engine_destroy(e);
  free(src);
  free(dst);
}

/* An RGB frame on a Y model: a flat colour must come back as that colour (within rounding). */
static void test_rgb_on_y_model(esr_engine* e) {
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
  esr_engine* e = open_model("wrongscale", 1); /* metadata x4, graph x2 */
  if (e) {
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 32), ESR_ERR_RUNTIME);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 32), ESR_ERR_RUNTIME);
    esr_engine_destroy(e);
  }
  e = open_model("static8", 1); /* input fixed at 8x8 */
  if (e) {
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 16), ESR_OK);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 16, 16, 16, dst, 32), ESR_ERR_RUNTIME);
    CHECK_STATUS(esr_upscale_y_u8(e, src, 8, 8, 8, dst, 16), ESR_OK);
    esr_engine_destroy(e);
  }
}

/* Two engines, two threads: the documented way to use libedgesr concurrently. */
static void* thread_body(void* arg) {
  size_t* bad = (size_t*)arg;
  esr_engine* e = NULL;
  uint8_t src[31 * 17], dst[62 * 34];
  size_t i, x, y;
  esr_options o = esr_default_options();
  o.num_threads = 1;
  if (esr_engine_create(model("y_x2"), &o, &e) != ESR_OK) {
    *bad = 1000000;
    return NULL;
  }
  for (i = 0; i < sizeof src; ++i) src[i] = (uint8_t)(i * 3 + 1);
  for (i = 0; i < 20; ++i) {
    if (esr_upscale_y_u8(e, src, 31, 17, 31, dst, 62) != ESR_OK) ++*bad;
    for (y = 0; y < 34; ++y)
      for (x = 0; x < 62; ++x) *bad += dst[y * 62 + x] != src[(y / 2) * 31 + x / 2];
  }
  esr_engine_destroy(e);
  return NULL;
}

static void test_threads(void) {
  pthread_t t[2];
  size_t bad[2] = {0, 0};
  int i;
  for (i = 0; i < 2; ++i) CHECK(pthread_create(&t[i], NULL, thread_body, &bad[i]) == 0);
  for (i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  CHECK(bad[0] == 0 && bad[1] == 0);
}

int main(int argc, char** argv) {
  esr_engine* e;
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
    test_f32(e);
    test_rgb_on_y_model(e);
    esr_engine_destroy(e);
  }
  test_rgb();
  test_runtime_errors();
  test_threads();
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
