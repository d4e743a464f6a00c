/* The frame half of the public API: argument checks, size arithmetic, pixel conversion and
 * chroma resampling on a stream. Backends only ever see contiguous float32 NCHW tensors. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- checked size arithmetic ---- */

static int mul_ok(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

/* Backends take int64 dimensions; keep every element count within int64 as well. */
#define ESR_MAX_ELEMENTS ((size_t)(INT64_MAX / 16) < SIZE_MAX ? (size_t)(INT64_MAX / 16) : SIZE_MAX)

static esr_status out_size(const esr_model* m, size_t w, size_t h, size_t* ow, size_t* oh) {
  size_t s = (size_t)m->meta.scale;
  *ow = *oh = 0;
  if (w == 0 || h == 0) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "frame size %zux%zu has a zero dimension", w, h);
  }
  if (!mul_ok(w, s, ow) || !mul_ok(h, s, oh)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "output size of %zux%zu at x%zu overflows", w, h, s);
  }
  return ESR_OK;
}

esr_status esr_output_size(const esr_model* m, size_t in_w, size_t in_h, size_t* out_w,
                           size_t* out_h) {
  size_t ow = 0, oh = 0;
  esr_status st;
  esr__enter();
  if (m == NULL || out_w == NULL || out_h == NULL) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "model, out_w or out_h is NULL");
  }
  st = out_size(m, in_w, in_h, &ow, &oh);
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

/* A plane of `rows` rows of `row_bytes` bytes, `pitch` apart: checks pitch and addressing. */
static esr_status check_plane(const char* what, const void* p, size_t row_bytes, size_t rows,
                              size_t pitch) {
  size_t last;
  if (p == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s is NULL", what);
  if (pitch < row_bytes) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s pitch %zu is smaller than its row (%zu bytes)",
                     what, pitch, row_bytes);
  }
  if (!mul_ok(rows - 1, pitch, &last) || last > SIZE_MAX - row_bytes) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "%s of %zu rows of pitch %zu overflows", what, rows,
                     pitch);
  }
  return ESR_OK;
}

static esr_status run_model(esr_stream* s, const float* in, float* out, size_t n, size_t c,
                            size_t w, size_t h) {
  const esr_model* m = s->model;
  int64_t in_shape[4], out_shape[4];
  in_shape[0] = (int64_t)n;
  in_shape[1] = (int64_t)c;
  in_shape[2] = (int64_t)h;
  in_shape[3] = (int64_t)w;
  out_shape[0] = (int64_t)n;
  out_shape[1] = (int64_t)c;
  out_shape[2] = (int64_t)h * m->meta.scale;
  out_shape[3] = (int64_t)w * m->meta.scale;
  return m->ops->run(m->impl, s->ctx, in, in_shape, out, out_shape);
}

/* ---- pixel conversion ---- */

/* u8 -> float as v / 255.0f: a constant table of the exactly rounded quotients (the compiler
 * evaluates each division once, with IEEE rounding, so it equals the division at run time). */
#define ESR_L1(i) (float)(i) / 255.0f
#define ESR_L4(i) ESR_L1(i), ESR_L1((i) + 1), ESR_L1((i) + 2), ESR_L1((i) + 3)
#define ESR_L16(i) ESR_L4(i), ESR_L4((i) + 4), ESR_L4((i) + 8), ESR_L4((i) + 12)
#define ESR_L64(i) ESR_L16(i), ESR_L16((i) + 16), ESR_L16((i) + 32), ESR_L16((i) + 48)
static const float g_u8_to_f32[256] = {ESR_L64(0), ESR_L64(64), ESR_L64(128), ESR_L64(192)};

