/* Fuzz targets for libedgesr: the frame API, the model loader and the TensorRT sidecar parser.
 *
 * Each target decodes its bytes into one call and checks the contract: a call with valid
 * arguments returns ESR_OK with the exact expected pixels (the test models are "nearest"
 * upscalers), any invalid argument returns an error status, and nothing reads or writes
 * outside the buffers (buffers are sized exactly, so ASan sees any overrun). A violation
 * aborts. Driven by fuzz_main.c (deterministic, bounded; ctest) or by libFuzzer
 * (-DEDGESR_LIBFUZZER=ON, clang). */
#define _XOPEN_SOURCE 600 /* mkstemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgesr.h"
#include "internal.h"

#include "fuzz_edgesr.h"

static esr_model* g_model_handle;
static esr_stream* g_engine; /* the stream every frame call goes to */
static int32_t g_scale;
static esr_color g_color;
static uint8_t* g_model;
static size_t g_model_size;
unsigned long esr_fuzz_ok, esr_fuzz_errors;

#define VIOLATION(...)                                     \
  do {                                                     \
    fprintf(stderr, "fuzz contract violation at %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                          \
    fprintf(stderr, " (last error: %s)\n", esr_last_error()); \
    abort();                                               \
  } while (0)

typedef struct reader {
  const uint8_t* p;
  size_t n;
} reader;

static unsigned next_byte(reader* r) {
  if (r->n == 0) return 0;
  --r->n;
  return *r->p++;
}

/* Dimensions: mostly small; sometimes values every check must reject (all >= 2^59, so any
 * element count built from them exceeds what the library accepts). */
static size_t pick_dim(reader* r, int* huge) {
  static const size_t specials[] = {0, SIZE_MAX, SIZE_MAX / 2 + 1, (size_t)1 << 60,
                                    (size_t)1 << 62, SIZE_MAX / 3 + 1};
  unsigned b = next_byte(r);
  if (b < 232) return 1 + b % 40;
  b = (b - 232) % (sizeof specials / sizeof specials[0]);
  if (b != 0) *huge = 1;
  return specials[b];
}

/* A stride for rows of `row` bytes: valid (row + 0..8), too small, or SIZE_MAX. */
static size_t pick_stride(reader* r, size_t row, int* invalid) {
  unsigned b = next_byte(r);
  if (b < 220) return row + b % 9;
  if (b < 240 && row > 0) {
    *invalid = 1;
    return row - 1 - (b % 3 < row - 1 ? b % 3 : 0);
  }
  return SIZE_MAX;
}

static int mul(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

/* Bytes spanned by `rows` rows of `row` bytes `stride` apart; 0 if that overflows. */
static size_t span(size_t row, size_t rows, size_t stride) {
  size_t last;
  if (rows == 0 || row == 0) return 0;
  if (!mul(rows - 1, stride, &last) || last > SIZE_MAX - row) return 0;
  return last + row;
}

#define MAX_BYTES ((size_t)1 << 22)

/* A buffer of exactly n bytes (n small), or a 16-byte dummy the library must never touch
 * because the call is invalid. */
static uint8_t* buffer(size_t n, int* invalid) {
  if (n == 0 || n > MAX_BYTES) {
    *invalid = 1;
    return (uint8_t*)malloc(16);
  }
  return (uint8_t*)malloc(n);
}

static void check_status(esr_status st, int invalid, const char* what) {
  if (invalid) {
    if (st == ESR_OK) VIOLATION("%s: invalid arguments returned ESR_OK", what);
    if (st != ESR_ERR_INVALID_ARGUMENT && st != ESR_ERR_SIZE_OVERFLOW &&
        st != ESR_ERR_MODEL_MISMATCH) {
      VIOLATION("%s: invalid arguments returned %s", what, esr_status_string(st));
    }
    ++esr_fuzz_errors;
  } else {
    if (st != ESR_OK) VIOLATION("%s: valid arguments returned %s", what, esr_status_string(st));
    ++esr_fuzz_ok;
  }
}

static void fuzz_planar(reader* r, int op) {
  int huge = 0, invalid = 0;
  size_t w = pick_dim(r, &huge), h = pick_dim(r, &huge), s = (size_t)g_scale, ow = 0, oh = 0;
  unsigned nulls = next_byte(r);
  size_t px = op == 2 ? 3 : 1; /* bytes per pixel */
  size_t row = 0, orow = 0, ss, ds, ns, nd, x, y, c;
  uint8_t *src, *dst;
  esr_status st;
  if (w == 0 || h == 0 || huge) invalid = 1;
  if (op == 0 && g_color != ESR_COLOR_Y_BT601) invalid = 1;
  if (!invalid) {
    ow = w * s;
    oh = h * s;
    row = w * px;
    orow = ow * px;
  }
  ss = pick_stride(r, row, &invalid);
  ds = pick_stride(r, orow, &invalid);
  ns = span(row, h, ss);
  nd = span(orow, oh, ds);
  src = buffer(ns, &invalid);
  dst = buffer(nd, &invalid);
  if (nulls == 251 || nulls == 252) invalid = 1;
  if (!invalid) {
    for (y = 0; y < h; ++y)
      for (x = 0; x < row; ++x) src[y * ss + x] = (uint8_t)(x * 13 + y * 7 + nulls);
    memset(dst, 0x5A, nd);
  }
  if (op == 0) {
    st = esr_upscale_y_u8(g_engine, nulls == 251 ? NULL : src, w, h, ss,
                          nulls == 252 ? NULL : dst, ds);
  } else {
    st = esr_upscale_rgb_u8(g_engine, nulls == 251 ? NULL : src, w, h, ss,
                            nulls == 252 ? NULL : dst, ds);
  }
  check_status(st, invalid, op == 0 ? "esr_upscale_y_u8" : "esr_upscale_rgb_u8");
  /* Exact pixels where the model's output is known: nearest upscaling of the same colour. */
  if (st == ESR_OK && (op == 0 || g_color == ESR_COLOR_RGB)) {
    for (y = 0; y < oh; ++y) {
      for (x = 0; x < ow; ++x)
        for (c = 0; c < px; ++c)
          if (dst[y * ds + x * px + c] != src[(y / s) * ss + (x / s) * px + c])
            VIOLATION("pixel (%zu,%zu) differs", x, y);
      for (x = orow; x < ds && y + 1 < oh; ++x)
        if (dst[y * ds + x] != 0x5A) VIOLATION("write into the stride padding");
    }
  }
  free(src);
  free(dst);
}

/* A YUV frame of any 4:2:0 format and range through esr_upscale_image: every plane in its own
 * exactly sized allocation with its own pitch. */
static void fuzz_image(reader* r) {
  int huge = 0, invalid = 0;
  const esr_pixel_format fmt = (esr_pixel_format)(ESR_PIXEL_NV12 + next_byte(r) % 3);
  size_t w = pick_dim(r, &huge), h = pick_dim(r, &huge), s = (size_t)g_scale, ow = 0, oh = 0;
  unsigned nulls = next_byte(r), flags = next_byte(r);
  const size_t np = fmt == ESR_PIXEL_I420 ? 3 : 2;
  size_t row[3], orow[3], pitch[3], opitch[3], k, x, y;
  uint8_t *in[3] = {NULL, NULL, NULL}, *out[3] = {NULL, NULL, NULL};
  esr_image src, dst;
  esr_status st;
  if (w == 0 || h == 0 || huge || (w & 1) || (h & 1)) {
    invalid = 1;
  } else {
    ow = w * s;
    oh = h * s;
  }
  for (k = 0; k < np; ++k) {
    const size_t cw = k == 0 ? w : fmt == ESR_PIXEL_I420 ? w / 2 : w;
    const size_t ocw = k == 0 ? ow : fmt == ESR_PIXEL_I420 ? ow / 2 : ow;
    const size_t rows = k == 0 ? h : h / 2, orows = k == 0 ? oh : oh / 2;
    row[k] = invalid ? 0 : cw;
    orow[k] = invalid ? 0 : ocw;
    pitch[k] = pick_stride(r, row[k], &invalid);
    opitch[k] = pick_stride(r, orow[k], &invalid);
    in[k] = buffer(span(row[k], rows, pitch[k]), &invalid);
    out[k] = buffer(span(orow[k], orows, opitch[k]), &invalid);
  }
  if (nulls >= 250) invalid = 1; /* one plane NULL */
  memset(&src, 0, sizeof src);
  src.struct_size = sizeof src;
  src.format = fmt;
  src.matrix = (esr_yuv_matrix)(flags & 1);
  src.range = (esr_yuv_range)((flags >> 1) & 1);
  src.width = w;
  src.height = h;
  dst = src;
  dst.width = ow;
  dst.height = oh;
  if ((flags & 0xF0) == 0xF0) { /* a dst that contradicts src */
    invalid = 1;
    if (flags & 4) dst.width += 2;
    else if (flags & 8) dst.range = (esr_yuv_range)!src.range;
    else dst.format = ESR_PIXEL_GRAY8;
  }
  for (k = 0; k < np; ++k) {
    src.planes[k] = in[k];
    src.pitches[k] = pitch[k];
    dst.planes[k] = out[k];
    dst.pitches[k] = opitch[k];
  }
  if (nulls >= 250) {
    if (nulls & 1) src.planes[nulls % np] = NULL;
    else dst.planes[nulls % np] = NULL;
  }
  if (!invalid) {
    for (k = 0; k < np; ++k)
      for (y = 0; y < (k == 0 ? h : h / 2); ++y)
        for (x = 0; x < row[k]; ++x) in[k][y * pitch[k] + x] = (uint8_t)(x * 5 + y * 3 + k);
  }
  st = esr_upscale_image(g_engine, &src, &dst);
  check_status(st, invalid, "esr_upscale_image");
  /* Exact luma on a Y model (an RGB model converts through RGB, checked in test_edgesr). */
  if (st == ESR_OK && g_color == ESR_COLOR_Y_BT601) {
    for (y = 0; y < oh; ++y)
      for (x = 0; x < ow; ++x)
        if (out[0][y * opitch[0] + x] != in[0][(y / s) * pitch[0] + x / s])
          VIOLATION("YUV luma (%zu,%zu)", x, y);
  }
  for (k = 0; k < np; ++k) {
    free(in[k]);
    free(out[k]);
  }
}

/* Stream preparation, model info and option initialisation with arbitrary sizes. */
static void fuzz_misc(reader* r) {
  int huge = 0;
  size_t w = pick_dim(r, &huge), h = pick_dim(r, &huge);
  unsigned b = next_byte(r);
  esr_status st = esr_stream_prepare(g_engine, w, h);
  if ((w == 0 || h == 0 || huge) != (st != ESR_OK)) VIOLATION("esr_stream_prepare(%zu, %zu)", w, h);
  if (b < 128) {
    /* A struct of b bytes, exactly allocated: the library writes only what the caller has. */
    unsigned char* info = (unsigned char*)malloc(b < 4 ? 4 : b);
    const uint32_t size = b;
    memcpy(info, &size, sizeof size);
    st = esr_model_get_info(g_model_handle, (esr_model_info*)(void*)info);
    if ((b >= 8) != (st == ESR_OK)) VIOLATION("esr_model_get_info with struct_size %u", b);
    free(info);
  } else {
    const size_t n = b - 128;
    esr_options* o = (esr_options*)malloc(n ? n : 1);
    st = esr_options_init(o, n);
    if ((n >= 16) != (st == ESR_OK)) VIOLATION("esr_options_init with struct_size %zu", n);
    free(o);
  }
  st == ESR_OK ? ++esr_fuzz_ok : ++esr_fuzz_errors;
}

static void fuzz_f32(reader* r) {
  int huge = 0, invalid = 0;
  size_t n = 1 + next_byte(r) % 2, w = pick_dim(r, &huge), h = pick_dim(r, &huge);
  size_t cm = g_color == ESR_COLOR_RGB ? 3 : 1, c = next_byte(r) < 230 ? cm : next_byte(r) % 5;
  size_t s = (size_t)g_scale, in_elems = 0, i, b, x, y;
  float *in, *out;
  esr_status st;
  if (w == 0 || h == 0 || huge || c != cm) invalid = 1;
  if (!invalid) in_elems = n * c * w * h;
  in = (float*)buffer(in_elems * sizeof(float), &invalid);
  out = (float*)buffer(in_elems * s * s * sizeof(float), &invalid);
  if (!invalid)
    for (i = 0; i < in_elems; ++i) in[i] = (float)i * 0.25f - 7.0f;
  st = esr_upscale_f32(g_engine, in, n, c, w, h, out);
  check_status(st, invalid, "esr_upscale_f32");
  if (st == ESR_OK) {
    for (b = 0; b < n * c; ++b)
      for (y = 0; y < h * s; ++y)
        for (x = 0; x < w * s; ++x)
          if (out[b * w * h * s * s + y * w * s + x] != in[b * w * h + (y / s) * w + x / s])
            VIOLATION("float pixel differs");
  }
  free(in);
  free(out);
}

static void fuzz_output_size(reader* r) {
  int huge = 0;
  size_t w = pick_dim(r, &huge), h = pick_dim(r, &huge), ow = 0, oh = 0, t;
  esr_status st = esr_output_size(g_model_handle, w, h, &ow, &oh);
  int overflow = !mul(w, (size_t)g_scale, &t) || !mul(h, (size_t)g_scale, &t);
  if (w == 0 || h == 0 || overflow) {
    if (st == ESR_OK) VIOLATION("esr_output_size accepted %zux%zu", w, h);
    ++esr_fuzz_errors;
  } else {
    if (st != ESR_OK || ow != w * (size_t)g_scale || oh != h * (size_t)g_scale)
      VIOLATION("esr_output_size(%zu, %zu)", w, h);
    ++esr_fuzz_ok;
  }
}

int esr_fuzz_setup(const char* model_path) {
  FILE* f;
  long n;
  esr_options o;
  esr_model_info info;
  esr_options_init(&o, sizeof o);
  o.num_threads = 1;
  if (model_path == NULL || strcmp(model_path, "-") == 0) return 0;
  if (esr_model_create(model_path, &o, &g_model_handle) != ESR_OK ||
      esr_stream_create(g_model_handle, &g_engine) != ESR_OK) {
    fprintf(stderr, "fuzz: cannot open %s: %s\n", model_path, esr_last_error());
    return 1;
  }
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  esr_model_get_info(g_model_handle, &info);
  g_scale = info.scale;
  g_color = info.color;
  f = fopen(model_path, "rb");
  if (f == NULL) return 1;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  g_model_size = n > 0 ? (size_t)n : 0;
  g_model = (uint8_t*)malloc(g_model_size + 1);
  if (g_model == NULL || fread(g_model, 1, g_model_size, f) != g_model_size) {
    fclose(f);
    return 1;
  }
  fclose(f);
  return 0;
}

void esr_fuzz_teardown(void) {
  esr_stream_destroy(g_engine);
  esr_model_destroy(g_model_handle);
  g_engine = NULL;
  g_model_handle = NULL;
  free(g_model);
  g_model = NULL;
}

int esr_fuzz_frames(const uint8_t* data, size_t size) {
  reader r;
  r.p = data;
  r.n = size;
  switch (next_byte(&r) % 6) {
    case 0: fuzz_planar(&r, 0); break;
    case 1: fuzz_image(&r); break;
    case 2: fuzz_planar(&r, 2); break;
    case 3: fuzz_f32(&r); break;
    case 4: fuzz_misc(&r); break;
    default: fuzz_output_size(&r); break;
  }
  return 0;
}

/* The loader: arbitrary bytes, or the valid model with bytes overwritten / cut short. An
 * engine that loads anyway must run (or refuse) a frame cleanly. */
int esr_fuzz_loader(const uint8_t* data, size_t size) {
  reader r;
  uint8_t* bytes;
  size_t n, i, edits;
  esr_model* m = NULL;
  esr_stream* e = NULL;
  esr_options o;
  unsigned mode;
  esr_status st;
  r.p = data;
  r.n = size;
  mode = next_byte(&r) % 4;
  esr_options_init(&o, sizeof o);
  o.num_threads = 1;
  if (mode == 0 || g_model == NULL) {
    n = r.n;
    bytes = (uint8_t*)malloc(n + 1);
    if (n) memcpy(bytes, r.p, n);
  } else {
    n = g_model_size;
    bytes = (uint8_t*)malloc(n + 1);
    memcpy(bytes, g_model, n);
    if (mode == 1 || mode == 3) {
      edits = 1 + next_byte(&r) % 8;
      for (i = 0; i < edits && n > 0; ++i) {
        size_t pos = ((size_t)next_byte(&r) << 8 | next_byte(&r)) % n;
        bytes[pos] = (uint8_t)next_byte(&r);
      }
    }
    if (mode == 2) n = ((size_t)next_byte(&r) << 8 | next_byte(&r)) % (n + 1);
  }
  if (mode == 3) {
    /* The same through a file path. */
    char path[] = "/tmp/edgesr_fuzz_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
      if (write(fd, bytes, n) == (ssize_t)n) st = esr_model_create(path, &o, &m);
      else st = ESR_ERR_MODEL_LOAD;
      close(fd);
      unlink(path);
    } else {
      st = ESR_ERR_MODEL_LOAD;
    }
  } else {
    st = esr_model_create_from_memory(n ? bytes : NULL, n, &o, &m);
  }
  if (st == ESR_OK && esr_stream_create(m, &e) != ESR_OK) VIOLATION("a loaded model has no stream");
  if (st == ESR_OK) {
    uint8_t src[6 * 4] = {0}, dst[6 * 4 * 16 * 16];
    float fin[6 * 4 * 3] = {0}, fout[6 * 4 * 3 * 16 * 16];
    int32_t scale = 0;
    esr_color color;
    esr_model_info info;
    if (e == NULL) VIOLATION("ESR_OK without a model");
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (esr_model_get_info(m, &info) != ESR_OK) VIOLATION("esr_model_get_info failed");
    scale = info.scale;
    color = info.color;
    if (scale < 1 || scale > 16) VIOLATION("scale %d accepted", (int)scale);
    (void)esr_upscale_f32(e, fin, 1, color == ESR_COLOR_RGB ? 3 : 1, 6, 4, fout);
    if (color == ESR_COLOR_Y_BT601) (void)esr_upscale_y_u8(e, src, 6, 4, 6, dst, 6 * 16);
    ++esr_fuzz_ok;
  } else {
    if (m != NULL) VIOLATION("an error status with a model");
    if (st != ESR_ERR_MODEL_LOAD && st != ESR_ERR_MODEL_METADATA && st != ESR_ERR_MODEL_MISMATCH &&
        st != ESR_ERR_INVALID_ARGUMENT) {
      VIOLATION("loader returned %s", esr_status_string(st));
    }
    ++esr_fuzz_errors;
  }
  esr_stream_destroy(e);
  esr_model_destroy(m);
  free(bytes);
  return 0;
}

int esr_fuzz_sidecar(const uint8_t* data, size_t size) {
  esr_model_meta meta;
  char* text = (char*)malloc(size ? size : 1); /* exactly sized: no NUL terminator to lean on */
  if (size) memcpy(text, data, size);
  meta.scale = 0;
  meta.color = (esr_color)-1;
  if (esr__parse_sidecar(text, size, &meta) == ESR_OK) {
    if (meta.scale < 1 || meta.scale > ESR_MAX_SCALE ||
        (meta.color != ESR_COLOR_Y_BT601 && meta.color != ESR_COLOR_RGB)) {
      VIOLATION("sidecar accepted scale %d colour %d", (int)meta.scale, (int)meta.color);
    }
    ++esr_fuzz_ok;
  } else {
    ++esr_fuzz_errors;
  }
  free(text);
  return 0;
}

#if defined(ESR_FUZZ_TARGET_frames) || defined(ESR_FUZZ_TARGET_loader)
/* libFuzzer entry points: ESR_FUZZ_MODEL names the model (y_x2.onnx or rgb_x3.onnx). */
int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  return esr_fuzz_setup(getenv("ESR_FUZZ_MODEL"));
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
#if defined(ESR_FUZZ_TARGET_frames)
  return esr_fuzz_frames(data, size);
#else
  esr_fuzz_sidecar(data, size);
  return esr_fuzz_loader(data, size);
#endif
}
#endif