/* Full-range luma (0..255) -> the model's studio-range value (16 + 219 v / 255) / 255. */
#define ESR_F1(i) (float)((16.0 + (double)(i) * 219.0 / 255.0) / 255.0)
#define ESR_F4(i) ESR_F1(i), ESR_F1((i) + 1), ESR_F1((i) + 2), ESR_F1((i) + 3)
#define ESR_F16(i) ESR_F4(i), ESR_F4((i) + 4), ESR_F4((i) + 8), ESR_F4((i) + 12)
#define ESR_F64(i) ESR_F16(i), ESR_F16((i) + 16), ESR_F16((i) + 32), ESR_F16((i) + 48)
static const float g_full_to_f32[256] = {ESR_F64(0), ESR_F64(64), ESR_F64(128), ESR_F64(192)};

static uint8_t f32_to_u8(float v) {
  /* floor(clamp(v) * 255 + 0.5) in double, as edgesr.data.color.to_uint8 (float32 * 255 is
   * exact in double, so this rounds the true value); NaN fails `> 0` and becomes 0. Written
   * with selects instead of branches so the per-pixel loops vectorise. */
  double x = (double)v;
  x = x > 0.0 ? x : 0.0;
  x = x < 1.0 ? x : 1.0;
  return (uint8_t)(int32_t)(x * 255.0 + 0.5);
}

static void plane_u8_to_f32(const uint8_t* src, size_t w, size_t h, size_t pitch,
                            const float* table, float* dst) {
  size_t x, y;
  for (y = 0; y < h; ++y) {
    const uint8_t* row = src + y * pitch;
    float* d = dst + y * w;
    for (x = 0; x < w; ++x) d[x] = table[row[x]];
  }
}

/* The float -> u8 pass touches every output pixel (2 M for a 1080p frame): an AVX2 clone halves
 * it (~1.9 -> ~1.0 ms on x86-64) and the loader picks the clone the CPU supports. Both clones
 * compute the same doubles, so results do not depend on the CPU. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__SANITIZE_THREAD__)
#define ESR_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ESR_SIMD_CLONES
#endif

ESR_SIMD_CLONES
static void plane_f32_to_u8(const float* src, size_t w, size_t h, uint8_t* dst, size_t pitch) {
  size_t x, y;
  for (y = 0; y < h; ++y) {
    const float* s = src + y * w;
    uint8_t* row = dst + y * pitch;
    for (x = 0; x < w; ++x) row[x] = f32_to_u8(s[x]);
  }
}

/* Studio-range model output -> full-range luma: (v * 255 - 16) / 219, then as f32_to_u8. */
static void plane_f32_to_u8_full(const float* src, size_t w, size_t h, uint8_t* dst,
                                 size_t pitch) {
  size_t x, y;
  for (y = 0; y < h; ++y) {
    const float* s = src + y * w;
    uint8_t* row = dst + y * pitch;
    for (x = 0; x < w; ++x) {
      double v = ((double)s[x] * 255.0 - 16.0) / 219.0;
      v = v > 0.0 ? v : 0.0;
      v = v < 1.0 ? v : 1.0;
      row[x] = (uint8_t)(int32_t)(v * 255.0 + 0.5);
    }
  }
}

/* Reserves the model's input/output buffers for a single-image frame of c x h x w. */
static esr_status frame_buffers(esr_stream* s, size_t c, size_t w, size_t h, size_t ow,
                                size_t oh) {
  size_t in_bytes = 0, out_bytes = 0;
  esr_status st = tensor_bytes(1, c, w, h, ow, oh, &in_bytes, &out_bytes);
  if (st != ESR_OK) return st;
  st = esr__buffer_reserve(s, &s->in, in_bytes);
  if (st != ESR_OK) return st;
  return esr__buffer_reserve(s, &s->out, out_bytes);
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

/* The vertical pass for a constant d*d, so the division becomes a multiply and the loop
 * vectorises (2x, 3x and 4x, the usual SR scales); other scales take the generic loop. */
#define ESR_VPASS(DD)                                                      \
  for (j = 0; j < n; ++j) {                                                \
    out[j] = (uint8_t)((gy * h0[j] + fy * h1[j] + (DD) / 2) / (DD));       \
  }

/* A chroma plane of `step`-byte samples (2: interleaved UV/VU pairs, 1: one planar
 * component), ch rows of cw samples -> oh rows of ow samples, integer bilinear, rounded half
 * up. Separable: each input row is interpolated horizontally once into `rows` (exact in
 * uint16: at most 255 * 2s), then each output row blends two of those. The result is the same
 * integer formula as blending the four taps directly. */
static void upsample_chroma(const esr_tap* tx, const esr_tap* ty, const uint8_t* src,
                            size_t src_pitch, size_t ch, size_t ow, size_t oh, size_t s,
                            size_t step, uint16_t* rows, uint8_t* dst, size_t dst_pitch) {
  const uint32_t d = (uint32_t)(2 * s), dd = d * d;
  const size_t n = ow * step;
  size_t x, y, i, j, k;
  for (i = 0; i < ch; ++i) {
    const uint8_t* r = src + i * src_pitch;
    uint16_t* h = rows + i * n;
    for (x = 0; x < ow; ++x) {
      const uint32_t fx = tx[x].frac, gx = d - fx;
      const size_t a = step * (size_t)tx[x].i0, b = step * (size_t)tx[x].i1;
      for (k = 0; k < step; ++k) h[step * x + k] = (uint16_t)(gx * r[a + k] + fx * r[b + k]);
    }
  }
  for (y = 0; y < oh; ++y) {
    const uint16_t* h0 = rows + ty[y].i0 * n;
    const uint16_t* h1 = rows + ty[y].i1 * n;
    const uint32_t fy = ty[y].frac, gy = d - fy;
    uint8_t* out = dst + y * dst_pitch;
    switch (s) {
      case 2: ESR_VPASS(16u) break;
      case 3: ESR_VPASS(36u) break;
      case 4: ESR_VPASS(64u) break;
      default: ESR_VPASS(dd) break;
    }
  }
}

/* Tap tables for 4:2:0 chroma of a w x h frame (w, h even; sizes already checked). */
static esr_status chroma_taps(esr_stream* s, size_t w, size_t h, esr_tap** tx, esr_tap** ty) {
  const size_t sc = (size_t)s->model->meta.scale, cw = w / 2, ch = h / 2;
  size_t taps_bytes = 0, rows_bytes = 0;
  esr_status st;
  if (cw > UINT32_MAX || ch > UINT32_MAX) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "4:2:0 chroma of %zux%zu is too large", cw, ch);
  }
  /* cw*s + ch*s taps; w*s and h*s are already known not to overflow. */
  if (!mul_ok(cw * sc + ch * sc, sizeof(esr_tap), &taps_bytes)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "4:2:0 chroma tables overflow");
  }
  if ((st = esr__buffer_reserve(s, &s->taps, taps_bytes)) != ESR_OK) return st;
  /* Horizontal pass rows: ch rows of at most w*s uint16 (NV12: (w/2)*s pairs). */
  if (!mul_ok(ch, w * sc, &rows_bytes) || !mul_ok(rows_bytes, sizeof(uint16_t), &rows_bytes)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "4:2:0 chroma rows overflow");
  }
  if ((st = esr__buffer_reserve(s, &s->chroma_rows, rows_bytes)) != ESR_OK) return st;
  *tx = (esr_tap*)s->taps.data;
  *ty = *tx + cw * sc;
  if (s->taps_w != cw || s->taps_h != ch) {
    build_taps(*tx, cw * sc, cw, sc);
    build_taps(*ty, ch * sc, ch, sc);
    s->taps_w = cw;
    s->taps_h = ch;
  }
  return ESR_OK;
}

/* ---- RGB frames ---- */

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

/* RGB24 frame (sizes and planes checked): RGB model, or BT.601 luma through a Y model. */
static esr_status rgb_frame(esr_stream* s, const uint8_t* src, size_t width, size_t height,
                            size_t src_pitch, uint8_t* dst, size_t dst_pitch, size_t ow,
                            size_t oh) {
  const esr_model* m = s->model;
  size_t plane = width * height, oplane = ow * oh, x, y, in_bytes = 0, out_bytes = 0;
  float *in, *out;
  esr_status st;
  if ((st = tensor_bytes(1, 3, width, height, ow, oh, &in_bytes, &out_bytes)) != ESR_OK) return st;
  if ((st = frame_buffers(s, m->channels, width, height, ow, oh)) != ESR_OK) return st;
  in = (float*)s->in.data;
  out = (float*)s->out.data;
  if (m->meta.color == ESR_COLOR_RGB) {
    for (y = 0; y < height; ++y) {
      const uint8_t* row = src + y * src_pitch;
      for (x = 0; x < width; ++x) {
        in[y * width + x] = g_u8_to_f32[row[3 * x]];
        in[plane + y * width + x] = g_u8_to_f32[row[3 * x + 1]];
        in[2 * plane + y * width + x] = g_u8_to_f32[row[3 * x + 2]];
      }
    }
    if ((st = run_model(s, in, out, 1, 3, width, height)) != ESR_OK) return st;
    for (y = 0; y < oh; ++y) {
      uint8_t* row = dst + y * dst_pitch;
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
    if ((st = esr__buffer_reserve(s, &s->cb, in_bytes / 3)) != ESR_OK) return st;
    if ((st = esr__buffer_reserve(s, &s->cr, in_bytes / 3)) != ESR_OK) return st;
    if ((st = esr__buffer_reserve(s, &s->cb_up, out_bytes / 3)) != ESR_OK) return st;
    if ((st = esr__buffer_reserve(s, &s->cr_up, out_bytes / 3)) != ESR_OK) return st;
    cb = (float*)s->cb.data;
    cr = (float*)s->cr.data;
    cbu = (float*)s->cb_up.data;
    cru = (float*)s->cr_up.data;
    for (y = 0; y < height; ++y) {
      const uint8_t* row = src + y * src_pitch;
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
    if ((st = run_model(s, in, out, 1, 1, width, height)) != ESR_OK) return st;
    upsample_plane_f32(cb, width, height, (size_t)m->meta.scale, cbu);
    upsample_plane_f32(cr, width, height, (size_t)m->meta.scale, cru);
    invert3(k_rgb2ycc, inv);
    for (y = 0; y < oh; ++y) {
      uint8_t* row = dst + y * dst_pitch;
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

/* ---- YUV frames on an RGB model ---- */

/* Luma weights (Kr, Kb) of the YUV matrices; Kg = 1 - Kr - Kb. */
static void yuv_weights(esr_yuv_matrix m, double* kr, double* kb) {
  *kr = m == ESR_YUV_BT709 ? 0.2126 : 0.299;
  *kb = m == ESR_YUV_BT709 ? 0.0722 : 0.114;
}

static double clamp01(double v) { return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v; }

/* double -> u8, rounded half up and clamped (the same rounding as f32_to_u8). */
static uint8_t round_u8(double v) {
  v = v > 0.0 ? v : 0.0;
  v = v < 255.0 ? v : 255.0;
  return (uint8_t)(int32_t)(v + 0.5);
}

/* The U and V sample at chroma position (x, y) of a 4:2:0 frame. */
static void chroma_at(const esr_image* im, size_t x, size_t y, uint8_t* u, uint8_t* v) {
  const uint8_t* p1 = im->planes[1] + y * im->pitches[1];
  if (im->format == ESR_PIXEL_I420) {
    *u = p1[x];
    *v = im->planes[2][y * im->pitches[2] + x];
  } else if (im->format == ESR_PIXEL_NV12) {
    *u = p1[2 * x];
    *v = p1[2 * x + 1];
  } else {
    *v = p1[2 * x];
    *u = p1[2 * x + 1];
  }
}

static void set_chroma(const esr_image* im, size_t x, size_t y, uint8_t u, uint8_t v) {
  uint8_t* p1 = im->planes[1] + y * im->pitches[1];
  if (im->format == ESR_PIXEL_I420) {
    p1[x] = u;
    im->planes[2][y * im->pitches[2] + x] = v;
  } else if (im->format == ESR_PIXEL_NV12) {
    p1[2 * x] = u;
    p1[2 * x + 1] = v;
  } else {
    p1[2 * x] = v;
    p1[2 * x + 1] = u;
  }
}

/* A 4:2:0 frame (sizes and planes checked, w and h even) on an RGB model: chroma upsampled 2x
 * (float bilinear, centre-aligned), converted to RGB with the frame's matrix and range and
 * clamped to [0, 1]; the model's RGB converted back, luma per pixel, chroma the mean of each
 * 2x2 block. */
static esr_status yuv_on_rgb_model(esr_stream* s, const esr_image* src, const esr_image* dst) {
  const size_t w = src->width, h = src->height, cw = w / 2, ch = h / 2;
  const size_t ow = dst->width, oh = dst->height, plane = w * h, oplane = ow * oh;
  const int full = src->range == ESR_RANGE_FULL;
  const double y_off = full ? 0.0 : 16.0, y_span = full ? 255.0 : 219.0,
               c_span = full ? 255.0 : 224.0;
  double kr, kb, kg;
  size_t x, y, in_bytes = 0, out_bytes = 0;
  float *in, *out, *cb, *cr, *cbu, *cru;
  esr_status st;
  yuv_weights(src->matrix, &kr, &kb);
  kg = 1.0 - kr - kb;
  if ((st = tensor_bytes(1, 3, w, h, ow, oh, &in_bytes, &out_bytes)) != ESR_OK) return st;
  if ((st = frame_buffers(s, 3, w, h, ow, oh)) != ESR_OK) return st;
  /* cb, cr: the chroma planes; cb_up, cr_up: at luma resolution (in_bytes / 3 each). */
  if ((st = esr__buffer_reserve(s, &s->cb, in_bytes / 3)) != ESR_OK) return st;
  if ((st = esr__buffer_reserve(s, &s->cr, in_bytes / 3)) != ESR_OK) return st;
  if ((st = esr__buffer_reserve(s, &s->cb_up, in_bytes / 3)) != ESR_OK) return st;
  if ((st = esr__buffer_reserve(s, &s->cr_up, in_bytes / 3)) != ESR_OK) return st;
  in = (float*)s->in.data;
  out = (float*)s->out.data;
  cb = (float*)s->cb.data;
  cr = (float*)s->cr.data;
  cbu = (float*)s->cb_up.data;
  cru = (float*)s->cr_up.data;
  for (y = 0; y < ch; ++y) {
    for (x = 0; x < cw; ++x) {
      uint8_t u, v;
      chroma_at(src, x, y, &u, &v);
      cb[y * cw + x] = (float)(((double)u - 128.0) / c_span);
      cr[y * cw + x] = (float)(((double)v - 128.0) / c_span);
    }
  }
  upsample_plane_f32(cb, cw, ch, 2, cbu);
  upsample_plane_f32(cr, cw, ch, 2, cru);
  for (y = 0; y < h; ++y) {
    const uint8_t* row = src->planes[0] + y * src->pitches[0];
    for (x = 0; x < w; ++x) {
      const size_t i = y * w + x;
      const double yy = ((double)row[x] - y_off) / y_span;
      const double r = yy + 2.0 * (1.0 - kr) * cru[i], b = yy + 2.0 * (1.0 - kb) * cbu[i];
      const double g = (yy - kr * r - kb * b) / kg;
      in[i] = (float)clamp01(r);
      in[plane + i] = (float)clamp01(g);
      in[2 * plane + i] = (float)clamp01(b);
    }
  }
  if ((st = run_model(s, in, out, 1, 3, w, h)) != ESR_OK) return st;
  for (y = 0; y < oh; y += 2) {
    for (x = 0; x < ow; x += 2) {
      double sum_b = 0.0, sum_r = 0.0;
      size_t dy, dx;
      for (dy = 0; dy < 2; ++dy) {
        for (dx = 0; dx < 2; ++dx) {
          const size_t i = (y + dy) * ow + x + dx;
          const double r = clamp01(out[i]), g = clamp01(out[oplane + i]),
                       b = clamp01(out[2 * oplane + i]);
          const double yy = kr * r + kg * g + kb * b;
          dst->planes[0][(y + dy) * dst->pitches[0] + x + dx] = round_u8(y_off + y_span * yy);
          sum_b += (b - yy) / (2.0 * (1.0 - kb));
          sum_r += (r - yy) / (2.0 * (1.0 - kr));
        }
      }
      set_chroma(dst, x / 2, y / 2, round_u8(128.0 + c_span * sum_b / 4.0),
                 round_u8(128.0 + c_span * sum_r / 4.0));
    }
  }
  return ESR_OK;
}

/* ---- frames ---- */

static const char* format_name(esr_pixel_format f) {
  switch (f) {
    case ESR_PIXEL_GRAY8: return "GRAY8";
    case ESR_PIXEL_RGB24: return "RGB24";
    case ESR_PIXEL_NV12: return "NV12";
    case ESR_PIXEL_NV21: return "NV21";
    case ESR_PIXEL_I420: return "I420";
  }
  return "?";
}

/* The image struct of ABI 1 is the smallest a caller may pass. */
#define ESR_IMAGE_MIN_SIZE (offsetof(esr_image, pitches) + sizeof(((esr_image*)0)->pitches))

static esr_status read_image(const esr_image* in, const char* what, esr_image* out) {
  if (in == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s image is NULL", what);
  if (in->struct_size < ESR_IMAGE_MIN_SIZE || in->struct_size > 4096) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "%s esr_image.struct_size is %u; set it to sizeof(esr_image)", what,
                     (unsigned)in->struct_size);
  }
  memset(out, 0, sizeof *out);
  memcpy(out, in, in->struct_size < sizeof *out ? in->struct_size : sizeof *out);
  if ((unsigned)out->format > (unsigned)ESR_PIXEL_I420) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s pixel format %d is unknown", what,
                     (int)out->format);
  }
  if ((unsigned)out->matrix > (unsigned)ESR_YUV_BT709 ||
      (unsigned)out->range > (unsigned)ESR_RANGE_FULL) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s YUV matrix %d or range %d is unknown", what,
                     (int)out->matrix, (int)out->range);
  }
  return ESR_OK;
}

/* Checks every plane a frame of format f, w x h, uses (w, h > 0; even for 4:2:0). */
static esr_status check_planes(const esr_image* im, const char* what) {
  char name[32];
  const size_t w = im->width, h = im->height;
  esr_status st;
  size_t row = w;
  if (im->format == ESR_PIXEL_RGB24 && !mul_ok(w, 3, &row)) {
    return esr__fail(ESR_ERR_SIZE_OVERFLOW, "RGB row of %zu pixels overflows", w);
  }
  snprintf(name, sizeof name, "%s plane 0", what);
  if ((st = check_plane(name, im->planes[0], row, h, im->pitches[0])) != ESR_OK) return st;
  if (im->format == ESR_PIXEL_NV12 || im->format == ESR_PIXEL_NV21) {
    snprintf(name, sizeof name, "%s plane 1", what);
    return check_plane(name, im->planes[1], w, h / 2, im->pitches[1]);
  }
  if (im->format == ESR_PIXEL_I420) {
    snprintf(name, sizeof name, "%s plane 1", what);
    if ((st = check_plane(name, im->planes[1], w / 2, h / 2, im->pitches[1])) != ESR_OK) return st;
    snprintf(name, sizeof name, "%s plane 2", what);
    return check_plane(name, im->planes[2], w / 2, h / 2, im->pitches[2]);
  }
  return ESR_OK;
}

static esr_status need_stream(const esr_stream* s) {
  return s == NULL ? esr__fail(ESR_ERR_INVALID_ARGUMENT, "stream is NULL") : ESR_OK;
}

esr_status esr_stream_prepare(esr_stream* s, size_t width, size_t height) {
  size_t ow = 0, oh = 0;
  esr_tap *tx, *ty;
  esr_status st;
  esr__enter();
  if ((st = need_stream(s)) != ESR_OK) return st;
  if ((st = out_size(s->model, width, height, &ow, &oh)) != ESR_OK) return st;
  if ((st = esr__check_frame_size(s->model, 1, width, height)) != ESR_OK) return st;
  if ((st = frame_buffers(s, s->model->channels, width, height, ow, oh)) != ESR_OK) return st;
  if (s->model->meta.color == ESR_COLOR_Y_BT601 && width % 2 == 0 && height % 2 == 0) {
    return chroma_taps(s, width, height, &tx, &ty); /* a 4:2:0 stream's first frame */
  }
  return ESR_OK;
}

esr_status esr_upscale_image(esr_stream* s, const esr_image* src_in, esr_image* dst_in) {
  esr_image src, dst;
  const esr_model* m;
  size_t ow = 0, oh = 0, w, h, sc;
  const float* table;
  esr_tap *tx = NULL, *ty = NULL;
  uint16_t* rows;
  esr_status st;
  esr__enter();
  if ((st = need_stream(s)) != ESR_OK) return st;
  m = s->model;
  if ((st = read_image(src_in, "src", &src)) != ESR_OK) return st;
  if ((st = read_image(dst_in, "dst", &dst)) != ESR_OK) return st;
  w = src.width;
  h = src.height;
  if (dst.format != src.format) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "dst format %s differs from src format %s; libedgesr does not convert "
                     "between formats",
                     format_name(dst.format), format_name(src.format));
  }
  if (src.format != ESR_PIXEL_RGB24 &&
      (dst.range != src.range || (src.format != ESR_PIXEL_GRAY8 && dst.matrix != src.matrix))) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "dst YUV matrix/range differ from src; give dst the src's matrix and range");
  }
  if (src.format == ESR_PIXEL_GRAY8 && m->meta.color != ESR_COLOR_Y_BT601) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH,
                     "GRAY8 frames need a y_bt601 model; this model is rgb (give RGB24 or YUV "
                     "frames, or float planes to esr_upscale_f32)");
  }
  if ((st = out_size(m, w, h, &ow, &oh)) != ESR_OK) return st;
  if (dst.width != ow || dst.height != oh) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "dst is %zux%zu but a %zux%zu frame at x%d gives %zux%zu", dst.width,
                     dst.height, w, h, (int)m->meta.scale, ow, oh);
  }
  if (src.format >= ESR_PIXEL_NV12 && (w % 2 != 0 || h % 2 != 0)) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "%s needs an even width and height, got %zux%zu",
                     format_name(src.format), w, h);
  }
  if ((st = check_planes(&src, "src")) != ESR_OK) return st;
  if ((st = check_planes(&dst, "dst")) != ESR_OK) return st;
  if ((st = esr__check_frame_size(m, 1, w, h)) != ESR_OK) return st;
  if (src.format == ESR_PIXEL_RGB24) {
    return rgb_frame(s, src.planes[0], w, h, src.pitches[0], dst.planes[0], dst.pitches[0], ow,
                     oh);
  }
  if (m->meta.color == ESR_COLOR_RGB) return yuv_on_rgb_model(s, &src, &dst);
  if ((st = frame_buffers(s, 1, w, h, ow, oh)) != ESR_OK) return st;
  if (src.format != ESR_PIXEL_GRAY8 && (st = chroma_taps(s, w, h, &tx, &ty)) != ESR_OK) return st;
  table = src.range == ESR_RANGE_FULL ? g_full_to_f32 : g_u8_to_f32;
  plane_u8_to_f32(src.planes[0], w, h, src.pitches[0], table, (float*)s->in.data);
  if ((st = run_model(s, (const float*)s->in.data, (float*)s->out.data, 1, 1, w, h)) != ESR_OK) {
    return st;
  }
  if (src.range == ESR_RANGE_FULL) {
    plane_f32_to_u8_full((const float*)s->out.data, ow, oh, dst.planes[0], dst.pitches[0]);
  } else {
    plane_f32_to_u8((const float*)s->out.data, ow, oh, dst.planes[0], dst.pitches[0]);
  }
  /* Chroma is never touched by the model: it keeps its own matrix and range. */
  sc = (size_t)m->meta.scale;
  rows = (uint16_t*)s->chroma_rows.data;
  if (src.format == ESR_PIXEL_NV12 || src.format == ESR_PIXEL_NV21) {
    upsample_chroma(tx, ty, src.planes[1], src.pitches[1], h / 2, ow / 2, oh / 2, sc, 2, rows,
                    dst.planes[1], dst.pitches[1]);
  } else if (src.format == ESR_PIXEL_I420) {
    upsample_chroma(tx, ty, src.planes[1], src.pitches[1], h / 2, ow / 2, oh / 2, sc, 1, rows,
                    dst.planes[1], dst.pitches[1]);
    upsample_chroma(tx, ty, src.planes[2], src.pitches[2], h / 2, ow / 2, oh / 2, sc, 1, rows,
                    dst.planes[2], dst.pitches[2]);
  }
  return ESR_OK;
}

/* A one-plane frame through esr_upscale_image (the output size is the model's). */
static esr_status packed_frame(esr_stream* s, esr_pixel_format format, const uint8_t* src,
                               size_t width, size_t height, size_t src_pitch, uint8_t* dst,
                               size_t dst_pitch) {
  esr_image in, out;
  size_t ow = 0, oh = 0;
  esr_status st;
  esr__enter();
  if ((st = need_stream(s)) != ESR_OK) return st;
  if ((st = out_size(s->model, width, height, &ow, &oh)) != ESR_OK) return st;
  memset(&in, 0, sizeof in);
  in.struct_size = (uint32_t)sizeof in;
  in.format = format;
  in.width = width;
  in.height = height;
  in.planes[0] = (uint8_t*)(uintptr_t)src; /* only read */
  in.pitches[0] = src_pitch;
  out = in;
  out.width = ow;
  out.height = oh;
  out.planes[0] = dst;
  out.pitches[0] = dst_pitch;
  return esr_upscale_image(s, &in, &out);
}

esr_status esr_upscale_y_u8(esr_stream* s, const uint8_t* src, size_t width, size_t height,
                            size_t src_pitch, uint8_t* dst, size_t dst_pitch) {
  return packed_frame(s, ESR_PIXEL_GRAY8, src, width, height, src_pitch, dst, dst_pitch);
}

esr_status esr_upscale_rgb_u8(esr_stream* s, const uint8_t* src, size_t width, size_t height,
                              size_t src_pitch, uint8_t* dst, size_t dst_pitch) {
  return packed_frame(s, ESR_PIXEL_RGB24, src, width, height, src_pitch, dst, dst_pitch);
}

esr_status esr_upscale_f32(esr_stream* s, const float* src, size_t batch, size_t channels,
                           size_t width, size_t height, float* dst) {
  size_t ow = 0, oh = 0, in_bytes = 0, out_bytes = 0;
  const esr_model* m;
  esr_status st;
  esr__enter();
  if ((st = need_stream(s)) != ESR_OK) return st;
  m = s->model;
  if (src == NULL || dst == NULL) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "src or dst is NULL");
  if (batch == 0) return esr__fail(ESR_ERR_INVALID_ARGUMENT, "batch is 0");
  if (channels != m->channels) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH, "the model takes %zu channel(s) (%s), got %zu",
                     m->channels, m->meta.color == ESR_COLOR_RGB ? "rgb" : "y_bt601", channels);
  }
  if ((st = out_size(m, width, height, &ow, &oh)) != ESR_OK) return st;
  if ((st = tensor_bytes(batch, channels, width, height, ow, oh, &in_bytes, &out_bytes)) !=
      ESR_OK) {
    return st;
  }
  if ((st = esr__check_frame_size(m, batch, width, height)) != ESR_OK) return st;
  /* The caller's buffers go to the backend as they are: no copy, so the result is exactly the
   * model's and the only per-frame work is the backend's. */
  return run_model(s, src, dst, batch, channels, width, height);
}
